//! Winograd with channels in the lanes: the transforms run on vectors of 16 channels of one
//! 2x2 block, so every lane holds a value wherever the channels are a multiple of 16, however
//! narrow the image. (The blocks-in-the-lanes layout of `mod.rs` fills a vector with one row
//! of blocks: 7 of 16 lanes on a 14x14 image.)
//!
//! Per sample: the zero-padded sample channels last, `cells: [Hp][Wp][cp]` -> input transform
//! per block into `V[xi] [blocks][cp]` -> per point, `M[xi] [blocks][op] = V[xi] U[xi]` on the
//! register tile (rows = blocks through offsets, lanes = output channels, U packed in the
//! tile's panels, C stored by rows) -> output transform per block into `out: [m th][m tw][oq]`
//! channels last -> NCHW.
//!
//! Shapes per sample: `x: [Cin, H, W]`, `y: [Cout, Ho, Wo]`, weights `[Cout, Cin, r, r]`;
//! `cp`, `oq` round Cin and Cout up to 16, `op` Cout up to the tile's width.

use super::transform::{self, Transform, CHANNEL_LANES};
use super::{transform_weights, Grid, POINT_GAP};
use crate::kernels::aligned::AlignedVec;
use crate::kernels::conv::padded::ZeroedOnce;
use crate::kernels::conv::tile::{self, CLayout, Kernel, Offsets, Tile};
use crate::kernels::conv::ConvDims;
use crate::kernels::matmul::Threads;
use rayon::prelude::*;

/// The weights transformed once per call into the tile's panels: per point, per block of
/// `width` output channels, `[Cin][width]` (channels past Cout zero).
#[derive(Default)]
pub struct ChannelWeights {
    /// `[P][ceil(Cout / width)][Cin][width]`.
    u: AlignedVec,
    /// The weights by tap in U's layout (`transform_weights`).
    taps: Vec<f32>,
    c_in: usize,
    c_out: usize,
    t: Transform,
    width: usize,
    finite: bool,
}

impl ChannelWeights {
    /// Transforms `weight: [Cout, Cin, r, r]` by `t` for a tile `width` channels wide: point
    /// `xi` of filter `(co, ci)` is `sum_t c[xi][t] w[co][ci][t]`
    /// (`transform::weight_coefficients`).
    pub fn prepare(&mut self, weight: &[f32], c_in: usize, c_out: usize, t: Transform, width: usize) {
        let (r, taps) = (t.r, t.r * t.r);
        assert_eq!(weight.len(), c_out * c_in * taps, "winograd: weights of {c_out}x{c_in}x{r}x{r}");
        self.finite = crate::kernels::finite::all_finite(weight);
        let per_point = c_out.div_ceil(width) * c_in * width;
        self.u.resize(t.points() * per_point, 0.0);
        transform_weights(self.u.as_mut_slice(), &mut self.taps, weight, c_in, t, per_point, |co, ci| (co / width * c_in + ci) * width + co % width);
        (self.c_in, self.c_out, self.t, self.width) = (c_in, c_out, t, width);
    }

    /// Whether these weights may go through the transforms at all.
    pub fn finite(&self) -> bool {
        self.finite
    }

    /// Point `xi`'s panel of output-channel block `cb`: `[Cin][width]`.
    fn panel(&self, xi: usize, cb: usize) -> &[f32] {
        let per_panel = self.c_in * self.width;
        let per_point = self.c_out.div_ceil(self.width) * per_panel;
        &self.u.as_slice()[xi * per_point + cb * per_panel..][..per_panel]
    }
}

/// One thread's scratch, kept between calls.
#[derive(Default)]
pub struct ChannelScratch {
    /// The zero-padded sample, channels last: `[Hp][Wp][cp]`, zeroed for `(Cin, cp, H, W, Hp,
    /// Wp, top, left)`.
    cells: ZeroedOnce<8>,
    /// `[P][blocks][cp]`, points `POINT_GAP` apart beyond their size.
    v: AlignedVec,
    /// `[P][blocks][op]`, likewise.
    m: AlignedVec,
    /// The outputs channels last: `[m th][m tw][oq]`.
    out: Vec<f32>,
    /// The sample channels last before padding (narrow images), then the outputs by channel
    /// where they cannot go to `y` directly: the transposes' other side (one buffer: AlexNet's
    /// conv2 ran 3% slower with two, the cache holding 187 KB more).
    planes: Vec<f32>,
    /// `block * cp`: the product tile's rows.
    blocks: Offsets,
    /// `0 .. Cin`: its reduction.
    reduction: Offsets,
    listed_for: (usize, usize, usize),
}

/// About this many blocks per strip of block rows (whole rows, at least one): a strip's V and
/// M stay in L2 between its input transform, its products and its output transform (a whole
/// sample's, 1.8 MB each for ResNet-18's 64-channel 56x56 layers with F(4x4, 3x3), went to L3
/// and back), while its products still fill the tile's rows. Zen 4, alternating binaries,
/// against the whole sample: d (those layers) forward 8.3 -> 7.9 ms at one thread, 4.3 -> 4.1
/// at two, input gradient 8.1 -> 7.8 and 4.6 -> 4.1; c (64 channels, 32x32) 11.4 -> 11.0;
/// 64 blocks gained less at one thread (d 8.4).
const STRIP_BLOCKS: usize = 32;

/// `y (+)= conv(x, weight)` for one sample, no bias, `w` transformed by `prepare` for
/// `kernel`'s width, in strips of block rows (`STRIP_BLOCKS`). With `Threads::Pool` the
/// points' products are shared across the pool; every value is computed the same way either
/// way, and whatever the strips (each block's products and transforms are its own).
#[allow(clippy::too_many_arguments)]
pub fn forward_sample(kernel: Kernel, y: &mut [f32], x: &[f32], w: &ChannelWeights, d: &ConvDims, s: &mut ChannelScratch, accumulate: bool, threads: Threads) {
    let (c_in, c_out, width) = (d.c_in, d.c_out, kernel.width);
    assert!(super::applies(d) && (w.c_in, w.c_out, w.t.r, w.width) == (c_in, c_out, d.geom.rows.kernel, width), "winograd: weights for {}x{}x{r}x{r} at width {}, a {c_out}x{c_in} problem at {width}", w.c_out, w.c_in, w.width, r = w.t.r);
    let grid = Grid::with(d, w.t);
    let (m, points) = (grid.m, w.t.points());
    assert!(x.len() == c_in * d.in_plane() && y.len() == c_out * grid.ho * grid.wo, "winograd: sample of {} / {} values", x.len(), y.len());
    let (cp, oq, op) = (c_in.next_multiple_of(CHANNEL_LANES), c_out.next_multiple_of(CHANNEL_LANES), c_out.div_ceil(width) * width);
    pad_channels_last(&mut s.cells, &mut s.planes, x, d, grid.hp, m * grid.tw + grid.r - 1, cp);
    let strip_rows = STRIP_BLOCKS.div_ceil(grid.tw).min(grid.th);
    let strip = strip_rows * grid.tw;
    let (v_stride, m_stride) = (strip * cp + POINT_GAP, strip * op + POINT_GAP);
    s.v.resize(points * v_stride, 0.0);
    s.m.resize(points * m_stride, 0.0);
    if s.listed_for != (strip, cp, c_in) {
        s.blocks.set((0..strip).map(|b| b * cp));
        s.reduction.set(0..c_in);
        s.listed_for = (strip, cp, c_in);
    }
    let out_row = m * grid.tw * oq;
    s.out.resize(m * grid.th * out_row, 0.0);
    for ty0 in (0..grid.th).step_by(strip_rows) {
        let rows = strip_rows.min(grid.th - ty0);
        input_rows(kernel, s.cells.data(), &grid, cp, ty0..ty0 + rows, s.v.as_mut_slice(), v_stride);
        products(kernel, s, w, rows * grid.tw, op, (v_stride, m_stride), threads);
        for i in 0..rows {
            let out = &mut s.out[m * (ty0 + i) * out_row..];
            transform::output_cells(kernel.isa, w.t, &s.m.as_slice()[i * grid.tw * op..], m_stride, op, oq, grid.tw, out, out_row);
        }
    }
    to_planes(y, &s.out, &mut s.planes, (grid.ho, grid.wo), m * grid.tw, oq, accumulate);
}

/// The input transform of block rows `rows` from the padded sample channels last (`cells:
/// [Hp][Wp][cp]`, `pad_channels_last`) into `v: [P][blocks][cp]`, points `v_stride` apart, the
/// first of `rows` at block 0 (a strip of the weight gradient's, or the whole sample).
pub(super) fn input_rows(kernel: Kernel, cells: &[f32], grid: &Grid, cp: usize, rows: std::ops::Range<usize>, v: &mut [f32], v_stride: usize) {
    let row_cells = (grid.m * grid.tw + grid.r - 1) * cp;
    for (i, ty) in rows.enumerate() {
        let cells = &cells[grid.m * ty * row_cells..];
        transform::input_cells(kernel.isa, grid.transform(), cells, row_cells, cp, grid.tw, &mut v[i * grid.tw * cp..], v_stride);
    }
}

/// `cells[(r + top) * wp + c + left][ch] = x[ch][r][c]`, zero elsewhere (the padding and the
/// channels past Cin), by the tile's panel packing (8 x 8 register transposes). Rows of at
/// least `STRAIGHT_MIN_WIDTH` pixels go straight into their padded rows, an image row of every
/// channel at a time (through a buffer of the whole sample and a copy per row, 20% of a
/// 64-channel 56x56 layer's forward pass went to the two); narrower ones go through
/// `last`, the sample channels last, then a copy per row (straight, the MNIST net's conv2, 14
/// wide, ran 3-15% slower: a call and a masked tail per row). The padding's zeros and the
/// lanes past Cin, which the packing never writes, are written once per geometry
/// (`ZeroedOnce`; the MNIST net's conv2 zeroed 83 KB a sample for its input gradient before).
pub(super) fn pad_channels_last(cells: &mut ZeroedOnce<8>, last: &mut Vec<f32>, x: &[f32], d: &ConvDims, hp: usize, wp: usize, cp: usize) {
    const STRAIGHT_MIN_WIDTH: usize = 24;
    let (h, w) = d.geom.in_hw();
    let (top, left) = (d.geom.rows.pad_lo, d.geom.cols.pad_lo);
    let cells = cells.for_geometry([d.c_in, cp, h, w, hp, wp, top, left], hp * wp * cp);
    if w >= STRAIGHT_MIN_WIDTH {
        for r in 0..h {
            tile::pack_panels_strided(&mut cells[((r + top) * wp + left) * cp..][..w * cp], &x[r * w..], h * w, d.c_in, w, cp);
        }
        return;
    }
    if d.c_in < cp {
        last.clear();
    }
    last.resize(h * w * cp, 0.0);
    tile::pack_panels(last, x, d.c_in, h * w, cp);
    for (r, src) in last.chunks_exact(w * cp).enumerate() {
        cells[((r + top) * wp + left) * cp..][..w * cp].copy_from_slice(src);
    }
}

/// `M[xi] [blocks][op] = V[xi] [blocks][Cin] U[xi] [Cin][op]` for every point.
fn products(kernel: Kernel, s: &mut ChannelScratch, w: &ChannelWeights, blocks: usize, op: usize, (v_stride, m_stride): (usize, usize), threads: Threads) {
    let (rows, width) = (kernel.rows, kernel.width);
    let (v, offsets, reduction) = (s.v.as_slice(), &s.blocks, &s.reduction);
    let one_point = |xi: usize, mx: &mut [f32]| {
        // The whole strip's V: the offsets are listed for a whole strip, a shorter last one
        // reads the first `blocks` of them.
        let a = &v[xi * v_stride..][..v_stride - POINT_GAP];
        for cb in 0..op / width {
            let b = w.panel(xi, cb);
            for b0 in (0..blocks).step_by(rows) {
                tile::run(kernel, Tile {
                    rows: rows.min(blocks - b0),
                    k: w.c_in,
                    data: a,
                    row_offsets: offsets.from(b0),
                    k_offsets: reduction.from(0),
                    b,
                    c: &mut mx[b0 * op + cb * width..],
                    c_layout: CLayout::Rows { row_stride: op },
                    n: width,
                    accumulate: false,
                });
            }
        }
    };
    let per_point = s.m.as_mut_slice().chunks_mut(m_stride).take(w.t.points());
    if threads == Threads::Pool && rayon::current_num_threads() > 1 {
        per_point.collect::<Vec<_>>().into_par_iter().enumerate().for_each(|(xi, mx)| one_point(xi, mx));
    } else {
        per_point.enumerate().for_each(|(xi, mx)| one_point(xi, mx));
    }
}

/// `y[co][oy][ox] (+)= out[oy][ox][co]` for the `ho x wo` outputs that exist (`out: [m th][m
/// tw][oq]`, `planes` scratch): `out` transposed by the tile's panel packing into
/// `[oq][pixels]` (one panel as wide as the rounded pixel count), then its rows to `y`; or
/// straight into `y` where every block and channel is an output (even sides, Cout a multiple
/// of 16) and nothing is added.
fn to_planes(y: &mut [f32], out: &[f32], planes: &mut Vec<f32>, (ho, wo): (usize, usize), cols: usize, oq: usize, accumulate: bool) {
    let pixels = out.len() / oq;
    if !accumulate && pixels == ho * wo && y.len() == oq * pixels {
        return tile::pack_panels(y, out, pixels, oq, pixels);
    }
    let stride = pixels.next_multiple_of(8);
    planes.resize(oq * stride, 0.0);
    tile::pack_panels(planes, out, pixels, oq, stride);
    // Rows as wide as the blocks' (a multiple of their side): a plane's outputs are
    // contiguous, one copy each instead of one per row (the MNIST net's conv2: 14 calls of 14
    // values per plane).
    let row_len = if wo == cols { ho * wo } else { wo };
    for (plane, from) in y.chunks_exact_mut(ho * wo).zip(planes.chunks_exact(stride)) {
        for (row, src) in plane.chunks_exact_mut(row_len).zip(from.chunks_exact(cols * (row_len / wo))) {
            if accumulate {
                row.iter_mut().zip(src).for_each(|(d, v)| *d += v);
            } else {
                row.copy_from_slice(&src[..row_len]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{Padding, Window2d};
    use crate::kernels::conv::conv2d_forward_ref;
    use crate::kernels::conv::tile::tests::runnable_kernels;
    use crate::rng::Rng;

    /// Each sample against the definition, F(2x2, 3x3), F(4x4, 3x3) and F(2x2, 5x5), on every
    /// tile this CPU has: channels that fill no whole vector (17, 20, 40) and that do, sides
    /// that are and are not a multiple of the blocks' (a last block partly outside), lopsided
    /// padding, one output pixel, one strip and several (a shorter last); written and added,
    /// on one thread and with the points shared across a pool; twice on one scratch (a larger
    /// problem after a smaller one, then back). Within the float epsilons of the terms' size
    /// `tests.rs` allows each transform (`winograd_ulps`: 4 for the 2x2 ones, 16 for 4x4).
    #[test]
    fn each_sample_matches_the_definition() {
        let mut rng = Rng::new(43);
        // (c_in, c_out, filter side, padding [top, bottom, left, right], h, w)
        let shapes = [
            (32, 64, 5, [2, 2, 2, 2], 14, 14), // the MNIST net's conv2
            (64, 32, 5, [2, 2, 2, 2], 14, 13), // its input gradient's direction
            (17, 40, 5, [0, 3, 1, 2], 7, 8),
            (16, 20, 5, [0, 0, 0, 0], 5, 5), // one output pixel
            (20, 16, 3, [1, 1, 1, 1], 9, 7),
            (48, 33, 3, [0, 2, 1, 0], 6, 11),
            (64, 192, 5, [2, 2, 2, 2], 9, 9), // AlexNet's conv2 channels: 12 blocks of 16 channels out
            (16, 16, 3, [0, 0, 0, 0], 3, 3),
            (64, 64, 3, [1, 1, 1, 1], 16, 16), // ResNet-18's first stage, 4x4 blocks that fit
            (32, 48, 3, [1, 1, 1, 1], 10, 13), // 4x4 blocks with 2 and 1 columns outside
            (16, 24, 3, [1, 0, 1, 1], 41, 30), // strips of 4, 4 and 2 rows of 8 blocks of 4x4
        ];
        let mut s = ChannelScratch::default();
        for kernel in runnable_kernels("winograd by channels") {
            let transforms = |r: usize| if r == 3 { vec![Transform::F2X3, Transform::F4X3] } else { vec![Transform::F2X5] };
            let cases = shapes.iter().chain(shapes.iter().rev()).flat_map(|s| transforms(s.2).into_iter().map(move |t| (*s, t)));
            for ((c_in, c_out, r, pad, h, w), t) in cases {
                let window = Window2d { padding: Padding::explicit(pad), ..Window2d::square(r, 1, Padding::Valid) };
                let d = ConvDims { n: 1, c_in, c_out, groups: 1, geom: window.resolve(h, w).unwrap() };
                let x = rng.uniform_vec(c_in * h * w, -1.0, 1.0);
                let weight = rng.uniform_vec(c_out * c_in * r * r, -1.0, 1.0);
                let mut want = vec![0.0; c_out * d.out_plane()];
                conv2d_forward_ref(&mut want, &x, &weight, None, &d);
                let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<f32>>();
                let mut size = vec![0.0; want.len()];
                conv2d_forward_ref(&mut size, &abs(&x), &abs(&weight), None, &d);
                let mut w8 = ChannelWeights::default();
                w8.prepare(&weight, c_in, c_out, t, kernel.width);
                let ulps = crate::kernels::conv::tests::winograd_ulps(t);
                let y0 = rng.uniform_vec(want.len(), -1.0, 1.0);
                for (accumulate, threads) in [(false, Threads::One), (true, Threads::One), (false, Threads::Pool)] {
                    let mut y = if accumulate { y0.clone() } else { vec![f32::NAN; want.len()] };
                    forward_sample(kernel, &mut y, &x, &w8, &d, &mut s, accumulate, threads);
                    for (i, (got, want)) in y.iter().zip(&want).enumerate() {
                        let want = want + if accumulate { y0[i] } else { 0.0 };
                        let ok = (got - want).abs() <= 1e-4 * (1.0 + want.abs()) + ulps * f32::EPSILON * size[i];
                        assert!(ok, "{kernel:?} {t:?} {c_in}->{c_out} on {h}x{w}, accumulate {accumulate}: y[{i}] {got} vs {want}");
                    }
                }
            }
        }
    }
}
