//! The weight gradient by Winograd, channels in the lanes. For one block, the forward pass is
//! `y = A^T [ sum_ci U[ci] . V[ci] ] A` with `U[xi] = sum_t c[xi][t] g[t]` (the weights'
//! coefficients, `transform::weight_coefficients`), so the gradient of filter `(co, ci)`'s tap
//! `t` is `sum_xi c[xi][t] Y[co][xi] V[ci][xi]`, where `Y = A dY A^T` is the block's output
//! gradient transformed (`transform::gradient_block`, the transpose of the output transform).
//! Summed over every block and sample first, point by point:
//!
//! `dU[xi] [Cin][Cout] = sum_blocks V[xi] [blocks][Cin]^T Y[xi] [blocks][Cout]`,
//!
//! `P = (r + 1)^2` products per block and channel pair instead of `4 r^2` (36 instead of 100
//! for 5x5, 16 instead of 36 for 3x3); the coefficients are applied once per call, at the end
//! (`finish`).
//!
//! Per sample: padded channels last (the forward pass's `pad_channels_last`), dY in the tile's
//! panels (`[Cout / width][pixels][width]`, the direct weight gradient's packing), then per
//! strip of block rows: the input transform into `V [P][blocks][cp]` (the forward pass's
//! `input_rows`), and per panel of output channels dY's transform into `Y [P][blocks][width]`
//! (`gradient_cells`: B's panels) and per point `V[xi]^T Y[xi]` on the register tile (rows = input channels, one
//! apart in V's rows: `run_along_a_row`; lanes = output channels; the reduction over the
//! strip's blocks; C by rows into a small buffer), added at once to dU, which is kept in f64
//! so that its value does not depend on which samples a thread (or an MPI rank) summed.
//!
//! Only for finite samples and output gradients: the transforms mix a whole block, so a NaN or
//! an infinity would reach taps the definition leaves finite; the caller sends those samples to
//! the direct tile.

use super::transform::{self, GradientCells, CHANNEL_LANES};
use super::{by_channels, points, Grid, POINT_GAP};
use crate::kernels::aligned::AlignedVec;
use crate::kernels::conv::padded::ZeroedOnce;
use crate::kernels::conv::tile::{self, CLayout, Kernel, Offsets, Tile};
use crate::kernels::conv::ConvDims;
use crate::kernels::matmul::Threads;
use rayon::prelude::*;

/// About this many blocks per strip: V and Y of a strip (9 KB a block for the MNIST net's
/// conv2, 32 -> 64 channels, with Y one panel of 32 output channels) stay in L2 between the
/// transforms and the products, while dU (590 KB there in f64) is read and written once per
/// strip.
const STRIP_BLOCKS: usize = 64;

/// What dU sums, while it sums.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Sum {
    c_in: usize,
    c_out: usize,
    r: usize,
    /// The tile's width: dU's panels of output channels.
    width: usize,
}

/// One thread's scratch and its sum over the samples of a call, kept between calls.
#[derive(Default)]
pub struct WeightGradScratch {
    /// The zero-padded sample, channels last (`by_channels::pad_channels_last`).
    cells: ZeroedOnce<8>,
    /// The sample channels last before padding (narrow images).
    planes: Vec<f32>,
    /// dY with an odd side rounded up to even, zeros past the image: `[Cout][2 th][2 tw]`.
    dy_even: ZeroedOnce<3>,
    /// dY in the tile's panels: `[Cout / width][2 th * 2 tw][width]`, zero past Cout.
    dy_panels: AlignedVec,
    /// What `dy_panels` was laid out for: (Cout, pixels, width).
    panels_for: (usize, usize, usize),
    /// A strip's input transform: `[P][blocks][cp]`, points `POINT_GAP` apart beyond their size.
    v: AlignedVec,
    /// A strip's output-gradient transform, one panel of output channels: `[P][blocks][width]`,
    /// likewise.
    y: AlignedVec,
    /// One strip's products for one panel of output channels: `[P][Cin][width]`.
    strip: AlignedVec,
    /// The sum in f64, by panel of output channels: `[Cout / width][P][Cin][width]` (a panel's
    /// sums contiguous, for the strips that add to them one panel at a time). Each strip's
    /// products are added to it as they come, so the sum's rounding does not depend on which
    /// samples a thread (or an MPI rank) summed: in f32 the ranks' runs of the MNIST net
    /// drifted 1e-3 and more from the single process's after 9 Adam steps.
    total: Vec<f64>,
    /// `0 .. Cin`, the tile's rows (one apart: only the first is read).
    rows: Offsets,
    /// `block * cp` over a strip: the tile's reduction.
    reduction: Offsets,
    listed_for: (usize, usize, usize),
    /// `[r * r][op]`: one input channel's taps while `finish` combines the points.
    taps: Vec<f64>,
    /// The weights' coefficients for filters of side `.0` (`transform::weight_coefficients`),
    /// kept so that a step allocates nothing here.
    coefficients: (usize, Vec<Vec<f32>>),
    sum: Option<Sum>,
}

impl WeightGradScratch {
    /// `dU += ` the Winograd products of one sample, `dy: [Cout, Ho, Wo]` and `x: [Cin, H, W]`
    /// (both finite), for `kernel`'s tile; the first sample after `finish` starts the sum. With
    /// `Threads::Pool` the points' products are shared across the pool.
    pub fn add_sample(&mut self, kernel: Kernel, dy: &[f32], x: &[f32], d: &ConvDims, threads: Threads) {
        let grid = Grid::of(d);
        let (r, side) = (grid.r, grid.transform().side());
        let (c_in, c_out, width) = (d.c_in, d.c_out, kernel.width);
        assert!(super::applies(d) && width.is_multiple_of(CHANNEL_LANES), "winograd weight gradient: {d:?} on {kernel:?}");
        assert!(x.len() == c_in * d.in_plane() && dy.len() == c_out * grid.ho * grid.wo, "winograd weight gradient: sample of {} / {} values", x.len(), dy.len());
        let (cp, panels) = (c_in.next_multiple_of(CHANNEL_LANES), c_out.div_ceil(width));
        let sum = Sum { c_in, c_out, r, width };
        match self.sum {
            Some(s) => assert_eq!(s, sum, "winograd weight gradient: two problems in one sum"),
            None => {
                self.total.clear();
                self.total.resize(panels * points(r) * c_in * width, 0.0);
                self.strip.resize(points(r) * c_in * width, 0.0);
                self.sum = Some(sum);
            }
        }
        let wp = 2 * grid.tw + r - 1;
        by_channels::pad_channels_last(&mut self.cells, &mut self.planes, x, d, grid.hp, wp, cp);
        self.pack_output_grad(dy, &grid, c_out, width);
        let (th, tw) = (grid.th, grid.tw);
        let strip_rows = (STRIP_BLOCKS / tw).clamp(1, th);
        for ty0 in (0..th).step_by(strip_rows) {
            let rows_here = strip_rows.min(th - ty0);
            let blocks = rows_here * tw;
            let (v_stride, y_stride) = (blocks * cp + POINT_GAP, blocks * width + POINT_GAP);
            self.v.resize(side * side * v_stride, 0.0);
            self.y.resize(side * side * y_stride, 0.0);
            by_channels::input_rows(kernel, self.cells.data(), &grid, cp, ty0..ty0 + rows_here, self.v.as_mut_slice(), v_stride);
            if self.listed_for != (blocks, cp, c_in) {
                self.rows.set(0..c_in);
                self.reduction.set((0..blocks).map(|b| b * cp));
                self.listed_for = (blocks, cp, c_in);
            }
            // A panel of output channels at a time: its Y (225 KB for the MNIST net's conv2,
            // against 450 KB for all of Y) beside V in L2 (the same time as all of Y at once
            // on Zen 4, within the noise).
            let panel_len = 4 * th * tw * width;
            for cb in 0..panels {
                let at = GradientCells { width, panels: 1, panel_len, tw, first: ty0 * tw, blocks, g_stride: y_stride };
                transform::gradient_cells(kernel.isa, r, &self.dy_panels.as_slice()[cb * panel_len..], at, self.y.as_mut_slice());
                self.products(kernel, cb, blocks, (v_stride, y_stride), threads);
            }
        }
    }

    /// `dy: [Cout, Ho, Wo]` into `dy_panels` (through `dy_even` where a side is odd).
    fn pack_output_grad(&mut self, dy: &[f32], grid: &Grid, c_out: usize, width: usize) {
        let (h2, w2) = (2 * grid.th, 2 * grid.tw);
        let pixels = h2 * w2;
        if self.panels_for != (c_out, pixels, width) {
            // The lanes past Cout stay zero: the packing never writes them.
            self.dy_panels.fill_to(c_out.div_ceil(width) * pixels * width, 0.0);
            self.panels_for = (c_out, pixels, width);
        }
        let even = if (grid.ho, grid.wo) == (h2, w2) {
            dy
        } else {
            let (ho, wo) = (grid.ho, grid.wo);
            let buf = self.dy_even.for_geometry([c_out, ho, wo], c_out * pixels);
            for (plane, src) in buf.chunks_exact_mut(pixels).zip(dy.chunks_exact(ho * wo)) {
                for (row, s) in plane.chunks_exact_mut(w2).zip(src.chunks_exact(wo)) {
                    row[..wo].copy_from_slice(s);
                }
            }
            self.dy_even.data()
        };
        tile::pack_panels(self.dy_panels.as_mut_slice(), even, c_out, pixels, width);
    }

    /// `dU[xi] += V[xi]^T Y[xi]` for every point, over a strip of `blocks` blocks, in the
    /// columns of output-channel panel `cb` (Y holds that panel's): each point's product
    /// written to `strip` (4 KB for 32 x 32 channels, in L1) and added to `total` at once.
    fn products(&mut self, kernel: Kernel, cb: usize, blocks: usize, (v_stride, y_stride): (usize, usize), threads: Threads) {
        let Some(Sum { c_in, r, .. }) = self.sum else { unreachable!("products outside a sum") };
        let width = kernel.width;
        let (v, y, rows, reduction) = (self.v.as_slice(), self.y.as_slice(), &self.rows, &self.reduction);
        // Near-equal runs of input channels, each a tile of at most `row_run` rows.
        let runs = c_in.div_ceil(kernel.row_run);
        let one_point = |xi: usize, strip: &mut [f32], total: &mut [f64]| {
            let (a, b) = (&v[xi * v_stride..], &y[xi * y_stride..][..blocks * width]);
            for run in 0..runs {
                let (first, end) = (run * c_in / runs, (run + 1) * c_in / runs);
                let t = Tile {
                    rows: end - first,
                    k: blocks,
                    data: a,
                    row_offsets: rows.from(first),
                    k_offsets: reduction.from(0),
                    b,
                    c: &mut strip[first * width..],
                    c_layout: CLayout::Rows { row_stride: width },
                    n: width,
                    accumulate: false,
                };
                tile::run_along_a_row(kernel, t, 1);
            }
            add_widened(kernel.isa, total, strip);
        };
        let block = c_in * width;
        let panel = &mut self.total[cb * points(r) * block..][..points(r) * block];
        let per_point = self.strip.as_mut_slice().chunks_mut(block).zip(panel.chunks_mut(block));
        if threads == Threads::Pool && rayon::current_num_threads() > 1 {
            per_point.collect::<Vec<_>>().into_par_iter().enumerate().for_each(|(xi, (strip, total))| one_point(xi, strip, total));
        } else {
            per_point.enumerate().for_each(|(xi, (strip, total))| one_point(xi, strip, total));
        }
    }

    /// `d_weight: [Cout, Cin, r, r] += sum_xi c[xi][t] dU[xi]` for the samples added since the
    /// last call (nothing if none), and ends the sum.
    pub fn finish(&mut self, d_weight: &mut [f32]) {
        let Some(Sum { c_in, c_out, r, width }) = self.sum.take() else { return };
        let (points, op) = (points(r), c_out.div_ceil(width) * width);
        let taps = r * r;
        assert_eq!(d_weight.len(), c_out * c_in * taps, "winograd weight gradient: {} values for {c_out}x{c_in}x{r}x{r}", d_weight.len());
        if self.coefficients.0 != r {
            self.coefficients = (r, transform::weight_coefficients(transform::Transform::two(r)));
        }
        let (coefficients, total) = (&self.coefficients.1, &self.total);
        self.taps.resize(taps * op, 0.0);
        for ci in 0..c_in {
            self.taps.fill(0.0);
            for (xi, coefficient) in coefficients.iter().enumerate() {
                for cb in 0..op / width {
                    let point = &total[((cb * points + xi) * c_in + ci) * width..][..width];
                    for (t, &c) in coefficient.iter().enumerate().filter(|(_, c)| **c != 0.0) {
                        combine(crate::kernels::isa::Isa::active(), &mut self.taps[t * op + cb * width..][..width], c as f64, point);
                    }
                }
            }
            for co in 0..c_out {
                let dw = &mut d_weight[(co * c_in + ci) * taps..][..taps];
                for (t, dw) in dw.iter_mut().enumerate() {
                    *dw += self.taps[t * op + co] as f32;
                }
            }
        }
    }
}

/// `total += part`, in f64.
#[inline(always)]
fn add_widened_body(total: &mut [f64], part: &[f32]) {
    for (t, p) in total.iter_mut().zip(part) {
        *t += *p as f64;
    }
}

crate::kernels::isa::compiled_per_isa! {
    /// `add_widened_body` compiled for `isa`.
    fn add_widened => add_widened_body(total: &mut [f64], part: &[f32])
}

/// `acc += c * point`.
#[inline(always)]
fn combine_body(acc: &mut [f64], c: f64, point: &[f64]) {
    for (a, v) in acc.iter_mut().zip(point) {
        *a += c * v;
    }
}

crate::kernels::isa::compiled_per_isa! {
    /// `combine_body` compiled for `isa`.
    fn combine => combine_body(acc: &mut [f64], c: f64, point: &[f64])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{Padding, Window2d};
    use crate::kernels::conv::conv2d_backward_ref;
    use crate::kernels::conv::tile::tests::runnable_kernels;
    use crate::rng::Rng;

    /// Rounding allowed: this many float epsilons of each weight's sum of absolute terms
    /// (`tests.rs`, `WINOGRAD_WEIGHT_GRAD_ULPS`, says why it is larger than the forward pass's).
    const ULPS: f32 = 16.0 * f32::EPSILON;

    /// Sums over a few samples against the definition, 3x3 and 5x5, on every tile this CPU
    /// has: channels that fill no whole vector (17, 33, 40) and that do, several panels of
    /// output channels, odd sides (a last block half outside), lopsided padding, one output
    /// pixel, images of several strips (the last one shorter); samples added on one thread and
    /// across a pool; added to what the gradient held; one scratch for every problem, larger
    /// after smaller and back, and a `finish` with nothing added that changes nothing.
    #[test]
    fn each_sum_matches_the_definition() {
        let mut rng = Rng::new(44);
        // (samples, c_in, c_out, filter side, padding [top, bottom, left, right], h, w)
        type Shape = (usize, usize, usize, usize, [usize; 4], usize, usize);
        let shapes: &[Shape] = &[
            (3, 32, 64, 5, [2, 2, 2, 2], 14, 14), // the MNIST net's conv2: 49 blocks, one strip
            (2, 17, 40, 5, [0, 3, 1, 2], 7, 8),
            (1, 16, 20, 5, [0, 0, 0, 0], 5, 5), // one output pixel
            (2, 20, 16, 3, [1, 1, 1, 1], 9, 7),
            (1, 16, 33, 3, [1, 1, 1, 1], 40, 30), // 300 blocks: strips of 60, the last 60 too
            (2, 48, 33, 3, [0, 2, 1, 0], 41, 11),  // strips of 60 blocks and a last of 45
            (1, 16, 16, 3, [0, 0, 0, 0], 3, 3),
        ];
        let mut s = WeightGradScratch::default();
        for kernel in runnable_kernels("winograd weight gradient") {
            for &(n, c_in, c_out, r, pad, h, w) in shapes.iter().chain(shapes.iter().rev()) {
                let window = Window2d { padding: Padding::explicit(pad), ..Window2d::square(r, 1, Padding::Valid) };
                let geom = window.resolve(h, w).unwrap();
                let one = ConvDims { n: 1, c_in, c_out, groups: 1, geom };
                let all = ConvDims { n, ..one };
                let x = rng.uniform_vec(n * c_in * h * w, -1.0, 1.0);
                let dy = rng.uniform_vec(n * c_out * one.out_plane(), -1.0, 1.0);
                let weight = vec![0.0; c_out * c_in * r * r];
                let start = rng.uniform_vec(weight.len(), -1.0, 1.0);
                let (mut want, mut dx, mut db) = (start.clone(), vec![0.0; x.len()], vec![0.0; c_out]);
                conv2d_backward_ref(&mut dx, &mut want, &mut db, &dy, &x, &weight, &all);
                let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<f32>>();
                let mut size = vec![0.0; weight.len()];
                conv2d_backward_ref(&mut dx, &mut size, &mut db, &abs(&dy), &abs(&x), &weight, &all);
                let mut got = start.clone();
                s.finish(&mut got);
                assert_eq!(got, start, "{kernel:?}: a finish with no samples");
                for (i, (x, dy)) in x.chunks_exact(c_in * h * w).zip(dy.chunks_exact(c_out * one.out_plane())).enumerate() {
                    let threads = if i % 2 == 1 { Threads::Pool } else { Threads::One };
                    crate::kernels::conv::tests::in_pool(3, || s.add_sample(kernel, dy, x, &one, threads));
                }
                s.finish(&mut got);
                for (i, (got, want)) in got.iter().zip(&want).enumerate() {
                    let ok = (got - want).abs() <= 1e-4 * (1.0 + want.abs()) + ULPS * size[i];
                    assert!(ok, "{kernel:?} {n} x {c_in}->{c_out} {r}x{r} on {h}x{w}: dw[{i}] {got} vs {want} (terms of size {})", size[i]);
                }
            }
        }
    }
}
