//! 3x3 and 5x5 stride-1 convolutions by Winograd's F(2x2, 3x3) and F(2x2, 5x5)
//! (`transform.rs`): 16 multiplies per 2x2 block of outputs and input channel instead of 36,
//! or 36 instead of 100. The products become `P = (r + 1)^2` independent matrix products,
//! one per point `xi` of the transform,
//!
//! `M[xi] [Cout, tiles] = U[xi] [Cout, Cin] x V[xi] [Cin, tiles]`,
//!
//! run on fovea's register tile (`tile/`). Two layouts (`Layout`): this file's, for 3x3, puts
//! 2x2 blocks along a row of the image in the transforms' lanes; `by_channels.rs`, for 5x5,
//! puts channels there (every lane used on a narrow image).
//!
//! Blocks in the lanes: a tile's rows are output channels (U read in place through offsets),
//! its lanes are 2x2 blocks of the image (V packed in panels by the input transform), and C is
//! stored by rows, so every store is a plain vector store. One sample at a time, in strips of
//! one panel of tiles (the tile's width: 32 on AVX-512, 16 on AVX2), so that V and M stay in
//! L1 and L2 and the input transform writes B's panels directly: pad the sample (split by
//! column parity, so the transforms read and write whole vectors of tiles) -> per strip:
//! input transform -> P products -> output transform into NCHW.
//!
//! Used for the forward pass and for the input gradient (the forward pass of the transposed
//! convolution, also stride 1 with the same filter size). Only where every operand is finite:
//! the transforms mix a whole block, so a NaN or an infinity would reach outputs whose windows
//! do not hold it; a sample or weights holding one take the direct tile instead (`applies`,
//! `all_finite`).
//!
//! Shapes per sample: `x: [Cin, H, W]`, `y: [Cout, Ho, Wo]`, weights `[Cout, Cin, r, r]`.

mod by_channels;
mod lanes;
mod transform;
mod weight_grad;

pub use transform::Transform;
pub use weight_grad::WeightGradScratch;

use super::tile::{self, CLayout, Kernel, Offsets, Tile};
use super::padded::ZeroedOnce;
use super::ConvDims;
use crate::kernels::aligned::AlignedVec;
use crate::kernels::matmul::Threads;
use rayon::prelude::*;

/// Fewer channels than this on either side leave the products too small to pay for the
/// transforms.
const MIN_CHANNELS: usize = 16;

/// The points' blocks of V and M start this many values apart beyond their size: the
/// transforms touch them all at once, and at a power-of-two distance (8 KB for 64 channels)
/// they would all fall in the same cache sets.
const POINT_GAP: usize = 16;

/// Values past the end of each buffer the transforms read or write in whole vectors of 16
/// tiles (`transform::input_row`, `output_row`): a strip's last vector may reach 15 lanes
/// beyond its tiles.
const SLACK: usize = 32;

/// Distance between the points' blocks of `rows x width` values.
fn point_stride(rows: usize, width: usize) -> usize {
    rows * width + POINT_GAP
}

/// At most this many bytes of transformed weights `U` (16 floats per 3x3 filter, 36 per 5x5)
/// that must stay in L2: all of it by blocks, one point's by channels (`pays`). By blocks,
/// ResNet-18's 256- and 512-channel layers read 4 and 16 MB per strip from memory: 34 ms
/// against 7 for the direct tile (layer4). 1 MB: 128 x 128 3x3 filters, 85 x 85 5x5 ones
/// by blocks; 512 x 512 filters a point by channels.
const MAX_U_BYTES: usize = 1 << 20;

/// At least this many 2x2 blocks per sample: fewer leave most of a 32-lane strip empty (a 7x7
/// image has 16).
const MIN_TILES: usize = 24;

/// Whether `d` can run here: a square filter with a transform (3x3 or 5x5), stride 1, no
/// dilation, one group, at least `MIN_CHANNELS` input and output channels.
pub fn applies(d: &ConvDims) -> bool {
    let g = &d.geom;
    let r = g.rows.kernel;
    let axis_ok = |a: &crate::geometry::Axis| a.kernel == r && a.stride == 1 && a.dilation == 1 && a.leftover == 0;
    transform::FILTERS.contains(&r) && d.groups == 1 && axis_ok(&g.rows) && axis_ok(&g.cols) && d.c_in >= MIN_CHANNELS && d.c_out >= MIN_CHANNELS
}

/// Whether `ConvPath::Auto` takes Winograd for `d`: where it applies, its transformed
/// weights stay in L2 (`MAX_U_BYTES`) and the image fills its strips (`MIN_TILES`). Blocks in
/// the lanes read all of U for every strip of 32 blocks, so all of it must fit; channels in
/// the lanes read each point's U once per sample, point after point, so one point's must
/// (AlexNet's conv2, 64 -> 192 on 27x27, 1.8 MB of U in all: 18.8 against 22.4 ms for the
/// direct tile, one thread, forward).
///
/// F(2x2, 5x5) pays with the channels in the lanes only (`Layout::of`): by blocks it was
/// slower than the direct tile on every 5x5 layer measured (the MNIST net's conv2 10.8 against
/// 7.4 ms), its vectors a row of 7 blocks on 16 lanes there.
pub fn pays(d: &ConvDims) -> bool {
    let r = d.geom.rows.kernel;
    let u_bytes = match Layout::of(d) {
        Layout::Blocks => points(r) * d.c_in * d.c_out * 4,
        Layout::Channels(_) => d.c_in * d.c_out * 4,
    };
    applies(d) && u_bytes <= MAX_U_BYTES && Grid::of(d).tiles() >= MIN_TILES
}

/// At most this many bytes of one thread's sum `dU` (`weight_grad.rs`: `[P][Cin][Cout]` in
/// f64), which every strip of blocks adds to: AlexNet's conv2 (64 -> 192, 5x5) holds 3.5 MB
/// and ran 1.7x faster than the direct tile; wider layers take the direct tile (ResNet-18's
/// 256- and 512-channel ones take the whole batch at once there anyway).
const MAX_DU_BYTES: usize = 4 << 20;

/// Whether `ConvPath::Auto` takes Winograd for `d`'s weight gradient (`weight_grad.rs`):
/// where it applies, its sum stays within `MAX_DU_BYTES` and the image has `MIN_TILES`
/// blocks (each strip's products reduce over its blocks). One thread, AVX-512 (Zen 4), `bench
/// conv` against the direct tile back to back: b (the MNIST net's conv2) 13.2 -> 8.4 ms, c
/// 25.0 -> 14.6, d 17.9 -> 11.8, x2 (AlexNet's conv2) 36.1 -> 21.1.
pub fn pays_for_weight_grad(d: &ConvDims) -> bool {
    let du_bytes = points(d.geom.rows.kernel) * d.c_in * d.c_out * 8;
    applies(d) && du_bytes <= MAX_DU_BYTES && Grid::of(d).tiles() >= MIN_TILES
}

/// Points of the transform for filters of side `r`: `(r + 1)^2`.
fn points(r: usize) -> usize {
    Transform::two(r).points()
}

/// How benchmarks name the path on `kernel`: `winograd-avx512`, `winograd-avx2`.
pub fn name(kernel: Kernel) -> &'static str {
    match kernel.isa {
        crate::kernels::isa::Isa::Avx512 => "winograd-avx512",
        _ => "winograd-avx2",
    }
}

/// The weights transformed once per call, with the offsets a tile reads them through, and
/// whether they are all finite. Each point's block of U holds the output channels in blocks of
/// the tile's rows, `[ceil(Cout / block)][Cin][block]` (the last block padded with zero
/// filters): a tile's `block` broadcasts per step of the reduction then read one run of
/// consecutive values instead of `block` rows `Cin` apart.
#[derive(Default)]
pub struct WinogradWeights {
    /// `[P][per_point]`.
    u: Vec<f32>,
    /// The weights by tap, `[r * r][per_point]`, in U's layout.
    taps: Vec<f32>,
    c_in: usize,
    c_out: usize,
    /// The filters' side.
    r: usize,
    /// Output channels per block of U: the tile's rows.
    block: usize,
    /// Values of one point's block of U.
    per_point: usize,
    /// Where each output channel's row starts: the tile's rows.
    rows: Offsets,
    /// `ci * block`: the tile's reduction.
    reduction: Offsets,
    finite: bool,
    /// Which layout the weights were readied for; with `Layout::Channels` they are in
    /// `channels` and the fields above are unused.
    layout: Layout,
    channels: by_channels::ChannelWeights,
}

/// Where the transforms put their vectors' lanes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Layout {
    /// 2x2 blocks along a row of the image (this file): whole vectors where rows of blocks
    /// are long.
    #[default]
    Blocks,
    /// Channels of one block (`by_channels.rs`) of transform `.0`: whole vectors however
    /// narrow the image.
    Channels(Transform),
}

/// At most this many bytes of a sample's transformed input by channels with F(4x4, 3x3) (`36
/// x blocks x Cin` values), a measure of the image's size: the strips hold V and M a few
/// blocks at a time, but the padded sample and its outputs, channels last, are held whole.
/// ResNet-18's 64-channel 56x56 layers count 1.8 MB (measured); larger images were not
/// measured and keep blocks.
const MAX_CHANNELS_V_BYTES: usize = 4 << 20;

impl Layout {
    /// The layout that runs `d`: channels for 5x5 filters (the MNIST net's conv2, 14x14, 7
    /// blocks a row: 5.8 ms by channels against 10.9 by blocks, one thread, AVX-512, forward);
    /// for 3x3, channels with F(4x4, 3x3) where a sample's V stays within
    /// `MAX_CHANNELS_V_BYTES` and its 4x4 blocks fill the tile's rows (`MIN_TILES`). F(4x4,
    /// 3x3) takes 2.25 products an output where F(2x2, 3x3) takes 4; Zen 4, one thread, `bench
    /// conv` alternating binaries: c (64 channels, 32x32) forward 14.4 -> 11.2 ms, input
    /// gradient 14.5 -> 11.1; d (64, 56x56) 11.7 -> 8.5 and 11.9 -> 8.2. Its rounding is
    /// larger (`transform.rs`), so the weight gradient keeps F(2x2, 3x3) (`weight_grad.rs`).
    /// Else a 3x3 layer whose transformed weights are too large for blocks (`MAX_U_BYTES`) but
    /// whose sample's V by channels stays in L2 takes channels with F(2x2, 3x3): ResNet-18's
    /// 256-channel 14x14 layers (4 MB of U by blocks; 16 blocks of 4x4; V 0.8 MB), which the
    /// direct tile ran before: forward 18.7 -> 13.2 ms at one thread. The rest take blocks.
    pub fn of(d: &ConvDims) -> Layout {
        let r = d.geom.rows.kernel;
        let (four, cp) = (Grid::with(d, Transform::F4X3), d.c_in.next_multiple_of(transform::CHANNEL_LANES));
        let v_bytes = |t: Transform| t.points() * Grid::with(d, t).tiles() * cp * 4;
        match r {
            5 => Layout::Channels(Transform::F2X5),
            _ if v_bytes(Transform::F4X3) <= MAX_CHANNELS_V_BYTES && four.tiles() >= MIN_TILES => Layout::Channels(Transform::F4X3),
            _ if points(r) * d.c_in * d.c_out * 4 > MAX_U_BYTES && v_bytes(Transform::F2X3) <= MAX_U_BYTES => Layout::Channels(Transform::F2X3),
            _ => Layout::Blocks,
        }
    }
}

impl WinogradWeights {
    /// Where filter `(co, ci)` sits in a point's block of U, for blocks of `block` channels.
    fn index(co: usize, ci: usize, c_in: usize, block: usize) -> usize {
        (co / block) * block * c_in + ci * block + co % block
    }

    /// Transforms `weight: [Cout, Cin, r, r]` for a tile of `block` rows: each point's block
    /// `U[xi]` is a linear combination of the `r * r` tap planes
    /// (`transform::weight_coefficients`), written point by point across the pool.
    pub fn prepare(&mut self, weight: &[f32], d: &ConvDims, kernel: Kernel) {
        self.layout = Layout::of(d);
        let (c_in, c_out, r, block) = (d.c_in, d.c_out, d.geom.rows.kernel, kernel.rows);
        if let Layout::Channels(t) = self.layout {
            self.channels.prepare(weight, c_in, c_out, t, kernel.width);
            self.finite = self.channels.finite();
            return;
        }
        self.prepare_blocks(weight, c_in, c_out, r, block);
    }

    /// `prepare` for `Layout::Blocks`.
    fn prepare_blocks(&mut self, weight: &[f32], c_in: usize, c_out: usize, r: usize, block: usize) {
        let taps = r * r;
        assert_eq!(weight.len(), c_out * c_in * taps, "winograd: weights of {c_out}x{c_in}x{r}x{r}");
        self.finite = crate::kernels::finite::all_finite(weight);
        let n = c_out.div_ceil(block) * block * c_in;
        self.u.resize(points(r) * n, 0.0);
        transform_weights(&mut self.u, &mut self.taps, weight, c_in, Transform::two(r), n, |co, ci| Self::index(co, ci, c_in, block));
        if (self.c_in, self.c_out, self.block) != (c_in, c_out, block) {
            self.rows.set((0..c_out).map(|co| Self::index(co, 0, c_in, block)));
            self.reduction.set((0..c_in).map(|ci| ci * block));
            (self.c_in, self.c_out, self.block) = (c_in, c_out, block);
        }
        (self.r, self.per_point) = (r, n);
    }

    /// Whether these weights may go through the transforms at all.
    pub fn finite(&self) -> bool {
        self.finite
    }
}

/// `u: [P][per_point]`, the transformed weights of `weight: [Cout, Cin, r, r]` with filter
/// `(co, ci)` at `at(co, ci)` of each point's block (values no filter lands on are zero): each
/// point is a combination of the `r * r` tap planes (`transform::weight_coefficients`), laid
/// out first in `taps: [r * r][per_point]`, written point by point across the pool.
fn transform_weights(u: &mut [f32], taps: &mut Vec<f32>, weight: &[f32], c_in: usize, t: Transform, per_point: usize, at: impl Fn(usize, usize) -> usize) {
    let side = t.r * t.r;
    taps.clear();
    taps.resize(side * per_point, 0.0);
    for (f, g) in weight.chunks_exact(side).enumerate() {
        let at = at(f / c_in, f % c_in);
        for (t, &v) in g.iter().enumerate() {
            taps[t * per_point + at] = v;
        }
    }
    let coefficients = transform::weight_coefficients(t);
    let planes = &*taps;
    u.par_chunks_mut(per_point).zip(coefficients.par_iter()).for_each(|(u, coef)| {
        u.fill(0.0);
        for (t, &c) in coef.iter().enumerate().filter(|(_, c)| **c != 0.0) {
            for (u, w) in u.iter_mut().zip(&planes[t * per_point..(t + 1) * per_point]) {
                *u += c * w;
            }
        }
    });
}

/// One thread's scratch, kept between calls.
#[derive(Default)]
pub struct WinogradScratch {
    /// The zero-padded sample split by column parity: `[Cin][Hp][2][half]`, zeroed for `(Cin,
    /// H, W, top, left, Hp, half)`.
    planes: ZeroedOnce<7>,
    /// A strip's transformed input: `[P][Cin][width]`, P panels (B of the products).
    v: AlignedVec,
    /// A strip's products: `[P][Cout][width]`.
    m: AlignedVec,
    channels: by_channels::ChannelScratch,
}

/// The tile grid of a sample: `th x tw` blocks of `m x m` outputs, each reading an `m + r -
/// 1` square of the padded input. The blocks layout (this file's `half`, `plane`,
/// `output_rows`) has `m = 2`.
struct Grid {
    ho: usize,
    wo: usize,
    th: usize,
    tw: usize,
    /// The filters' side.
    r: usize,
    /// The output blocks' side.
    m: usize,
    /// Padded rows: `m th + r - 1`. By blocks, a padded plane is `hp` rows of `half` even and
    /// `half` odd columns.
    hp: usize,
}

impl Grid {
    /// The grid of the 2x2 transform of `d`'s filters.
    fn of(d: &ConvDims) -> Grid {
        Grid::with(d, Transform::two(d.geom.rows.kernel))
    }
    /// The grid of transform `t` over `d`'s outputs.
    fn with(d: &ConvDims, t: Transform) -> Grid {
        let (ho, wo) = d.geom.out_hw();
        let (th, tw) = (ho.div_ceil(t.m), wo.div_ceil(t.m));
        Grid { ho, wo, th, tw, r: t.r, m: t.m, hp: t.m * th + t.r - 1 }
    }
    /// The transform the grid is laid out for.
    fn transform(&self) -> Transform {
        Transform { m: self.m, r: self.r }
    }
    fn tiles(&self) -> usize {
        self.th * self.tw
    }
    /// Columns of each parity in a padded row: tile `t` reads `t ..= t + (r - 1) / 2` of both.
    fn half(&self) -> usize {
        self.tw + (self.r - 1) / 2
    }
    /// Values per padded channel.
    fn plane(&self) -> usize {
        self.hp * 2 * self.half()
    }
    /// Where the output transform puts a run of `len` tiles from tile `(ty, tx)` on: the top
    /// and bottom output rows of those tiles, in each `[Ho, Wo]` plane.
    fn output_rows(&self, ty: usize, tx: usize, len: usize) -> transform::OutputRows {
        let (r0, c0) = (2 * ty, 2 * tx);
        let (ho, wo) = (self.ho, self.wo);
        transform::OutputRows { plane: ho * wo, top: r0 * wo + c0, bottom: (r0 + 1 < ho).then(|| (r0 + 1) * wo + c0), cols: (wo - c0).min(2 * len) }
    }
    /// The runs of tiles `[t0, t1)` that lie in one row: (tile row, first column, lane, count).
    fn segments(&self, t0: usize, t1: usize) -> impl Iterator<Item = (usize, usize, usize, usize)> + '_ {
        let mut t = t0;
        std::iter::from_fn(move || {
            if t >= t1 {
                return None;
            }
            let (ty, tx) = (t / self.tw, t % self.tw);
            let len = (self.tw - tx).min(t1 - t);
            let seg = (ty, tx, t - t0, len);
            t += len;
            Some(seg)
        })
    }
}

/// `y (+)= conv(x, weight)` for one sample, no bias, `weight` transformed by `prepare`. With
/// `Threads::Pool` the 16 products are shared across the pool; every value is computed the
/// same way either way.
#[allow(clippy::too_many_arguments)]
pub fn forward_sample(kernel: Kernel, y: &mut [f32], x: &[f32], w: &WinogradWeights, d: &ConvDims, s: &mut WinogradScratch, accumulate: bool, threads: Threads) {
    if let Layout::Channels(_) = w.layout {
        return by_channels::forward_sample(kernel, y, x, &w.channels, d, &mut s.channels, accumulate, threads);
    }
    let (c_in, c_out, width) = (d.c_in, d.c_out, kernel.width);
    assert!(applies(d) && (w.c_in, w.c_out, w.r) == (c_in, c_out, d.geom.rows.kernel), "winograd: weights for {}x{}x{r}x{r}, a {c_out}x{c_in} problem", w.c_out, w.c_in, r = w.r);
    let grid = Grid::of(d);
    let points = points(grid.r);
    assert!(x.len() == c_in * d.in_plane() && y.len() == c_out * grid.ho * grid.wo, "winograd: sample of {} / {} values", x.len(), y.len());
    pad_by_parity(&mut s.planes, x, d, &grid);
    s.v.resize(points * point_stride(c_in, width) + SLACK, 0.0);
    s.m.resize(points * point_stride(c_out, width) + SLACK, 0.0);
    for t0 in (0..grid.tiles()).step_by(width) {
        let t1 = (t0 + width).min(grid.tiles());
        input_strip(kernel, s.v.as_mut_slice(), s.planes.data(), &grid, c_in, t0, t1);
        prefetch_outputs(y, &grid, t0, t1);
        products(kernel, s.m.as_mut_slice(), s.v.as_slice(), w, threads);
        output_strip(kernel, y, s.m.as_slice(), &grid, c_out, t0, t1, width, accumulate);
    }
}

/// `planes[c][r][parity][t] = x[c][r - pad_top][2 t + parity - pad_left]`, zero outside x.
/// The zeros are written once per geometry (`ZeroedOnce`).
fn pad_by_parity(planes: &mut ZeroedOnce<7>, x: &[f32], d: &ConvDims, grid: &Grid) {
    let (h, w) = d.geom.in_hw();
    let (top, left) = (d.geom.rows.pad_lo, d.geom.cols.pad_lo);
    let (half, plane) = (grid.half(), grid.plane());
    // Slack past the last row: the input transform reads whole vectors of tiles.
    let planes = planes.for_geometry([d.c_in, h, w, top, left, grid.hp, half], d.c_in * plane + SLACK);
    split_rows(crate::kernels::isa::Isa::active(), planes, x, [h, w, top, left, half, plane]);
}

/// `pad_by_parity`'s copy of every row of `x: [C][h][w]` into its two halves, compiled at the
/// CPU's width (the split by parity vectorises as shuffles; 8% of a 56x56 layer's forward
/// pass in 4-value SSE moves).
#[inline(always)]
fn split_rows_body(planes: &mut [f32], x: &[f32], [h, w, top, left, half, plane]: [usize; 6]) {
    // Column `j` of x lands at padded column `j + left`: the even columns of x at `left / 2 +
    // j / 2` of parity `left % 2`, the odd ones at `(left + 1) / 2 + j / 2` of the other.
    let (even_at, odd_at) = (left / 2, left.div_ceil(2));
    for (c, xc) in x.chunks_exact(h * w).enumerate() {
        for (r, src) in xc.chunks_exact(w).enumerate() {
            let row = &mut planes[c * plane + (r + top) * 2 * half..][..2 * half];
            let (p0, p1) = row.split_at_mut(half);
            let (evens, odds) = if left % 2 == 0 { (p0, p1) } else { (p1, p0) };
            let pairs = src.chunks_exact(2);
            if let Some(&last) = pairs.remainder().first() {
                evens[even_at + w / 2] = last;
            }
            // Both halves in one loop over pairs: LLVM loads the pairs as vectors and
            // shuffles them apart (a loop per half with `step_by(2)` stayed scalar).
            for ((e, o), pair) in evens[even_at..].iter_mut().zip(odds[odd_at..].iter_mut()).zip(pairs) {
                *e = pair[0];
                *o = pair[1];
            }
        }
    }
}

crate::kernels::isa::compiled_per_isa! {
    /// `split_rows_body` compiled for `isa`.
    fn split_rows => split_rows_body(planes: &mut [f32], x: &[f32], dims: [usize; 6])
}

/// Tiles `[t0, t1)` of every channel into `v: [P][Cin][width]` (blocks `point_stride`
/// apart); lanes past `t1` hold finite values of no use.
fn input_strip(kernel: Kernel, v: &mut [f32], planes: &[f32], grid: &Grid, c_in: usize, t0: usize, t1: usize) {
    let width = kernel.width;
    let (half, side) = (grid.half(), grid.transform().side());
    // Whole vectors of tiles: a segment's last vector reads on into the next rows (or the
    // slack) and writes lanes that the next segment or the gap between points overwrite or
    // nobody reads; lanes are independent columns of the products, so lanes past t1 only
    // reach outputs that are never stored.
    for (ty, tx, lane, len) in grid.segments(t0, t1) {
        // Row i of parity p of the segment's tiles: [Hp][2][half] in each channel's plane.
        let rows: [[usize; 2]; 6] = std::array::from_fn(|i| [0, 1].map(|p| ((2 * ty + i) * 2 + p) * half + tx));
        // Point xi of channel ci at v[xi * point_stride + ci * width + lane].
        let at = transform::Lanes2d { channels: c_in, channel: width, stride: point_stride(c_in, width), lane, len };
        transform::input_row(kernel.isa, grid.r, planes, grid.plane(), &rows[..side], v, at);
    }
}

/// Asks for the lines of `y: [Cout, Ho, Wo]` that the output transform of tiles `[t0, t1)`
/// writes, for writing, while the products run: its stores reach 2 rows of every output
/// channel, more streams than the hardware prefetchers follow, and the output transform's
/// time sat on them (2-5% faster with this on a 56x56 layer).
fn prefetch_outputs(y: &[f32], grid: &Grid, t0: usize, t1: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_ET0};
        const LINE: usize = 16;
        for (ty, tx, _, len) in grid.segments(t0, t1) {
            let rows = grid.output_rows(ty, tx, len);
            for yc in y.chunks_exact(rows.plane) {
                for start in [Some(rows.top), rows.bottom].into_iter().flatten() {
                    let row = &yc[start..][..rows.cols];
                    for at in (0..rows.cols).step_by(LINE).chain([rows.cols - 1]) {
                        // SAFETY: a prefetch of a value inside `y`; it reads nothing.
                        unsafe { _mm_prefetch::<_MM_HINT_ET0>(row[at..].as_ptr() as *const i8) };
                    }
                }
            }
        }
    }
    let _ = (y, grid, t0, t1);
}

/// `m[xi] [Cout, width] = U[xi] [Cout, Cin] x V[xi] [Cin, width]` for the P points.
fn products(kernel: Kernel, m: &mut [f32], v: &[f32], w: &WinogradWeights, threads: Threads) {
    let (c_in, c_out, width, rows) = (w.c_in, w.c_out, kernel.width, kernel.rows);
    assert_eq!(w.block, rows, "winograd: weights blocked for {} rows, a tile of {rows}", w.block);
    let one_point = |xi: usize, mx: &mut [f32]| {
        let u = &w.u[xi * w.per_point..(xi + 1) * w.per_point];
        let b = &v[xi * point_stride(c_in, width)..][..c_in * width];
        for r0 in (0..c_out).step_by(rows) {
            tile::run(kernel, Tile {
                rows: rows.min(c_out - r0),
                k: c_in,
                data: u,
                row_offsets: w.rows.from(r0),
                k_offsets: w.reduction.from(0),
                b,
                c: &mut mx[r0 * width..],
                c_layout: CLayout::Rows { row_stride: width },
                n: width,
                accumulate: false,
            });
        }
    };
    let per_point = m.chunks_mut(point_stride(c_out, width)).take(points(w.r));
    if threads == Threads::Pool && rayon::current_num_threads() > 1 {
        per_point.collect::<Vec<_>>().into_par_iter().enumerate().for_each(|(xi, mx)| one_point(xi, mx));
    } else {
        per_point.enumerate().for_each(|(xi, mx)| one_point(xi, mx));
    }
}

/// The strip's products `m: [P][Cout][strip]` back to outputs `y: [Cout, Ho, Wo]`.
#[allow(clippy::too_many_arguments)]
fn output_strip(kernel: Kernel, y: &mut [f32], m: &[f32], grid: &Grid, c_out: usize, t0: usize, t1: usize, strip: usize, accumulate: bool) {
    for (ty, tx, lane, len) in grid.segments(t0, t1) {
        let rows = grid.output_rows(ty, tx, len);
        let at = transform::Lanes2d { channels: c_out, channel: strip, stride: point_stride(c_out, strip), lane, len };
        transform::output_row(kernel.isa, grid.r, m, at, y, rows, accumulate);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{Padding, Window2d};

    #[test]
    fn segments_cover_the_strip_row_by_row() {
        let grid = Grid { ho: 9, wo: 7, th: 5, tw: 4, r: 3, m: 2, hp: 12 };
        let segs: Vec<_> = grid.segments(3, 14).collect();
        assert_eq!(segs, vec![(0, 3, 0, 1), (1, 0, 1, 4), (2, 0, 5, 4), (3, 0, 9, 2)]);
        assert_eq!(grid.segments(5, 5).count(), 0);
    }

    #[test]
    fn applies_only_to_3x3_and_5x5_stride_1_single_group_wide_layers() {
        let dims = |k: usize, stride: usize, groups: usize, c: usize| {
            let geom = Window2d::square(k, stride, Padding::uniform(1)).resolve(8, 8).unwrap();
            ConvDims { n: 1, c_in: c, c_out: c, groups, geom }
        };
        assert!(applies(&dims(3, 1, 1, 16)));
        assert!(applies(&dims(5, 1, 1, 16)));
        assert!(!applies(&dims(3, 2, 1, 16)));
        assert!(!applies(&dims(5, 2, 1, 16)));
        assert!(!applies(&dims(7, 1, 1, 16)));
        assert!(!applies(&dims(3, 1, 2, 32)));
        assert!(!applies(&dims(3, 1, 1, 15)));
        let wide = Window2d { kernel: [3, 5], ..Window2d::square(3, 1, Padding::uniform(1)) };
        assert!(!applies(&ConvDims { geom: wide.resolve(8, 8).unwrap(), ..dims(3, 1, 1, 16) }), "3x5 filters");
    }

    #[test]
    fn auto_takes_it_only_where_it_pays() {
        let dims = |side: usize, c: usize| {
            let geom = Window2d::square(3, 1, Padding::uniform(1)).resolve(side, side).unwrap();
            ConvDims { n: 1, c_in: c, c_out: c, groups: 1, geom }
        };
        assert!(pays(&dims(56, 64)) && pays(&dims(28, 128)) && pays(&dims(10, 64)));
        // 256 channels: U of 4 MB by blocks; by channels with F(2x2, 3x3) on 14x14 (one
        // point's U 256 KB, a sample's V 0.8 MB; 16 blocks of 4x4), not on 56x56 (V 7.2 MB
        // with 4x4 blocks, 12.8 MB with 2x2) nor with 512 channels (V 1.6 MB).
        assert!(pays(&dims(14, 256)) && Layout::of(&dims(14, 256)) == Layout::Channels(Transform::F2X3));
        assert!(applies(&dims(56, 256)) && !pays(&dims(56, 256)) && Layout::of(&dims(56, 256)) == Layout::Blocks);
        assert!(applies(&dims(14, 512)) && !pays(&dims(14, 512)));
        assert!(applies(&dims(8, 64)) && !pays(&dims(8, 64)), "16 tiles");
        // 5x5 pays by channels (the MNIST net's conv2, 32 -> 64 on 14x14; AlexNet's, 64 -> 192
        // on 27x27, 1.8 MB of U but 49 KB a point), not past 1 MB of one point's U.
        let five = |c_in: usize, c_out: usize, side: usize| {
            let geom = Window2d::square(5, 1, Padding::uniform(2)).resolve(side, side).unwrap();
            ConvDims { n: 1, c_in, c_out, groups: 1, geom }
        };
        assert!(pays(&five(32, 64, 14)) && Layout::of(&five(32, 64, 14)) == Layout::Channels(Transform::F2X5));
        assert!(pays(&five(64, 192, 27)));
        assert!(applies(&five(512, 1024, 27)) && !pays(&five(512, 1024, 27)), "2 MB a point");
        // 3x3 by channels with F(4x4, 3x3) while a sample's V stays within 4 MB and it has 24
        // blocks of 4x4: ResNet-18's 64-channel 56x56 layers (1.8 MB), its 128-channel 28x28
        // ones (49 blocks), not 64 channels on 112x112 (7.2 MB) nor 64 on 16x16 (16 blocks).
        assert_eq!(Layout::of(&dims(56, 64)), Layout::Channels(Transform::F4X3));
        assert_eq!(Layout::of(&dims(28, 128)), Layout::Channels(Transform::F4X3));
        assert_eq!(Layout::of(&dims(112, 64)), Layout::Blocks);
        assert_eq!(Layout::of(&dims(16, 64)), Layout::Blocks);
    }

    /// Point `xi` of filter `(co, ci)` sits at `U[xi][co][ci]` and is the coefficients'
    /// combination of that filter's taps (`transform`'s tests hold the coefficients to
    /// `G g G^T`).
    #[test]
    fn transformed_weights_are_each_filters_points() {
        let mut rng = crate::rng::Rng::new(5);
        let (c_in, c_out) = (3, 5);
        for r in transform::FILTERS {
            let weight = rng.uniform_vec(c_out * c_in * r * r, -1.0, 1.0);
            let mut w = WinogradWeights::default();
            let block = 2;
            // Planted values the padding filter must not keep.
            w.u = vec![f32::NAN; 2 * points(r) * 6 * c_in];
            w.prepare_blocks(&weight, c_in, c_out, r, block);
            let coefficients = transform::weight_coefficients(Transform::two(r));
            assert_eq!(w.u.len(), points(r) * 6 * c_in, "5 output channels in 3 blocks of 2");
            for co in 0..6 {
                for ci in 0..c_in {
                    let g = (co < c_out).then(|| &weight[(co * c_in + ci) * r * r..][..r * r]);
                    for (xi, c) in coefficients.iter().enumerate() {
                        let want: f32 = g.map_or(0.0, |g| c.iter().zip(g).map(|(c, g)| c * g).sum());
                        let got = w.u[xi * w.per_point + WinogradWeights::index(co, ci, c_in, block)];
                        assert!((got - want).abs() < 1e-6, "{r}x{r} filter ({co}, {ci}) point {xi}: {got} vs {want}");
                    }
                }
            }
        }
    }
}
