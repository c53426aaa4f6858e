//! Unfolding image patches into columns (im2col) and folding them back (col2im), so a
//! convolution becomes one matrix product per sample and group.
//!
//! For an input plane stack `x: [C, H, W]` and a resolved window, the column matrix is
//! `col: [C * kh * kw, Ho * Wo]`, row `(c * kh + i) * kw + j`, column `oy * Wo + ox`, holding
//! `x[c, oy * sh - pt + i * dh, ox * sw - pl + j * dw]`, or 0 where that cell is padding.

use crate::geometry::{Axis, Geometry};

/// The output cells `[lo, hi)` of an axis whose input cell `o * s - pad + offset` is inside the
/// input.
fn valid_range(axis: &Axis, offset: usize) -> (usize, usize) {
    let s = axis.stride as isize;
    let shift = offset as isize - axis.pad_lo as isize; // input = o * s + shift
    let n = axis.input as isize;
    let lo = if shift >= 0 { 0 } else { (-shift + s - 1) / s };
    let hi = if n - shift <= 0 { 0 } else { (n - shift + s - 1) / s };
    let out = axis.output as isize;
    let lo = lo.clamp(0, out);
    (lo as usize, hi.clamp(lo, out) as usize)
}

/// Fills `col: [C * kh * kw, Ho * Wo]` from `x: [C, H, W]`.
pub fn im2col(col: &mut [f32], x: &[f32], channels: usize, g: &Geometry) {
    let p = g.rows.output * g.cols.output;
    let rows = channels * g.rows.kernel * g.cols.kernel;
    for (row, dst) in col[..rows * p].chunks_exact_mut(p).enumerate() {
        im2col_row(dst, x, row, g);
    }
}

/// Fills one row of the column matrix, `line: [Ho * Wo]`, row `(c * kh + i) * kw + j` of
/// `x: [C, H, W]`'s unfolding.
fn im2col_row(line: &mut [f32], x: &[f32], row: usize, g: &Geometry) {
    let (h, w) = g.in_hw();
    let wo = g.cols.output;
    let (kh, kw) = (g.rows.kernel, g.cols.kernel);
    let (c, i, j) = (row / (kh * kw), row / kw % kh, row % kw);
    let plane = &x[c * h * w..(c + 1) * h * w];
    let (oy_lo, oy_hi) = valid_range(&g.rows, i * g.rows.dilation);
    let (ox_lo, ox_hi) = valid_range(&g.cols, j * g.cols.dilation);
    let dst = &mut line[..g.rows.output * wo];
    if ox_lo >= ox_hi {
        dst.fill(0.0); // this kernel column only ever sees padding
        return;
    }
    dst[..oy_lo * wo].fill(0.0);
    dst[oy_hi * wo..].fill(0.0);
    for oy in oy_lo..oy_hi {
        let iy = (oy * g.rows.stride + i * g.rows.dilation) - g.rows.pad_lo;
        let src = &plane[iy * w..(iy + 1) * w];
        let out = &mut dst[oy * wo..(oy + 1) * wo];
        out[..ox_lo].fill(0.0);
        out[ox_hi..].fill(0.0);
        let x0 = ox_lo * g.cols.stride + j * g.cols.dilation - g.cols.pad_lo;
        if g.cols.stride == 1 {
            out[ox_lo..ox_hi].copy_from_slice(&src[x0..x0 + (ox_hi - ox_lo)]);
        } else {
            for (k, v) in out[ox_lo..ox_hi].iter_mut().enumerate() {
                *v = src[x0 + k * g.cols.stride];
            }
        }
    }
}

/// Adds `col: [C * kh * kw, Ho * Wo]` back into `dx: [C, H, W]` (the adjoint of `im2col`).
pub fn col2im_add(dx: &mut [f32], col: &[f32], channels: usize, g: &Geometry) {
    let (h, w) = g.in_hw();
    let (ho, wo) = g.out_hw();
    let (kh, kw) = (g.rows.kernel, g.cols.kernel);
    let p = ho * wo;
    let mut row = 0;
    for c in 0..channels {
        let plane = &mut dx[c * h * w..(c + 1) * h * w];
        for i in 0..kh {
            let (oy_lo, oy_hi) = valid_range(&g.rows, i * g.rows.dilation);
            for j in 0..kw {
                let (ox_lo, ox_hi) = valid_range(&g.cols, j * g.cols.dilation);
                let src = &col[row * p..(row + 1) * p];
                row += 1;
                for oy in oy_lo..oy_hi {
                    let iy = (oy * g.rows.stride + i * g.rows.dilation) - g.rows.pad_lo;
                    let dst = &mut plane[iy * w..(iy + 1) * w];
                    let line = &src[oy * wo..(oy + 1) * wo];
                    let x0 = (ox_lo * g.cols.stride + j * g.cols.dilation) - g.cols.pad_lo;
                    if g.cols.stride == 1 {
                        for (d, s) in dst[x0..x0 + (ox_hi - ox_lo)].iter_mut().zip(&line[ox_lo..ox_hi]) {
                            *d += s;
                        }
                    } else {
                        for (k, s) in line[ox_lo..ox_hi].iter().enumerate() {
                            dst[x0 + k * g.cols.stride] += s;
                        }
                    }
                }
            }
        }
    }
}
