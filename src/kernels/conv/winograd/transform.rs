//! The three transforms of Winograd's F(2x2, 3x3) and F(2x2, 5x5) (Lavin and Gray, "Fast
//! Algorithms for Convolutional Neural Networks", 2016): a 2x2 block of outputs of an r x r
//! filter from an `a x a` block of input (`a = r + 1`), in `a^2` products instead of `4 r^2`
//! (16 instead of 36 for 3x3, 36 instead of 100 for 5x5).
//!
//! `Y = A^T [ (G g G^T) . (B^T d B) ] A`, with the matrices of the Toom-Cook construction on
//! the points 0, 1, -1 (, 2, -2) and infinity (`scripts/winograd_matrices.py` derives them;
//! B^T's rows are scaled to small integers and G takes the scale):
//!
//! ```text
//! F(2x2, 3x3)
//! B^T = | 1  0 -1  0 |     G = | 1    0    0  |     A^T = | 1  1  1  0 |
//!       | 0  1  1  0 |         | 1/2  1/2  1/2|           | 0  1 -1  1 |
//!       | 0 -1  1  0 |         | 1/2 -1/2  1/2|
//!       | 0 -1  0  1 |         | 0    0    1  |
//!
//! F(2x2, 5x5)
//! B^T = | 4  0 -5  0  1  0 |   G = | 1/4   0     0    0    0   |   A^T = | 1  1  1  1  1  0 |
//!       | 0  4  4 -1 -1  0 |       | 1/6   1/6   1/6  1/6  1/6 |         | 0  1 -1  2 -2  1 |
//!       | 0 -4  4  1 -1  0 |       | 1/6  -1/6   1/6 -1/6  1/6 |
//!       | 0 -2 -1  2  1  0 |       | 1/24  1/12  1/6  1/3  2/3 |
//!       | 0  2 -1 -2  1  0 |       | 1/24 -1/12  1/6 -1/3  2/3 |
//!       | 0  4  0 -5  0  1 |       | 0     0     0    0    1   |
//! ```
//!
//! Index `xi = A p + q` names one of the `A^2` points. The input and output transforms run
//! over a row of tiles at a time, one tile per lane: plain Rust over contiguous slices, the
//! 1-d transforms written out per variant (`Variant::bt`, `at`) and the 2-d ones shared
//! (`input_block`, `output_block`), compiled inside a `#[target_feature]` wrapper per
//! instruction set (`input_row`, `output_row`) so they vectorise at the tile's width.

use crate::kernels::isa::Isa;
use std::ops::{Add, Mul, Sub};

/// One transform: `A = R + 1` points per side for `R x R` filters. `bt` and `at` are written
/// out by hand (the matrices above, their zeros and ones dropped): a loop over constant
/// coefficients is not unrolled inside the `#[target_feature]` wrappers and tests every
/// coefficient at run time.
trait Variant<const A: usize, const R: usize> {
    /// In f64: the weights' coefficients are products of two entries, rounded once.
    const G: [[f64; R]; A];
    /// `B^T x` of one column of `A` values.
    fn bt<T: Value>(x: [T; A]) -> [T; A];
    /// `A^T x`: the two outputs of one column of `A` products.
    fn at<T: Value>(x: [T; A]) -> [T; 2];
}

/// F(2x2, 3x3).
struct F2x3;

impl Variant<4, 3> for F2x3 {
    const G: [[f64; 3]; 4] = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];
    #[inline(always)]
    fn bt<T: Value>(x: [T; 4]) -> [T; 4] {
        [x[0] - x[2], x[1] + x[2], x[2] - x[1], x[3] - x[1]]
    }
    #[inline(always)]
    fn at<T: Value>(m: [T; 4]) -> [T; 2] {
        [m[0] + m[1] + m[2], m[1] - m[2] + m[3]]
    }
}

/// F(2x2, 5x5).
struct F2x5;

impl Variant<6, 5> for F2x5 {
    const G: [[f64; 5]; 6] = [
        [1.0 / 4.0, 0.0, 0.0, 0.0, 0.0],
        [1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0],
        [1.0 / 6.0, -1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0, 1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0, 1.0 / 3.0, 2.0 / 3.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0, -1.0 / 3.0, 2.0 / 3.0],
        [0.0, 0.0, 0.0, 0.0, 1.0],
    ];
    #[inline(always)]
    fn bt<T: Value>(x: [T; 6]) -> [T; 6] {
        // Rows 1-4 share 4 x1, 4 x2, 2 x1 and 2 x3.
        let (x1_4, x1_2) = (x[1] * 4.0, x[1] * 2.0);
        let (x2_4, x3_2) = (x[2] * 4.0, x[3] * 2.0);
        [
            x[0] * 4.0 - x[2] * 5.0 + x[4],
            x1_4 + x2_4 - x[3] - x[4],
            x2_4 - x1_4 + x[3] - x[4],
            x3_2 - x1_2 - x[2] + x[4],
            x1_2 - x3_2 - x[2] + x[4],
            x1_4 - x[3] * 5.0 + x[5],
        ]
    }
    #[inline(always)]
    fn at<T: Value>(m: [T; 6]) -> [T; 2] {
        [m[0] + m[1] + m[2] + m[3] + m[4], m[1] - m[2] + (m[3] - m[4]) * 2.0 + m[5]]
    }
}

/// Filter sides with a transform.
pub const FILTERS: [usize; 2] = [3, 5];

/// Points per side for filters of side `r` (`r + 1`).
pub fn side(r: usize) -> usize {
    r + 1
}

/// 16 tiles' values side by side: the row transforms run on these (whole vectors of tiles);
/// the transforms are generic so the tests also run them on plain `f32`, one tile at a time.
#[derive(Clone, Copy, Default)]
struct Lanes([f32; LANES]);
const LANES: usize = 16;

impl Lanes {
    // No `array::from_fn` or `try_into` here: they are not inlined into the
    // `#[target_feature]` callers, and every call then copies its arrays through memory.
    #[inline(always)]
    #[allow(clippy::manual_memcpy)]
    fn load(s: &[f32]) -> Lanes {
        let s = &s[..LANES];
        let mut v = [0.0f32; LANES];
        for i in 0..LANES {
            v[i] = s[i];
        }
        Lanes(v)
    }

    #[inline(always)]
    #[allow(clippy::manual_memcpy)]
    fn store(self, d: &mut [f32]) {
        let d = &mut d[..LANES];
        for i in 0..LANES {
            d[i] = self.0[i];
        }
    }
}

impl Add for Lanes {
    type Output = Lanes;
    #[inline(always)]
    fn add(mut self, o: Lanes) -> Lanes {
        for i in 0..LANES {
            self.0[i] += o.0[i];
        }
        self
    }
}

impl Sub for Lanes {
    type Output = Lanes;
    #[inline(always)]
    fn sub(mut self, o: Lanes) -> Lanes {
        for i in 0..LANES {
            self.0[i] -= o.0[i];
        }
        self
    }
}

impl Mul<f32> for Lanes {
    type Output = Lanes;
    #[inline(always)]
    fn mul(mut self, c: f32) -> Lanes {
        for i in 0..LANES {
            self.0[i] *= c;
        }
        self
    }
}

/// What the transforms compute on: a lane vector of tiles, or one tile's `f32`.
trait Value: Copy + Default + Add<Output = Self> + Sub<Output = Self> + Mul<f32, Output = Self> {}
impl<T: Copy + Default + Add<Output = T> + Sub<Output = T> + Mul<f32, Output = T>> Value for T {}

/// `B^T d B` of one block, `d(i, j)` its value at row i, column j; `out(xi, v)` receives point
/// `xi = A p + q`.
#[inline(always)]
fn input_block<V: Variant<A, R>, T: Value, const A: usize, const R: usize>(d: impl Fn(usize, usize) -> T, mut out: impl FnMut(usize, T)) {
    // t = B^T d, column by column.
    let mut t = [[T::default(); A]; A];
    #[allow(clippy::needless_range_loop)] // c indexes a column of t, not one array
    for c in 0..A {
        let mut column = [T::default(); A];
        for (i, x) in column.iter_mut().enumerate() {
            *x = d(i, c);
        }
        for (p, v) in V::bt(column).into_iter().enumerate() {
            t[p][c] = v;
        }
    }
    // (B^T d) B: B^T applied to each row.
    for (p, row) in t.into_iter().enumerate() {
        for (q, v) in V::bt(row).into_iter().enumerate() {
            out(A * p + q, v);
        }
    }
}

/// `A^T m A` of one block's products `m(xi)`: the 2x2 outputs `[row][column]`.
#[inline(always)]
fn output_block<V: Variant<A, R>, T: Value, const A: usize, const R: usize>(m: impl Fn(usize) -> T) -> [[T; 2]; 2] {
    // s = m A: A^T applied to each row, then to the two columns of s.
    let mut s = [[T::default(); A]; 2];
    #[allow(clippy::needless_range_loop)] // p indexes a column of s, not one array
    for p in 0..A {
        let mut row = [T::default(); A];
        for (q, x) in row.iter_mut().enumerate() {
            *x = m(A * p + q);
        }
        let [s0, s1] = V::at(row);
        (s[0][p], s[1][p]) = (s0, s1);
    }
    let ([y00, y10], [y01, y11]) = (V::at(s[0]), V::at(s[1]));
    [[y00, y01], [y10, y11]]
}

/// `G g G^T` as linear combinations of the `R^2` taps: point `xi = A p + q` is
/// `sum_t c[xi][t] g[t]`, `t = R i + j`, with coefficient `G[p][i] G[q][j]`.
fn coefficients_of<V: Variant<A, R>, const A: usize, const R: usize>() -> Vec<Vec<f32>> {
    let mut c = vec![vec![0.0f32; R * R]; A * A];
    for p in 0..A {
        for q in 0..A {
            for i in 0..R {
                for j in 0..R {
                    c[A * p + q][R * i + j] = (V::G[p][i] * V::G[q][j]) as f32;
                }
            }
        }
    }
    c
}

/// The weights' coefficients for filters of side `r` (`FILTERS`): `[points][r * r]`.
pub fn weight_coefficients(r: usize) -> Vec<Vec<f32>> {
    match r {
        3 => coefficients_of::<F2x3, 4, 3>(),
        5 => coefficients_of::<F2x5, 6, 5>(),
        _ => panic!("winograd: no transform for {r}x{r} filters"),
    }
}

/// One row of tiles of one channel, into lanes `lane..lane + len` of `v: [A^2][stride]`, in
/// whole vectors of 16 tiles: lanes up to `lane + round_up(len, 16)` are written, those past
/// `len` with values of no use (callers leave room, and write the next tiles after).
/// `even[i]` and `odd[i]` are padded row `i` of the tiles' `A` rows split by column parity
/// (`even[i][t] = row[2 t]`, `odd[i][t] = row[2 t + 1]`), from the row's first tile on, each
/// at least `round_up(len, 16) + A / 2 - 1` long: tile `l` reads columns `2 l .. 2 l + A`.
#[inline(always)]
fn input_row_body<V: Variant<A, R>, const A: usize, const R: usize>(even: [&[f32]; A], odd: [&[f32]; A], v: &mut [f32], stride: usize, lane: usize, len: usize) {
    let whole = len.div_ceil(LANES) * LANES;
    assert!(v.len() >= (A * A - 1) * stride + lane + whole, "input_row: {} values for lanes {lane}+{whole} of {} x {stride}", v.len(), A * A);
    assert!(even.iter().chain(&odd).all(|r| r.len() >= whole + A / 2 - 1), "input_row: rows shorter than {whole} + {} tiles", A / 2 - 1);
    for l in (0..whole).step_by(LANES) {
        input_block::<V, Lanes, A, R>(
            |i, c| Lanes::load(&(if c % 2 == 0 { even[i] } else { odd[i] })[l + c / 2..]),
            |xi, x| x.store(&mut v[xi * stride + lane + l..]),
        );
    }
}

/// One output channel's row of tiles from `m`'s lanes `lane..lane + len` (`m[xi * stride + lane + l]`):
/// tile `l` gives `top[2 l..2 l + 2]` and `bottom[2 l..2 l + 2]` (`bottom` absent for the last
/// row of an odd height; the last tile's right column dropped when `top` is odd in length).
/// Added to what is there when `accumulate`. Reads whole vectors: `m` holds lanes up to
/// `lane + round_up(len, 16)` of every point.
#[inline(always)]
fn output_row_body<V: Variant<A, R>, const A: usize, const R: usize>(m: &[f32], stride: usize, lane: usize, len: usize, top: &mut [f32], bottom: Option<&mut [f32]>, accumulate: bool) {
    let whole = len.div_ceil(LANES) * LANES;
    assert!(m.len() >= (A * A - 1) * stride + lane + whole, "output_row: {} values for lanes {lane}+{whole}", m.len());
    assert!(top.len() >= 2 * len - 1 && top.len() <= 2 * len, "output_row: a row of {} for {len} tiles", top.len());
    let width = top.len();
    let mut bottom = bottom;
    for l in (0..len).step_by(LANES) {
        let n = (len - l).min(LANES);
        let y = output_block::<V, Lanes, A, R>(|xi| Lanes::load(&m[xi * stride + lane + l..]));
        // Columns 2 l .. of this stretch: 2 n, or one fewer at the end of an odd row.
        let cols = (width - 2 * l).min(2 * n);
        for (a, pair) in y.iter().enumerate() {
            let row = match (a, bottom.as_deref_mut()) {
                (0, _) => &mut *top,
                (_, Some(b)) => b,
                _ => continue,
            };
            // Interleave the two columns: row[2 (l + i) + b] = pair[b][i].
            let mut both = [0.0f32; 2 * LANES];
            for i in 0..LANES {
                both[2 * i] = pair[0].0[i];
                both[2 * i + 1] = pair[1].0[i];
            }
            let dst = &mut row[2 * l..2 * l + cols];
            if accumulate {
                for (d, x) in dst.iter_mut().zip(&both) {
                    *d += x;
                }
            } else {
                for (d, x) in dst.iter_mut().zip(&both) {
                    *d = *x;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn input_row_avx512<V: Variant<A, R>, const A: usize, const R: usize>(even: [&[f32]; A], odd: [&[f32]; A], v: &mut [f32], stride: usize, lane: usize, len: usize) {
    input_row_body::<V, A, R>(even, odd, v, stride, lane, len)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn input_row_avx2<V: Variant<A, R>, const A: usize, const R: usize>(even: [&[f32]; A], odd: [&[f32]; A], v: &mut [f32], stride: usize, lane: usize, len: usize) {
    input_row_body::<V, A, R>(even, odd, v, stride, lane, len)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
fn output_row_avx512<V: Variant<A, R>, const A: usize, const R: usize>(m: &[f32], stride: usize, lane: usize, len: usize, top: &mut [f32], bottom: Option<&mut [f32]>, accumulate: bool) {
    output_row_body::<V, A, R>(m, stride, lane, len, top, bottom, accumulate)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
fn output_row_avx2<V: Variant<A, R>, const A: usize, const R: usize>(m: &[f32], stride: usize, lane: usize, len: usize, top: &mut [f32], bottom: Option<&mut [f32]>, accumulate: bool) {
    output_row_body::<V, A, R>(m, stride, lane, len, top, bottom, accumulate)
}

/// `input_row_body` of variant `V` compiled for `isa`.
fn input_row_of<'a, V: Variant<A, R>, const A: usize, const R: usize>(isa: Isa, even: &[&'a [f32]], odd: &[&'a [f32]], v: &mut [f32], stride: usize, lane: usize, len: usize) {
    fn rows<'a, const A: usize>(r: &[&'a [f32]]) -> [&'a [f32]; A] {
        r.try_into().unwrap_or_else(|_| panic!("input_row: {} rows for {A}", r.len()))
    }
    let (even, odd) = (rows::<A>(even), rows::<A>(odd));
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the CPU has the instruction set (checked by `supported`).
        match isa {
            Isa::Avx512 if isa.supported() => return unsafe { input_row_avx512::<V, A, R>(even, odd, v, stride, lane, len) },
            Isa::Avx2 if isa.supported() => return unsafe { input_row_avx2::<V, A, R>(even, odd, v, stride, lane, len) },
            _ => {}
        }
    }
    let _ = isa;
    input_row_body::<V, A, R>(even, odd, v, stride, lane, len)
}

/// `output_row_body` of variant `V` compiled for `isa`.
#[allow(clippy::too_many_arguments)]
fn output_row_of<V: Variant<A, R>, const A: usize, const R: usize>(isa: Isa, m: &[f32], stride: usize, lane: usize, len: usize, top: &mut [f32], bottom: Option<&mut [f32]>, accumulate: bool) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the CPU has the instruction set (checked by `supported`).
        match isa {
            Isa::Avx512 if isa.supported() => return unsafe { output_row_avx512::<V, A, R>(m, stride, lane, len, top, bottom, accumulate) },
            Isa::Avx2 if isa.supported() => return unsafe { output_row_avx2::<V, A, R>(m, stride, lane, len, top, bottom, accumulate) },
            _ => {}
        }
    }
    let _ = isa;
    output_row_body::<V, A, R>(m, stride, lane, len, top, bottom, accumulate)
}

/// The input transform of filters of side `r` over one row of tiles (`input_row_body`), with
/// the `r + 1` rows of each parity.
#[allow(clippy::too_many_arguments)]
pub fn input_row(isa: Isa, r: usize, even: &[&[f32]], odd: &[&[f32]], v: &mut [f32], stride: usize, lane: usize, len: usize) {
    match r {
        3 => input_row_of::<F2x3, 4, 3>(isa, even, odd, v, stride, lane, len),
        5 => input_row_of::<F2x5, 6, 5>(isa, even, odd, v, stride, lane, len),
        _ => panic!("winograd: no transform for {r}x{r} filters"),
    }
}

/// The output transform of filters of side `r` over one row of tiles (`output_row_body`).
#[allow(clippy::too_many_arguments)]
pub fn output_row(isa: Isa, r: usize, m: &[f32], stride: usize, lane: usize, len: usize, top: &mut [f32], bottom: Option<&mut [f32]>, accumulate: bool) {
    match r {
        3 => output_row_of::<F2x3, 4, 3>(isa, m, stride, lane, len, top, bottom, accumulate),
        5 => output_row_of::<F2x5, 6, 5>(isa, m, stride, lane, len, top, bottom, accumulate),
        _ => panic!("winograd: no transform for {r}x{r} filters"),
    }
}

/// Channels in the lanes (`by_channels.rs`): one row of `blocks` blocks, 16 channels per
/// lane vector. `cells: [rows][cols][cp]` is the padded sample channels last from the blocks'
/// first row on (`row_stride = cols * cp`), block `b` reading columns `2 b .. 2 b + A`; point
/// `xi` of block `b`, channels `c .. c + 16`, goes to `v[xi * v_stride + b * cp + c..]`.
/// `cp` is a multiple of 16.
#[inline(always)]
fn input_cells_body<V: Variant<A, R>, const A: usize, const R: usize>(cells: &[f32], row_stride: usize, cp: usize, blocks: usize, v: &mut [f32], v_stride: usize) {
    assert!(cp.is_multiple_of(LANES) && blocks > 0, "input_cells: {cp} channels, {blocks} blocks");
    assert!(cells.len() >= (A - 1) * row_stride + (2 * blocks + A - 2) * cp, "input_cells: {} cells for {blocks} blocks of {cp} channels", cells.len());
    assert!(v.len() >= (A * A - 1) * v_stride + blocks * cp, "input_cells: {} values for {blocks} blocks x {} points", v.len(), A * A);
    // Blocks two columns apart share `A - 2` of their `A` columns, and `B^T` of a column (the
    // first half of `input_block`) is the same for every block reading it: each is transformed
    // once per run of `RUN` blocks (2 + (A - 2) / RUN transforms a block instead of A), kept
    // in `t[column][p]`, then `B^T` along each block's rows: the same operations on the same
    // values as `input_block`, so the same bits.
    const RUN: usize = 8;
    let mut t = [[Lanes::default(); A]; 2 * RUN + 4];
    assert!(A <= 6, "input_cells: room for {} columns a run", 2 * RUN + 4);
    for b0 in (0..blocks).step_by(RUN) {
        let run = RUN.min(blocks - b0);
        for c in (0..cp).step_by(LANES) {
            for (j, tj) in t.iter_mut().enumerate().take(2 * run + A - 2) {
                let mut column = [Lanes::default(); A];
                for (i, x) in column.iter_mut().enumerate() {
                    *x = Lanes::load(&cells[i * row_stride + (2 * b0 + j) * cp + c..]);
                }
                *tj = V::bt(column);
            }
            for b in 0..run {
                for p in 0..A {
                    let mut row = [Lanes::default(); A];
                    for (q, x) in row.iter_mut().enumerate() {
                        *x = t[2 * b + q][p];
                    }
                    for (q, x) in V::bt(row).into_iter().enumerate() {
                        x.store(&mut v[(A * p + q) * v_stride + (b0 + b) * cp + c..]);
                    }
                }
            }
        }
    }
}

/// The output transform of `input_cells_body`'s layout: block `b`'s products of channels
/// `c .. c + 16` at `m[xi * m_stride + b * row + c..]` (`row` values per block), for
/// `c < oq` (a multiple of 16); its 2x2 outputs go to `out[a * out_row + (2 b + j) * oq + c..]`
/// (`out: [2][2 blocks][oq]`, channels last).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn output_cells_body<V: Variant<A, R>, const A: usize, const R: usize>(m: &[f32], m_stride: usize, row: usize, oq: usize, blocks: usize, out: &mut [f32], out_row: usize) {
    assert!(oq.is_multiple_of(LANES) && oq <= row && blocks > 0, "output_cells: {oq} of {row} channels, {blocks} blocks");
    assert!(m.len() >= (A * A - 1) * m_stride + (blocks - 1) * row + oq, "output_cells: {} products for {blocks} blocks", m.len());
    assert!(out.len() >= out_row + 2 * blocks * oq && out_row >= 2 * blocks * oq, "output_cells: {} outputs, rows of {out_row}", out.len());
    for b in 0..blocks {
        for c in (0..oq).step_by(LANES) {
            let y = output_block::<V, Lanes, A, R>(|xi| Lanes::load(&m[xi * m_stride + b * row + c..]));
            for (a, pair) in y.into_iter().enumerate() {
                for (j, value) in pair.into_iter().enumerate() {
                    value.store(&mut out[a * out_row + (2 * b + j) * oq + c..]);
                }
            }
        }
    }
}

/// `input_cells_body` and `output_cells_body` compiled for AVX-512, AVX2, or neither.
macro_rules! cells_entry_points {
    ($($isa:ident => $features:literal),*) => {
        $(
            #[cfg(target_arch = "x86_64")]
            mod $isa {
                use super::*;
                #[target_feature(enable = $features)]
                pub(super) fn input_cells<V: Variant<A, R>, const A: usize, const R: usize>(cells: &[f32], row_stride: usize, cp: usize, blocks: usize, v: &mut [f32], v_stride: usize) {
                    input_cells_body::<V, A, R>(cells, row_stride, cp, blocks, v, v_stride)
                }
                #[target_feature(enable = $features)]
                #[allow(clippy::too_many_arguments)]
                pub(super) fn output_cells<V: Variant<A, R>, const A: usize, const R: usize>(m: &[f32], m_stride: usize, row: usize, oq: usize, blocks: usize, out: &mut [f32], out_row: usize) {
                    output_cells_body::<V, A, R>(m, m_stride, row, oq, blocks, out, out_row)
                }
            }
        )*
    };
}
cells_entry_points!(cells_avx512 => "avx512f,avx2,fma", cells_avx2 => "avx2,fma");

#[allow(clippy::too_many_arguments)]
fn input_cells_of<V: Variant<A, R>, const A: usize, const R: usize>(isa: Isa, cells: &[f32], row_stride: usize, cp: usize, blocks: usize, v: &mut [f32], v_stride: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the CPU has the instruction set (checked by `supported`).
        match isa {
            Isa::Avx512 if isa.supported() => return unsafe { cells_avx512::input_cells::<V, A, R>(cells, row_stride, cp, blocks, v, v_stride) },
            Isa::Avx2 if isa.supported() => return unsafe { cells_avx2::input_cells::<V, A, R>(cells, row_stride, cp, blocks, v, v_stride) },
            _ => {}
        }
    }
    let _ = isa;
    input_cells_body::<V, A, R>(cells, row_stride, cp, blocks, v, v_stride)
}

#[allow(clippy::too_many_arguments)]
fn output_cells_of<V: Variant<A, R>, const A: usize, const R: usize>(isa: Isa, m: &[f32], m_stride: usize, row: usize, oq: usize, blocks: usize, out: &mut [f32], out_row: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the CPU has the instruction set (checked by `supported`).
        match isa {
            Isa::Avx512 if isa.supported() => return unsafe { cells_avx512::output_cells::<V, A, R>(m, m_stride, row, oq, blocks, out, out_row) },
            Isa::Avx2 if isa.supported() => return unsafe { cells_avx2::output_cells::<V, A, R>(m, m_stride, row, oq, blocks, out, out_row) },
            _ => {}
        }
    }
    let _ = isa;
    output_cells_body::<V, A, R>(m, m_stride, row, oq, blocks, out, out_row)
}

/// Channels per lane vector of the channel-lane transforms.
pub const CHANNEL_LANES: usize = LANES;

/// The input transform of filters of side `r` over one row of blocks, channels in the lanes
/// (`input_cells_body`).
#[allow(clippy::too_many_arguments)]
pub fn input_cells(isa: Isa, r: usize, cells: &[f32], row_stride: usize, cp: usize, blocks: usize, v: &mut [f32], v_stride: usize) {
    match r {
        3 => input_cells_of::<F2x3, 4, 3>(isa, cells, row_stride, cp, blocks, v, v_stride),
        5 => input_cells_of::<F2x5, 6, 5>(isa, cells, row_stride, cp, blocks, v, v_stride),
        _ => panic!("winograd: no transform for {r}x{r} filters"),
    }
}

/// The output transform of filters of side `r` over one row of blocks, channels in the lanes
/// (`output_cells_body`).
#[allow(clippy::too_many_arguments)]
pub fn output_cells(isa: Isa, r: usize, m: &[f32], m_stride: usize, row: usize, oq: usize, blocks: usize, out: &mut [f32], out_row: usize) {
    match r {
        3 => output_cells_of::<F2x3, 4, 3>(isa, m, m_stride, row, oq, blocks, out, out_row),
        5 => output_cells_of::<F2x5, 6, 5>(isa, m, m_stride, row, oq, blocks, out, out_row),
        _ => panic!("winograd: no transform for {r}x{r} filters"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// One tile's `B^T d B`, `d` row-major `A x A`.
    fn tile_input<V: Variant<A, R>, const A: usize, const R: usize>(d: &[f32]) -> Vec<f32> {
        let mut v = vec![0.0; A * A];
        input_block::<V, f32, A, R>(|i, j| d[A * i + j], |xi, x| v[xi] = x);
        v
    }

    /// The three transforms compose to the `R x R` correlation of the `A x A` block, for
    /// every point, within a rounding error relative to the sum of the terms' sizes.
    fn transforms_compose<V: Variant<A, R>, const A: usize, const R: usize>(rng: &mut Rng) {
        let coefficients = coefficients_of::<V, A, R>();
        for _ in 0..50 {
            let d = rng.uniform_vec(A * A, -2.0, 2.0);
            let g = rng.uniform_vec(R * R, -2.0, 2.0);
            let v = tile_input::<V, A, R>(&d);
            let u: Vec<f32> = coefficients.iter().map(|c| c.iter().zip(&g).map(|(c, g)| c * g).sum()).collect();
            let y = output_block::<V, f32, A, R>(|xi| v[xi] * u[xi]);
            for (oy, row) in y.iter().enumerate() {
                for (ox, got) in row.iter().enumerate() {
                    let terms = (0..R).flat_map(|i| (0..R).map(move |j| (i, j))).map(|(i, j)| d[A * (oy + i) + ox + j] as f64 * g[R * i + j] as f64);
                    let (want, size) = terms.fold((0.0, 0.0), |(s, m), t| (s + t, m + t.abs()));
                    assert!((*got as f64 - want).abs() < 2e-6 * size, "F(2x2, {R}x{R}) ({oy}, {ox}): {got} vs {want} (terms of size {size})");
                }
            }
        }
    }

    #[test]
    fn transforms_compose_to_the_correlation() {
        let mut rng = Rng::new(21);
        transforms_compose::<F2x3, 4, 3>(&mut rng);
        transforms_compose::<F2x5, 6, 5>(&mut rng);
    }

    /// The weights' coefficients are `G g G^T`, computed here as two matrix products in f64.
    fn coefficients_are_g_g_gt<V: Variant<A, R>, const A: usize, const R: usize>(rng: &mut Rng) {
        let g = rng.uniform_vec(R * R, -1.0, 1.0);
        let coefficients = weight_coefficients(R);
        for p in 0..A {
            for q in 0..A {
                let want: f64 = (0..R).flat_map(|i| (0..R).map(move |j| (i, j))).map(|(i, j)| V::G[p][i] * g[R * i + j] as f64 * V::G[q][j]).sum();
                let got: f32 = coefficients[A * p + q].iter().zip(&g).map(|(c, g)| c * g).sum();
                assert!((got as f64 - want).abs() < 1e-6, "F(2x2, {R}x{R}) point ({p}, {q}): {got} vs {want}");
            }
        }
    }

    #[test]
    fn weight_coefficients_are_g_g_gt() {
        let mut rng = Rng::new(23);
        coefficients_are_g_g_gt::<F2x3, 4, 3>(&mut rng);
        coefficients_are_g_g_gt::<F2x5, 6, 5>(&mut rng);
    }

    /// The row transforms are the single-tile ones, lane by lane, on every ISA this CPU has
    /// (and write nothing outside their lanes and columns).
    fn rows_are_tiles<V: Variant<A, R>, const A: usize, const R: usize>(rng: &mut Rng) {
        let points = A * A;
        let reach = A / 2 - 1;
        for isa in Isa::ALL.into_iter().filter(|i| i.supported()) {
            for &(len, lane, stride, width) in &[(1usize, 0, 1, 1), (1, 0, 1, 2), (5, 3, 9, 10), (33, 0, 40, 65), (17, 15, 32, 34), (16, 0, 16, 32), (40, 4, 48, 79), (37, 2, 40, 74)] {
                let whole = len.div_ceil(LANES) * LANES;
                let even: Vec<Vec<f32>> = (0..A).map(|_| rng.uniform_vec(whole + reach, -1.0, 1.0)).collect();
                let odd: Vec<Vec<f32>> = (0..A).map(|_| rng.uniform_vec(whole + reach, -1.0, 1.0)).collect();
                let (even_rows, odd_rows): (Vec<&[f32]>, Vec<&[f32]>) = (even.iter().map(|r| &r[..]).collect(), odd.iter().map(|r| &r[..]).collect());
                let mut v = vec![7.0; points * stride + whole];
                input_row(isa, R, &even_rows, &odd_rows, &mut v, stride, lane, len);
                // Lanes past len up to a whole vector are the callers' slack; nothing else moves.
                let slack = |idx: usize| (lane + len..lane + whole).any(|s| (0..points).any(|xi| xi * stride + s == idx));
                for (idx, x) in v.iter().enumerate() {
                    let (xi, s) = (idx / stride, idx % stride);
                    if slack(idx) {
                        continue;
                    }
                    if xi >= points || s < lane || s >= lane + len {
                        assert_eq!(*x, 7.0, "{isa:?} {R}x{R}: v[{idx}] outside the lanes written");
                        continue;
                    }
                    let l = s - lane;
                    let d: Vec<f32> = (0..A * A).map(|k| (k / A, k % A)).map(|(i, c)| if c % 2 == 0 { even[i][l + c / 2] } else { odd[i][l + c / 2] }).collect();
                    assert_eq!(*x, tile_input::<V, A, R>(&d)[xi], "{isa:?} {R}x{R}: input lane {l} point {xi}");
                }
                let m = rng.uniform_vec(points * stride + whole, -1.0, 1.0);
                for accumulate in [false, true] {
                    let (top0, bottom0) = (rng.uniform_vec(width + 1, -1.0, 1.0), rng.uniform_vec(width + 1, -1.0, 1.0));
                    let (mut top, mut bottom) = (top0.clone(), bottom0.clone());
                    output_row(isa, R, &m, stride, lane, len, &mut top[..width], Some(&mut bottom[..width]), accumulate);
                    for c in 0..=width {
                        let l = c / 2;
                        if c == width {
                            assert_eq!((top[c], bottom[c]), (top0[c], bottom0[c]), "{isa:?} {R}x{R}: column {c} past the row written");
                            continue;
                        }
                        let y = output_block::<V, f32, A, R>(|xi| m[xi * stride + lane + l]);
                        let base = |was: f32| if accumulate { was } else { 0.0 };
                        assert_eq!(top[c], base(top0[c]) + y[0][c % 2], "{isa:?} {R}x{R}: top column {c}");
                        assert_eq!(bottom[c], base(bottom0[c]) + y[1][c % 2], "{isa:?} {R}x{R}: bottom column {c}");
                    }
                }
            }
        }
    }

    #[test]
    fn row_transforms_are_the_tile_transforms_lane_by_lane() {
        let mut rng = Rng::new(22);
        rows_are_tiles::<F2x3, 4, 3>(&mut rng);
        rows_are_tiles::<F2x5, 6, 5>(&mut rng);
    }

    /// The channels-in-the-lanes input transform (each column's `B^T` shared by the blocks of a
    /// run) gives each block's and channel's single-tile transform bit for bit, on every ISA
    /// this CPU has: rows of 1 to 17 blocks (runs of 8 and their last, shorter one), 16 and 32
    /// channels, and writes nothing else.
    fn cells_are_tiles<V: Variant<A, R>, const A: usize, const R: usize>(rng: &mut Rng) {
        for isa in Isa::ALL.into_iter().filter(|i| i.supported()) {
            for &(blocks, cp) in &[(1usize, 16usize), (7, 32), (8, 16), (9, 16), (17, 32)] {
                let columns = 2 * blocks + A - 2;
                let row_stride = (columns + 3) * cp;
                let cells = rng.uniform_vec(A * row_stride, -1.0, 1.0);
                let v_stride = blocks * cp + 5;
                let mut v = vec![7.0; A * A * v_stride];
                input_cells(isa, R, &cells, row_stride, cp, blocks, &mut v, v_stride);
                for (idx, got) in v.iter().enumerate() {
                    let (xi, at) = (idx / v_stride, idx % v_stride);
                    if at >= blocks * cp {
                        assert_eq!(*got, 7.0, "{isa:?} {R}x{R}: v[{idx}] past the blocks");
                        continue;
                    }
                    let (b, c) = (at / cp, at % cp);
                    let d: Vec<f32> = (0..A * A).map(|k| cells[(k / A) * row_stride + (2 * b + k % A) * cp + c]).collect();
                    assert_eq!(got.to_bits(), tile_input::<V, A, R>(&d)[xi].to_bits(), "{isa:?} {R}x{R}: block {b} of {blocks}, channel {c}, point {xi}");
                }
            }
        }
    }

    #[test]
    fn cell_transforms_are_the_tile_transforms_channel_by_channel() {
        let mut rng = Rng::new(24);
        cells_are_tiles::<F2x3, 4, 3>(&mut rng);
        cells_are_tiles::<F2x5, 6, 5>(&mut rng);
    }
}
