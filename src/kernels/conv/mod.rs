//! 2-d convolution (cross-correlation, as every framework computes it), forward and backward,
//! one sample at a time, samples split across threads (a batch of one splits its output
//! channels instead). This file chooses the path and splits the work; the paths compute the
//! same numbers:
//! - `tiled.rs` on fovea's own register tile (`tile/`: AVX-512 or AVX2, one source), reading
//!   the zero-padded sample (`padded.rs`) in place;
//! - `gemm_path.rs`: im2col (`im2col.rs`) + a `gemm` product (CPUs without a tile, 1x1
//!   stride-1 unpadded convolutions, the input gradient of strided, dilated or few-channel
//!   convolutions);
//! - `winograd/`: 3x3 and 5x5 stride-1 convolutions by Winograd's F(2x2, 3x3) and F(2x2,
//!   5x5), whose products run on the same tile (forward pass and input gradient; finite
//!   operands only);
//! - `reference.rs`: the definition in f64, which tests hold all of them to.

mod bands;
mod batched;
mod gemm_path;
pub mod im2col;
pub mod narrow;
pub mod padded;
mod pooled_grad;
mod reference;
pub mod tile;
pub mod tiled;
pub mod winograd;

pub use pooled_grad::PooledGrad;
pub use reference::{conv2d_backward_ref, conv2d_forward_ref};
pub use tile::Kernel;

use crate::geometry::Geometry;
use crate::kernels::finite::all_finite;
use crate::kernels::matmul::Threads;
use crate::kernels::parallel::{chunk_ranges, split_lengths, sum_partials_into, write_partials_into};
use crate::kernels::Store;
use pooled_grad::OutputGrad;
use rayon::prelude::*;
use tiled::{ChannelPanels, ConvTileScratch};
use winograd::{WinogradScratch, WinogradWeights};

/// Sizes of one convolution call.
#[derive(Clone, Copy, Debug)]
pub struct ConvDims {
    /// Batch size N.
    pub n: usize,
    pub c_in: usize,
    pub c_out: usize,
    pub groups: usize,
    /// The window resolved against the input's H x W.
    pub geom: Geometry,
}

impl ConvDims {
    fn in_plane(&self) -> usize {
        self.geom.rows.input * self.geom.cols.input
    }
    fn out_plane(&self) -> usize {
        self.geom.rows.output * self.geom.cols.output
    }
    fn cg(&self) -> usize {
        self.c_in / self.groups
    }
    fn og(&self) -> usize {
        self.c_out / self.groups
    }
    /// Rows of a group's column matrix: `Cin/groups * kh * kw`.
    fn kdim(&self) -> usize {
        self.cg() * self.geom.rows.kernel * self.geom.cols.kernel
    }
    /// A 1x1, stride-1, unpadded convolution reads its input as the column matrix itself.
    fn is_pointwise(&self) -> bool {
        let g = &self.geom;
        g.rows.kernel == 1 && g.cols.kernel == 1 && g.rows.stride == 1 && g.cols.stride == 1 && g.padding() == [0; 4]
    }
    /// Multiply-adds of one forward pass over the whole batch.
    pub fn macs(&self) -> u64 {
        (self.n * self.c_out * self.out_plane() * self.kdim()) as u64
    }
}

/// A gradient over fewer channels than this leaves most of a tile's lanes empty: `Auto` takes
/// `gemm` for it (LeNet-5's 6-channel layers on AVX-512: conv2's backward pass 2.2 -> 1.3 ms,
/// conv1's 0.85 -> 0.62). The forward pass keeps the tile (conv1 0.65 ms against 0.73).
const MIN_GRADIENT_TILE_CHANNELS: usize = 8;

/// Samples whose weight gradient a thread computes together (`batched::weight_grad` on the
/// group), for maps of few pixels: a tile's reduction runs over about this many pixels of
/// theirs at once, so C is stored once per group instead of once per sample. The MNIST net's
/// conv2 (196 pixels, groups of 4), one thread / two (`bench conv --shapes b`): 169-172 ->
/// 186 GFLOP/s, 326-343 -> 359-360; its conv1 (784 pixels) was slower in groups of 4 (85 ->
/// 77) and keeps one sample at a time.
const WEIGHT_GRAD_PIXELS: usize = 800;

/// How many samples a thread's weight gradient takes at once for `d` (1: sample by sample).
fn weight_grad_group(d: &ConvDims) -> usize {
    (WEIGHT_GRAD_PIXELS / d.out_plane().max(1)).clamp(1, 8)
}

/// Which kernels compute a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvPath {
    /// The widest tile `FOVEA_ISA` and the CPU allow, except for 1x1 stride-1 unpadded
    /// convolutions, whose input already is the column matrix: `gemm` reads it in place (bench
    /// conv f: 68 vs 45 GFLOP/s forward on one thread), where the tile would copy the sample
    /// to pad it.
    Auto,
    /// im2col + `gemm` (+ col2im for the input gradient).
    Gemm,
    /// The widest tile allowed (`Gemm` where there is none).
    Tiled,
    /// This tile (tests and benchmarks); `Gemm` on a CPU that lacks it.
    Tile(Kernel),
    /// Winograd's F(2x2, 3x3) or F(2x2, 5x5) on this tile where it applies
    /// (`winograd::applies`), else as `Tile` (tests and benchmarks).
    Winograd(Kernel),
    /// The forward pass with pixels in this tile's lanes where it applies (`narrow::applies`),
    /// else as `Tile` (tests and benchmarks; `Auto` takes it for a few output channels).
    Narrow(Kernel),
}

impl ConvPath {
    /// The tile this path runs for a problem with `channels` output channels per group, or
    /// `None` for `gemm` (`Auto` also takes `gemm` below `min_channels`). A problem of at most
    /// 16 channels takes AVX-512's tile of one vector (`Kernel::AVX512_16`: the 32-wide tile
    /// would leave half its lanes empty, AVX2's runs at half the rate).
    fn kernel(self, d: &ConvDims, channels: usize, min_channels: usize) -> Option<Kernel> {
        let best = || {
            let k = Kernel::best()?;
            Some(if k == Kernel::AVX512 && channels <= Kernel::AVX512_16.width { Kernel::AVX512_16 } else { k })
        };
        match self {
            ConvPath::Gemm => None,
            ConvPath::Auto if d.is_pointwise() || channels < min_channels => None,
            ConvPath::Auto | ConvPath::Tiled => best(),
            ConvPath::Tile(k) | ConvPath::Winograd(k) | ConvPath::Narrow(k) => Some(k).filter(|k| k.isa.supported()),
        }
    }

    /// The tile the forward pass runs with pixels in its lanes (`narrow.rs`), where this path
    /// takes that route: `Auto` for a few output channels on the widest tile, `Narrow` wherever
    /// it applies.
    fn narrow(self, d: &ConvDims) -> Option<Kernel> {
        match self {
            ConvPath::Auto => Kernel::best().filter(|_| narrow::pays(d)),
            ConvPath::Narrow(k) => Some(k).filter(|k| k.isa.supported() && narrow::applies(d)),
            _ => None,
        }
    }

    /// The tile Winograd's products run on for `d`, where this path takes Winograd (`Auto`
    /// where it pays, `winograd::pays`: 3x3 and 5x5 stride-1 layers of 16 channels or more
    /// whose transformed weights stay in L2, on images of 24 or more 2x2 blocks; `Winograd`
    /// wherever it applies); `tile` is what `kernel` chose.
    fn winograd(self, d: &ConvDims, tile: Option<Kernel>) -> Option<Kernel> {
        match self {
            ConvPath::Auto => tile.filter(|_| winograd::pays(d)),
            ConvPath::Winograd(_) => tile.filter(|_| winograd::applies(d)),
            _ => None,
        }
    }

    /// The tile the weight gradient's Winograd products run on for `d` (`winograd/
    /// weight_grad.rs`), where this path takes that route: `Auto` where it pays
    /// (`winograd::pays_for_weight_grad`), `Winograd` wherever it applies; `tile` is the
    /// weight gradient's direct tile.
    fn winograd_weight_grad(self, d: &ConvDims, tile: Option<Kernel>) -> Option<Kernel> {
        match self {
            ConvPath::Auto => tile.filter(|_| winograd::pays_for_weight_grad(d)),
            ConvPath::Winograd(_) => tile.filter(|_| winograd::applies(d)),
            _ => None,
        }
    }

    /// What the forward pass of `d` runs on: `winograd-avx512`, `narrow-avx512`,
    /// `tiled-avx512`, the same on AVX2, or `gemm`.
    pub fn forward_name(self, d: &ConvDims) -> &'static str {
        if let Some(k) = self.narrow(d) {
            return narrow::name(k);
        }
        let tile = self.kernel(d, d.og(), 1);
        match (self.winograd(d, tile), tile) {
            (Some(k), _) => winograd::name(k),
            (None, Some(k)) => k.name(),
            (None, None) => "gemm",
        }
    }
}

/// A convolution's scratch, kept by the layer and reused from step to step, so steady-state
/// training allocates nothing here.
#[derive(Default)]
pub struct ConvScratch {
    /// One per thread's chunk of the batch.
    chunks: Vec<ChunkScratch>,
    /// The transposed convolution's weights (input gradient, tiled path).
    flipped: Vec<f32>,
    /// The weights the tile reads in this call (the layer's, or `flipped`), packed once for
    /// the tile's width and shared by every chunk.
    panels: ChannelPanels,
    /// The same weights transformed for Winograd, where it runs.
    winograd: WinogradWeights,
    /// The padded batch where the whole batch runs at once (`batched.rs`).
    batch: batched::BatchScratch,
    /// The weights' offsets for the pixel-lanes forward pass (`narrow.rs`).
    narrow: narrow::NarrowWeights,
    /// The pool's argmax where only the pooled output is kept and the whole batch runs at once.
    held_argmax: Vec<u32>,
    /// The whole batch's output gradient scattered from a pool's, for the routes that take the
    /// batch at once.
    pooled_dy: Vec<f32>,
}

/// One chunk's scratch: the column matrix (gemm path), partial parameter gradients, and the
/// tile's padded sample and offsets.
#[derive(Default)]
pub(super) struct ChunkScratch {
    col: Vec<f32>,
    d_weight: Vec<f32>,
    d_bias: Vec<f32>,
    tiled: ConvTileScratch,
    /// For the transposed convolution of the input gradient (another geometry).
    tiled_transposed: ConvTileScratch,
    winograd: WinogradScratch,
    /// The weight gradient's sum by Winograd over the chunk's samples.
    winograd_grad: winograd::WeightGradScratch,
    narrow: narrow::NarrowScratch,
    /// A group of samples padded together for the weight gradient (`weight_grad_group`).
    batch: batched::BatchScratch,
    /// One sample's output and its pool's argmax where only the pooled output is kept
    /// (`PoolSink::argmax` is `None`).
    held_out: Vec<f32>,
    held_argmax: Vec<u32>,
    /// A sample's (or a group's) output gradient, scattered from a pool's (`PooledGrad`).
    dy: Vec<f32>,
}

/// Where Winograd runs in one call.
#[derive(Clone, Copy, Default)]
struct WinogradPlan {
    /// Chosen for the call, and the weights are finite.
    usable: bool,
    /// Usable, and every sample of the call is finite too.
    every: bool,
}

impl WinogradPlan {
    /// Whether `sample` goes through Winograd (the others take the direct tile).
    fn takes(self, sample: &[f32]) -> bool {
        self.every || (self.usable && all_finite(sample))
    }
}

impl ConvScratch {
    /// Readies `weight: [Cout, Cin/groups, kh, kw]` of the problem `d` for the kernels that
    /// will read it: transformed for Winograd when `winograd`, packed into panels for the
    /// direct `tile` unless Winograd takes every sample of `samples` (then nothing reads them).
    fn ready_weights(&mut self, weight: &[f32], d: &ConvDims, tile: Option<Kernel>, winograd: bool, samples: &[f32]) -> WinogradPlan {
        if let (true, Some(k)) = (winograd, tile) {
            self.winograd.prepare(weight, d, k);
        }
        let usable = winograd && self.winograd.finite();
        let plan = WinogradPlan { usable, every: usable && all_finite(samples) };
        if let (Some(k), false) = (tile, plan.every) {
            self.panels.pack(weight, d, k.width);
        }
        plan
    }

    /// As `ready_weights`, for the transposed convolution `t = tiled::transposed_dims(d)` whose
    /// forward pass is the input gradient of `d`: the direct tile's panels are packed straight
    /// from `weight`; the flipped weights are only written out for Winograd's transform.
    fn ready_transposed_weights(&mut self, weight: &[f32], d: &ConvDims, t: &ConvDims, tile: Kernel, winograd: bool, samples: OutputGrad) -> WinogradPlan {
        if winograd {
            tiled::flip_weights(&mut self.flipped, weight, d);
            self.winograd.prepare(&self.flipped, t, tile);
        }
        let usable = winograd && self.winograd.finite();
        let plan = WinogradPlan { usable, every: usable && samples.all_finite() };
        if !plan.every {
            self.panels.pack_transposed(weight, d, tile.width);
        }
        plan
    }

    fn prepare(&mut self, chunks: usize, col_len: usize, w_len: usize, b_len: usize) {
        self.chunks.resize_with(chunks, ChunkScratch::default);
        for c in &mut self.chunks {
            c.col.resize(col_len, 0.0);
            c.d_weight.clear();
            c.d_weight.resize(w_len, 0.0);
            c.d_bias.clear();
            c.d_bias.resize(b_len, 0.0);
        }
    }
}

/// How the batch is split: one chunk per thread when there are at least two samples and two
/// threads (each product then runs on one thread), else one chunk whose products use the pool.
fn plan(n: usize) -> (Vec<std::ops::Range<usize>>, Threads) {
    let threads = rayon::current_num_threads();
    if threads <= 1 {
        (chunk_ranges(n, 1), Threads::One)
    } else if n >= 2 {
        (chunk_ranges(n, threads), Threads::One)
    } else {
        (chunk_ranges(n, 1), Threads::Pool)
    }
}

/// `out = conv(input, weight) + bias`.
/// - `out`: `[N, Cout, Ho, Wo]`, overwritten
/// - `input`: `[N, Cin, H, W]`
/// - `weight`: `[Cout, Cin/groups, kh, kw]`
/// - `bias`: `[Cout]`
pub fn conv2d_forward(out: &mut [f32], input: &[f32], weight: &[f32], bias: Option<&[f32]>, d: &ConvDims, scratch: &mut ConvScratch) {
    conv2d_forward_via(ConvPath::Auto, out, input, weight, bias, d, scratch)
}

/// `conv2d_forward` on a chosen path (tests and benchmarks compare them).
pub fn conv2d_forward_via(
    path: ConvPath,
    out: &mut [f32],
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    d: &ConvDims,
    scratch: &mut ConvScratch,
) {
    conv2d_forward_with(path, Epilogue::None, out, input, weight, bias, d, scratch)
}

/// What the forward pass does to its output after the bias, sample by sample while the sample
/// is still in cache: nothing, a ReLU (a convolution whose only reader is a ReLU: the net fuses
/// the two, `Net::fuse_activations`), or a ReLU and then the max pool that reads it alone,
/// written to `PoolSink` (the output is kept as well, ReLU applied, unless the sink asks for
/// the pooled output alone): the pool reads each sample from cache instead of the whole
/// batch's output back from memory in a pass of its own.
#[derive(Debug, Default)]
pub enum Epilogue<'a> {
    #[default]
    None,
    Relu,
    ReluThenMaxPool(PoolSink<'a>),
}

/// Where the max pool of `Epilogue::ReluThenMaxPool` writes: `out` and `argmax: [N, C, Ho,
/// Wo]`, as `max_pool_forward` writes them over `geometry` (the pool's, over the
/// convolution's output).
#[derive(Debug)]
pub struct PoolSink<'a> {
    pub geometry: &'a Geometry,
    pub out: &'a mut [f32],
    /// The pool's argmax, for a backward pass; `None`: the pooled output alone is wanted
    /// (inference, `Net::forward_lean`).
    pub argmax: Option<&'a mut [u32]>,
    /// Whether the convolution's own output must reach the call's `out` (a backward pass
    /// through the ReLU reads it). Where it need not (inference; training where the pool
    /// hands its gradient down, `conv2d_backward_pooled`) and the batch is split by samples,
    /// each sample's output goes to a buffer of its thread's, in cache, and `out` is left as
    /// it was: the MNIST net's conv1 writes 12.8 MB a step fewer.
    pub keep_conv_out: bool,
}

/// `conv2d_forward_via`, then `epilogue` on the output.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward_with(
    path: ConvPath,
    epilogue: Epilogue,
    out: &mut [f32],
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    d: &ConvDims,
    scratch: &mut ConvScratch,
) {
    let relu = !matches!(epilogue, Epilogue::None);
    let pool = match epilogue {
        Epilogue::ReluThenMaxPool(sink) => Some(sink),
        _ => None,
    };
    // The routes that finish the whole batch at once pool the batch at once.
    let finish_batch = |pool: Option<PoolSink>, out: &mut [f32], held_argmax: &mut Vec<u32>| {
        if let Some(p) = pool {
            let argmax = match p.argmax {
                Some(argmax) => argmax,
                None => {
                    held_argmax.resize(p.out.len(), 0);
                    held_argmax
                }
            };
            crate::kernels::pool::max_pool_forward(p.out, argmax, out, p.geometry);
        }
    };
    let (ranges, threads) = plan(d.n);
    let kernel = path.kernel(d, d.og(), 1);
    if let (Some(k), Some(rows)) = (kernel, bands::row_bands(d, threads)) {
        scratch.prepare(rows.len(), 0, 0, 0);
        let route = match path.narrow(d) {
            Some(nk) => {
                scratch.narrow.prepare(d.c_out, d.kdim());
                bands::Route::Narrow(nk, weight, &scratch.narrow)
            }
            None => {
                let plan = scratch.ready_weights(weight, d, kernel, path.winograd(d, kernel).is_some(), input);
                // The whole sample decides, as it would in a batch.
                match plan.takes(input) {
                    true => bands::Route::Winograd(k, &scratch.winograd),
                    false => bands::Route::Tile(k, &scratch.panels),
                }
            }
        };
        let bias_left = bands::forward(out, input, d, &rows, &mut scratch.chunks, route, bias);
        add_bias_then_relu(out, bias_left, relu, d.out_plane());
        return finish_batch(pool, out, &mut scratch.held_argmax);
    }
    let (in_len, out_len) = (d.c_in * d.in_plane(), d.c_out * d.out_plane());
    if let (Some(k), None) = (kernel, path.winograd(d, kernel)) {
        if batched::takes_forward(d) {
            scratch.panels.pack(weight, d, k.width);
            batched::forward(k, out, input, &scratch.panels, bias, d, &mut scratch.batch, false);
            out.par_chunks_exact_mut(out_len).for_each(|y| add_bias_then_relu(y, None, relu, d.out_plane()));
            return finish_batch(pool, out, &mut scratch.held_argmax);
        }
    }
    let col_len = if d.is_pointwise() || kernel.is_some() { 0 } else { d.kdim() * d.out_plane() };
    scratch.prepare(ranges.len(), col_len, 0, 0);
    let narrow = path.narrow(d);
    let plan = match narrow {
        Some(_) => {
            scratch.narrow.prepare(d.c_out, d.kdim());
            WinogradPlan::default()
        }
        None => scratch.ready_weights(weight, d, kernel, path.winograd(d, kernel).is_some(), input),
    };
    let (panels, transformed, narrow_weights) = (&scratch.panels, &scratch.winograd, &scratch.narrow);
    let out_chunks = split_by_ranges(out, &ranges, out_len);
    // Each thread's share of the pooled output and its argmax, as of the convolution's.
    let pooled_len = pool.as_ref().map_or(0, |p| d.c_out * p.geometry.rows.output * p.geometry.cols.output);
    let pool_geometry = pool.as_ref().map(|p| p.geometry);
    // `None` for a sample's argmax: the pooled output alone is wanted (`PoolSink::argmax`).
    let keep_conv_out = pool.as_ref().is_none_or(|p| p.keep_conv_out);
    type PoolChunk<'a> = Option<(&'a mut [f32], Option<&'a mut [u32]>)>;
    let pool_chunks: Vec<PoolChunk> = match pool {
        Some(p) => {
            let outs = split_by_ranges(p.out, &ranges, pooled_len);
            let argmaxes: Vec<Option<&mut [u32]>> = match p.argmax {
                Some(argmax) => split_lengths(argmax, ranges.iter().map(|r| r.len() * pooled_len)).into_iter().map(Some).collect(),
                None => ranges.iter().map(|_| None).collect(),
            };
            outs.into_iter().zip(argmaxes).map(Some).collect()
        }
        None => ranges.iter().map(|_| None).collect(),
    };
    out_chunks.into_par_iter().zip(pool_chunks).zip(scratch.chunks.par_iter_mut()).zip(ranges.par_iter()).for_each(
        |(((out_chunk, mut pool_chunk), s), range)| {
            // The convolution's output not wanted: each sample's in this thread's buffer (and
            // its argmax too where the pooled output alone is wanted).
            let held = !keep_conv_out;
            if held {
                s.held_out.resize(out_len, 0.0);
            }
            if matches!(pool_chunk, Some((_, None))) {
                s.held_argmax.resize(pooled_len, 0);
            }
            for (i, sample) in range.clone().enumerate() {
                let x = &input[sample * in_len..(sample + 1) * in_len];
                let y = match held {
                    true => &mut s.held_out[..],
                    false => &mut out_chunk[i * out_len..(i + 1) * out_len],
                };
                // The bias still to add (`gemm` adds its own).
                let bias_left = if let Some(k) = narrow {
                    narrow::forward_sample(k, y, x, weight, narrow_weights, d, &mut s.tiled, &mut s.narrow);
                    bias
                } else if let (Some(k), true) = (kernel, plan.takes(x)) {
                    winograd::forward_sample(k, y, x, transformed, d, &mut s.winograd, false, threads);
                    bias
                } else if let Some(k) = kernel {
                    tiled::forward_sample(k, y, x, panels, bias, d, &mut s.tiled, false, threads);
                    None
                } else {
                    gemm_path::forward_sample(y, x, weight, bias, d, &mut s.col, threads);
                    None
                };
                add_bias_then_relu(y, bias_left, relu, d.out_plane());
                if let (Some((pooled, argmax)), Some(g)) = (pool_chunk.as_mut(), pool_geometry) {
                    let at = i * pooled_len..(i + 1) * pooled_len;
                    match argmax {
                        Some(argmax) => crate::kernels::pool::max_pool_forward_here(&mut pooled[at.clone()], &mut argmax[at], y, g),
                        None => {
                            if !crate::kernels::pool::max_pool_values_here(&mut pooled[at.clone()], y, g) {
                                crate::kernels::pool::max_pool_forward_here(&mut pooled[at], &mut s.held_argmax, y, g);
                            }
                        }
                    }
                }
            }
        },
    );
}

/// `add_bias`, then `y = max(y, 0)` where `relu`, in one pass over `y: [C, plane]` (a sample's
/// output while it is in cache; the same values as the two passes): every forward route's
/// epilogue before any pool.
fn add_bias_then_relu(y: &mut [f32], bias: Option<&[f32]>, relu: bool, plane: usize) {
    match (bias, relu) {
        (Some(b), true) => {
            for (values, &bv) in y.chunks_mut(plane).zip(b) {
                values.iter_mut().for_each(|v| *v = crate::kernels::activation::relu(*v + bv));
            }
        }
        (bias, relu) => {
            add_bias(y, bias, plane);
            if relu {
                crate::kernels::activation::relu_in_place(y);
            }
        }
    }
}

/// `y[c, :] += bias[c]` for `y: [C, plane]`.
fn add_bias(y: &mut [f32], bias: Option<&[f32]>, plane: usize) {
    if let Some(b) = bias {
        for (values, &bv) in y.chunks_mut(plane).zip(b) {
            values.iter_mut().for_each(|v| *v += bv);
        }
    }
}

/// Gradients of a convolution, accumulated (`+=`) into whichever of `d_input`, `d_weight`,
/// `d_bias` are given.
/// - `d_input`: `[N, Cin, H, W]`; `d_weight`: `[Cout, Cin/groups, kh, kw]`; `d_bias`: `[Cout]`
/// - `d_out`: `[N, Cout, Ho, Wo]`; `input`, `weight` as in the forward pass
///
/// Partial weight gradients are summed in a fixed chunk order: the same thread count gives the
/// same bits.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward(
    d_input: Option<&mut [f32]>,
    d_weight: Option<&mut [f32]>,
    d_bias: Option<&mut [f32]>,
    d_out: &[f32],
    input: &[f32],
    weight: &[f32],
    d: &ConvDims,
    scratch: &mut ConvScratch,
) {
    conv2d_backward_via(ConvPath::Auto, d_input, d_weight, d_bias, d_out, input, weight, d, scratch)
}

/// `conv2d_backward` on a chosen path. On a tile, the input gradient of a stride-1
/// convolution is the forward pass of its transposed convolution; other geometries take the
/// `gemm` + col2im route for that part.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_via(
    path: ConvPath,
    d_input: Option<&mut [f32]>,
    d_weight: Option<&mut [f32]>,
    d_bias: Option<&mut [f32]>,
    d_out: &[f32],
    input: &[f32],
    weight: &[f32],
    d: &ConvDims,
    scratch: &mut ConvScratch,
) {
    conv2d_backward_stored(path, d_input, (Store::Add, Store::Add), d_weight, d_bias, d_out, input, weight, d, scratch)
}

/// `conv2d_backward_via` with the input gradient and the parameters' stored as `dx_store` and
/// `param_store` say: added to, or written over (`Store::Write`: the transposed convolution's
/// forward pass writes the input gradient outright, the `gemm` route zeroes each sample's
/// share in cache first; the threads' partial sums of the parameters' are copied, then added).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_stored(
    path: ConvPath,
    d_input: Option<&mut [f32]>,
    (dx_store, param_store): (Store, Store),
    d_weight: Option<&mut [f32]>,
    d_bias: Option<&mut [f32]>,
    d_out: &[f32],
    input: &[f32],
    weight: &[f32],
    d: &ConvDims,
    scratch: &mut ConvScratch,
) {
    backward(path, d_input, (dx_store, param_store), d_weight, d_bias, OutputGrad::Dense(d_out), input, weight, d, scratch)
}

/// `conv2d_backward_stored` for a convolution whose output (through a ReLU) only a max pool
/// reads, from the pool's gradient, argmax and output (`pooled`) instead of the convolution's
/// own output gradient: a sample at a time is scattered in cache, the same values the pool's
/// backward pass would have written to memory (`pooled_grad.rs`).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_pooled(
    path: ConvPath,
    d_input: Option<&mut [f32]>,
    stores: (Store, Store),
    d_weight: Option<&mut [f32]>,
    d_bias: Option<&mut [f32]>,
    pooled: PooledGrad,
    input: &[f32],
    weight: &[f32],
    d: &ConvDims,
    scratch: &mut ConvScratch,
) {
    backward(path, d_input, stores, d_weight, d_bias, OutputGrad::Pooled(pooled), input, weight, d, scratch)
}

/// Both backward passes: `d_out` dense or as a pool hands it down.
#[allow(clippy::too_many_arguments)]
fn backward(
    path: ConvPath,
    d_input: Option<&mut [f32]>,
    (dx_store, param_store): (Store, Store),
    d_weight: Option<&mut [f32]>,
    d_bias: Option<&mut [f32]>,
    d_out: OutputGrad,
    input: &[f32],
    weight: &[f32],
    d: &ConvDims,
    scratch: &mut ConvScratch,
) {
    let add_dx = dx_store == Store::Add;
    let (ranges, threads) = plan(d.n);
    let (in_len, p) = (d.c_in * d.in_plane(), d.out_plane());
    let (mut d_input, mut d_weight) = (d_input, d_weight);
    let want_b = d_bias.is_some();
    // The weight gradient's tile (over output channels), and the transposed convolution with
    // its tile (over input channels) for the input gradient, where there is one.
    let w_kernel = path.kernel(d, d.og(), MIN_GRADIENT_TILE_CHANNELS);
    let transposed = match (&d_input, path.kernel(d, d.cg(), MIN_GRADIENT_TILE_CHANNELS)) {
        (Some(_), Some(k)) => tiled::transposed_dims(d).map(|t| (t, k)),
        _ => None,
    };
    let plan = match &transposed {
        Some((t, k)) => scratch.ready_transposed_weights(weight, d, t, *k, path.winograd(t, Some(*k)).is_some(), d_out),
        None => WinogradPlan::default(),
    };
    // Layers whose weights outweigh a sample run each gradient over the whole batch at once,
    // from the whole batch's dense gradient (scattered here from a pool's where it comes so).
    let batched_dw = w_kernel.filter(|_| batched::takes_weight_grad(d) && d_weight.is_some());
    let batched_dx = match (&transposed, plan.usable, &d_input) {
        (Some((t, k)), false, Some(_)) if batched::takes_forward(t) => Some((t, *k)),
        _ => None,
    };
    let mut pooled_dy = std::mem::take(&mut scratch.pooled_dy);
    let whole = match d_out {
        OutputGrad::Dense(dy) => Some(dy),
        OutputGrad::Pooled(_) if batched_dw.is_some() || batched_dx.is_some() => Some(d_out.samples(0..d.n, d.c_out, p, &mut pooled_dy)),
        OutputGrad::Pooled(_) => None,
    };
    let d_out = whole.map_or(d_out, OutputGrad::Dense);
    if let (Some(k), Some(dw), Some(dy)) = (batched_dw, d_weight.as_deref_mut(), whole) {
        batched::weight_grad(k, dw, dy, input, d, &mut scratch.batch, param_store == Store::Add);
        d_weight = None;
    }
    if let (Some((t, k)), Some(dx), Some(dy)) = (batched_dx, d_input.as_deref_mut(), whole) {
        batched::forward(k, dx, dy, &scratch.panels, None, t, &mut scratch.batch, add_dx);
        d_input = None;
    }
    let want_w = d_weight.is_some();
    // Winograd's weight gradient, summed over each chunk's finite samples (the others take
    // the direct tile), its points combined into the chunk's partial at the end.
    let w_winograd = if want_w { path.winograd_weight_grad(d, w_kernel) } else { None };
    let dx_on_gemm = d_input.is_some() && transposed.is_none();
    let needs_col = !d.is_pointwise() && ((want_w && w_kernel.is_none()) || dx_on_gemm);
    let col_len = if needs_col { d.kdim() * p } else { 0 };
    scratch.prepare(
        ranges.len(),
        col_len,
        if want_w { weight.len() } else { 0 },
        if want_b { d.c_out } else { 0 },
    );
    let (flipped, transformed) = (&scratch.panels, &scratch.winograd);
    let dx_chunks: Vec<Option<&mut [f32]>> = match d_input {
        Some(dx) => split_by_ranges(dx, &ranges, in_len).into_iter().map(Some).collect(),
        None => ranges.iter().map(|_| None).collect(),
    };
    dx_chunks.into_par_iter().zip(scratch.chunks.par_iter_mut()).zip(ranges.par_iter()).for_each(
        |((mut dx_chunk, s), range)| {
            // Where the gradient comes from a pool, each group's (or sample's) is scattered here
            // once, for both gradients.
            let mut dy_buf = std::mem::take(&mut s.dy);
            // The weight gradient of a few samples at a time where the batch is split by
            // samples: each tile then reduces over their pixels together and stores C once for
            // them, their padded inputs and dY in L2 (`batched::weight_grad` on the group);
            // the group's input gradients follow while its dY is still in cache.
            let group_size = weight_grad_group(d);
            let grouped = want_w && d.groups == 1 && threads == Threads::One && group_size > 1 && w_winograd.is_none();
            for first in range.clone().step_by(if grouped { group_size } else { 1 }) {
                let last = if grouped { (first + group_size).min(range.end) } else { first + 1 };
                let dys = d_out.samples(first..last, d.c_out, p, &mut dy_buf);
                if let (true, Some(k)) = (grouped, w_kernel) {
                    let group = ConvDims { n: last - first, ..*d };
                    batched::weight_grad(k, &mut s.d_weight, dys, &input[first * in_len..last * in_len], &group, &mut s.batch, true);
                }
                for (j, sample) in (first..last).enumerate() {
                    let i = sample - range.start;
                    let x = &input[sample * in_len..(sample + 1) * in_len];
                    let dy = &dys[j * d.c_out * p..(j + 1) * d.c_out * p];
                    let dx = dx_chunk.as_deref_mut().map(|c| &mut c[i * in_len..(i + 1) * in_len]);
                    let w_on_gemm = want_w && w_kernel.is_none();
                    // Whether dY may go through Winograd's transforms, checked once for both
                    // gradients (`plan.every`: the whole call's dY was).
                    let dy_winograd = (plan.usable || w_winograd.is_some()) && (plan.every || all_finite(dy));
                    if let (true, false, Some(k)) = (want_w, grouped, w_kernel) {
                        match w_winograd {
                            Some(wk) if dy_winograd && all_finite(x) => s.winograd_grad.add_sample(wk, dy, x, d, threads),
                            _ => tiled::weight_grad_sample(k, &mut s.d_weight, dy, x, d, &mut s.tiled, threads),
                        }
                    }
                    match (dx, &transposed) {
                        (Some(dx), Some((t, k))) => {
                            if plan.usable && dy_winograd {
                                winograd::forward_sample(*k, dx, dy, transformed, t, &mut s.winograd, add_dx, threads);
                            } else {
                                tiled::forward_sample(*k, dx, dy, flipped, None, t, &mut s.tiled_transposed, add_dx, threads);
                            }
                            if w_on_gemm {
                                gemm_path::backward_sample(None, s, dy, x, weight, d, threads, true);
                            }
                        }
                        (mut dx, _) if dx.is_some() || w_on_gemm => {
                            // col2im adds overlapping windows: start from zeros, in cache.
                            if let (Some(dx), false) = (dx.as_deref_mut(), add_dx) {
                                dx.fill(0.0);
                            }
                            gemm_path::backward_sample(dx, s, dy, x, weight, d, threads, w_on_gemm)
                        }
                        _ => {}
                    }
                    if want_b {
                        for (db, plane) in s.d_bias.iter_mut().zip(dy.chunks(p)) {
                            *db += sum(plane);
                        }
                    }
                }
            }
            s.winograd_grad.finish(&mut s.d_weight);
            s.dy = dy_buf;
        },
    );
    scratch.pooled_dy = pooled_dy;
    let store_partials = |dst: &mut [f32], partials: &mut dyn Iterator<Item = &[f32]>| match param_store {
        Store::Add => sum_partials_into(dst, partials),
        Store::Write => write_partials_into(dst, partials),
    };
    if let Some(dw) = d_weight {
        store_partials(dw, &mut scratch.chunks.iter().map(|c| c.d_weight.as_slice()));
    }
    if let Some(db) = d_bias {
        store_partials(db, &mut scratch.chunks.iter().map(|c| c.d_bias.as_slice()));
    }
}

/// A sum the compiler can vectorise: eight independent accumulators.
fn sum(v: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = v.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// Splits `data` into one mutable slice per range of samples, each sample `per` values long.
fn split_by_ranges<'a>(data: &'a mut [f32], ranges: &[std::ops::Range<usize>], per: usize) -> Vec<&'a mut [f32]> {
    split_lengths(data, ranges.iter().map(|r| r.len() * per))
}

#[cfg(test)]
mod tests;
