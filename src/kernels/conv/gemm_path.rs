//! The im2col + `gemm` path of a convolution, one sample at a time: CPUs without a tile, 1x1
//! stride-1 unpadded convolutions (their input already is the column matrix), and the input
//! gradient of strided, dilated or few-channel convolutions.
//! Shapes per sample: `x: [Cin, H, W]`, `y, dy: [Cout, Ho, Wo]`,
//! `weight: [Cout, Cin/groups, kh, kw]`; `col: [Cin/groups * kh * kw, Ho * Wo]`.

use super::im2col::{col2im_add, im2col};
use super::{add_bias, ChunkScratch, ConvDims};
use crate::kernels::matmul::{matmul, Mat, Threads};

/// `y = conv(x, weight) + bias` for one sample.
pub(super) fn forward_sample(y: &mut [f32], x: &[f32], weight: &[f32], bias: Option<&[f32]>, d: &ConvDims, col: &mut [f32], threads: Threads) {
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

/// Accumulates one sample's input gradient (when `dx` is given) and, when `want_w`, its
/// weight gradient into `s.d_weight`.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward_sample(
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

