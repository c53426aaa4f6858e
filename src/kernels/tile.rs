//! The register tile: fovea's own AVX2 + FMA microkernel, the inner loop of the convolutions.
//!
//! One call computes `C[r][0..n] (+)= sum_k A(r, k) * B[k][0..16]` for up to `MAX_ROWS` rows,
//! keeping the whole `rows x 16` block of C in twelve ymm registers while it runs over k.
//! - `A`: each value is broadcast. Packed (`A(r, k) = a[k * rows + r]`, one cache line feeds
//!   several k; weights are packed once per call) or read in place with two strides
//!   (`A(r, k) = a[r * rs + k * ks]`, e.g. rows of a column matrix).
//! - `B`: 16 contiguous values per k, either packed (`B[k] = b[16k..]`) or read in place at
//!   per-k offsets (`B[k] = b[offsets[k]..]`, e.g. a row of a zero-padded image).
//! - `C`: row stride `c_rs`, only the first `n <= 16` columns are written.
//!
//! Why not `gemm` here: a convolution's products are small (64 x 196 x 800 for the MNIST net's
//! conv2) and `gemm` must first copy im2col's whole column matrix (larger than L2) into its
//! panels; packing B straight from the image into L1-sized panels and reading A in place saves
//! that round trip (docs/ARCHITECTURE.md, "Convolution kernels").

/// Rows of C one tile covers (6 rows x 2 vectors = 12 accumulators, + 2 for B, + 1 for A).
pub const MAX_ROWS: usize = 6;
/// Columns of C one tile covers: two 8-lane vectors.
pub const WIDTH: usize = 16;

/// Whether this CPU runs the tile (AVX2 and FMA); callers fall back to `gemm` when not.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The operands of one tile; see the module comment for their layouts.
pub struct Tile<'a> {
    pub rows: usize,
    pub k: usize,
    pub a: A<'a>,
    pub b: B<'a>,
    pub c: &'a mut [f32],
    pub c_rs: usize,
    /// Valid columns of C, `1..=16`.
    pub n: usize,
    /// Add to C instead of overwriting it.
    pub accumulate: bool,
}

/// Where the tile reads A.
#[derive(Clone, Copy)]
pub enum A<'a> {
    /// `[k][rows]`, contiguous.
    Packed(&'a [f32]),
    /// `A(r, k) = data[r * rs + k * ks]`.
    Strided { data: &'a [f32], rs: usize, ks: usize },
}

/// Where the tile reads its k-th row of 16 B values.
#[derive(Clone, Copy)]
pub enum B<'a> {
    /// `[k][16]`, contiguous.
    Packed(&'a [f32]),
    /// `data[offsets[k]..offsets[k] + 16]`.
    Rows { data: &'a [f32], offsets: &'a Offsets },
}

/// Per-k offsets of B's rows with their maximum, found once when built, so that each tile
/// checks its bounds in O(1).
pub struct Offsets {
    offsets: Vec<usize>,
    max: usize,
}

impl Offsets {
    pub fn new() -> Self {
        Offsets { offsets: Vec::new(), max: 0 }
    }
    /// Replaces the offsets (keeping the allocation).
    pub fn set(&mut self, offsets: impl Iterator<Item = usize>) {
        self.offsets.clear();
        self.offsets.extend(offsets);
        self.max = self.offsets.iter().copied().max().unwrap_or(0);
    }
    pub fn len(&self) -> usize {
        self.offsets.len()
    }
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }
}

impl Default for Offsets {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs one tile. Panics if an operand is shorter than its stated shape or `available()` is
/// false: callers size their own buffers, so either is a bug in fovea, not bad input.
pub fn run(t: Tile) {
    assert!(t.rows >= 1 && t.rows <= MAX_ROWS && t.n >= 1 && t.n <= WIDTH, "tile: {} rows x {} columns", t.rows, t.n);
    if t.k > 0 {
        match t.a {
            A::Packed(a) => assert!(t.k * t.rows <= a.len(), "tile: A has {} values, needs {}x{}", a.len(), t.k, t.rows),
            A::Strided { data, rs, ks } => {
                let last = (t.rows - 1) * rs + (t.k - 1) * ks;
                assert!(last < data.len(), "tile: A has {} values, reads up to {last}", data.len());
            }
        }
        match t.b {
            B::Packed(b) => assert!(t.k * WIDTH <= b.len(), "tile: B has {} values, needs {}x{WIDTH}", b.len(), t.k),
            B::Rows { data, offsets } => {
                assert!(offsets.len() >= t.k, "tile: {} B offsets for k = {}", offsets.len(), t.k);
                assert!(offsets.max + WIDTH <= data.len(), "tile: B row at {} past {} values", offsets.max, data.len());
            }
        }
    }
    assert!((t.rows - 1) * t.c_rs + t.n <= t.c.len(), "tile: C has {} values, too few for {} rows", t.c.len(), t.rows);
    assert!(available(), "tile: this CPU lacks AVX2/FMA");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the asserts above bound every read of A and B and every write of C; the CPU
    // supports the instructions (checked above).
    unsafe {
        let (a, a_rs, a_ks, a_packed) = match t.a {
            A::Packed(a) => (a.as_ptr(), 0, 0, true),
            A::Strided { data, rs, ks } => (data.as_ptr(), rs, ks, false),
        };
        let (b, offsets) = match t.b {
            B::Packed(b) => (b.as_ptr(), std::ptr::null()),
            B::Rows { data, offsets } => (data.as_ptr(), offsets.offsets.as_ptr()),
        };
        let c = t.c.as_mut_ptr();
        let o = avx2::Operands { k: t.k, a, a_rs, a_ks, b, offsets, c, c_rs: t.c_rs, n: t.n, accumulate: t.accumulate };
        macro_rules! dispatch {
            ($($r:literal)*) => {
                match (t.rows, a_packed, offsets.is_null()) {
                    $(
                        ($r, true, true) => avx2::tile::<$r, true, false>(o),
                        ($r, true, false) => avx2::tile::<$r, true, true>(o),
                        ($r, false, true) => avx2::tile::<$r, false, false>(o),
                        ($r, false, false) => avx2::tile::<$r, false, true>(o),
                    )*
                    _ => unreachable!("rows checked above"),
                }
            };
        }
        dispatch!(1 2 3 4 5 6)
    }
}

/// Cuts `m` rows into tiles of at most `MAX_ROWS`, as even as possible (64 -> nine 6s and two
/// 5s rather than ten 6s and a 4: a short last tile wastes its share of the loads).
pub fn row_blocks(m: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    super::parallel::chunk_ranges(m, m.div_ceil(MAX_ROWS)).into_iter().filter(|r| !r.is_empty())
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::WIDTH;
    use std::arch::x86_64::*;

    /// Raw operands of one tile, as `super::run` checked them.
    #[derive(Clone, Copy)]
    pub struct Operands {
        pub k: usize,
        pub a: *const f32,
        pub a_rs: usize,
        pub a_ks: usize,
        pub b: *const f32,
        /// Per-k offsets of B's rows when `B_ROWS`; unused (null) for packed B.
        pub offsets: *const usize,
        pub c: *mut f32,
        pub c_rs: usize,
        pub n: usize,
        pub accumulate: bool,
    }

    /// # Safety
    /// The CPU has AVX2 and FMA; A, B and C hold every value the module comment's formulas
    /// index for `R` rows, `k` steps and `n` columns.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn tile<const R: usize, const A_PACKED: bool, const B_ROWS: bool>(o: Operands) {
        let Operands { k, a, a_rs, a_ks, b, offsets, c, c_rs, n, accumulate } = o;
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        let mut rows = [a; R];
        for (r, p) in rows.iter_mut().enumerate() {
            *p = a.add(r * a_rs);
        }
        let mut ap = a;
        let mut bp = b;
        for kk in 0..k {
            if B_ROWS {
                bp = b.add(*offsets.add(kk));
            }
            let b0 = _mm256_loadu_ps(bp);
            let b1 = _mm256_loadu_ps(bp.add(8));
            for r in 0..R {
                let av = if A_PACKED { _mm256_broadcast_ss(&*ap.add(r)) } else { _mm256_broadcast_ss(&*rows[r]) };
                acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
                if !A_PACKED {
                    rows[r] = rows[r].add(a_ks);
                }
            }
            if A_PACKED {
                ap = ap.add(R);
            }
            if !B_ROWS {
                bp = bp.add(WIDTH);
            }
        }
        for (r, pair) in acc.iter().enumerate() {
            let dst = c.add(r * c_rs);
            if n == WIDTH {
                let (mut lo, mut hi) = (pair[0], pair[1]);
                if accumulate {
                    lo = _mm256_add_ps(lo, _mm256_loadu_ps(dst));
                    hi = _mm256_add_ps(hi, _mm256_loadu_ps(dst.add(8)));
                }
                _mm256_storeu_ps(dst, lo);
                _mm256_storeu_ps(dst.add(8), hi);
            } else {
                // Masked loads and stores touch only the first n columns (masked-off lanes
                // are neither read nor written, so nothing past C's end is accessed).
                let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
                for (half, v) in pair.iter().enumerate() {
                    let valid = n.saturating_sub(half * 8).min(8) as i32;
                    if valid == 0 {
                        break;
                    }
                    let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), lanes);
                    let d = dst.add(half * 8);
                    let mut v = *v;
                    if accumulate {
                        v = _mm256_add_ps(v, _mm256_maskload_ps(d, mask));
                    }
                    _mm256_maskstore_ps(d, mask, v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn tile_matches_the_definition_for_every_row_count_and_width() {
        if !available() {
            return;
        }
        let mut rng = Rng::new(5);
        for rows in 1..=MAX_ROWS {
            for &(k, n, a_rs, a_ks, acc) in &[(1, 16, 1, 6, false), (7, 3, 9, 1, true), (40, 16, 40, 1, true), (0, 5, 1, 1, false)] {
                let a = rng.uniform_vec(rows * a_rs.max(1) + k * a_ks + 1, -1.0, 1.0);
                let b = rng.uniform_vec(k * WIDTH, -1.0, 1.0);
                let c_rs = 19;
                let start = rng.uniform_vec(rows * c_rs, -1.0, 1.0);
                let mut c = start.clone();
                let strided = A::Strided { data: &a, rs: a_rs, ks: a_ks };
                run(Tile { rows, k, a: strided, b: B::Packed(&b), c: &mut c, c_rs, n, accumulate: acc });
                // The same B rows read in place, in reverse order from a copy with a gap.
                let mut data = vec![0.0; 3 + k * WIDTH + WIDTH];
                let mut offsets = Offsets::new();
                offsets.set((0..k).map(|kk| 3 + (k - 1 - kk) * WIDTH));
                for kk in 0..k {
                    let at = 3 + (k - 1 - kk) * WIDTH;
                    data[at..at + WIDTH].copy_from_slice(&b[kk * WIDTH..(kk + 1) * WIDTH]);
                }
                // The same A packed [k][rows].
                let packed: Vec<f32> = (0..k).flat_map(|kk| (0..rows).map(move |r| (kk, r))).map(|(kk, r)| a[r * a_rs + kk * a_ks]).collect();
                for (a_kind, b_kind) in [(A::Packed(&packed), B::Packed(&b)), (strided, B::Rows { data: &data, offsets: &offsets }), (A::Packed(&packed), B::Rows { data: &data, offsets: &offsets })] {
                    let mut other = start.clone();
                    run(Tile { rows, k, a: a_kind, b: b_kind, c: &mut other, c_rs, n, accumulate: acc });
                    assert_eq!(c, other, "operand layouts disagree");
                }
                for r in 0..rows {
                    for j in 0..c_rs {
                        let got = c[r * c_rs + j];
                        if j >= n {
                            assert_eq!(got, start[r * c_rs + j], "column {j} beyond n={n} was written");
                            continue;
                        }
                        let dot: f64 = (0..k).map(|p| a[r * a_rs + p * a_ks] as f64 * b[p * WIDTH + j] as f64).sum();
                        let want = if acc { start[r * c_rs + j] as f64 + dot } else { dot };
                        assert!((got as f64 - want).abs() < 1e-4 * (1.0 + want.abs()), "rows {rows} k {k} [{r},{j}]: {got} vs {want}");
                    }
                }
            }
        }
    }

    #[test]
    fn row_blocks_are_even_and_cover_all_rows() {
        let sizes: Vec<usize> = row_blocks(64).map(|r| r.len()).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 64);
        assert!(sizes.iter().all(|&s| s == 5 || s == 6), "{sizes:?}");
        assert_eq!(row_blocks(0).count(), 0);
        assert_eq!(row_blocks(6).count(), 1);
    }
}
