//! 2-d convolution (cross-correlation, as every framework computes it), forward and backward,
//! one sample at a time, samples split across threads (a batch of one splits its output
//! channels instead). Two paths compute the same numbers: fovea's own register tile
//! (`conv_tiled.rs`, AVX2 + FMA) and im2col plus a `gemm` product (CPUs without AVX2, and the
//! input gradient of strided, dilated or few-channel convolutions).

use super::conv_tiled::{self, ChannelPanels, ConvTileScratch};
use super::im2col::{col2im_add, im2col};
use super::matmul::{matmul, Mat, Threads};
use super::parallel::{chunk_ranges, split_lengths, sum_partials_into};
use crate::geometry::Geometry;
use rayon::prelude::*;

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

/// Which kernels compute a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvPath {
    /// The tile when the CPU has it, except for 1x1 stride-1 unpadded convolutions, whose
    /// input already is the column matrix: `gemm` reads it in place (bench conv f: 68 vs 45
    /// GFLOP/s forward on one thread), where the tile would copy the sample to pad it.
    Auto,
    /// im2col + `gemm` (+ col2im for the input gradient).
    Gemm,
    /// fovea's own AVX2 tile; falls back to `Gemm` on a CPU without AVX2/FMA.
    Tiled,
}

impl ConvPath {
    fn resolve(self, d: &ConvDims) -> ConvPath {
        match self {
            ConvPath::Tiled if conv_tiled::available() => ConvPath::Tiled,
            ConvPath::Auto if conv_tiled::available() && !d.is_pointwise() => ConvPath::Tiled,
            _ => ConvPath::Gemm,
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
    /// The weights the tile reads in this call (the layer's, or `flipped`), packed once and
    /// shared by every chunk.
    panels: ChannelPanels,
}

/// One chunk's scratch: the column matrix (gemm path), partial parameter gradients, and the
/// tile's padded sample and offsets.
#[derive(Default)]
struct ChunkScratch {
    col: Vec<f32>,
    d_weight: Vec<f32>,
    d_bias: Vec<f32>,
    tiled: ConvTileScratch,
    /// For the transposed convolution of the input gradient (another geometry).
    tiled_transposed: ConvTileScratch,
}

impl ConvScratch {
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

/// `conv2d_forward` on a chosen path (tests and benchmarks compare the two).
pub fn conv2d_forward_via(
    path: ConvPath,
    out: &mut [f32],
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    d: &ConvDims,
    scratch: &mut ConvScratch,
) {
    let (ranges, threads) = plan(d.n);
    let path = path.resolve(d);
    let (in_len, out_len) = (d.c_in * d.in_plane(), d.c_out * d.out_plane());
    let col_len = if d.is_pointwise() || path == ConvPath::Tiled { 0 } else { d.kdim() * d.out_plane() };
    scratch.prepare(ranges.len(), col_len, 0, 0);
    if path == ConvPath::Tiled {
        scratch.panels.pack(weight, d);
    }
    let panels = &scratch.panels;
    let out_chunks = split_by_ranges(out, &ranges, out_len);
    out_chunks.into_par_iter().zip(scratch.chunks.par_iter_mut()).zip(ranges.par_iter()).for_each(
        |((out_chunk, s), range)| {
            for (k, sample) in range.clone().enumerate() {
                let x = &input[sample * in_len..(sample + 1) * in_len];
                let y = &mut out_chunk[k * out_len..(k + 1) * out_len];
                if path == ConvPath::Tiled {
                    conv_tiled::forward_sample(y, x, panels, d, &mut s.tiled, false, threads);
                    add_bias(y, bias, d.out_plane());
                } else {
                    forward_sample(y, x, weight, bias, d, &mut s.col, threads);
                }
            }
        },
    );
}

fn forward_sample(y: &mut [f32], x: &[f32], weight: &[f32], bias: Option<&[f32]>, d: &ConvDims, col: &mut [f32], threads: Threads) {
    let (p, kdim, og, cg) = (d.out_plane(), d.kdim(), d.og(), d.cg());
    for g in 0..d.groups {
        let xg = &x[g * cg * d.in_plane()..(g + 1) * cg * d.in_plane()];
        let wg = &weight[g * og * kdim..(g + 1) * og * kdim];
        let yg = &mut y[g * og * p..(g + 1) * og * p];
        let cols: &[f32] = if d.is_pointwise() {
            xg
        } else {
            im2col(col, xg, cg, &d.geom);
            col
        };
        matmul(yg, Mat::n(wg), Mat::n(cols), og, p, kdim, false, threads);
    }
    add_bias(y, bias, p);
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

/// `conv2d_backward` on a chosen path. On the tiled path the input gradient of a stride-1
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
    let (ranges, threads) = plan(d.n);
    let path = path.resolve(d);
    let (in_len, out_len, p) = (d.c_in * d.in_plane(), d.c_out * d.out_plane(), d.out_plane());
    let want_w = d_weight.is_some();
    let want_b = d_bias.is_some();
    let transposed = if path == ConvPath::Tiled && d_input.is_some() { conv_tiled::transposed_dims(d) } else { None };
    if let Some(t) = &transposed {
        conv_tiled::flip_weights(&mut scratch.flipped, weight, d);
        scratch.panels.pack(&scratch.flipped, t);
    }
    let needs_col = !d.is_pointwise() && (path == ConvPath::Gemm || (d_input.is_some() && transposed.is_none()));
    let col_len = if needs_col { d.kdim() * p } else { 0 };
    scratch.prepare(
        ranges.len(),
        col_len,
        if want_w { weight.len() } else { 0 },
        if want_b { d.c_out } else { 0 },
    );
    let flipped = &scratch.panels;
    let dx_chunks: Vec<Option<&mut [f32]>> = match d_input {
        Some(dx) => split_by_ranges(dx, &ranges, in_len).into_iter().map(Some).collect(),
        None => ranges.iter().map(|_| None).collect(),
    };
    dx_chunks.into_par_iter().zip(scratch.chunks.par_iter_mut()).zip(ranges.par_iter()).for_each(
        |((mut dx_chunk, s), range)| {
            for (k, sample) in range.clone().enumerate() {
                let x = &input[sample * in_len..(sample + 1) * in_len];
                let dy = &d_out[sample * out_len..(sample + 1) * out_len];
                let dx = dx_chunk.as_deref_mut().map(|c| &mut c[k * in_len..(k + 1) * in_len]);
                if path == ConvPath::Tiled {
                    if want_w {
                        conv_tiled::weight_grad_sample(&mut s.d_weight, dy, x, d, &mut s.tiled, threads);
                    }
                    match (dx, &transposed) {
                        (Some(dx), Some(t)) => conv_tiled::forward_sample(dx, dy, flipped, t, &mut s.tiled_transposed, true, threads),
                        (Some(dx), None) => backward_sample(Some(dx), s, dy, x, weight, d, threads, false),
                        (None, _) => {}
                    }
                } else {
                    backward_sample(dx, s, dy, x, weight, d, threads, want_w);
                }
                if want_b {
                    for (db, plane) in s.d_bias.iter_mut().zip(dy.chunks(p)) {
                        *db += sum(plane);
                    }
                }
            }
        },
    );
    if let Some(dw) = d_weight {
        sum_partials_into(dw, scratch.chunks.iter().map(|c| c.d_weight.as_slice()));
    }
    if let Some(db) = d_bias {
        sum_partials_into(db, scratch.chunks.iter().map(|c| c.d_bias.as_slice()));
    }
}

#[allow(clippy::too_many_arguments)]
fn backward_sample(
    mut dx: Option<&mut [f32]>,
    s: &mut ChunkScratch,
    dy: &[f32],
    x: &[f32],
    weight: &[f32],
    d: &ConvDims,
    threads: Threads,
    want_w: bool,
) {
    let (p, kdim, og, cg, plane) = (d.out_plane(), d.kdim(), d.og(), d.cg(), d.in_plane());
    for g in 0..d.groups {
        let xg = &x[g * cg * plane..(g + 1) * cg * plane];
        let wg = &weight[g * og * kdim..(g + 1) * og * kdim];
        let dyg = &dy[g * og * p..(g + 1) * og * p];
        if want_w {
            // dW_g [og, kdim] += dY_g [og, p] @ col^T [p, kdim]
            let cols: &[f32] = if d.is_pointwise() {
                xg
            } else {
                im2col(&mut s.col, xg, cg, &d.geom);
                &s.col
            };
            let dwg = &mut s.d_weight[g * og * kdim..(g + 1) * og * kdim];
            matmul(dwg, Mat::n(dyg), Mat::t(cols), og, kdim, p, true, threads);
        }
        if let Some(dx) = dx.as_deref_mut() {
            let dxg = &mut dx[g * cg * plane..(g + 1) * cg * plane];
            // dcol [kdim, p] = W_g^T [kdim, og] @ dY_g [og, p], folded back into dX.
            if d.is_pointwise() {
                matmul(dxg, Mat::t(wg), Mat::n(dyg), kdim, p, og, true, threads);
            } else {
                matmul(&mut s.col, Mat::t(wg), Mat::n(dyg), kdim, p, og, false, threads);
                col2im_add(dxg, &s.col, cg, &d.geom);
            }
        }
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

/// The definition, looped directly: the reference for `conv2d_forward`.
pub fn conv2d_forward_ref(out: &mut [f32], input: &[f32], weight: &[f32], bias: Option<&[f32]>, d: &ConvDims) {
    let g = &d.geom;
    let (h, w) = g.in_hw();
    let (ho, wo) = g.out_hw();
    let (kh, kw, cg, og) = (g.rows.kernel, g.cols.kernel, d.cg(), d.og());
    for n in 0..d.n {
        for o in 0..d.c_out {
            let grp = o / og;
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut s = bias.map_or(0.0, |b| b[o]) as f64;
                    for c in 0..cg {
                        let ci = grp * cg + c;
                        for i in 0..kh {
                            let iy = g.rows.start(oy) + (i * g.rows.dilation) as isize;
                            for j in 0..kw {
                                let ix = g.cols.start(ox) + (j * g.cols.dilation) as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let xv = input[((n * d.c_in + ci) * h + iy as usize) * w + ix as usize];
                                let wv = weight[((o * cg + c) * kh + i) * kw + j];
                                s += xv as f64 * wv as f64;
                            }
                        }
                    }
                    out[((n * d.c_out + o) * ho + oy) * wo + ox] = s as f32;
                }
            }
        }
    }
}

/// The definition, looped directly: the reference for `conv2d_backward`.
pub fn conv2d_backward_ref(d_input: &mut [f32], d_weight: &mut [f32], d_bias: &mut [f32], d_out: &[f32], input: &[f32], weight: &[f32], d: &ConvDims) {
    let g = &d.geom;
    let (h, w) = g.in_hw();
    let (ho, wo) = g.out_hw();
    let (kh, kw, cg, og) = (g.rows.kernel, g.cols.kernel, d.cg(), d.og());
    for n in 0..d.n {
        for o in 0..d.c_out {
            let grp = o / og;
            for oy in 0..ho {
                for ox in 0..wo {
                    let dy = d_out[((n * d.c_out + o) * ho + oy) * wo + ox];
                    d_bias[o] += dy;
                    for c in 0..cg {
                        let ci = grp * cg + c;
                        for i in 0..kh {
                            let iy = g.rows.start(oy) + (i * g.rows.dilation) as isize;
                            for j in 0..kw {
                                let ix = g.cols.start(ox) + (j * g.cols.dilation) as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let xi = ((n * d.c_in + ci) * h + iy as usize) * w + ix as usize;
                                let wi = ((o * cg + c) * kh + i) * kw + j;
                                d_input[xi] += dy * weight[wi];
                                d_weight[wi] += dy * input[xi];
                            }
                        }
                    }
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

    fn close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= 1e-3 * (1.0 + y.abs()), "{what}[{i}]: fast {x} vs reference {y}");
        }
    }

    /// Both paths where the CPU has the tile; only `gemm` elsewhere.
    fn paths() -> Vec<ConvPath> {
        let mut p = vec![ConvPath::Gemm];
        if conv_tiled::available() {
            p.push(ConvPath::Tiled);
        }
        p
    }

    /// A sample's output and input gradient do not depend on the batch around it: alone (its
    /// channels split across the pool) or in a batch (samples split), the same bits.
    #[test]
    fn a_sample_gets_the_same_bits_alone_and_in_a_batch() {
        let window = Window2d::square(5, 1, Padding::uniform(2));
        let geom = window.resolve(9, 11).unwrap();
        let mut rng = Rng::new(4);
        let (n, c_in, c_out) = (3, 8, 40);
        let d = ConvDims { n, c_in, c_out, groups: 1, geom };
        let (in_len, out_len) = (c_in * 99, c_out * 99);
        let x = rng.uniform_vec(n * in_len, -1.0, 1.0);
        let wt = rng.uniform_vec(c_out * c_in * 25, -1.0, 1.0);
        let dy = rng.uniform_vec(n * out_len, -1.0, 1.0);
        let mut scratch = ConvScratch::default();
        let (mut y, mut dx) = (vec![0.0; n * out_len], vec![0.0; n * in_len]);
        conv2d_forward(&mut y, &x, &wt, None, &d, &mut scratch);
        conv2d_backward(Some(&mut dx), None, None, &dy, &x, &wt, &d, &mut scratch);
        let one = ConvDims { n: 1, ..d };
        for s in 0..n {
            let (mut y1, mut dx1) = (vec![0.0; out_len], vec![0.0; in_len]);
            conv2d_forward(&mut y1, &x[s * in_len..(s + 1) * in_len], &wt, None, &one, &mut scratch);
            conv2d_backward(Some(&mut dx1), None, None, &dy[s * out_len..(s + 1) * out_len], &x[s * in_len..(s + 1) * in_len], &wt, &one, &mut scratch);
            assert_eq!(y1, y[s * out_len..(s + 1) * out_len], "sample {s}: output");
            assert_eq!(dx1, dx[s * in_len..(s + 1) * in_len], "sample {s}: input gradient");
        }
    }

    #[test]
    fn fast_conv_matches_reference_on_random_shapes() {
        let mut rng = Rng::new(11);
        for case in 0..80 {
            let groups = [1, 1, 2, 3][rng.below(4)];
            let c_in = groups * (1 + rng.below(3));
            let c_out = groups * (1 + rng.below(3));
            let k = [1, 2, 3, 5][rng.below(4)];
            let kw = if rng.below(4) == 0 { 1 + rng.below(3) } else { k };
            let stride = [1 + rng.below(3), 1 + rng.below(3)];
            let dilation = if rng.below(4) == 0 { [2, 1 + rng.below(2)] } else { [1, 1] };
            let padding = match rng.below(3) {
                0 => Padding::Valid,
                1 => Padding::Same,
                _ => Padding::explicit([rng.below(3), rng.below(3), rng.below(3), rng.below(3)]),
            };
            let window = Window2d { kernel: [k, kw], stride, dilation, padding, ceil_mode: false };
            let (h, w) = (k * 2 + 2 + rng.below(8), kw * 2 + 2 + rng.below(8));
            let Ok(geom) = window.resolve(h, w) else { continue };
            let n = 1 + rng.below(5);
            let d = ConvDims { n, c_in, c_out, groups, geom };
            let (ho, wo) = geom.out_hw();
            let x = rng.uniform_vec(n * c_in * h * w, -1.0, 1.0);
            let wt = rng.uniform_vec(c_out * (c_in / groups) * k * kw, -1.0, 1.0);
            let b = rng.uniform_vec(c_out, -1.0, 1.0);
            let mut slow = vec![0.0; n * c_out * ho * wo];
            conv2d_forward_ref(&mut slow, &x, &wt, Some(&b), &d);
            let dy = rng.uniform_vec(slow.len(), -1.0, 1.0);
            // Start from non-zero gradients: the kernels must accumulate.
            let (rdx, rdw, rdb) = (vec![0.5; x.len()], vec![0.25; wt.len()], vec![1.0; c_out]);
            let (mut rdx, mut rdw, mut rdb) = (rdx, rdw, rdb);
            let (dx0, dw0, db0) = (rdx.clone(), rdw.clone(), rdb.clone());
            conv2d_backward_ref(&mut rdx, &mut rdw, &mut rdb, &dy, &x, &wt, &d);
            for path in paths() {
                let mut fast = vec![f32::NAN; slow.len()];
                let mut scratch = ConvScratch::default();
                conv2d_forward_via(path, &mut fast, &x, &wt, Some(&b), &d, &mut scratch);
                close(&fast, &slow, &format!("case {case} {path:?} forward {d:?}"));
                let (mut dx, mut dw, mut db) = (dx0.clone(), dw0.clone(), db0.clone());
                conv2d_backward_via(path, Some(&mut dx), Some(&mut dw), Some(&mut db), &dy, &x, &wt, &d, &mut scratch);
                close(&dx, &rdx, &format!("case {case} {path:?} d_input {d:?}"));
                close(&dw, &rdw, &format!("case {case} {path:?} d_weight"));
                close(&db, &rdb, &format!("case {case} {path:?} d_bias"));
                // Each gradient alone, as layers ask for them (no input gradient for the first).
                let mut dw_only = dw0.clone();
                conv2d_backward_via(path, None, Some(&mut dw_only), None, &dy, &x, &wt, &d, &mut scratch);
                close(&dw_only, &rdw, &format!("case {case} {path:?} d_weight alone"));
            }
        }
    }
}
