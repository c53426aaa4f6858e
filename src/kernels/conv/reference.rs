//! The definition of a convolution, looped directly in f64: the reference every fast path is
//! held to.

use super::ConvDims;

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

