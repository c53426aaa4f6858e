//! Convolution on fovea's own register tile (`tile/`), one sample at a time: on the calling
//! thread, or with its blocks of output channels shared across the pool (a batch of one). A
//! block is the tile's width: 16 channels on AVX2, 32 on AVX-512 (`tile::Kernel`).
//! The sample is zero-padded once (`padded.rs`); every tile then reads it in place through two
//! offset lists, so no column matrix is ever built.
//!
//! - Forward: tiles of `rows` output pixels x `width` output channels, reduced over the taps
//!   (`K = Cin/groups * kh * kw`), weights packed once per call as panels `[K][width]`.
//! - Input gradient of a stride-1 convolution: the forward pass of the transposed convolution
//!   (`dY` convolved with the flipped, channel-swapped weights, padding `k - 1 - p`).
//! - Weight gradient: tiles of `rows` taps x `width` output channels, reduced over the pixels,
//!   dY transposed into panels `[P][width]` once per sample.
//!
//! Shapes per sample: `x: [Cin, H, W]`, `y, dy: [Cout, Ho, Wo]`, `weight: [Cout, Cin/groups, kh, kw]`.

use super::padded::Padded;
use super::tile::{self, CLayout, Kernel, Offsets, Tile};
use super::ConvDims;
use crate::kernels::aligned::AlignedVec;
use crate::kernels::matmul::Threads;
use crate::kernels::parallel::{chunk_ranges, split_lengths};
use crate::geometry::{Axis, Geometry};
use rayon::prelude::*;
use std::ops::Range;

/// Taps per forward tile at most: longer reductions are cut (each cut costs one more
/// read-modify-write of C, and reads the sample's channels again). 2048 keeps a tile's weight
/// panel in L2 (128 KB on AVX2, 256 KB on AVX-512; L2 is 512 KB on Zen 3, 1-2 MB on Zen 5 and
/// Xeons) and leaves the MNIST net's conv2 input gradient (1,600 taps) uncut: 8.4 -> 7.6 ms on
/// one thread (Xeon, AVX-512, shape b), against 1024.
pub(super) const FORWARD_KC: usize = 2048;

/// Weights `[Cout, K]` repacked as channel panels: per group and block of `width` output
/// channels, `[K][width]` (lanes past the group's channels are zero). Packed once per call,
/// shared by every sample.
#[derive(Default)]
pub struct ChannelPanels {
    data: AlignedVec,
    kdim: usize,
    blocks: usize,
    width: usize,
}

impl ChannelPanels {
    /// Sizes the panels for `groups` groups of `channels` output channels over `kdim` taps
    /// and zeroes the lanes past `channels` in each group's last block (the tile computes them
    /// and never stores them; zero keeps them finite). Every other value is written by the
    /// caller.
    fn shape(&mut self, groups: usize, channels: usize, kdim: usize, width: usize) {
        let blocks = channels.div_ceil(width);
        (self.kdim, self.blocks, self.width) = (kdim, blocks, width);
        self.data.resize(groups * blocks * kdim * width, 0.0);
        if !channels.is_multiple_of(width) {
            let data = self.data.as_mut_slice();
            for grp in 0..groups {
                let panel = (grp * blocks + blocks - 1) * kdim * width;
                for row in data[panel..panel + kdim * width].chunks_exact_mut(width) {
                    row[channels % width..].fill(0.0);
                }
            }
        }
    }

    /// Packs `weight: [Cout, Cin/groups, kh, kw]` of the convolution `d` for tiles `width`
    /// columns wide.
    pub fn pack(&mut self, weight: &[f32], d: &ConvDims, width: usize) {
        let og = d.c_out / d.groups;
        let kdim = weight.len() / d.c_out;
        self.shape(d.groups, og, kdim, width);
        let blocks = og.div_ceil(width);
        self.by_panel(|grp, cb, panel| {
            // The block's `lanes` filters `[lanes][K]` transposed into `[K][width]` (8 x 8 blocks
            // in registers where the CPU has AVX2).
            let lanes = width.min(og - cb * width);
            tile::pack_panels(panel, &weight[(grp * og + cb * width) * kdim..][..lanes * kdim], lanes, kdim, width);
        }, blocks);
    }

    /// Runs `fill(group, block, panel)` on every panel, across the pool when the weights are
    /// large (ResNet-18's 512-channel layers: 9.4 MB, a few milliseconds on one thread).
    fn by_panel(&mut self, fill: impl Fn(usize, usize, &mut [f32]) + Sync, blocks: usize) {
        let len = self.kdim * self.width;
        let data = self.data.as_mut_slice();
        if len == 0 {
            return;
        }
        if data.len() < 1 << 18 {
            data.chunks_exact_mut(len).enumerate().for_each(|(i, panel)| fill(i / blocks, i % blocks, panel));
        } else {
            data.par_chunks_exact_mut(len).enumerate().for_each(|(i, panel)| fill(i / blocks, i % blocks, panel));
        }
    }

    /// Packs the weights of `transposed_dims(d)` (what `flip_weights` makes of `weight`, as
    /// `pack` would lay them out) straight from `weight: [Cout, Cin/groups, kh, kw]`, in one
    /// pass: the transposed convolution's output channel is an input channel `ci` of `d`, its
    /// tap `co * kh * kw + (kh * kw - 1 - t)` is `weight[co][ci][t]`.
    pub fn pack_transposed(&mut self, weight: &[f32], d: &ConvDims, width: usize) {
        let (cg, og) = (d.c_in / d.groups, d.c_out / d.groups);
        let taps = d.geom.rows.kernel * d.geom.cols.kernel;
        let kdim = og * taps;
        self.shape(d.groups, cg, kdim, width);
        let blocks = cg.div_ceil(width);
        let panel_len = kdim * width;
        if panel_len == 0 {
            return;
        }
        // Output channel by output channel of `d`, each read once in order (panel by panel,
        // each read 32 x 9 weights 18 KB apart for ResNet's 512-channel layers: 19% of their
        // input gradient, against 11% so): its `cg x taps` weights are contiguous in
        // `weight`; block cb's lanes go to rows `co * taps ..` of panel cb, tap t's lanes to
        // row `taps - 1 - t`. Large weights split their output channels across the pool:
        // each part writes its rows of every panel.
        let data = self.data.as_mut_slice();
        let parts = if data.len() < 1 << 18 { 1 } else { rayon::current_num_threads() };
        let co_ranges = chunk_ranges(og, parts);
        let mut pieces: Vec<Vec<&mut [f32]>> = co_ranges.iter().map(|_| Vec::new()).collect();
        for panel in data.chunks_exact_mut(panel_len) {
            let mut rest = panel;
            for (part, r) in pieces.iter_mut().zip(&co_ranges) {
                let (piece, tail) = std::mem::take(&mut rest).split_at_mut(r.len() * taps * width);
                part.push(piece);
                rest = tail;
            }
        }
        pieces.into_par_iter().zip(co_ranges).for_each(|(mut part, cos)| {
            // `part`: this part's rows of each panel, `[grp][cb]`.
            for (grp, panels) in part.chunks_exact_mut(blocks).enumerate() {
                for co in cos.clone() {
                    let src = &weight[(grp * og + co) * cg * taps..][..cg * taps];
                    for (cb, piece) in panels.iter_mut().enumerate() {
                        let lanes = width.min(cg - cb * width);
                        let block = &src[cb * width * taps..][..lanes * taps];
                        let rows = &mut piece[(co - cos.start) * taps * width..][..taps * width];
                        for (t, row) in rows.chunks_exact_mut(width).rev().enumerate() {
                            for (v, taps_of_lane) in row[..lanes].iter_mut().zip(block.chunks_exact(taps)) {
                                *v = taps_of_lane[t];
                            }
                        }
                    }
                }
            }
        });
    }

    /// Block `cb` of group `grp`, taps `ks`: `[ks][width]`.
    pub(super) fn panel(&self, grp: usize, cb: usize, ks: &Range<usize>) -> &[f32] {
        let w = self.width;
        let start = (grp * self.blocks + cb) * self.kdim * w;
        &self.data.as_slice()[start + ks.start * w..start + ks.end * w]
    }
}

/// Per-thread scratch, grown as needed and kept between calls.
#[derive(Default)]
pub struct ConvTileScratch {
    pub(super) padded: Padded,
    /// Window offset of every output pixel in the padded sample.
    pub(super) pixels: Offsets,
    /// Offset of every tap (column-matrix row) in the padded sample.
    pub(super) taps: Offsets,
    /// `[Cout/width][P][width]` per group: dY transposed for the weight gradient.
    dy_panels: AlignedVec,
    /// The bias by blocks of the tile's width, `[groups][Cout/groups / width][width]` (zero
    /// past the channels): the forward pass's tiles start from it.
    bias_lanes: Vec<f32>,
    /// The geometry and channel count `pixels` and `taps` were listed for.
    offsets_for: Option<(Geometry, usize)>,
}

impl ConvTileScratch {
    /// Pads group `grp` of the sample and, on the first group, lists the offsets.
    pub(super) fn prepare(&mut self, xg: &[f32], channels: usize, g: &Geometry) {
        self.padded.fill(xg, channels, g);
        // The offsets depend on the geometry and channel count only (the same for every group):
        // listed again when they change.
        let key = (*g, channels);
        if self.offsets_for != Some(key) {
            let p = g.rows.output * g.cols.output;
            let kdim = channels * g.rows.kernel * g.cols.kernel;
            let padded = &self.padded;
            self.pixels.set((0..p).map(|px| padded.window(px, g)));
            self.taps.set((0..kdim).map(|row| padded.tap(row, g)));
            self.offsets_for = Some(key);
        }
    }
}

/// `y (+)= conv(x, weight) (+ bias)` for one sample: `y: [Cout, Ho, Wo]`, `x: [Cin, H, W]`,
/// `weight` packed for `kernel`'s width, `bias: [Cout]` (only where `y` is overwritten: each
/// tile of the first chunk of taps starts from it, where a pass over the output after it took
/// 9% of the MNIST net's conv1 forward pass). With `Threads::Pool` the blocks of output
/// channels are shared out across the pool (a batch of one); every value is summed the same
/// way either way.
#[allow(clippy::too_many_arguments)]
pub fn forward_sample(kernel: Kernel, y: &mut [f32], x: &[f32], weight: &ChannelPanels, bias: Option<&[f32]>, d: &ConvDims, s: &mut ConvTileScratch, accumulate: bool, threads: Threads) {
    assert_eq!(weight.width, kernel.width, "forward_sample: weights packed for another tile");
    assert!(bias.is_none_or(|b| b.len() == d.c_out && !accumulate), "forward_sample: a bias of {} values for {} channels, accumulating {accumulate}", bias.map_or(0, |b| b.len()), d.c_out);
    let width = kernel.width;
    let g = &d.geom;
    let (h, w) = g.in_hw();
    let (p, cg, og, kdim) = (d.out_plane(), d.cg(), d.og(), d.kdim());
    let chunks = chunk_ranges(kdim, kdim.div_ceil(FORWARD_KC));
    let lane_blocks = og.div_ceil(width);
    // Out of the scratch while the tiles run (`prepare` borrows it), put back after.
    let mut lanes = std::mem::take(&mut s.bias_lanes);
    if let Some(b) = bias {
        bias_by_blocks(&mut lanes, b, og, width);
    }
    let bias_lanes = bias.map(|_| &lanes[..]);
    for grp in 0..d.groups {
        s.prepare(&x[grp * cg * h * w..(grp + 1) * cg * h * w], cg, g);
        let yg = &mut y[grp * og * p..(grp + 1) * og * p];
        for (ci, ks) in chunks.iter().enumerate() {
            let (data, pixels, taps) = (s.padded.data(), &s.pixels, &s.taps);
            let blocks = |cbs: Range<usize>, part: &mut [f32]| {
                for cb in cbs.clone() {
                    let yb = &mut part[(cb - cbs.start) * width * p..];
                    let init = bias_lanes.filter(|_| ci == 0).map(|l| &l[(grp * lane_blocks + cb) * width..][..width]);
                    let block = PixelTiles { kernel, data, taps, ks, b: weight.panel(grp, cb, ks), n: width.min(og - cb * width), accumulate: accumulate || ci > 0, output_rows: output_rows(d, kernel), init };
                    block.run(yb, pixels, 0, p);
                }
            };
            by_channel_blocks(yg, og, p, width, threads, blocks);
        }
    }
    s.bias_lanes = lanes;
}

/// `bias: [groups * channels]` into `lanes: [groups][ceil(channels / width)][width]`, zero
/// past each group's channels: the tiles' starting values (`tile::run_from`), a block's
/// `width` of them at a time.
pub(super) fn bias_by_blocks(lanes: &mut Vec<f32>, bias: &[f32], channels: usize, width: usize) {
    let blocks = channels.div_ceil(width);
    lanes.clear();
    lanes.resize(bias.len() / channels * blocks * width, 0.0);
    for (grp, bg) in bias.chunks_exact(channels).enumerate() {
        lanes[grp * blocks * width..][..channels].copy_from_slice(bg);
    }
}

/// One block of output channels over the taps `ks`, for the forward pass: the tiles of one
/// sample's output pixels (`forward_sample` and the whole-batch path both run it).
pub(super) struct PixelTiles<'a> {
    pub kernel: Kernel,
    /// The padded sample (or batch) the tiles read.
    pub data: &'a [f32],
    /// Offset of every tap in a padded sample.
    pub taps: &'a Offsets,
    pub ks: &'a Range<usize>,
    /// The block's weights over `ks`: `[ks][width]`.
    pub b: &'a [f32],
    /// Channels of the block that exist.
    pub n: usize,
    pub accumulate: bool,
    /// The output's rows, where their pixels' windows are evenly spaced as the tile along a
    /// row takes them (`output_rows`).
    pub output_rows: Option<OutputRows>,
    /// Each channel's starting value (`tile::run_from`: the block's bias), or zero.
    pub init: Option<&'a [f32]>,
}

/// Output rows of `width` pixels whose windows lie `step` apart in the padded sample.
#[derive(Clone, Copy, Debug)]
pub(super) struct OutputRows {
    width: usize,
    step: usize,
}

/// The output rows of `d` for the tile along a row (`tile::run_along_a_row`): a column
/// stride it takes, and rows wide enough to fill more than the general tile.
pub(super) fn output_rows(d: &ConvDims, kernel: Kernel) -> Option<OutputRows> {
    let cols = &d.geom.cols;
    let step = cols.stride;
    let width = cols.output;
    (tile::ROW_STEPS.contains(&step) && width > kernel.rows).then_some(OutputRows { width, step })
}

impl PixelTiles<'_> {
    /// `yb: [width][p]` (the block's rows of one sample's output) from the pixels whose window
    /// offsets start at `pixels[first]`.
    pub fn run(&self, yb: &mut [f32], pixels: &Offsets, first: usize, p: usize) {
        if let Some(OutputRows { width, step }) = self.output_rows {
            // Each output row in runs of near-equal length, at most `row_run` pixels.
            let runs = width.div_ceil(self.kernel.row_run);
            for row0 in (0..p).step_by(width) {
                for r in 0..runs {
                    let (start, end) = (row0 + r * width / runs, row0 + (r + 1) * width / runs);
                    let t = self.tile(yb, pixels, first, p, start..end);
                    match self.init {
                        Some(init) => tile::run_along_a_row_from(self.kernel, t, step, init),
                        None => tile::run_along_a_row(self.kernel, t, step),
                    }
                }
            }
            return;
        }
        let rows = self.kernel.rows;
        for px0 in (0..p).step_by(rows) {
            let t = self.tile(yb, pixels, first, p, px0..(px0 + rows).min(p));
            match self.init {
                Some(init) => tile::run_from(self.kernel, t, init),
                None => tile::run(self.kernel, t),
            }
        }
    }

    /// The tile of output pixels `px` (of the sample starting at `pixels[first]`).
    fn tile<'b>(&'b self, yb: &'b mut [f32], pixels: &'b Offsets, first: usize, p: usize, px: Range<usize>) -> Tile<'b> {
        Tile {
            rows: px.len(),
            k: self.ks.len(),
            data: self.data,
            row_offsets: pixels.from(first + px.start),
            k_offsets: self.taps.from(self.ks.start),
            b: self.b,
            c: &mut yb[px.start..],
            c_layout: CLayout::Transposed { column_stride: p },
            n: self.n,
            accumulate: self.accumulate,
        }
    }
}

/// Runs `f(channel blocks, their rows of out)` over the `ceil(channels / width)` blocks of
/// `out: [channels, plane]`: at once, or one contiguous share per thread of the pool.
fn by_channel_blocks(out: &mut [f32], channels: usize, plane: usize, width: usize, threads: Threads, f: impl Fn(Range<usize>, &mut [f32]) + Sync) {
    let blocks = channels.div_ceil(width);
    if threads == Threads::One || blocks < 2 || rayon::current_num_threads() < 2 {
        return f(0..blocks, out);
    }
    let shares = chunk_ranges(blocks, rayon::current_num_threads());
    let rows = shares.iter().map(|r| ((r.end * width).min(channels) - r.start * width) * plane);
    let parts = split_lengths(out, rows);
    shares.into_par_iter().zip(parts).for_each(|(r, part)| f(r, part));
}

/// `dw += dY (x) col(x)` for one sample: `dw: [Cout, Cin/groups, kh, kw]` (this thread's
/// partial sum), `dy: [Cout, Ho, Wo]`, `x: [Cin, H, W]`.
/// With `Threads::Pool`, the blocks of output channels are shared out across the pool.
pub fn weight_grad_sample(kernel: Kernel, dw: &mut [f32], dy: &[f32], x: &[f32], d: &ConvDims, s: &mut ConvTileScratch, threads: Threads) {
    let (rows, width) = (kernel.rows, kernel.width);
    let g = &d.geom;
    let (h, w) = g.in_hw();
    let (p, cg, og, kdim) = (d.out_plane(), d.cg(), d.og(), d.kdim());
    let cblocks = og.div_ceil(width);
    s.dy_panels.resize(cblocks * p * width, 0.0);
    for grp in 0..d.groups {
        s.prepare(&x[grp * cg * h * w..(grp + 1) * cg * h * w], cg, g);
        let dyg = &dy[grp * og * p..(grp + 1) * og * p];
        let dwg = &mut dw[grp * og * kdim..(grp + 1) * og * kdim];
        // dY_g [og, P] -> panels [og/width][P][width]; lanes past og keep stale values, which
        // only reach columns of C that are never stored.
        tile::pack_panels(s.dy_panels.as_mut_slice(), dyg, og, p, width);
        let (data, taps, pixels, panels) = (s.padded.data(), &s.taps, &s.pixels, s.dy_panels.as_slice());
        let blocks = |cbs: Range<usize>, part: &mut [f32]| {
            for cb in cbs.clone() {
                let b = &panels[cb * p * width..(cb + 1) * p * width];
                let dwb = &mut part[(cb - cbs.start) * width * kdim..];
                for k0 in (0..kdim).step_by(rows) {
                    tile::run(kernel, Tile {
                        rows: rows.min(kdim - k0),
                        k: p,
                        data,
                        row_offsets: taps.from(k0),
                        k_offsets: pixels.from(0),
                        b,
                        c: &mut dwb[k0..],
                        c_layout: CLayout::Transposed { column_stride: kdim },
                        n: width.min(og - cb * width),
                        accumulate: true,
                    });
                }
            }
        };
        by_channel_blocks(dwg, og, kdim, width, threads, blocks);
    }
}

/// The problem whose forward pass is this convolution's input gradient, when there is one
/// worth running: stride 1, dilation 1, padding at most `k - 1` on every side, and at least 4
/// input channels per group (fewer leave most of the transposed problem's channel lanes
/// empty; im2col + `gemm` + col2im is then faster). Else `None`.
/// Its weights come from `flip_weights`.
pub fn transposed_dims(d: &ConvDims) -> Option<ConvDims> {
    if d.c_in / d.groups < 4 {
        return None;
    }
    let flip = |a: &Axis| -> Option<Axis> {
        if a.stride != 1 || a.dilation != 1 || a.pad_lo >= a.kernel || a.pad_hi >= a.kernel || a.leftover != 0 {
            return None;
        }
        Some(Axis {
            input: a.output,
            output: a.input,
            kernel: a.kernel,
            stride: 1,
            dilation: 1,
            pad_lo: a.kernel - 1 - a.pad_lo,
            pad_hi: a.kernel - 1 - a.pad_hi,
            leftover: 0,
        })
    };
    let geom = Geometry { rows: flip(&d.geom.rows)?, cols: flip(&d.geom.cols)? };
    Some(ConvDims { n: d.n, c_in: d.c_out, c_out: d.c_in, groups: d.groups, geom })
}

/// `flipped[g][ci][co][kh-1-i][kw-1-j] = weight[g][co][ci][i][j]`: the weights of
/// `transposed_dims(d)`, `[Cin, Cout/groups, kh, kw]`.
pub fn flip_weights(flipped: &mut Vec<f32>, weight: &[f32], d: &ConvDims) {
    let (kh, kw) = (d.geom.rows.kernel, d.geom.cols.kernel);
    let (cg, og, taps) = (d.c_in / d.groups, d.c_out / d.groups, kh * kw);
    flipped.resize(weight.len(), 0.0);
    for grp in 0..d.groups {
        for co in 0..og {
            for ci in 0..cg {
                let src = &weight[((grp * og + co) * cg + ci) * taps..][..taps];
                let dst = &mut flipped[((grp * cg + ci) * og + co) * taps..][..taps];
                for (t, v) in src.iter().enumerate() {
                    dst[taps - 1 - t] = *v;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{Padding, Window2d};
    use crate::rng::Rng;

    /// `weight: [channels per group x groups, kdim]` laid out as panels the slow, obvious way.
    fn panels_by_definition(weight: &[f32], groups: usize, og: usize, kdim: usize, width: usize) -> Vec<f32> {
        let blocks = og.div_ceil(width);
        let mut out = vec![0.0; groups * blocks * kdim * width];
        for grp in 0..groups {
            for co in 0..og {
                for k in 0..kdim {
                    out[(grp * blocks + co / width) * kdim * width + k * width + co % width] = weight[(grp * og + co) * kdim + k];
                }
            }
        }
        out
    }

    /// Every weight lands in its lane, lanes past the channels are zero whatever the buffer
    /// held before (it is reused from call to call), and `pack_transposed` lays out exactly
    /// what `flip_weights` then `pack` would: in a pool of 3 threads, so that the last case
    /// (two groups of ragged blocks, past the size that splits the transposed packing's output
    /// channels across the pool) runs in three parts.
    #[test]
    fn panels_hold_every_weight_whatever_the_buffer_held_before() {
        rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap().install(panels_hold_every_weight);
    }

    fn panels_hold_every_weight() {
        let mut rng = Rng::new(5);
        for (groups, c_in, c_out, k, width) in [(1, 3, 5, 3, 16), (2, 8, 70, 3, 32), (1, 40, 33, 5, 16), (4, 8, 8, 1, 32), (1, 64, 64, 3, 32), (1, 100, 7, 3, 8), (2, 160, 400, 3, 32)] {
            let geom = Window2d::square(k, 1, Padding::uniform(k / 2)).resolve(9, 9).unwrap();
            let d = ConvDims { n: 1, c_in, c_out, groups, geom };
            let kdim = c_in / groups * k * k;
            let wt = rng.uniform_vec(c_out * kdim, -1.0, 1.0);
            let mut panels = ChannelPanels::default();
            panels.data.fill_to(4 * groups * (c_out + c_in + width) * kdim * width, f32::NAN);
            panels.pack(&wt, &d, width);
            let want = panels_by_definition(&wt, groups, c_out / groups, kdim, width);
            assert_eq!(panels.data.as_slice().len(), want.len());
            assert!(panels.data.as_slice().iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "pack, {groups} groups, {c_in} -> {c_out}, width {width}");

            let t = transposed_dims(&ConvDims { c_in: c_in.max(4 * groups), ..d }).unwrap();
            let d = ConvDims { c_in: t.c_out, ..d };
            let wt = rng.uniform_vec(d.c_out * d.kdim(), -1.0, 1.0);
            let mut flipped = Vec::new();
            flip_weights(&mut flipped, &wt, &d);
            panels.data.fill_to(panels.data.as_slice().len() + 77, f32::NAN);
            panels.pack_transposed(&wt, &d, width);
            let want = panels_by_definition(&flipped, groups, t.c_out / groups, t.kdim(), width);
            assert_eq!(panels.data.as_slice().len(), want.len());
            assert!(panels.data.as_slice().iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "pack_transposed, {groups} groups, {} -> {c_out}, width {width}", d.c_in);
        }
    }
}
