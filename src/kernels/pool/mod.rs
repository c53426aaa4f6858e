//! Max, average and adaptive average pooling over `[planes, H, W]` (planes = N * C), forward and
//! backward. Padding cells never take part: a max pool never picks one, an average counts only
//! real cells (TensorFlow's rule, PyTorch's `count_include_pad=False`). Windows are not dilated
//! (the pooling layers refuse dilation).

mod stride2;

use super::Store;
use crate::geometry::Geometry;
use rayon::prelude::*;

/// Planes per parallel task: enough work per task to be worth a thread.
fn planes_per_task(plane_len: usize) -> usize {
    (16384 / plane_len.max(1)).max(1)
}

/// Real input cells `[lo, hi)` under the window of output cell `o` along one axis.
fn window(axis: &crate::geometry::Axis, o: usize) -> (usize, usize) {
    let start = axis.start(o);
    let end = start + axis.span() as isize;
    (start.max(0) as usize, end.clamp(0, axis.input as isize) as usize)
}

/// Max pooling. `out: [P, Ho, Wo]` and `argmax: [P, Ho, Wo]` (index of the winning cell inside
/// its input plane) are overwritten; `input: [P, H, W]`. Ties go to the first cell in row-major
/// order and a NaN always wins (the last one), as in PyTorch's CPU kernel.
pub fn max_pool_forward(out: &mut [f32], argmax: &mut [u32], input: &[f32], g: &Geometry) {
    let (h, w) = g.in_hw();
    let (ho, wo) = g.out_hw();
    let (in_len, out_len) = (h * w, ho * wo);
    let per = planes_per_task(in_len);
    let plan = ColumnPlan::new(g);
    out.par_chunks_mut(out_len * per)
        .zip(argmax.par_chunks_mut(out_len * per))
        .zip(input.par_chunks(in_len * per))
        .for_each(|((out, arg), x)| max_pool_planes(out, arg, x, g, Some(&plan)));
}

/// `max_pool_forward` on the calling thread (a convolution pools each sample's output right
/// after computing it, while it is in cache: `Epilogue::ReluThenMaxPool`).
pub fn max_pool_forward_here(out: &mut [f32], argmax: &mut [u32], input: &[f32], g: &Geometry) {
    max_pool_planes(out, argmax, input, g, None);
}

/// Max pooling of whole planes, `out`, `arg: [P, Ho, Wo]`, `x: [P, H, W]`; `plan` is built here
/// when not given and needed.
fn max_pool_planes(out: &mut [f32], arg: &mut [u32], x: &[f32], g: &Geometry, plan: Option<&ColumnPlan>) {
    let (h, w) = g.in_hw();
    let (ho, wo) = g.out_hw();
    if is_plain_2x2(g) {
        return max_pool_2x2_planes(out, arg, x, (h, w), (ho, wo));
    }
    let own;
    let plan = match plan {
        Some(plan) => plan,
        None => {
            own = ColumnPlan::new(g);
            &own
        }
    };
    // Stride 2 (ResNet's, AlexNet's and GoogLeNet's 3x3 pools): the general loop's lanes
    // would gather every other cell.
    if stride2::applies(g) {
        return stride2::planes(out, arg, x, g, plan);
    }
    for ((y, a), x) in out.chunks_mut(ho * wo).zip(arg.chunks_mut(ho * wo)).zip(x.chunks(h * w)) {
        max_pool_plane_general(y, a, x, g, plan);
    }
}

/// The columns of every output window, shared by all planes of a call.
struct ColumnPlan {
    /// Outputs whose windows lie wholly inside the row: `[inner_lo, inner_hi)`.
    inner_lo: usize,
    inner_hi: usize,
    /// Real input columns `[lo, hi)` of each output's window.
    cols: Vec<(usize, usize)>,
}

impl ColumnPlan {
    fn new(g: &Geometry) -> Self {
        let (w, wo, span) = (g.cols.input as isize, g.cols.output, g.cols.span() as isize);
        let inner_lo = (0..wo).find(|&ox| g.cols.start(ox) >= 0).unwrap_or(wo);
        let inner_hi = (inner_lo..wo).take_while(|&ox| g.cols.start(ox) + span <= w).last().map_or(inner_lo, |ox| ox + 1);
        ColumnPlan { inner_lo, inner_hi, cols: (0..wo).map(|ox| window(&g.cols, ox)).collect() }
    }
}

/// Max pooling of one plane over any window: `y`, `a: [Ho, Wo]`, `x: [H, W]`.
fn max_pool_plane_general(y: &mut [f32], a: &mut [u32], x: &[f32], g: &Geometry, plan: &ColumnPlan) {
    let (_, w) = g.in_hw();
    let (ho, wo) = g.out_hw();
    const L: usize = 8;
    let (span, stride) = (g.cols.span(), g.cols.stride);
    let ColumnPlan { inner_lo, inner_hi, cols } = plan;
    let (inner_lo, inner_hi) = (*inner_lo, *inner_hi);
    for oy in 0..ho {
        let (y0, y1) = window(&g.rows, oy);
        let (y_row, a_row) = (&mut y[oy * wo..(oy + 1) * wo], &mut a[oy * wo..(oy + 1) * wo]);
        let mut ox0 = inner_lo;
        // Eight interior outputs at a time: eight independent running maxima instead of one
        // dependent chain, each still visiting its window in row-major order.
        while ox0 + L <= inner_hi {
            let first = cols[ox0].0;
            let (mut best, mut best_i) = ([f32::NEG_INFINITY; L], [0usize; L]);
            for (l, b) in best_i.iter_mut().enumerate() {
                *b = y0 * w + first + l * stride;
            }
            for iy in y0..y1 {
                let row = &x[iy * w..(iy + 1) * w];
                for dx in 0..span {
                    for l in 0..L {
                        let ix = first + l * stride + dx;
                        let v = row[ix];
                        let take = (v > best[l]) | v.is_nan();
                        best[l] = if take { v } else { best[l] };
                        best_i[l] = if take { iy * w + ix } else { best_i[l] };
                    }
                }
            }
            for l in 0..L {
                y_row[ox0 + l] = best[l];
                a_row[ox0 + l] = best_i[l] as u32;
            }
            ox0 += L;
        }
        let rest = (0..inner_lo).chain(ox0..wo);
        for ox in rest {
            let (x0, x1) = cols[ox];
            let (out, arg) = (&mut y_row[ox], &mut a_row[ox]);
            let mut best = f32::NEG_INFINITY;
            let mut best_i = y0 * w + x0;
            for iy in y0..y1 {
                // One row of the window as a slice: no per-cell bounds checks.
                for (i, &v) in (iy * w + x0..).zip(&x[iy * w + x0..iy * w + x1]) {
                    // Branch-free: which cell wins is data, not a pattern to predict.
                    let take = (v > best) | v.is_nan();
                    best = if take { v } else { best };
                    best_i = if take { i } else { best_i };
                }
            }
            *out = best;
            *arg = best_i as u32;
        }
    }
}

/// 2x2 windows at stride 2 without padding: the lecture's pooling, and most common by far.
fn is_plain_2x2(g: &Geometry) -> bool {
    let plain = |a: &crate::geometry::Axis| a.kernel == 2 && a.stride == 2 && a.dilation == 1 && a.pad_lo == 0 && 2 * a.output <= a.input;
    plain(&g.rows) && plain(&g.cols)
}

/// 2x2 stride-2 max pooling of whole planes: `y`, `arg: [P, ho, wo]`, `x: [P, h, w]`. Same rules
/// as the general loop (first maximum in row-major order wins, a NaN wins), computed in runs of
/// windows side by side in fixed-size lanes the compiler vectorises: 16 at a time, or 8 or 4
/// for rows narrower than that (MNIST's 14 and 7, LeNet-5's 5). A row's last run ends at the
/// row's end and may overlap the one before (its outputs are the same values written twice),
/// so no window is left to a scalar tail unless the row is narrower than 4.
fn max_pool_2x2_planes(y: &mut [f32], arg: &mut [u32], x: &[f32], (h, w): (usize, usize), (ho, wo): (usize, usize)) {
    max_pool_2x2_by_width::<true>(y, arg, x, (h, w), (ho, wo))
}

/// Max pooling of whole planes without the argmax, `out: [P, Ho, Wo]`, `x: [P, H, W]`, where
/// that is faster: 2x2 windows at stride 2 (the values are `max_pool_forward`'s). Returns
/// whether it pooled (`false`: other windows, nothing written).
pub fn max_pool_values_here(out: &mut [f32], x: &[f32], g: &Geometry) -> bool {
    if !is_plain_2x2(g) {
        return false;
    }
    max_pool_2x2_by_width::<false>(out, &mut [], x, g.in_hw(), g.out_hw());
    true
}

/// `max_pool_2x2_planes`, in the widest runs the rows allow; with `ARG`, the argmax too (else
/// `arg` is not read and may be empty). Baseline x86-64 code (SSE2): compiled for AVX2 or
/// AVX-512 the compiler's code for the argmax was slower (`bench pool` forward 0.40-0.46 ->
/// 0.78-0.93 ms), and the values alone no faster in inference.
fn max_pool_2x2_by_width<const ARG: bool>(y: &mut [f32], arg: &mut [u32], x: &[f32], (h, w): (usize, usize), (ho, wo): (usize, usize)) {
    match wo {
        16.. => max_pool_2x2_runs::<16, ARG>(y, arg, x, (h, w), (ho, wo)),
        8..16 => max_pool_2x2_runs::<8, ARG>(y, arg, x, (h, w), (ho, wo)),
        4..8 => max_pool_2x2_runs::<4, ARG>(y, arg, x, (h, w), (ho, wo)),
        _ => max_pool_2x2_runs::<1, ARG>(y, arg, x, (h, w), (ho, wo)),
    }
}

/// `max_pool_2x2_planes` in runs of `R <= wo` windows (the argmax with `ARG` only).
#[inline(always)]
fn max_pool_2x2_runs<const R: usize, const ARG: bool>(y: &mut [f32], arg: &mut [u32], x: &[f32], (h, w): (usize, usize), (ho, wo): (usize, usize)) {
    debug_assert!(R <= wo);
    let runs = wo.div_ceil(R);
    let plane = ho * wo;
    for (p, (y, x)) in y.chunks_exact_mut(plane).zip(x.chunks_exact(h * w)).enumerate() {
        for oy in 0..ho {
            let (top, bottom) = (&x[2 * oy * w..(2 * oy + 1) * w], &x[(2 * oy + 1) * w..(2 * oy + 2) * w]);
            let y_row = &mut y[oy * wo..(oy + 1) * wo];
            for run in 0..runs {
                let ox0 = (run * R).min(wo - R);
                let t = top[2 * ox0..2 * ox0 + 2 * R].as_chunks::<2>().0.try_into().expect("R pairs");
                let b = bottom[2 * ox0..2 * ox0 + 2 * R].as_chunks::<2>().0.try_into().expect("R pairs");
                let y_out = (&mut y_row[ox0..ox0 + R]).try_into().expect("R outputs");
                if ARG {
                    let a_out = (&mut arg[p * plane + oy * wo + ox0..][..R]).try_into().expect("R outputs");
                    max_2x2_run::<R>(t, b, w as u32, (2 * oy * w + 2 * ox0) as u32, y_out, a_out);
                } else {
                    max_2x2_values::<R>(t, b, y_out);
                }
            }
        }
    }
}

/// `max_2x2_run`'s values alone.
#[inline(always)]
fn max_2x2_values<const R: usize>(top: &[[f32; 2]; R], bottom: &[[f32; 2]; R], y: &mut [f32; R]) {
    for k in 0..R {
        let mut best = top[k][0];
        for v in [top[k][1], bottom[k][0], bottom[k][1]] {
            best = if (v > best) | v.is_nan() { v } else { best };
        }
        y[k] = best;
    }
}

/// `R` windows side by side: `top` and `bottom` hold their two rows (`2 R` cells each), the
/// first window's top-left cell at plane index `first`, rows `w` apart. (`[f32; 2 * R]` is not
/// a type stable Rust allows for a generic `R`, hence the nested arrays.)
#[inline(always)]
fn max_2x2_run<const R: usize>(top: &[[f32; 2]; R], bottom: &[[f32; 2]; R], w: u32, first: u32, y: &mut [f32; R], arg: &mut [u32; R]) {
    // The four cells of each window, in row-major order, as lanes.
    let mut cells = [[0.0f32; R]; 4];
    for k in 0..R {
        cells[0][k] = top[k][0];
        cells[1][k] = top[k][1];
        cells[2][k] = bottom[k][0];
        cells[3][k] = bottom[k][1];
    }
    let offsets = [0u32, 1, w, w + 1];
    let mut best = cells[0];
    let mut which = [0u32; R];
    // A NaN already in the first cell stays (nothing is greater than NaN, and a later NaN only
    // moves the index, as PyTorch's loop does).
    for (cell, off) in cells.iter().zip(offsets).skip(1) {
        for k in 0..R {
            let v = cell[k];
            let take = (v > best[k]) | v.is_nan();
            best[k] = if take { v } else { best[k] };
            which[k] = if take { off } else { which[k] };
        }
    }
    *y = best;
    for k in 0..R {
        arg[k] = first + 2 * k as u32 + which[k];
    }
}

/// `d_input[argmax] += d_out`, plane by plane. `d_input: [P, H, W]`, `d_out`, `argmax: [P, Ho, Wo]`.
/// With `Store::Write`, `d_input` is zeroed first, a share at a time while it is in cache.
pub fn max_pool_backward(d_input: &mut [f32], d_out: &[f32], argmax: &[u32], in_len: usize, out_len: usize, store: Store) {
    scatter(d_input, d_out, argmax, None, in_len, out_len, store);
}

/// The max pool's and a plain ReLU's backward in one scatter, for `maxpool(relu(z))`:
/// `d_z[argmax] += d_out` where the pool's output `out` (the ReLU's output at `argmax`) is not
/// `<= 0`, as the ReLU's rule passes it (a NaN passes). Shapes as `max_pool_backward`.
pub fn max_pool_backward_gated(d_input: &mut [f32], d_out: &[f32], argmax: &[u32], out: &[f32], in_len: usize, out_len: usize, store: Store) {
    scatter(d_input, d_out, argmax, Some(out), in_len, out_len, store);
}

/// Both scatters: planes in tasks across the pool, each task's share of `d_input` zeroed in
/// cache first for `Store::Write`; `gate` (the pool's output) stops a gradient where `<= 0`.
fn scatter(d_input: &mut [f32], d_out: &[f32], argmax: &[u32], gate: Option<&[f32]>, in_len: usize, out_len: usize, store: Store) {
    let per = planes_per_task(in_len);
    d_input.par_chunks_mut(in_len * per).zip(d_out.par_chunks(out_len * per)).zip(argmax.par_chunks(out_len * per)).enumerate().for_each(
        |(task, ((dx, dy), arg))| {
            if store == Store::Write {
                dx.fill(0.0);
            }
            let gate = gate.map(|out| &out[task * out_len * per..][..dy.len()]);
            scatter_planes(dx, dy, arg, gate, in_len, out_len);
        },
    );
}

/// The scatter of `max_pool_backward` (`gate`: of `max_pool_backward_gated`) on one thread,
/// added to `d_input: [P, H, W]`; `d_out`, `argmax`, `gate: [P, Ho, Wo]`. A convolution takes
/// its output gradient this way a sample at a time (`conv::PooledGrad`).
pub fn scatter_planes(d_input: &mut [f32], d_out: &[f32], argmax: &[u32], gate: Option<&[f32]>, in_len: usize, out_len: usize) {
    for (p, (dx, dy)) in d_input.chunks_mut(in_len).zip(d_out.chunks(out_len)).enumerate() {
        let arg = &argmax[p * out_len..][..out_len];
        match gate {
            None => dy.iter().zip(arg).for_each(|(&g, &i)| dx[i as usize] += g),
            Some(out) => {
                let out = &out[p * out_len..][..out_len];
                for ((&g, &i), &y) in dy.iter().zip(arg).zip(out) {
                    dx[i as usize] += if y <= 0.0 { 0.0 } else { g };
                }
            }
        }
    }
}

/// Average pooling over the real cells of each window. `out: [P, Ho, Wo]` overwritten,
/// `input: [P, H, W]`.
pub fn avg_pool_forward(out: &mut [f32], input: &[f32], g: &Geometry) {
    let (h, w) = g.in_hw();
    let (ho, wo) = g.out_hw();
    let (in_len, out_len) = (h * w, ho * wo);
    let per = planes_per_task(in_len);
    out.par_chunks_mut(out_len * per).zip(input.par_chunks(in_len * per)).for_each(|(out, x)| {
        for (y, x) in out.chunks_mut(out_len).zip(x.chunks(in_len)) {
            for oy in 0..ho {
                let (y0, y1) = window(&g.rows, oy);
                for ox in 0..wo {
                    let (x0, x1) = window(&g.cols, ox);
                    let (mut s, mut count) = (0.0f32, 0usize);
                    for iy in y0..y1 {
                        for ix in x0..x1 {
                            s += x[iy * w + ix];
                            count += 1;
                        }
                    }
                    y[oy * wo + ox] = s / count.max(1) as f32;
                }
            }
        }
    });
}

/// Spreads each output gradient evenly over the real cells of its window, `+=` into
/// `d_input: [P, H, W]`.
pub fn avg_pool_backward(d_input: &mut [f32], d_out: &[f32], g: &Geometry) {
    let (h, w) = g.in_hw();
    let (ho, wo) = g.out_hw();
    let (in_len, out_len) = (h * w, ho * wo);
    let per = planes_per_task(in_len);
    d_input.par_chunks_mut(in_len * per).zip(d_out.par_chunks(out_len * per)).for_each(|(dx, dy)| {
        for (dx, dy) in dx.chunks_mut(in_len).zip(dy.chunks(out_len)) {
            for oy in 0..ho {
                let (y0, y1) = window(&g.rows, oy);
                let rows = y1 - y0;
                for ox in 0..wo {
                    let (x0, x1) = window(&g.cols, ox);
                    let cols = x1 - x0;
                    let share = dy[oy * wo + ox] / (rows * cols).max(1) as f32;
                    for iy in y0..y1 {
                        for ix in x0..x1 {
                            dx[iy * w + ix] += share;
                        }
                    }
                }
            }
        }
    });
}

/// PyTorch's adaptive pooling bins: output cell `i` of `out` covers input cells
/// `[floor(i * n / out), ceil((i + 1) * n / out))`.
pub fn adaptive_bin(i: usize, n: usize, out: usize) -> (usize, usize) {
    (i * n / out, ((i + 1) * n).div_ceil(out))
}

/// Adaptive average pooling (torchvision's `AdaptiveAvgPool2d`). `out: [P, oh, ow]` overwritten,
/// `input: [P, h, w]`.
pub fn adaptive_avg_forward(out: &mut [f32], input: &[f32], (h, w): (usize, usize), (oh, ow): (usize, usize)) {
    let (in_len, out_len) = (h * w, oh * ow);
    out.par_chunks_mut(out_len).zip(input.par_chunks(in_len)).for_each(|(y, x)| {
        for oy in 0..oh {
            let (y0, y1) = adaptive_bin(oy, h, oh);
            for ox in 0..ow {
                let (x0, x1) = adaptive_bin(ox, w, ow);
                let mut s = 0.0f32;
                for iy in y0..y1 {
                    s += x[iy * w + x0..iy * w + x1].iter().sum::<f32>();
                }
                y[oy * ow + ox] = s / ((y1 - y0) * (x1 - x0)) as f32;
            }
        }
    });
}

/// Backward of `adaptive_avg_forward`, `+=` into `d_input: [P, h, w]`.
pub fn adaptive_avg_backward(d_input: &mut [f32], d_out: &[f32], (h, w): (usize, usize), (oh, ow): (usize, usize)) {
    let (in_len, out_len) = (h * w, oh * ow);
    d_input.par_chunks_mut(in_len).zip(d_out.par_chunks(out_len)).for_each(|(dx, dy)| {
        for oy in 0..oh {
            let (y0, y1) = adaptive_bin(oy, h, oh);
            for ox in 0..ow {
                let (x0, x1) = adaptive_bin(ox, w, ow);
                let share = dy[oy * ow + ox] / ((y1 - y0) * (x1 - x0)) as f32;
                for iy in y0..y1 {
                    dx[iy * w + x0..iy * w + x1].iter_mut().for_each(|v| *v += share);
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{Padding, Window2d};

    #[test]
    fn adaptive_bins_as_pytorch() {
        // 7 -> 3: [0,3), [2,5), [4,7)
        assert_eq!((0..3).map(|i| adaptive_bin(i, 7, 3)).collect::<Vec<_>>(), vec![(0, 3), (2, 5), (4, 7)]);
        // 13 -> 6 (AlexNet on a 224 input keeps 6x6 from 6x6).
        assert_eq!(adaptive_bin(0, 6, 6), (0, 1));
    }

    #[test]
    fn the_2x2_fast_path_matches_the_general_loop() {
        // Rows of 3 outputs (one window at a time), of 5, 6, 7 and 14 (runs of 4 and 8, the
        // last overlapping: LeNet-5's and MNIST's), one run of 16 and an overlapping one, two
        // runs and an odd last column left out.
        for (h, w) in [(7, 6), (10, 10), (9, 12), (4, 14), (8, 28), (6, 40), (5, 71)] {
            fast_2x2_matches_the_general_loop(h, w);
        }
    }

    fn fast_2x2_matches_the_general_loop(h: usize, w: usize) {
        // Many ties (values from a small set) and a few NaNs.
        let mut rng = crate::rng::Rng::new(5);
        let mut x: Vec<f32> = (0..3 * h * w).map(|_| rng.below(4) as f32).collect();
        x[7] = f32::NAN;
        x[40] = f32::NAN;
        x[41] = f32::NAN;
        // A window of -inf only: the padding of a short run is -inf too and must not move it.
        for i in [2 * w, 2 * w + 1, 3 * w, 3 * w + 1] {
            x[i] = f32::NEG_INFINITY;
        }
        let g = Window2d::square(2, 2, Padding::Valid).resolve(h, w).unwrap();
        assert!(is_plain_2x2(&g));
        let (ho, wo) = g.out_hw();
        let (mut y1, mut a1) = (vec![0.0; 3 * ho * wo], vec![0u32; 3 * ho * wo]);
        let (mut y2, mut a2) = (y1.clone(), a1.clone());
        max_pool_forward(&mut y1, &mut a1, &x, &g);
        for p in 0..3 {
            let r = p * ho * wo..(p + 1) * ho * wo;
            max_pool_plane_general(&mut y2[r.clone()], &mut a2[r], &x[p * h * w..(p + 1) * h * w], &g, &ColumnPlan::new(&g));
        }
        assert_eq!(a1, a2);
        assert!(y1.iter().zip(&y2).all(|(a, b)| a == b || (a.is_nan() && b.is_nan())));
        assert!(y1.iter().any(|v| v.is_nan()));
        // The values alone (inference) are the same values, bit for bit.
        let mut y3 = vec![0.0; y1.len()];
        assert!(max_pool_values_here(&mut y3, &x, &g));
        assert!(y1.iter().zip(&y3).all(|(a, b)| a.to_bits() == b.to_bits()), "{h}x{w}: the values alone differ");
    }

    /// Pooling the values alone declines windows other than 2x2 at stride 2 (and writes
    /// nothing), which keep the general loop.
    #[test]
    fn the_values_alone_are_pooled_for_2x2_windows_only() {
        let x = vec![1.0; 2 * 9 * 9];
        for window in [Window2d::square(3, 2, Padding::Valid), Window2d::square(2, 1, Padding::Valid), Window2d::square(2, 2, Padding::uniform(1))] {
            let g = window.resolve(9, 9).unwrap();
            let mut y = vec![f32::NAN; 2 * g.rows.output * g.cols.output];
            assert!(!max_pool_values_here(&mut y, &x, &g), "{window:?}");
            assert!(y.iter().all(|v| v.is_nan()));
        }
    }

    /// The definition: every output's window cell by cell, row-major.
    pub(super) fn max_pool_plane_ref(y: &mut [f32], a: &mut [u32], x: &[f32], g: &Geometry) {
        let (_, w) = g.in_hw();
        let (ho, wo) = g.out_hw();
        for oy in 0..ho {
            let (y0, y1) = window(&g.rows, oy);
            for ox in 0..wo {
                let (x0, x1) = window(&g.cols, ox);
                let (mut best, mut best_i) = (f32::NEG_INFINITY, y0 * w + x0);
                for iy in y0..y1 {
                    for ix in x0..x1 {
                        let v = x[iy * w + ix];
                        if v > best || v.is_nan() {
                            (best, best_i) = (v, iy * w + ix);
                        }
                    }
                }
                y[oy * wo + ox] = best;
                a[oy * wo + ox] = best_i as u32;
            }
        }
    }

    #[test]
    fn eight_outputs_at_a_time_match_the_definition() {
        // Overlapping windows (AlexNet's 3x3 stride 2, ResNet's with padding 1, stride 1) on
        // rows wide enough for the eight-lane path, with ties and NaNs.
        let mut rng = crate::rng::Rng::new(8);
        for (k, s, p) in [(3, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 0), (5, 3, 2)] {
            let (h, w) = (23, 57);
            let mut x: Vec<f32> = (0..h * w).map(|_| rng.below(5) as f32).collect();
            for i in [30, 31, 200, 201, 202, 777] {
                x[i] = f32::NAN;
            }
            let g = Window2d::square(k, s, Padding::uniform(p)).resolve(h, w).unwrap();
            let (ho, wo) = g.out_hw();
            let (mut y1, mut a1) = (vec![0.0; ho * wo], vec![0u32; ho * wo]);
            let (mut y2, mut a2) = (y1.clone(), a1.clone());
            max_pool_plane_general(&mut y1, &mut a1, &x, &g, &ColumnPlan::new(&g));
            max_pool_plane_ref(&mut y2, &mut a2, &x, &g);
            assert_eq!(a1, a2, "{k}x{k} stride {s} pad {p}");
            assert!(y1.iter().zip(&y2).all(|(a, b)| a == b || (a.is_nan() && b.is_nan())));
        }
    }

    #[test]
    fn padded_cells_never_win_a_max() {
        // All inputs negative: with SAME padding a padded zero would win if it took part.
        let g = Window2d::square(2, 2, Padding::Same).resolve(3, 3).unwrap();
        let x: Vec<f32> = (0..9).map(|i| -1.0 - i as f32).collect();
        let (mut y, mut a) = (vec![0.0; 4], vec![0u32; 4]);
        max_pool_forward(&mut y, &mut a, &x, &g);
        assert_eq!(y, vec![-1.0, -3.0, -7.0, -9.0]);
    }

    #[test]
    fn average_counts_only_real_cells() {
        let g = Window2d::square(3, 1, Padding::Same).resolve(2, 2).unwrap();
        let x = vec![1.0, 2.0, 3.0, 4.0];
        let mut y = vec![0.0; 4];
        avg_pool_forward(&mut y, &x, &g);
        assert_eq!(y, vec![2.5; 4]);
    }

    /// Geometries for the pooling tests: square and oblong windows, strides, padding, SAME on
    /// odd sides (one axis 2x2-plain, the other not), ceil mode; rows wide enough for the
    /// eight-output path.
    fn geometries() -> Vec<(Window2d, usize, usize)> {
        let w = |k: [usize; 2], s: [usize; 2], padding: Padding, ceil_mode: bool| Window2d { kernel: k, stride: s, dilation: [1, 1], padding, ceil_mode };
        vec![
            (w([2, 2], [2, 2], Padding::Valid, false), 8, 22),
            (w([2, 2], [2, 2], Padding::Same, false), 8, 7),
            (w([2, 2], [2, 2], Padding::Same, false), 7, 8),
            (w([3, 3], [2, 2], Padding::Valid, true), 9, 26),
            (w([3, 3], [1, 1], Padding::uniform(1), false), 6, 21),
            (w([2, 3], [1, 2], Padding::explicit([1, 0, 0, 1]), false), 7, 24),
            (w([5, 4], [3, 2], Padding::Same, false), 11, 29),
            (w([4, 4], [4, 4], Padding::Valid, false), 8, 40),
        ]
    }

    /// Random planes with ties, NaNs and blocks of -inf (windows of nothing but -inf keep the
    /// index of their first real cell, as PyTorch's loop does).
    fn hostile_planes(planes: usize, h: usize, w: usize, seed: u64) -> Vec<f32> {
        let mut rng = crate::rng::Rng::new(seed);
        let mut x: Vec<f32> = (0..planes * h * w).map(|_| rng.below(6) as f32 - 2.0).collect();
        for p in 0..planes {
            for y in 0..h.min(4) {
                for c in 0..w.min(12) {
                    x[p * h * w + y * w + c] = f32::NEG_INFINITY;
                }
            }
            x[p * h * w + (p * 7) % (h * w)] = f32::NAN;
        }
        x
    }

    #[test]
    fn max_pooling_matches_the_definition_on_every_path() {
        for (i, (win, h, w)) in geometries().into_iter().enumerate() {
            let g = win.resolve(h, w).unwrap();
            let (ho, wo) = g.out_hw();
            let planes = 5;
            let x = hostile_planes(planes, h, w, i as u64);
            let (mut y, mut a) = (vec![0.0; planes * ho * wo], vec![0u32; planes * ho * wo]);
            max_pool_forward(&mut y, &mut a, &x, &g);
            let (mut y_ref, mut a_ref) = (y.clone(), a.clone());
            for p in 0..planes {
                let r = p * ho * wo..(p + 1) * ho * wo;
                max_pool_plane_ref(&mut y_ref[r.clone()], &mut a_ref[r], &x[p * h * w..(p + 1) * h * w], &g);
            }
            assert_eq!(a, a_ref, "{win:?} on {h}x{w}");
            assert!(y.iter().zip(&y_ref).all(|(a, b)| a == b || (a.is_nan() && b.is_nan())), "{win:?} on {h}x{w}");
            // The gradient goes to the winning cell of each window, added onto what is there.
            let dy: Vec<f32> = (0..y.len()).map(|j| (j % 7) as f32 + 0.5).collect();
            // Written instead (the buffer's NaNs gone), the same sums from zero; and gated by a
            // ReLU's output before the pool (its output here: only positive maxima pass).
            for (store, start) in [(Store::Add, 1.0), (Store::Write, f32::NAN)] {
                for gated in [false, true] {
                    let mut dx = vec![start; x.len()];
                    match gated {
                        false => max_pool_backward(&mut dx, &dy, &a, h * w, ho * wo, store),
                        true => max_pool_backward_gated(&mut dx, &dy, &a, &y, h * w, ho * wo, store),
                    }
                    let mut want = vec![if store == Store::Add { 1.0f64 } else { 0.0 }; x.len()];
                    for (j, &g) in dy.iter().enumerate() {
                        // The ReLU stops it where its output is <= 0 (a NaN passes).
                        let passes = !gated || y[j] > 0.0 || y[j].is_nan();
                        if passes {
                            want[j / (ho * wo) * h * w + a_ref[j] as usize] += g as f64;
                        }
                    }
                    assert!(dx.iter().zip(&want).all(|(a, b)| (*a as f64 - b).abs() < 1e-4), "{win:?} on {h}x{w}, {store:?}, gated {gated}");
                }
            }
        }
    }

    #[test]
    fn average_pooling_and_its_gradient_are_their_definitions() {
        for (i, (win, h, w)) in geometries().into_iter().enumerate() {
            let g = win.resolve(h, w).unwrap();
            let (ho, wo) = g.out_hw();
            let planes = 4;
            let mut rng = crate::rng::Rng::new(40 + i as u64);
            let x = rng.uniform_vec(planes * h * w, -1.0, 1.0);
            let mut y = vec![f32::NAN; planes * ho * wo];
            avg_pool_forward(&mut y, &x, &g);
            let dy = rng.uniform_vec(y.len(), -1.0, 1.0);
            let mut dx = vec![0.25; x.len()];
            avg_pool_backward(&mut dx, &dy, &g);
            let mut dx_ref = vec![0.25f64; x.len()];
            for p in 0..planes {
                for oy in 0..ho {
                    for ox in 0..wo {
                        // The real cells under the window, counted by the definition.
                        let cells: Vec<usize> = (0..h)
                            .flat_map(|iy| (0..w).map(move |ix| (iy, ix)))
                            .filter(|&(iy, ix)| {
                                let (ry, rx) = (g.rows.start(oy), g.cols.start(ox));
                                (iy as isize) >= ry && (iy as isize) < ry + g.rows.span() as isize && (ix as isize) >= rx && (ix as isize) < rx + g.cols.span() as isize
                            })
                            .map(|(iy, ix)| p * h * w + iy * w + ix)
                            .collect();
                        let mean = cells.iter().map(|&c| x[c] as f64).sum::<f64>() / cells.len() as f64;
                        let j = p * ho * wo + oy * wo + ox;
                        assert!((y[j] as f64 - mean).abs() < 1e-5, "{win:?} on {h}x{w}: output {j}");
                        for &c in &cells {
                            dx_ref[c] += dy[j] as f64 / cells.len() as f64;
                        }
                    }
                }
            }
            assert!(dx.iter().zip(&dx_ref).all(|(a, b)| (*a as f64 - b).abs() < 1e-5), "{win:?} on {h}x{w}");
        }
    }

    #[test]
    fn adaptive_pooling_and_its_gradient_are_their_definitions() {
        // Shrinking by whole and by ragged factors, the identity, growing, and a global pool.
        for (i, ((h, w), (oh, ow))) in [((7, 7), (3, 3)), ((13, 9), (6, 4)), ((5, 5), (5, 5)), ((3, 4), (6, 5)), ((7, 7), (1, 1))].into_iter().enumerate() {
            let planes = 6;
            let mut rng = crate::rng::Rng::new(70 + i as u64);
            let x = rng.uniform_vec(planes * h * w, -1.0, 1.0);
            let mut y = vec![f32::NAN; planes * oh * ow];
            adaptive_avg_forward(&mut y, &x, (h, w), (oh, ow));
            let dy = rng.uniform_vec(y.len(), -1.0, 1.0);
            let mut dx = vec![-0.5; x.len()];
            adaptive_avg_backward(&mut dx, &dy, (h, w), (oh, ow));
            let mut dx_ref = vec![-0.5f64; x.len()];
            for p in 0..planes {
                for oy in 0..oh {
                    // PyTorch: start = floor(o * n / out), end = ceil((o + 1) * n / out).
                    let (y0, y1) = (oy * h / oh, ((oy + 1) * h).div_ceil(oh));
                    for ox in 0..ow {
                        let (x0, x1) = (ox * w / ow, ((ox + 1) * w).div_ceil(ow));
                        let n = ((y1 - y0) * (x1 - x0)) as f64;
                        let cells = (y0..y1).flat_map(|iy| (x0..x1).map(move |ix| p * h * w + iy * w + ix));
                        let mean = cells.clone().map(|c| x[c] as f64).sum::<f64>() / n;
                        let j = p * oh * ow + oy * ow + ox;
                        assert!((y[j] as f64 - mean).abs() < 1e-5, "{h}x{w} -> {oh}x{ow}: output {j}");
                        for c in cells {
                            dx_ref[c] += dy[j] as f64 / n;
                        }
                    }
                }
            }
            assert!(dx.iter().zip(&dx_ref).all(|(a, b)| (*a as f64 - b).abs() < 1e-5), "{h}x{w} -> {oh}x{ow}");
        }
    }
}
