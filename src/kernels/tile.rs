//! The register tile: fovea's own AVX2 + FMA microkernel, the inner loop of the convolutions.
//!
//! One call computes, for `r < rows <= 6` and `j < n <= 16`,
//!
//! `C(r, j) = c[r + j * c_cs]  (+)=  sum_k data[row_offsets[r] + k_offsets[k]] * b[16 k + j]`
//!
//! keeping the `rows x 16` block of C in twelve ymm registers while it runs over k: per k, two
//! vector loads of B, one offset load and `rows` broadcasts feed `2 * rows` FMAs. A is gathered
//! through two offset lists, so a convolution reads its zero-padded sample in place whatever
//! the stride, dilation or row width: in the forward pass r is an output pixel (its window's
//! offset), k a tap (its offset) and j an output channel (weights packed `[k][16]`); in the
//! weight gradient r is a tap, k a pixel and j an output channel (dY packed `[pixel][16]`).
//! C is stored transposed (one output channel's `rows` values are contiguous), which is the
//! NCHW layout of both results.
//!
//! Why not `gemm`: a convolution's products are small (64 x 196 x 800 per sample for the MNIST
//! net's conv2) and `gemm` must first copy im2col's column matrix (larger than L2) into its
//! own panels; here nothing of the sample is copied but its zero padding. Measured on that
//! layer: docs/ARCHITECTURE.md, "Convolution kernels".

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

/// Offsets with their maximum, found once when set, so each tile checks its bounds in O(1).
#[derive(Default)]
pub struct Offsets {
    offsets: Vec<usize>,
    max: usize,
}

impl Offsets {
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
    /// The offsets from `start` on (their maximum is still the whole list's, an upper bound).
    pub fn from(&self, start: usize) -> OffsetsFrom<'_> {
        OffsetsFrom { offsets: &self.offsets[start..], max: self.max }
    }
}

/// A tail of an `Offsets` list.
#[derive(Clone, Copy)]
pub struct OffsetsFrom<'a> {
    offsets: &'a [usize],
    max: usize,
}

/// The operands of one tile; see the module comment for the formula.
pub struct Tile<'a> {
    pub rows: usize,
    pub k: usize,
    /// A's values, read at `row_offsets[r] + k_offsets[k]`.
    pub data: &'a [f32],
    pub row_offsets: OffsetsFrom<'a>,
    pub k_offsets: OffsetsFrom<'a>,
    /// `[k][16]`
    pub b: &'a [f32],
    pub c: &'a mut [f32],
    /// Distance in C between columns j and j + 1.
    pub c_cs: usize,
    /// Valid columns of C, `1..=16`.
    pub n: usize,
    /// Add to C instead of overwriting it.
    pub accumulate: bool,
}

/// Runs one tile. Panics if an operand is shorter than its stated shape or `available()` is
/// false: callers size their own buffers, so either is a bug in fovea, not bad input.
pub fn run(t: Tile) {
    assert!(t.rows >= 1 && t.rows <= MAX_ROWS && t.n >= 1 && t.n <= WIDTH, "tile: {} rows x {} columns", t.rows, t.n);
    assert!(t.row_offsets.offsets.len() >= t.rows, "tile: {} row offsets for {} rows", t.row_offsets.offsets.len(), t.rows);
    if t.k > 0 {
        assert!(t.k_offsets.offsets.len() >= t.k, "tile: {} k offsets for k = {}", t.k_offsets.offsets.len(), t.k);
        let last = t.row_offsets.max + t.k_offsets.max;
        assert!(last < t.data.len(), "tile: A has {} values, reads up to {last}", t.data.len());
        assert!(t.k * WIDTH <= t.b.len(), "tile: B has {} values, needs {}x{WIDTH}", t.b.len(), t.k);
    }
    let last_c = (t.rows - 1) + (t.n - 1) * t.c_cs;
    assert!(last_c < t.c.len(), "tile: C has {} values, writes up to {last_c}", t.c.len());
    assert!(available(), "tile: this CPU lacks AVX2/FMA");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the asserts above bound every read of A and B and every write of C; the CPU
    // supports the instructions (checked above).
    unsafe {
        let o = avx2::Operands {
            k: t.k,
            data: t.data.as_ptr(),
            row_offsets: t.row_offsets.offsets.as_ptr(),
            k_offsets: t.k_offsets.offsets.as_ptr(),
            b: t.b.as_ptr(),
            c: t.c.as_mut_ptr(),
            c_cs: t.c_cs,
            n: t.n,
            accumulate: t.accumulate,
        };
        match t.rows {
            1 => avx2::tile::<1>(o),
            2 => avx2::tile::<2>(o),
            3 => avx2::tile::<3>(o),
            4 => avx2::tile::<4>(o),
            5 => avx2::tile::<5>(o),
            _ => avx2::tile::<6>(o),
        }
    }
}

/// `src: [rows, cols]` into 16-row panels `[ceil(rows / 16)][cols][16]` (the tile's B layout);
/// lanes past `rows` in the last panel are left as they are.
pub fn pack_panels(panels: &mut [f32], src: &[f32], rows: usize, cols: usize) {
    assert!(src.len() >= rows * cols, "pack_panels: {} values for {rows}x{cols}", src.len());
    assert!(panels.len() >= rows.div_ceil(WIDTH) * cols * WIDTH, "pack_panels: {} values for the panels", panels.len());
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: sizes checked above, AVX2 present.
        return unsafe { avx2::pack_panels(panels.as_mut_ptr(), src.as_ptr(), rows, cols) };
    }
    for (r, line) in src.chunks_exact(cols).take(rows).enumerate() {
        for (c, v) in line.iter().enumerate() {
            panels[(r / WIDTH) * cols * WIDTH + c * WIDTH + r % WIDTH] = *v;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::WIDTH;
    use std::arch::x86_64::*;

    /// Raw operands of one tile, as `super::run` checked them.
    #[derive(Clone, Copy)]
    pub struct Operands {
        pub k: usize,
        pub data: *const f32,
        pub row_offsets: *const usize,
        pub k_offsets: *const usize,
        pub b: *const f32,
        pub c: *mut f32,
        pub c_cs: usize,
        pub n: usize,
        pub accumulate: bool,
    }

    /// # Safety
    /// The CPU has AVX2 and FMA; A, B and C hold every value the module comment's formula
    /// indexes for `R` rows, `k` steps and `n` columns.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn tile<const R: usize>(o: Operands) {
        let Operands { k, data, row_offsets, k_offsets, b, c, c_cs, n, accumulate } = o;
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        let mut rows = [data; R];
        for (r, p) in rows.iter_mut().enumerate() {
            *p = data.add(*row_offsets.add(r));
        }
        let mut bp = b;
        for kk in 0..k {
            let base = *k_offsets.add(kk);
            let b0 = _mm256_loadu_ps(bp);
            let b1 = _mm256_loadu_ps(bp.add(8));
            for r in 0..R {
                let av = _mm256_broadcast_ss(&*rows[r].add(base));
                acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
            }
            bp = bp.add(WIDTH);
        }
        // Column j of C (one output channel) holds the R rows contiguously.
        if R == 6 {
            return store_six(&acc, c, c_cs, n, accumulate);
        }
        let mut buf = [[0.0f32; WIDTH]; R];
        for (r, pair) in acc.iter().enumerate() {
            _mm256_storeu_ps(buf[r].as_mut_ptr(), pair[0]);
            _mm256_storeu_ps(buf[r].as_mut_ptr().add(8), pair[1]);
        }
        for j in 0..n {
            let col = c.add(j * c_cs);
            for (r, line) in buf.iter().enumerate() {
                let d = col.add(r);
                *d = if accumulate { *d + line[j] } else { line[j] };
            }
        }
    }

    /// The transpose of an 8 x 8 block held as 8 row vectors.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
        let (t0, t1) = (_mm256_unpacklo_ps(r[0], r[1]), _mm256_unpackhi_ps(r[0], r[1]));
        let (t2, t3) = (_mm256_unpacklo_ps(r[2], r[3]), _mm256_unpackhi_ps(r[2], r[3]));
        let (t4, t5) = (_mm256_unpacklo_ps(r[4], r[5]), _mm256_unpackhi_ps(r[4], r[5]));
        let (t6, t7) = (_mm256_unpacklo_ps(r[6], r[7]), _mm256_unpackhi_ps(r[6], r[7]));
        let (s0, s1) = (_mm256_shuffle_ps::<0x44>(t0, t2), _mm256_shuffle_ps::<0xEE>(t0, t2));
        let (s2, s3) = (_mm256_shuffle_ps::<0x44>(t1, t3), _mm256_shuffle_ps::<0xEE>(t1, t3));
        let (s4, s5) = (_mm256_shuffle_ps::<0x44>(t4, t6), _mm256_shuffle_ps::<0xEE>(t4, t6));
        let (s6, s7) = (_mm256_shuffle_ps::<0x44>(t5, t7), _mm256_shuffle_ps::<0xEE>(t5, t7));
        [
            _mm256_permute2f128_ps::<0x20>(s0, s4),
            _mm256_permute2f128_ps::<0x20>(s1, s5),
            _mm256_permute2f128_ps::<0x20>(s2, s6),
            _mm256_permute2f128_ps::<0x20>(s3, s7),
            _mm256_permute2f128_ps::<0x31>(s0, s4),
            _mm256_permute2f128_ps::<0x31>(s1, s5),
            _mm256_permute2f128_ps::<0x31>(s2, s6),
            _mm256_permute2f128_ps::<0x31>(s3, s7),
        ]
    }

    /// `panels[(r / 16) * cols * 16 + c * 16 + r % 16] = src[r * cols + c]`, 8 x 8 blocks
    /// transposed in registers, the ragged edges value by value.
    ///
    /// # Safety
    /// AVX2; `src` holds `rows * cols` values, `panels` `ceil(rows / 16) * cols * 16`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn pack_panels(panels: *mut f32, src: *const f32, rows: usize, cols: usize) {
        let (rows8, cols8) = (rows / 8 * 8, cols / 8 * 8);
        let at = |r: usize, c: usize| (r / WIDTH) * cols * WIDTH + c * WIDTH + r % WIDTH;
        for r0 in (0..rows8).step_by(8) {
            for c0 in (0..cols8).step_by(8) {
                let mut block = [_mm256_setzero_ps(); 8];
                for (i, v) in block.iter_mut().enumerate() {
                    *v = _mm256_loadu_ps(src.add((r0 + i) * cols + c0));
                }
                for (j, v) in transpose8(block).iter().enumerate() {
                    _mm256_storeu_ps(panels.add(at(r0, c0 + j)), *v);
                }
            }
            for c in cols8..cols {
                for r in r0..r0 + 8 {
                    *panels.add(at(r, c)) = *src.add(r * cols + c);
                }
            }
        }
        for r in rows8..rows {
            for c in 0..cols {
                *panels.add(at(r, c)) = *src.add(r * cols + c);
            }
        }
    }

    /// Stores six rows of C transposed with vector moves: each 8-column half of the 6 x 16
    /// block is transposed in registers (two zero rows make it 8 x 8), then every column's six
    /// values go out as one 4-value and one 2-value store.
    ///
    /// # Safety
    /// As `tile`: C holds `5 + (n - 1) * c_cs + 1` values.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::needless_range_loop)]
    unsafe fn store_six<const R: usize>(acc: &[[__m256; 2]; R], c: *mut f32, c_cs: usize, n: usize, accumulate: bool) {
        let zero = _mm256_setzero_ps();
        for half in 0..2 {
            let row = |i: usize| if i < R { acc[i][half] } else { zero };
            // cols[j] holds rows 0..8 of column half * 8 + j.
            let cols = transpose8([row(0), row(1), row(2), row(3), row(4), row(5), zero, zero]);
            for (j, col) in cols.iter().enumerate() {
                let column = half * 8 + j;
                if column >= n {
                    return;
                }
                let d = c.add(column * c_cs);
                let mut lo = _mm256_castps256_ps128(*col);
                let mut hi = _mm256_extractf128_ps::<1>(*col);
                if accumulate {
                    lo = _mm_add_ps(lo, _mm_loadu_ps(d));
                    hi = _mm_add_ps(hi, _mm_castpd_ps(_mm_load_sd(d.add(4) as *const f64)));
                }
                _mm_storeu_ps(d, lo);
                _mm_storel_pd(d.add(4) as *mut f64, _mm_castps_pd(hi));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn panels_hold_the_transpose() {
        let mut rng = Rng::new(2);
        for &(rows, cols) in &[(64, 196), (6, 784), (19, 13), (8, 8), (1, 3)] {
            let src = rng.uniform_vec(rows * cols, -1.0, 1.0);
            let mut panels = vec![f32::NAN; rows.div_ceil(WIDTH) * cols * WIDTH];
            pack_panels(&mut panels, &src, rows, cols);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(panels[(r / WIDTH) * cols * WIDTH + c * WIDTH + r % WIDTH], src[r * cols + c], "{rows}x{cols} [{r},{c}]");
                }
            }
        }
    }

    #[test]
    fn tile_matches_the_definition_for_every_row_count_and_width() {
        if !available() {
            return;
        }
        let mut rng = Rng::new(9);
        for rows in 1..=MAX_ROWS {
            for &(k, n, acc) in &[(1, 16, false), (9, 5, true), (50, 16, true), (0, 3, false)] {
                let data = rng.uniform_vec(400, -1.0, 1.0);
                let mut row_offsets = Offsets::default();
                row_offsets.set((0..rows).map(|r| 3 * r + rng.below(4)));
                let mut k_offsets = Offsets::default();
                k_offsets.set((0..k).map(|kk| (kk * 7) % 300));
                let b = rng.uniform_vec(k * WIDTH, -1.0, 1.0);
                let c_cs = 11;
                let start = rng.uniform_vec(rows + (WIDTH - 1) * c_cs + 1, -1.0, 1.0);
                let mut c = start.clone();
                let t = Tile { rows, k, data: &data, row_offsets: row_offsets.from(0), k_offsets: k_offsets.from(0), b: &b, c: &mut c, c_cs, n, accumulate: acc };
                run(t);
                for (idx, (&got, &was)) in c.iter().zip(&start).enumerate() {
                    let (j, r) = (idx / c_cs, idx % c_cs);
                    if r >= rows || j >= n {
                        assert_eq!(got, was, "C[{idx}] outside the tile was written");
                        continue;
                    }
                    let row = row_offsets.offsets[r];
                    let dot: f64 = (0..k).map(|kk| data[row + (kk * 7) % 300] as f64 * b[kk * WIDTH + j] as f64).sum();
                    let want = if acc { was as f64 + dot } else { dot };
                    assert!((got as f64 - want).abs() < 1e-4 * (1.0 + want.abs()), "rows {rows} k {k} [{r},{j}]: {got} vs {want}");
                }
            }
        }
    }
}
