//! The whole batch at once on the direct tile, its blocks of output channels shared across the
//! threads, for layers whose weights outweigh their images (ResNet-18's last stage: 9.4 MB of
//! weights against 166 KB per padded 512 x 9 x 9 sample). Split by samples, every thread
//! streamed every weight from L3 once per sample; here a thread reads each of its weight
//! panels once and runs it over every sample while it sits in L2. The weight gradient reduces
//! over the pixels of every sample in registers, and each thread owns its channels' rows of
//! dW, so there are no per-thread partial gradients to add up.
//!
//! Every sample is padded into one buffer (`Padded::fill_samples`), so a pixel of sample `i`
//! is one more offset, `i * sample_len + window`, for the tile to read.
//!
//! Shapes: `x: [N, Cin, H, W]`, `y, dy: [N, Cout, Ho, Wo]`, `dw: [Cout, Cin, kh, kw]`; one
//! group.

use super::padded::Padded;
use super::tile::{self, CLayout, Kernel, Offsets, Tile};
use super::tiled::{bias_by_blocks, output_rows, ChannelPanels, PixelTiles, FORWARD_KC};
use super::ConvDims;
use crate::geometry::Geometry;
use crate::kernels::aligned::AlignedVec;
use crate::kernels::parallel::{chunk_ranges, split_lengths};
use rayon::prelude::*;
use std::ops::Range;

/// Where the forward pass (and the input gradient, a forward pass of its own) runs here:
/// weights at least this many times the size of one padded sample. Measured on AVX-512, 2
/// threads, batch 8 (`fovea bench conv --shapes r3,r4`): ResNet-18's 512-channel layers on 7x7
/// (ratio 57) 10.0 -> 7.5 ms; its 256-channel layers on 14x14 (ratio 9) no faster; the MNIST
/// net's conv2 (ratio 5) and 64-channel layers (below 1) slower.
const FORWARD_MIN_WEIGHTS_PER_SAMPLE: usize = 16;

/// The same for the weight gradient, which gains more (each C tile is stored once per batch,
/// not once per sample): ratio 57 11.9 -> 6.1 ms, ratio 9 7.1 -> 6.0 ms; ratio 5 (MNIST's
/// conv2, 64 samples per thread) 4.4 -> 6.7 ms.
const WEIGHT_GRAD_MIN_WEIGHTS_PER_SAMPLE: usize = 8;

/// Packed weights over the values of one padded sample; 0 where `d` does not run here (groups,
/// or a batch of one, which `bands.rs` and the channel split serve).
fn weights_per_sample(d: &ConvDims) -> usize {
    let g = &d.geom;
    let (h, w) = g.in_hw();
    let padded = d.c_in * (g.rows.pad_lo + h + g.rows.pad_hi) * (g.cols.pad_lo + w + g.cols.pad_hi);
    if d.groups != 1 || d.n < 2 {
        return 0;
    }
    d.c_out * d.kdim() / padded.max(1)
}

/// Whether the forward pass of `d` runs here.
pub(super) fn takes_forward(d: &ConvDims) -> bool {
    weights_per_sample(d) >= FORWARD_MIN_WEIGHTS_PER_SAMPLE
}

/// Whether the weight gradient of `d` runs here.
pub(super) fn takes_weight_grad(d: &ConvDims) -> bool {
    weights_per_sample(d) >= WEIGHT_GRAD_MIN_WEIGHTS_PER_SAMPLE
}

/// The padded batch, its offsets, and one dY panel per thread; kept from call to call.
#[derive(Default)]
pub struct BatchScratch {
    padded: Padded,
    /// `i * sample_len + window(px)` for every pixel of every sample.
    pixels: Offsets,
    /// Offset of every tap in a padded sample.
    taps: Offsets,
    /// The geometry, channel count and batch size the offsets were listed for.
    offsets_for: Option<(Geometry, usize, usize)>,
    /// Per thread: dY of one block of channels over every pixel of every sample,
    /// `[N * P][width]`.
    dy_panels: Vec<AlignedVec>,
}

impl BatchScratch {
    fn prepare(&mut self, x: &[f32], d: &ConvDims) {
        let g = &d.geom;
        self.padded.fill_samples(x, d.n, d.c_in, g);
        let key = (*g, d.c_in, d.n);
        if self.offsets_for != Some(key) {
            let (p, stride, padded) = (d.out_plane(), self.padded.sample_len(d.c_in), &self.padded);
            self.pixels.set((0..d.n * p).map(|i| (i / p) * stride + padded.window(i % p, g)));
            self.taps.set((0..d.kdim()).map(|row| padded.tap(row, g)));
            self.offsets_for = Some(key);
        }
    }
}

/// The blocks of `channels / width` output channels of each thread.
fn shares(channels: usize, width: usize) -> Vec<Range<usize>> {
    chunk_ranges(channels.div_ceil(width), rayon::current_num_threads())
}

/// Values of `plane`-sized channel rows a share of blocks covers.
fn share_len(r: &Range<usize>, channels: usize, width: usize, plane: usize) -> usize {
    ((r.end * width).min(channels) - r.start * width) * plane
}

/// `y (+)= conv(x, weight) (+ bias)` for the whole batch; `weight` packed for `kernel`;
/// `bias: [Cout]` only where `y` is overwritten, each tile of the first chunk of taps starting
/// from it as `tiled::forward_sample`'s do (a sample alone gets the same bits as here).
#[allow(clippy::too_many_arguments)]
pub(super) fn forward(kernel: Kernel, y: &mut [f32], x: &[f32], weight: &ChannelPanels, bias: Option<&[f32]>, d: &ConvDims, s: &mut BatchScratch, accumulate: bool) {
    let width = kernel.width;
    let (p, og, kdim) = (d.out_plane(), d.c_out, d.kdim());
    assert!(bias.is_none_or(|b| b.len() == og && !accumulate), "batched forward: a bias of {} values for {og} channels, accumulating {accumulate}", bias.map_or(0, |b| b.len()));
    s.prepare(x, d);
    let lanes: Option<Vec<f32>> = bias.map(|b| {
        let mut l = Vec::new();
        bias_by_blocks(&mut l, b, og, width);
        l
    });
    let shares = shares(og, width);
    // Each share's rows of every sample: disjoint pieces of y, handed to its thread.
    let mut pieces: Vec<Vec<&mut [f32]>> = shares.iter().map(|_| Vec::with_capacity(d.n)).collect();
    for ys in y.chunks_exact_mut(og * p) {
        for (piece, share) in split_lengths(ys, shares.iter().map(|r| share_len(r, og, width, p))).into_iter().zip(&mut pieces) {
            share.push(piece);
        }
    }
    let chunks = chunk_ranges(kdim, kdim.div_ceil(FORWARD_KC));
    let (data, pixels, taps) = (s.padded.data(), &s.pixels, &s.taps);
    shares.into_par_iter().zip(pieces).for_each(|(cbs, mut outs)| {
        for (ci, ks) in chunks.iter().enumerate() {
            for cb in cbs.clone() {
                let init = lanes.as_deref().filter(|_| ci == 0).map(|l| &l[cb * width..][..width]);
                let block = PixelTiles { kernel, data, taps, ks, b: weight.panel(0, cb, ks), n: width.min(og - cb * width), accumulate: accumulate || ci > 0, output_rows: output_rows(d, kernel), init };
                for (i, out) in outs.iter_mut().enumerate() {
                    block.run(&mut out[(cb - cbs.start) * width * p..], pixels, i * p, p);
                }
            }
        }
    });
}

/// `dw += dY (x) col(x)` summed over the whole batch (`=` without `accumulate`).
pub(super) fn weight_grad(kernel: Kernel, dw: &mut [f32], dy: &[f32], x: &[f32], d: &ConvDims, s: &mut BatchScratch, accumulate: bool) {
    let (rows, width) = (kernel.rows, kernel.width);
    let (n, p, og, kdim) = (d.n, d.out_plane(), d.c_out, d.kdim());
    s.prepare(x, d);
    let shares = shares(og, width);
    s.dy_panels.resize_with(shares.len(), AlignedVec::default);
    let parts = split_lengths(dw, shares.iter().map(|r| share_len(r, og, width, kdim)));
    let (data, pixels, taps) = (s.padded.data(), &s.pixels, &s.taps);
    shares.into_par_iter().zip(parts).zip(s.dy_panels.par_iter_mut()).for_each(|((cbs, part), panel)| {
        panel.resize(n * p * width, 0.0);
        for cb in cbs.clone() {
            let lanes = width.min(og - cb * width);
            // This block's dY, `[N * P][width]`: sample after sample along the reduction.
            // Lanes past `lanes` keep stale values, which only reach columns never stored.
            let b = panel.as_mut_slice();
            for i in 0..n {
                let src = &dy[(i * og + cb * width) * p..][..lanes * p];
                tile::pack_panels(&mut b[i * p * width..(i + 1) * p * width], src, lanes, p, width);
            }
            let dwb = &mut part[(cb - cbs.start) * width * kdim..];
            for k0 in (0..kdim).step_by(rows) {
                tile::run(kernel, Tile {
                    rows: rows.min(kdim - k0),
                    k: n * p,
                    data,
                    row_offsets: taps.from(k0),
                    k_offsets: pixels.from(0),
                    b: panel.as_slice(),
                    c: &mut dwb[k0..],
                    c_layout: CLayout::Transposed { column_stride: kdim },
                    n: lanes,
                    accumulate,
                });
            }
        }
    });
}
