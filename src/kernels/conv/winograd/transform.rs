//! The three transforms of Winograd's F(2x2, 3x3), F(4x4, 3x3) and F(2x2, 5x5) (Lavin and
//! Gray, "Fast Algorithms for Convolutional Neural Networks", 2016): an `m x m` block of
//! outputs of an r x r filter from an `a x a` block of input (`a = m + r - 1`), in `a^2`
//! products instead of `m^2 r^2` (16 instead of 36 for F(2x2, 3x3), 36 instead of 144 for
//! F(4x4, 3x3), 36 instead of 100 for F(2x2, 5x5)).
//!
//! `Y = A^T [ (G g G^T) . (B^T d B) ] A`, with the matrices of the Toom-Cook construction on
//! the points 0, 1, -1 (, 1/2, -2) and infinity (`scripts/winograd_matrices.py` derives them;
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
//! B^T = | 2 -3 -4  3  2  0 |   G = | 1/2    0     0     0     0    |   A^T = | 1  1  1  1    1  0 |
//!       | 0 -2  1  5  2  0 |       | 1/6    1/6   1/6   1/6   1/6  |         | 0  1 -1  1/2 -2  1 |
//!       | 0 -2  5 -1 -2  0 |       | 1/6   -1/6   1/6  -1/6   1/6  |
//!       | 0  2  1 -2 -1  0 |       | 16/15  8/15  4/15  2/15  1/15 |
//!       | 0  1 -2 -1  2  0 |       | 1/30  -1/15  2/15 -4/15  8/15 |
//!       | 0  2 -3 -4  3  2 |       | 0      0     0     0     1/2  |
//!
//! F(4x4, 3x3): F(2x2, 5x5)'s B^T (the same points), and
//! G = | 1/2    0     0    |   A^T = | 1  1  1  1    1   0 |
//!     | 1/6    1/6   1/6  |         | 0  1 -1  1/2 -2   0 |
//!     | 1/6   -1/6   1/6  |         | 0  1  1  1/4  4   0 |
//!     | 16/15  8/15  4/15 |         | 0  1 -1  1/8 -8   1 |
//!     | 1/30  -1/15  2/15 |
//!     | 0      0     1/2  |
//! ```
//!
//! F(2x2, 5x5) and F(4x4, 3x3) take the points 1/2 and -2 where the textbook takes 2 and -2:
//! the points decide how large the transforms' intermediate values grow against the result,
//! hence the rounding (Barabasz et al., "Error Analysis and Improving the Accuracy of Winograd
//! Convolution for Deep Neural Networks", 2020). Of eight sets tried in a numerical model of
//! the weight gradient, {1/2, -2} and {2, -1/2} rounded least; in fovea the weight gradient's
//! error fell from 6-27 float epsilons of the terms' size to 2.4-12 (`weight_grad.rs`), at the
//! same speed. For F(4x4, 3x3)'s forward pass a model (64 channels) gave 1.2 epsilons on
//! average and 4.2 at most on {1/2, -2}, against 2.3 and 9.5 on {2, -2}.
//!
//! Index `xi = A p + q` names one of the `A^2` points. The input and output transforms run
//! over a row of tiles at a time, one tile per lane: plain Rust over contiguous slices, the
//! 1-d transforms written out per variant (`Variant::bt`, `at`) and the 2-d ones shared
//! (`input_block`, `output_block`), compiled inside a `#[target_feature]` wrapper per
//! instruction set (`entry_points!`, `on_isa!`) so they vectorise at the tile's width.

use super::lanes::{Avx2Stores, Avx512Stores, Lanes, PlainStores, Stores, LANES};
use crate::kernels::isa::Isa;
use std::ops::{Add, Mul, Sub};

/// One transform: `A = R + 1` points per side for `R x R` filters. `bt` and `at` are written
/// out by hand (the matrices above, their zeros and ones dropped): a loop over constant
/// coefficients is not unrolled inside the `#[target_feature]` wrappers and tests every
/// coefficient at run time.
trait Variant<const A: usize, const R: usize, const M: usize> {
    /// In f64: the weights' coefficients are products of two entries, rounded once.
    const G: [[f64; R]; A];
    /// `B^T x` of one column of `A` values.
    fn bt<T: Value>(x: [T; A]) -> [T; A];
    /// `A^T x`: the `M` outputs of one column of `A` products.
    fn at<T: Value>(x: [T; A]) -> [T; M];
    /// `A y`, `at`'s transpose: the `A` points of one column of `M` output gradients (the
    /// weight gradient, `gradient_block`).
    fn a<T: Value>(y: [T; M]) -> [T; A];
}

/// F(2x2, 3x3).
struct F2x3;

impl Variant<4, 3, 2> for F2x3 {
    const G: [[f64; 3]; 4] = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];
    #[inline(always)]
    fn bt<T: Value>(x: [T; 4]) -> [T; 4] {
        [x[0] - x[2], x[1] + x[2], x[2] - x[1], x[3] - x[1]]
    }
    #[inline(always)]
    fn at<T: Value>(m: [T; 4]) -> [T; 2] {
        [m[0] + m[1] + m[2], m[1] - m[2] + m[3]]
    }
    #[inline(always)]
    fn a<T: Value>(y: [T; 2]) -> [T; 4] {
        [y[0], y[0] + y[1], y[0] - y[1], y[1]]
    }
}

/// F(2x2, 5x5).
struct F2x5;

impl Variant<6, 5, 2> for F2x5 {
    const G: [[f64; 5]; 6] = [
        [1.0 / 2.0, 0.0, 0.0, 0.0, 0.0],
        [1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0],
        [1.0 / 6.0, -1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0, 1.0 / 6.0],
        [16.0 / 15.0, 8.0 / 15.0, 4.0 / 15.0, 2.0 / 15.0, 1.0 / 15.0],
        [1.0 / 30.0, -1.0 / 15.0, 2.0 / 15.0, -4.0 / 15.0, 8.0 / 15.0],
        [0.0, 0.0, 0.0, 0.0, 1.0 / 2.0],
    ];
    #[inline(always)]
    fn bt<T: Value>(x: [T; 6]) -> [T; 6] {
        let (x1_2, x2_2, x3_2, x4_2) = (x[1] * 2.0, x[2] * 2.0, x[3] * 2.0, x[4] * 2.0);
        [
            x[0] * 2.0 - x[1] * 3.0 - x[2] * 4.0 + x[3] * 3.0 + x4_2,
            x[2] - x1_2 + x[3] * 5.0 + x4_2,
            x[2] * 5.0 - x1_2 - x[3] - x4_2,
            x1_2 + x[2] - x3_2 - x[4],
            x[1] - x2_2 - x[3] + x4_2,
            x1_2 - x[2] * 3.0 - x[3] * 4.0 + x[4] * 3.0 + x[5] * 2.0,
        ]
    }
    #[inline(always)]
    fn at<T: Value>(m: [T; 6]) -> [T; 2] {
        [m[0] + m[1] + m[2] + m[3] + m[4], m[1] - m[2] + m[3] * 0.5 - m[4] * 2.0 + m[5]]
    }
    #[inline(always)]
    fn a<T: Value>(y: [T; 2]) -> [T; 6] {
        [y[0], y[0] + y[1], y[0] - y[1], y[0] + y[1] * 0.5, y[0] - y[1] * 2.0, y[1]]
    }
}

/// F(4x4, 3x3): the points of F(2x2, 5x5) (so the same `B^T`), four outputs per side.
struct F4x3;

impl Variant<6, 3, 4> for F4x3 {
    const G: [[f64; 3]; 6] = [
        [1.0 / 2.0, 0.0, 0.0],
        [1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0],
        [1.0 / 6.0, -1.0 / 6.0, 1.0 / 6.0],
        [16.0 / 15.0, 8.0 / 15.0, 4.0 / 15.0],
        [1.0 / 30.0, -1.0 / 15.0, 2.0 / 15.0],
        [0.0, 0.0, 1.0 / 2.0],
    ];
    #[inline(always)]
    fn bt<T: Value>(x: [T; 6]) -> [T; 6] {
        F2x5::bt(x)
    }
    #[inline(always)]
    fn at<T: Value>(m: [T; 6]) -> [T; 4] {
        let (odd, even) = (m[1] - m[2], m[1] + m[2]);
        [
            m[0] + even + m[3] + m[4],
            odd + m[3] * 0.5 - m[4] * 2.0,
            even + m[3] * 0.25 + m[4] * 4.0,
            odd + m[3] * 0.125 - m[4] * 8.0 + m[5],
        ]
    }
    #[inline(always)]
    fn a<T: Value>(y: [T; 4]) -> [T; 6] {
        [
            y[0],
            y[0] + y[1] + y[2] + y[3],
            y[0] - y[1] + y[2] - y[3],
            y[0] + y[1] * 0.5 + y[2] * 0.25 + y[3] * 0.125,
            y[0] - y[1] * 2.0 + y[2] * 4.0 - y[3] * 8.0,
            y[3],
        ]
    }
}

/// Filter sides with a transform.
pub const FILTERS: [usize; 2] = [3, 5];

/// A transform by its output block's side `m` and its filters' side `r`: F(m x m, r x r).
/// The blocks layout and the weight gradient run the 2x2 ones; channels in the lanes
/// (`by_channels.rs`) run `F4X3` too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transform {
    pub m: usize,
    pub r: usize,
}

impl Transform {
    pub const F2X3: Transform = Transform { m: 2, r: 3 };
    pub const F2X5: Transform = Transform { m: 2, r: 5 };
    pub const F4X3: Transform = Transform { m: 4, r: 3 };

    /// F(2x2, r x r) of filters of side `r` (`FILTERS`).
    pub fn two(r: usize) -> Transform {
        Transform { m: 2, r }
    }
    /// Points per side: `m + r - 1`.
    pub fn side(self) -> usize {
        self.m + self.r - 1
    }
    /// Points in all: `side^2`.
    pub fn points(self) -> usize {
        self.side() * self.side()
    }
}

/// `$f::<V, A, R, M>(..)` of the variant `$t` (a `Transform`) names.
macro_rules! by_transform {
    ($t:expr, $f:ident($($arg:expr),*)) => {{
        let t: Transform = $t;
        match (t.m, t.r) {
            (2, 3) => $f::<F2x3, 4, 3, 2>($($arg),*),
            (2, 5) => $f::<F2x5, 6, 5, 2>($($arg),*),
            (4, 3) => $f::<F4x3, 6, 3, 4>($($arg),*),
            _ => panic!("winograd: no transform F({m}x{m}, {r}x{r})", m = t.m, r = t.r),
        }
    }};
}

/// What the transforms compute on: a lane vector of tiles, or one tile's `f32`.
trait Value: Copy + Default + Add<Output = Self> + Sub<Output = Self> + Mul<f32, Output = Self> {}
impl<T: Copy + Default + Add<Output = T> + Sub<Output = T> + Mul<f32, Output = T>> Value for T {}

/// `B^T d B` of one block, `d(i, j)` its value at row i, column j; `out(xi, v)` receives point
/// `xi = A p + q`.
#[inline(always)]
fn input_block<V: Variant<A, R, M>, T: Value, const A: usize, const R: usize, const M: usize>(d: impl Fn(usize, usize) -> T, mut out: impl FnMut(usize, T)) {
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

/// `A^T m A` of one block's products `m(xi)`: the `M x M` outputs `[row][column]`.
#[inline(always)]
fn output_block<V: Variant<A, R, M>, T: Value, const A: usize, const R: usize, const M: usize>(m: impl Fn(usize) -> T) -> [[T; M]; M] {
    // s = m A: A^T applied to each row (s[j][p]: output column j of row p), then to the M
    // columns of s.
    let mut s = [[T::default(); A]; M];
    #[allow(clippy::needless_range_loop)] // p indexes a column of s, not one array
    for p in 0..A {
        let mut row = [T::default(); A];
        for (q, x) in row.iter_mut().enumerate() {
            *x = m(A * p + q);
        }
        for (j, v) in V::at(row).into_iter().enumerate() {
            s[j][p] = v;
        }
    }
    let mut y = [[T::default(); M]; M];
    for (j, column) in s.into_iter().enumerate() {
        for (i, v) in V::at(column).into_iter().enumerate() {
            y[i][j] = v;
        }
    }
    y
}

/// `A dy A^T` of one block's `M x M` output gradients `dy[row][column]`: `out(xi, v)`
/// receives point `xi = A p + q`. The transpose of `output_block`: for any products `m`,
/// `sum_xi out[xi] m[xi]` is `sum dy . output_block(m)`, so the weight gradient of a block is
/// `sum_xi c[xi][t] out[xi] V[xi]` (`V` the block's input transform, `c` the weights'
/// coefficients).
#[inline(always)]
fn gradient_block<V: Variant<A, R, M>, T: Value, const A: usize, const R: usize, const M: usize>(dy: [[T; M]; M], mut out: impl FnMut(usize, T)) {
    // z = dy A^T: each row's A points, then A along each column of z. (Plain loops:
    // `array::map` and `from_fn` left closures uninlined in the per-ISA wrappers, 0.4 ms of the
    // MNIST net's conv2 weight gradient.)
    let mut z = [[T::default(); A]; M];
    for (zi, row) in z.iter_mut().zip(dy) {
        *zi = V::a(row);
    }
    for q in 0..A {
        let mut column = [T::default(); M];
        for (x, zi) in column.iter_mut().zip(&z) {
            *x = zi[q];
        }
        for (p, v) in V::a(column).into_iter().enumerate() {
            out(A * p + q, v);
        }
    }
}

/// `G g G^T` as linear combinations of the `R^2` taps: point `xi = A p + q` is
/// `sum_t c[xi][t] g[t]`, `t = R i + j`, with coefficient `G[p][i] G[q][j]`.
fn coefficients_of<V: Variant<A, R, M>, const A: usize, const R: usize, const M: usize>() -> Vec<Vec<f32>> {
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

/// The weights' coefficients of transform `t`: `[points][r * r]`.
pub fn weight_coefficients(t: Transform) -> Vec<Vec<f32>> {
    by_transform!(t, coefficients_of())
}

/// Where a row of tiles lies in `v` or `m` (`[channel][A^2][stride]`, lanes along the tiles):
/// lanes `lane..lane + len` of `channels` channels, channel `c`'s point `xi` from
/// `c * channel + xi * stride + lane` on. The row transforms run over all the channels in one
/// call: a call per channel and row of tiles cost a tenth of a 32x32 layer's forward pass in
/// setting up.
#[derive(Clone, Copy, Debug)]
pub struct Lanes2d {
    /// Channels in the row.
    pub channels: usize,
    /// From one channel's lanes to the next's (the strip's width).
    pub channel: usize,
    /// From one point's block to the next.
    pub stride: usize,
    /// The row's first tile's lane.
    pub lane: usize,
    /// Tiles in the row.
    pub len: usize,
}

impl Lanes2d {
    /// Lanes up to `lane + round_up(len, 16)`: the transforms read and write whole vectors.
    fn whole(&self) -> usize {
        self.len.div_ceil(LANES) * LANES
    }
    /// Values the buffer must hold for `points` points.
    fn needs(&self, points: usize) -> usize {
        match self.channels {
            0 => 0,
            c => (c - 1) * self.channel + (points - 1) * self.stride + self.lane + self.whole(),
        }
    }
}

/// The input transform of a row of tiles of every channel into `v` (`at`), in whole vectors
/// of 16 tiles: lanes up to `lane + round_up(len, 16)` are written, those past `len` with
/// values of no use (callers write the next tiles after), but none past the channel's
/// `channel` lanes. Channel `c`'s padded row `i` of the tiles' `A`, split by column parity `p`
/// (`[row[2 t], row[2 t + 1]]`), starts at `src[c * plane + rows[i][p]]` at the row's first
/// tile, with at least `round_up(len, 16) + A / 2 - 1` values: tile `l` reads columns `2 l ..
/// 2 l + A`.
#[inline(always)]
fn input_row_body<V: Variant<A, R, 2>, S: Stores, const A: usize, const R: usize>(src: &[f32], plane: usize, rows: [[usize; 2]; A], v: &mut [f32], at: Lanes2d) {
    let whole = at.whole();
    assert!(v.len() >= at.needs(A * A), "input_row: {} values for {at:?}", v.len());
    let reach = rows.iter().flatten().max().map_or(0, |r| r + whole + A / 2 - 1);
    assert!(at.channels == 0 || src.len() >= (at.channels - 1) * plane + reach, "input_row: {} values for {} channels of {plane}", src.len(), at.channels);
    assert!(at.channel >= at.lane + at.len, "input_row: {at:?} reaches past its channel");
    for c in 0..at.channels {
        let (s, vc) = (&src[c * plane..], &mut v[c * at.channel + at.lane..]);
        for l in (0..whole).step_by(LANES) {
            // Not past the channel's lanes: the next channel's first lanes hold an earlier row
            // of tiles of the strip.
            let keep = (at.channel - at.lane - l).min(LANES);
            input_block::<V, Lanes, A, R, 2>(|i, col| Lanes::load(&s[rows[i][col % 2] + l + col / 2..]), |xi, x| {
                let d = &mut vc[xi * at.stride + l..];
                if keep == LANES {
                    x.store(d)
                } else {
                    // SAFETY: each entry point passes the `Stores` of the instruction set it is
                    // compiled for.
                    unsafe { S::first(x, keep, d) }
                }
            });
        }
    }
}

/// Where the output transform's rows go: channel `c`'s top row of the tiles at `y[c * plane +
/// top..][..cols]`, its bottom row at `bottom` likewise (none for the last row of an odd
/// height); `cols` is `2 len`, or one fewer when the last tile's right column is past the image.
#[derive(Clone, Copy, Debug)]
pub struct OutputRows {
    /// From one channel's outputs to the next's.
    pub plane: usize,
    /// Where the top row's first column is in a channel's outputs.
    pub top: usize,
    /// Where the bottom row's is, if the image has it.
    pub bottom: Option<usize>,
    /// Columns in each row.
    pub cols: usize,
}

/// The output transform of a row of tiles of every channel, from `m`'s lanes (`at`): tile `l`
/// gives columns `2 l, 2 l + 1` of the top and bottom rows (`rows`). Added to what is there
/// when `accumulate`. `S` interleaves the columns, per instruction set. Reads whole vectors.
#[inline(always)]
fn output_row_body<V: Variant<A, R, 2>, S: Stores, const A: usize, const R: usize>(m: &[f32], at: Lanes2d, y: &mut [f32], rows: OutputRows, accumulate: bool) {
    let len = at.len;
    assert!(m.len() >= at.needs(A * A), "output_row: {} products for {at:?}", m.len());
    assert!(rows.cols >= (2 * len).max(1) - 1 && rows.cols <= 2 * len, "output_row: a row of {} for {len} tiles", rows.cols);
    let last = rows.bottom.unwrap_or(0).max(rows.top);
    assert!(rows.bottom.is_none_or(|b| b >= rows.top + rows.cols), "output_row: rows overlap in {rows:?}");
    assert!(at.channels == 0 || y.len() >= (at.channels - 1) * rows.plane + last + rows.cols, "output_row: {} outputs for {} channels, {rows:?}", y.len(), at.channels);
    for c in 0..at.channels {
        let mc = &m[c * at.channel + at.lane..];
        let yc = &mut y[c * rows.plane..];
        let (above, below) = yc.split_at_mut(rows.bottom.unwrap_or(rows.top + rows.cols));
        let top = &mut above[rows.top..rows.top + rows.cols];
        let mut bottom = rows.bottom.map(|_| &mut below[..rows.cols]);
        for l in (0..len).step_by(LANES) {
            let n = (len - l).min(LANES);
            let out = output_block::<V, Lanes, A, R, 2>(|xi| Lanes::load(&mc[xi * at.stride + l..]));
            // Columns 2 l .. of this stretch: 2 n, or one fewer at the end of an odd row.
            let cols = (rows.cols - 2 * l).min(2 * n);
            // SAFETY: each entry point passes the `Stores` of the instruction set it is compiled for.
            unsafe { S::zip(out[0][0], out[0][1], &mut top[2 * l..2 * l + cols], accumulate) };
            if let Some(b) = bottom.as_deref_mut() {
                // SAFETY: as above.
                unsafe { S::zip(out[1][0], out[1][1], &mut b[2 * l..2 * l + cols], accumulate) };
            }
        }
    }
}

/// `input_row_body` of variant `V` compiled for `isa`.
fn input_row_of<V: Variant<A, R, 2>, const A: usize, const R: usize>(isa: Isa, src: &[f32], plane: usize, rows: &[[usize; 2]], v: &mut [f32], at: Lanes2d) {
    let rows: [[usize; 2]; A] = rows.try_into().unwrap_or_else(|_| panic!("input_row: {} rows for {A}", rows.len()));
    on_isa!(isa, input_row::<V, A, R>(src, plane, rows, v, at))
}

/// `output_row_body` of variant `V` compiled for `isa`.
fn output_row_of<V: Variant<A, R, 2>, const A: usize, const R: usize>(isa: Isa, m: &[f32], at: Lanes2d, y: &mut [f32], rows: OutputRows, accumulate: bool) {
    on_isa!(isa, output_row::<V, A, R>(m, at, y, rows, accumulate))
}

/// The input transform of filters of side `r` over one row of tiles of every channel
/// (`input_row_body`), `rows` holding the offsets of the `r + 1` rows' two parities.
pub fn input_row(isa: Isa, r: usize, src: &[f32], plane: usize, rows: &[[usize; 2]], v: &mut [f32], at: Lanes2d) {
    match r {
        3 => input_row_of::<F2x3, 4, 3>(isa, src, plane, rows, v, at),
        5 => input_row_of::<F2x5, 6, 5>(isa, src, plane, rows, v, at),
        _ => panic!("winograd: no transform for {r}x{r} filters"),
    }
}

/// The output transform of filters of side `r` over one row of tiles of every channel
/// (`output_row_body`).
pub fn output_row(isa: Isa, r: usize, m: &[f32], at: Lanes2d, y: &mut [f32], rows: OutputRows, accumulate: bool) {
    match r {
        3 => output_row_of::<F2x3, 4, 3>(isa, m, at, y, rows, accumulate),
        5 => output_row_of::<F2x5, 6, 5>(isa, m, at, y, rows, accumulate),
        _ => panic!("winograd: no transform for {r}x{r} filters"),
    }
}

/// Channels in the lanes (`by_channels.rs`): one row of `blocks` blocks, 16 channels per
/// lane vector. `cells: [rows][cols][cp]` is the padded sample channels last from the blocks'
/// first row on (`row_stride = cols * cp`), block `b` reading columns `M b .. M b + A`; point
/// `xi` of block `b`, channels `c .. c + 16`, goes to `v[xi * v_stride + b * cp + c..]`.
/// `cp` is a multiple of 16.
#[inline(always)]
fn input_cells_body<V: Variant<A, R, M>, const A: usize, const R: usize, const M: usize>(cells: &[f32], row_stride: usize, cp: usize, blocks: usize, v: &mut [f32], v_stride: usize) {
    assert!(cp.is_multiple_of(LANES) && blocks > 0, "input_cells: {cp} channels, {blocks} blocks");
    assert!(cells.len() >= (A - 1) * row_stride + (M * blocks + A - M) * cp, "input_cells: {} cells for {blocks} blocks of {cp} channels", cells.len());
    assert!(v.len() >= (A * A - 1) * v_stride + blocks * cp, "input_cells: {} values for {blocks} blocks x {} points", v.len(), A * A);
    // Blocks `M` columns apart share `A - M` of their `A` columns, and `B^T` of a column (the
    // first half of `input_block`) is the same for every block reading it: each is transformed
    // once per run of `run` blocks (M + (A - M) / run transforms a block instead of A), kept
    // in `t[column][p]`, then `B^T` along each block's rows: the same operations on the same
    // values as `input_block`, so the same bits.
    let run_len = 16 / M;
    let mut t = [[Lanes::default(); A]; 20];
    assert!(M * run_len + A - M <= t.len(), "input_cells: room for {} columns a run", t.len());
    for b0 in (0..blocks).step_by(run_len) {
        let run = run_len.min(blocks - b0);
        for c in (0..cp).step_by(LANES) {
            for (j, tj) in t.iter_mut().enumerate().take(M * run + A - M) {
                let mut column = [Lanes::default(); A];
                for (i, x) in column.iter_mut().enumerate() {
                    *x = Lanes::load(&cells[i * row_stride + (M * b0 + j) * cp + c..]);
                }
                *tj = V::bt(column);
            }
            for b in 0..run {
                for p in 0..A {
                    let mut row = [Lanes::default(); A];
                    for (q, x) in row.iter_mut().enumerate() {
                        *x = t[M * b + q][p];
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
/// `c < oq` (a multiple of 16); its `M x M` outputs go to `out[a * out_row + (M b + j) * oq +
/// c..]` (`out: [M][M blocks][oq]`, channels last).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn output_cells_body<V: Variant<A, R, M>, const A: usize, const R: usize, const M: usize>(m: &[f32], m_stride: usize, row: usize, oq: usize, blocks: usize, out: &mut [f32], out_row: usize) {
    assert!(oq.is_multiple_of(LANES) && oq <= row && blocks > 0, "output_cells: {oq} of {row} channels, {blocks} blocks");
    assert!(m.len() >= (A * A - 1) * m_stride + (blocks - 1) * row + oq, "output_cells: {} products for {blocks} blocks", m.len());
    assert!(out.len() >= (M - 1) * out_row + M * blocks * oq && out_row >= M * blocks * oq, "output_cells: {} outputs, rows of {out_row}", out.len());
    for b in 0..blocks {
        for c in (0..oq).step_by(LANES) {
            let y = output_block::<V, Lanes, A, R, M>(|xi| Lanes::load(&m[xi * m_stride + b * row + c..]));
            for (a, outputs) in y.into_iter().enumerate() {
                for (j, value) in outputs.into_iter().enumerate() {
                    value.store(&mut out[a * out_row + (M * b + j) * oq + c..]);
                }
            }
        }
    }
}

/// Where `gradient_cells` reads the output gradient and writes its points.
#[derive(Clone, Copy, Debug)]
pub struct GradientCells {
    /// Lanes per panel: a multiple of 16.
    pub width: usize,
    /// Panels of `width` output channels.
    pub panels: usize,
    /// Values per panel of `dy`: `2 th * 2 tw * width`.
    pub panel_len: usize,
    /// Blocks per row of blocks.
    pub tw: usize,
    /// The first block transformed.
    pub first: usize,
    /// Blocks transformed.
    pub blocks: usize,
    /// From one point's panels to the next in `g`.
    pub g_stride: usize,
}

/// The output gradient's transform for the weight gradient, channels in the lanes
/// (`weight_grad.rs`): `dy` in the tile's panels, `[panels][2 th][2 tw][width]` (an output row
/// `2 tw` pixels long, zero past the image); point `xi` of block `first + b`, lanes `l .. l +
/// 16` of panel `cb`, goes to `g[xi * g_stride + (cb * blocks + b) * width + l..]`: per point,
/// the B panels of the products, `[panels][blocks][width]`.
#[inline(always)]
fn gradient_cells_body<V: Variant<A, R, 2>, const A: usize, const R: usize>(dy: &[f32], at: GradientCells, g: &mut [f32]) {
    let GradientCells { width, panels, panel_len, tw, first, blocks, g_stride } = at;
    let row = 2 * tw * width;
    assert!(width.is_multiple_of(LANES) && tw > 0 && panel_len.is_multiple_of(2 * row), "gradient_cells: {at:?}");
    assert!(dy.len() >= panels * panel_len && (first + blocks).div_ceil(tw) * 2 * row <= panel_len, "gradient_cells: {} values for {at:?}", dy.len());
    assert!(g.len() >= (A * A - 1) * g_stride + panels * blocks * width, "gradient_cells: {} values for {at:?}", g.len());
    for cb in 0..panels {
        for b in 0..blocks {
            let (ty, tx) = ((first + b) / tw, (first + b) % tw);
            let top = cb * panel_len + 2 * ty * row + 2 * tx * width;
            let out = (cb * blocks + b) * width;
            for l in (0..width).step_by(LANES) {
                let at = |offset: usize| Lanes::load(&dy[top + offset + l..]);
                let block = [[at(0), at(width)], [at(row), at(row + width)]];
                gradient_block::<V, Lanes, A, R, 2>(block, |xi, v| v.store(&mut g[xi * g_stride + out + l..]));
            }
        }
    }
}

/// The transforms' entry points compiled per instruction set: a module each (`avx512`,
/// `avx2`, `plain`) holding every body inside its `#[target_feature]` wrapper, with that
/// set's `Stores`; `on_isa!` calls the one the CPU may run.
macro_rules! entry_points {
    ($($(#[$attr:meta])* $isa:ident: $stores:ty $(, $features:literal)?;)*) => {$(
        $(#[$attr])*
        mod $isa {
            use super::*;
            $(#[target_feature(enable = $features)])?
            pub(super) fn input_row<V: Variant<A, R, 2>, const A: usize, const R: usize>(src: &[f32], plane: usize, rows: [[usize; 2]; A], v: &mut [f32], at: Lanes2d) {
                input_row_body::<V, $stores, A, R>(src, plane, rows, v, at)
            }
            $(#[target_feature(enable = $features)])?
            pub(super) fn output_row<V: Variant<A, R, 2>, const A: usize, const R: usize>(m: &[f32], at: Lanes2d, y: &mut [f32], rows: OutputRows, accumulate: bool) {
                output_row_body::<V, $stores, A, R>(m, at, y, rows, accumulate)
            }
            $(#[target_feature(enable = $features)])?
            pub(super) fn input_cells<V: Variant<A, R, M>, const A: usize, const R: usize, const M: usize>(cells: &[f32], row_stride: usize, cp: usize, blocks: usize, v: &mut [f32], v_stride: usize) {
                input_cells_body::<V, A, R, M>(cells, row_stride, cp, blocks, v, v_stride)
            }
            $(#[target_feature(enable = $features)])?
            #[allow(clippy::too_many_arguments)]
            pub(super) fn output_cells<V: Variant<A, R, M>, const A: usize, const R: usize, const M: usize>(m: &[f32], m_stride: usize, row: usize, oq: usize, blocks: usize, out: &mut [f32], out_row: usize) {
                output_cells_body::<V, A, R, M>(m, m_stride, row, oq, blocks, out, out_row)
            }
            $(#[target_feature(enable = $features)])?
            pub(super) fn gradient_cells<V: Variant<A, R, 2>, const A: usize, const R: usize>(dy: &[f32], at: GradientCells, g: &mut [f32]) {
                gradient_cells_body::<V, A, R>(dy, at, g)
            }
        }
    )*};
}
entry_points! {
    #[cfg(target_arch = "x86_64")]
    avx512: Avx512Stores, "avx512f,avx2,fma";
    #[cfg(target_arch = "x86_64")]
    avx2: Avx2Stores, "avx2,fma";
    plain: PlainStores;
}

/// `$f::<..>(..)` of the entry points `isa` names where the CPU has it, else the plain one.
macro_rules! on_isa {
    ($isa:expr, $f:ident::<$($g:tt),*>($($arg:expr),*)) => {{
        let isa: Isa = $isa;
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: the CPU has the instruction set (checked by `supported`).
            match isa {
                Isa::Avx512 if isa.supported() => return unsafe { avx512::$f::<$($g),*>($($arg),*) },
                Isa::Avx2 if isa.supported() => return unsafe { avx2::$f::<$($g),*>($($arg),*) },
                _ => {}
            }
        }
        let _ = isa;
        plain::$f::<$($g),*>($($arg),*)
    }};
}
use on_isa;

#[allow(clippy::too_many_arguments)]
fn input_cells_of<V: Variant<A, R, M>, const A: usize, const R: usize, const M: usize>(isa: Isa, cells: &[f32], row_stride: usize, cp: usize, blocks: usize, v: &mut [f32], v_stride: usize) {
    on_isa!(isa, input_cells::<V, A, R, M>(cells, row_stride, cp, blocks, v, v_stride))
}

#[allow(clippy::too_many_arguments)]
fn output_cells_of<V: Variant<A, R, M>, const A: usize, const R: usize, const M: usize>(isa: Isa, m: &[f32], m_stride: usize, row: usize, oq: usize, blocks: usize, out: &mut [f32], out_row: usize) {
    on_isa!(isa, output_cells::<V, A, R, M>(m, m_stride, row, oq, blocks, out, out_row))
}

fn gradient_cells_of<V: Variant<A, R, 2>, const A: usize, const R: usize>(isa: Isa, dy: &[f32], at: GradientCells, g: &mut [f32]) {
    on_isa!(isa, gradient_cells::<V, A, R>(dy, at, g))
}

/// Channels per lane vector of the channel-lane transforms.
pub const CHANNEL_LANES: usize = LANES;

/// The input transform `t` over one row of blocks, channels in the lanes
/// (`input_cells_body`).
#[allow(clippy::too_many_arguments)]
pub fn input_cells(isa: Isa, t: Transform, cells: &[f32], row_stride: usize, cp: usize, blocks: usize, v: &mut [f32], v_stride: usize) {
    by_transform!(t, input_cells_of(isa, cells, row_stride, cp, blocks, v, v_stride))
}

/// The output transform `t` over one row of blocks, channels in the lanes
/// (`output_cells_body`).
#[allow(clippy::too_many_arguments)]
pub fn output_cells(isa: Isa, t: Transform, m: &[f32], m_stride: usize, row: usize, oq: usize, blocks: usize, out: &mut [f32], out_row: usize) {
    by_transform!(t, output_cells_of(isa, m, m_stride, row, oq, blocks, out, out_row))
}

/// The output gradient's transform of filters of side `r` for the weight gradient, channels
/// in the lanes (`gradient_cells_body`).
pub fn gradient_cells(isa: Isa, r: usize, dy: &[f32], at: GradientCells, g: &mut [f32]) {
    match r {
        3 => gradient_cells_of::<F2x3, 4, 3>(isa, dy, at, g),
        5 => gradient_cells_of::<F2x5, 6, 5>(isa, dy, at, g),
        _ => panic!("winograd: no transform for {r}x{r} filters"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// One tile's `B^T d B`, `d` row-major `A x A`.
    fn tile_input<V: Variant<A, R, M>, const A: usize, const R: usize, const M: usize>(d: &[f32]) -> Vec<f32> {
        let mut v = vec![0.0; A * A];
        input_block::<V, f32, A, R, M>(|i, j| d[A * i + j], |xi, x| v[xi] = x);
        v
    }

    /// The three transforms compose to the `R x R` correlation of the `A x A` block, for
    /// every point, within a rounding error relative to the sum of the terms' sizes.
    fn transforms_compose<V: Variant<A, R, M>, const A: usize, const R: usize, const M: usize>(rng: &mut Rng) {
        let coefficients = coefficients_of::<V, A, R, M>();
        for _ in 0..50 {
            let d = rng.uniform_vec(A * A, -2.0, 2.0);
            let g = rng.uniform_vec(R * R, -2.0, 2.0);
            let v = tile_input::<V, A, R, M>(&d);
            let u: Vec<f32> = coefficients.iter().map(|c| c.iter().zip(&g).map(|(c, g)| c * g).sum()).collect();
            let y = output_block::<V, f32, A, R, M>(|xi| v[xi] * u[xi]);
            for (oy, row) in y.iter().enumerate() {
                for (ox, got) in row.iter().enumerate() {
                    let terms = (0..R).flat_map(|i| (0..R).map(move |j| (i, j))).map(|(i, j)| d[A * (oy + i) + ox + j] as f64 * g[R * i + j] as f64);
                    let (want, size) = terms.fold((0.0, 0.0), |(s, m), t| (s + t, m + t.abs()));
                    assert!((*got as f64 - want).abs() < 2e-6 * size, "F({M}x{M}, {R}x{R}) ({oy}, {ox}): {got} vs {want} (terms of size {size})");
                }
            }
        }
    }

    #[test]
    fn transforms_compose_to_the_correlation() {
        let mut rng = Rng::new(21);
        transforms_compose::<F2x3, 4, 3, 2>(&mut rng);
        transforms_compose::<F2x5, 6, 5, 2>(&mut rng);
        transforms_compose::<F4x3, 6, 3, 4>(&mut rng);
    }

    /// `gradient_block` is the output transform's transpose: `sum_xi Y[xi] m[xi]` is `sum dy .
    /// output_block(m)` for any products `m`; and with the weights' coefficients it gives a
    /// block's weight gradient, `sum_xi c[xi][t] Y[xi] V[xi]` = `sum_(oy, ox) dy[oy][ox]
    /// d[oy + i][ox + j]`, within a rounding error relative to the terms' size.
    fn gradient_is_the_transpose<V: Variant<A, R, M>, const A: usize, const R: usize, const M: usize>(rng: &mut Rng) {
        let coefficients = coefficients_of::<V, A, R, M>();
        for _ in 0..50 {
            let dy = rng.uniform_vec(M * M, -2.0, 2.0);
            let mut y = vec![0.0f32; A * A];
            gradient_block::<V, f32, A, R, M>(std::array::from_fn(|i| std::array::from_fn(|j| dy[M * i + j])), |xi, v| y[xi] = v);
            let m = rng.uniform_vec(A * A, -2.0, 2.0);
            let out = output_block::<V, f32, A, R, M>(|xi| m[xi]);
            let lhs: f64 = y.iter().zip(&m).map(|(a, b)| *a as f64 * *b as f64).sum();
            let rhs: f64 = (0..M * M).map(|k| dy[k] as f64 * out[k / M][k % M] as f64).sum();
            let size: f64 = y.iter().zip(&m).map(|(a, b)| (*a as f64 * *b as f64).abs()).sum();
            assert!((lhs - rhs).abs() < 1e-6 * size, "F({M}x{M}, {R}x{R}): sum Y m {lhs} vs sum dy y {rhs}");
            let d = rng.uniform_vec(A * A, -2.0, 2.0);
            let v = tile_input::<V, A, R, M>(&d);
            #[allow(clippy::needless_range_loop)] // t indexes each point's coefficients, not one array
            for t in 0..R * R {
                let (i, j) = (t / R, t % R);
                let got: f32 = (0..A * A).map(|xi| coefficients[xi][t] * y[xi] * v[xi]).sum();
                let terms = (0..M * M).map(|k| dy[k] as f64 * d[A * (k / M + i) + k % M + j] as f64);
                let (want, size) = terms.fold((0.0, 0.0), |(s, m), t| (s + t, m + t.abs()));
                assert!((got as f64 - want).abs() < 1e-5 * size, "F({M}x{M}, {R}x{R}) tap ({i}, {j}): {got} vs {want} (terms of size {size})");
            }
        }
    }

    #[test]
    fn the_gradient_transform_is_the_output_transforms_transpose() {
        let mut rng = Rng::new(25);
        gradient_is_the_transpose::<F2x3, 4, 3, 2>(&mut rng);
        gradient_is_the_transpose::<F2x5, 6, 5, 2>(&mut rng);
        gradient_is_the_transpose::<F4x3, 6, 3, 4>(&mut rng);
    }

    /// `gradient_cells` gives each block's and lane's `gradient_block` bit for bit on every
    /// ISA this CPU has, from panels of 16 and 32 lanes, strips starting mid-image and ending
    /// on a partial row, and writes nothing else.
    fn gradient_cells_are_blocks<V: Variant<A, R, 2>, const A: usize, const R: usize>(rng: &mut Rng) {
        for isa in Isa::testable("winograd gradient transforms") {
            for &(th, tw, first, blocks, width, panels) in &[(1usize, 1usize, 0usize, 1usize, 16usize, 1usize), (3, 5, 0, 15, 32, 2), (4, 7, 9, 12, 16, 3), (7, 7, 0, 49, 32, 1)] {
                let panel_len = 4 * th * tw * width;
                let dy = rng.uniform_vec(panels * panel_len, -1.0, 1.0);
                let g_stride = panels * blocks * width + 3;
                let mut g = vec![7.0; A * A * g_stride];
                let at = GradientCells { width, panels, panel_len, tw, first, blocks, g_stride };
                gradient_cells(isa, R, &dy, at, &mut g);
                for (idx, got) in g.iter().enumerate() {
                    let (xi, rest) = (idx / g_stride, idx % g_stride);
                    if rest >= panels * blocks * width {
                        assert_eq!(*got, 7.0, "{isa:?} {R}x{R}: g[{idx}] past the panels");
                        continue;
                    }
                    let (cb, b, l) = (rest / (blocks * width), rest / width % blocks, rest % width);
                    let (ty, tx) = ((first + b) / tw, (first + b) % tw);
                    let pixel = |i: usize, j: usize| dy[cb * panel_len + ((2 * ty + i) * 2 * tw + 2 * tx + j) * width + l];
                    let mut want = vec![0.0f32; A * A];
                    gradient_block::<V, f32, A, R, 2>([[pixel(0, 0), pixel(0, 1)], [pixel(1, 0), pixel(1, 1)]], |xi, v| want[xi] = v);
                    assert_eq!(got.to_bits(), want[xi].to_bits(), "{isa:?} {R}x{R}: panel {cb}, block {b}, lane {l}, point {xi}");
                }
            }
        }
    }

    #[test]
    fn gradient_cells_are_the_block_transform_lane_by_lane() {
        let mut rng = Rng::new(26);
        gradient_cells_are_blocks::<F2x3, 4, 3>(&mut rng);
        gradient_cells_are_blocks::<F2x5, 6, 5>(&mut rng);
    }

    /// The weights' coefficients are `G g G^T`, computed here as two matrix products in f64.
    fn coefficients_are_g_g_gt<V: Variant<A, R, M>, const A: usize, const R: usize, const M: usize>(rng: &mut Rng) {
        let g = rng.uniform_vec(R * R, -1.0, 1.0);
        let coefficients = weight_coefficients(Transform { m: M, r: R });
        for p in 0..A {
            for q in 0..A {
                let want: f64 = (0..R).flat_map(|i| (0..R).map(move |j| (i, j))).map(|(i, j)| V::G[p][i] * g[R * i + j] as f64 * V::G[q][j]).sum();
                let got: f32 = coefficients[A * p + q].iter().zip(&g).map(|(c, g)| c * g).sum();
                assert!((got as f64 - want).abs() < 1e-6, "F({M}x{M}, {R}x{R}) point ({p}, {q}): {got} vs {want}");
            }
        }
    }

    #[test]
    fn weight_coefficients_are_g_g_gt() {
        let mut rng = Rng::new(23);
        coefficients_are_g_g_gt::<F2x3, 4, 3, 2>(&mut rng);
        coefficients_are_g_g_gt::<F2x5, 6, 5, 2>(&mut rng);
        coefficients_are_g_g_gt::<F4x3, 6, 3, 4>(&mut rng);
    }

    /// The row transforms are the single-tile ones, lane by lane and channel by channel, on
    /// every ISA this CPU has (and write nothing outside their lanes, channels and columns):
    /// one and three channels, channels side by side within a point's block as the strips lay
    /// them out, rows of odd and even widths, with and without a bottom row.
    fn rows_are_tiles<V: Variant<A, R, 2>, const A: usize, const R: usize>(rng: &mut Rng) {
        let points = A * A;
        let reach = A / 2 - 1;
        for isa in Isa::testable("winograd row transforms") {
            for &(len, lane, width) in &[(1usize, 0, 1), (1, 0, 2), (5, 3, 10), (33, 0, 65), (17, 15, 34), (16, 0, 32), (40, 4, 79), (37, 2, 74)] {
                for (channels, tight) in [(1usize, false), (3, false), (3, true)] {
                    let whole = len.div_ceil(LANES) * LANES;
                    // Tight: the channels' lanes end at the row's last tile, as a strip's last.
                    let channel = if tight { lane + len } else { lane + whole + 1 };
                    let at = Lanes2d { channels, channel, stride: channels * channel + 5, lane, len };
                    // Channel c's row i of parity p at c * plane + rows[i][p], rows apart by a gap.
                    let row_len = whole + reach + 2;
                    let rows: Vec<[usize; 2]> = (0..A).map(|i| [0, 1].map(|p| (2 * i + p) * row_len + 1)).collect();
                    let plane = 2 * A * row_len + 3;
                    let src = rng.uniform_vec(channels * plane, -1.0, 1.0);
                    let mut v = vec![7.0; at.needs(points) + 9];
                    input_row(isa, R, &src, plane, &rows, &mut v, at);
                    for (idx, x) in v.iter().enumerate() {
                        let (xi, c, s) = (idx / at.stride, idx % at.stride / channel, idx % at.stride % channel);
                        let ours = xi < points && c < channels;
                        if ours && s >= lane + len && s < lane + whole {
                            continue; // the callers' slack
                        }
                        if !ours || s < lane || s >= lane + len {
                            assert_eq!(*x, 7.0, "{isa:?} {R}x{R}: v[{idx}] outside the lanes written");
                            continue;
                        }
                        let l = s - lane;
                        let d: Vec<f32> = (0..A * A).map(|k| (k / A, k % A)).map(|(i, col)| src[c * plane + rows[i][col % 2] + l + col / 2]).collect();
                        assert_eq!(*x, tile_input::<V, A, R, 2>(&d)[xi], "{isa:?} {R}x{R}: input channel {c} lane {l} point {xi}");
                    }
                    let m = rng.uniform_vec(at.needs(points), -1.0, 1.0);
                    for (accumulate, has_bottom) in [(false, true), (true, true), (false, false)] {
                        let y_plane = 2 * width + 7;
                        let rows = OutputRows { plane: y_plane, top: 2, bottom: has_bottom.then_some(width + 4), cols: width };
                        let y0 = rng.uniform_vec(channels * y_plane, -1.0, 1.0);
                        let mut y = y0.clone();
                        output_row(isa, R, &m, at, &mut y, rows, accumulate);
                        for (idx, got) in y.iter().enumerate() {
                            let (c, at_y) = (idx / y_plane, idx % y_plane);
                            let row = [Some(rows.top), rows.bottom].iter().position(|r| r.is_some_and(|r| at_y >= r && at_y < r + width));
                            let Some(a) = row else {
                                assert_eq!(*got, y0[idx], "{isa:?} {R}x{R}: y[{idx}] outside the rows written");
                                continue;
                            };
                            let col = at_y - [Some(rows.top), rows.bottom][a].unwrap();
                            let l = col / 2;
                            let out = output_block::<V, f32, A, R, 2>(|xi| m[c * channel + xi * at.stride + lane + l]);
                            let base = if accumulate { y0[idx] } else { 0.0 };
                            assert_eq!(*got, base + out[a][col % 2], "{isa:?} {R}x{R}: channel {c} row {a} column {col}");
                        }
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
    /// this CPU has: rows of 1 to 17 blocks (runs of `16 / M` and their last, shorter one), 16
    /// and 32 channels, and writes nothing else.
    fn cells_are_tiles<V: Variant<A, R, M>, const A: usize, const R: usize, const M: usize>(rng: &mut Rng) {
        for isa in Isa::testable("winograd cell transforms") {
            for &(blocks, cp) in &[(1usize, 16usize), (7, 32), (8, 16), (9, 16), (17, 32)] {
                let columns = M * blocks + A - M;
                let row_stride = (columns + 3) * cp;
                let cells = rng.uniform_vec(A * row_stride, -1.0, 1.0);
                let v_stride = blocks * cp + 5;
                let mut v = vec![7.0; A * A * v_stride];
                input_cells(isa, Transform { m: M, r: R }, &cells, row_stride, cp, blocks, &mut v, v_stride);
                for (idx, got) in v.iter().enumerate() {
                    let (xi, at) = (idx / v_stride, idx % v_stride);
                    if at >= blocks * cp {
                        assert_eq!(*got, 7.0, "{isa:?} {R}x{R}: v[{idx}] past the blocks");
                        continue;
                    }
                    let (b, c) = (at / cp, at % cp);
                    let d: Vec<f32> = (0..A * A).map(|k| cells[(k / A) * row_stride + (M * b + k % A) * cp + c]).collect();
                    assert_eq!(got.to_bits(), tile_input::<V, A, R, M>(&d)[xi].to_bits(), "{isa:?} {R}x{R}: block {b} of {blocks}, channel {c}, point {xi}");
                }
            }
        }
    }

    #[test]
    fn cell_transforms_are_the_tile_transforms_channel_by_channel() {
        let mut rng = Rng::new(24);
        cells_are_tiles::<F2x3, 4, 3, 2>(&mut rng);
        cells_are_tiles::<F2x5, 6, 5, 2>(&mut rng);
        cells_are_tiles::<F4x3, 6, 3, 4>(&mut rng);
    }
}
