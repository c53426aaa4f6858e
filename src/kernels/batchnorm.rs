//! Batch normalisation over `[N, C, H, W]`, per channel: training mode (batch statistics,
//! running statistics updated as PyTorch does) and evaluation mode (running statistics).

use super::isa::compiled_per_isa;
use super::Store;
use rayon::prelude::*;

/// Per-channel mean and biased variance of `x: [N, C, H, W]`, in f64.
pub fn channel_stats(x: &[f32], n: usize, c: usize, plane: usize) -> Vec<(f64, f64)> {
    let m = (n * plane) as f64;
    let mean: Vec<f64> = channel_sums(x, n, c, plane).iter().map(|s| s / m).collect();
    let sq = channel_square_deviations(x, n, c, plane, &mean);
    mean.into_iter().zip(sq).map(|(mean, sq)| (mean, sq / m)).collect()
}

/// Per-channel sum of `x: [N, C, H, W]`, in f64. Split from the squares so that ranks sharing a
/// batch can add their sums before the deviations are taken from the whole batch's mean.
pub fn channel_sums(x: &[f32], n: usize, c: usize, plane: usize) -> Vec<f64> {
    let isa = crate::kernels::isa::Isa::active();
    (0..c)
        .into_par_iter()
        .map(|ch| (0..n).map(|i| plane_sums(isa, &x[(i * c + ch) * plane..(i * c + ch + 1) * plane], None)).sum())
        .collect()
}

/// Independent f64 accumulators: one running sum is a chain of dependent additions (4 cycles
/// each, no vectors): the statistics of ResNet-18's first batch norm (8 x 64 x 112 x 112) took
/// 4.4 ms, 1.5 ms with eight lanes. (`grad_sums` sums f32 terms in blocks of f32 lanes
/// instead: `plane_grad_sums_body`.)
const LANES: usize = 8;

/// `sum f(v)` over `values`, in f64, accumulated in `LANES` interleaved partial sums.
#[inline(always)]
fn lanes_sum(values: &[f32], f: impl Fn(f32) -> f64) -> f64 {
    let mut acc = [0.0f64; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest: f64 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    acc.iter().sum::<f64>() + rest
}

/// Per-channel `sum (x - mean[c])^2` over `x: [N, C, H, W]`, in f64.
pub fn channel_square_deviations(x: &[f32], n: usize, c: usize, plane: usize, mean: &[f64]) -> Vec<f64> {
    let isa = crate::kernels::isa::Isa::active();
    (0..c)
        .into_par_iter()
        .map(|ch| (0..n).map(|i| plane_sums(isa, &x[(i * c + ch) * plane..(i * c + ch + 1) * plane], Some(mean[ch]))).sum())
        .collect()
}

/// `sum v` (`mean` `None`) or `sum (v - mean)^2` of one plane, in f64: each term in f64 as
/// before (`(v as f64 - mean)^2`), summed in `LANES` f64 lanes, compiled per ISA (the same
/// bits on each: the lanes are the same; AVX-512 converts and adds 8 values at once where the
/// x86-64 baseline took two at a time).
#[inline(always)]
fn plane_sums_body(x: &[f32], mean: Option<f64>) -> f64 {
    match mean {
        None => lanes_sum(x, |v| v as f64),
        Some(m) => lanes_sum(x, |v| (v as f64 - m) * (v as f64 - m)),
    }
}

compiled_per_isa! {
    /// `plane_sums_body` compiled for `isa`.
    fn plane_sums => plane_sums_body(x: &[f32], mean: Option<f64>) -> f64
}

/// `out[n, c] = x[n, c] * a[c] + b[c]` plane by plane; `out` overwritten.
pub fn affine_channels(out: &mut [f32], x: &[f32], a: &[f32], b: &[f32], c: usize, plane: usize) {
    affine_channels_then(out, x, a, b, c, plane, false)
}

/// `affine_channels`, then `max(0, .)` in the same pass where `relu` (a ReLU fused into the
/// normalisation, `Layer::fuse_relu`; `activation::relu`).
pub fn affine_channels_then(out: &mut [f32], x: &[f32], a: &[f32], b: &[f32], c: usize, plane: usize, relu: bool) {
    let isa = crate::kernels::isa::Isa::active();
    out.par_chunks_mut(plane).zip(x.par_chunks(plane)).enumerate().for_each(|(i, (y, x))| {
        let ch = i % c;
        affine_plane(isa, y, x, a[ch], b[ch], relu);
    });
}

/// `y = x * a + b` (then the ReLU) over one plane.
#[inline(always)]
fn affine_plane_body(y: &mut [f32], x: &[f32], a: f32, b: f32, relu: bool) {
    // One loop per case, so each vectorises.
    if relu {
        y.iter_mut().zip(x).for_each(|(y, x)| *y = crate::kernels::activation::relu(x * a + b));
    } else {
        y.iter_mut().zip(x).for_each(|(y, x)| *y = x * a + b);
    }
}

compiled_per_isa! {
    /// `affine_plane_body` compiled for `isa`.
    fn affine_plane => affine_plane_body(y: &mut [f32], x: &[f32], a: f32, b: f32, relu: bool)
}

/// Per-channel `(sum dy, sum dy * (x - mean) * invstd)`, in f64 (`plane_grad_sums` per plane).
pub fn grad_sums(dy: &[f32], x: &[f32], mean: &[f32], invstd: &[f32], n: usize, c: usize, plane: usize) -> Vec<(f64, f64)> {
    let isa = crate::kernels::isa::Isa::active();
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let (m, is) = (mean[ch], invstd[ch]);
            let (mut s, mut sx) = (0.0f64, 0.0f64);
            for i in 0..n {
                let r = (i * c + ch) * plane..(i * c + ch + 1) * plane;
                let (ps, psx) = plane_grad_sums(isa, &dy[r.clone()], &x[r], m, is);
                s += ps;
                sx += psx;
            }
            (s, sx)
        })
        .collect()
}

/// Values per block of `plane_grad_sums_body`: `GRAD_LANES` f32 partial sums of 16 terms each.
const GRAD_LANES: usize = 16;
const GRAD_BLOCK: usize = 16 * GRAD_LANES;

/// `(sum dy, sum dy * (x - m) * is)` of one plane: each block of `GRAD_BLOCK` values summed in
/// `GRAD_LANES` f32 lanes (16 terms a lane), the lanes then added in f64; the tail term by term
/// in f64. One running f64 sum is a chain of dependent additions, 4 cycles a value: ResNet-18's
/// first batch norm (8 x 64 x 112 x 112) read its 51 MB at 13 GB/s that way. The blocks are
/// the same on every ISA (16 lanes of `f32`, each term `dy * (x - m) * is` rounded as before),
/// so every ISA gives the same bits.
#[inline(always)]
fn plane_grad_sums_body(dy: &[f32], x: &[f32], m: f32, is: f32) -> (f64, f64) {
    let (mut s, mut sx) = (0.0f64, 0.0f64);
    let (blocks_dy, blocks_x) = (dy.chunks_exact(GRAD_BLOCK), x.chunks_exact(GRAD_BLOCK));
    let (tail_dy, tail_x) = (blocks_dy.remainder(), blocks_x.remainder());
    for (gb, vb) in blocks_dy.zip(blocks_x) {
        let (mut a, mut b) = ([0.0f32; GRAD_LANES], [0.0f32; GRAD_LANES]);
        for (gc, vc) in gb.chunks_exact(GRAD_LANES).zip(vb.chunks_exact(GRAD_LANES)) {
            for l in 0..GRAD_LANES {
                a[l] += gc[l];
                b[l] += gc[l] * (vc[l] - m) * is;
            }
        }
        for l in 0..GRAD_LANES {
            s += a[l] as f64;
            sx += b[l] as f64;
        }
    }
    for (&g, &v) in tail_dy.iter().zip(tail_x) {
        s += g as f64;
        sx += (g * (v - m) * is) as f64;
    }
    (s, sx)
}

compiled_per_isa! {
    /// `plane_grad_sums_body` compiled for `isa` (the same bits on each).
    fn plane_grad_sums => plane_grad_sums_body(dy: &[f32], x: &[f32], m: f32, is: f32) -> (f64, f64)
}

/// Training-mode input gradient, `+=` into `dx` (or `=`, `store`):
/// `dx = gamma * invstd / M * (M * dy - sum_dy - xhat * sum_dy_xhat)`, `M = N * H * W`.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_train_backward(
    dx: &mut [f32],
    dy: &[f32],
    x: &[f32],
    mean: &[f32],
    invstd: &[f32],
    gamma: &[f32],
    sums: &[(f64, f64)],
    c: usize,
    plane: usize,
    m: usize,
    store: Store,
) {
    let m = m as f32;
    let isa = crate::kernels::isa::Isa::active();
    dx.par_chunks_mut(plane).zip(dy.par_chunks(plane)).zip(x.par_chunks(plane)).enumerate().for_each(
        |(i, ((dx, dy), x))| {
            let ch = i % c;
            let (mu, is, g) = (mean[ch], invstd[ch], gamma[ch]);
            let (s, sx) = (sums[ch].0 as f32, sums[ch].1 as f32);
            let k = g * is / m;
            backward_plane(isa, dx, dy, x, [k, m, s, mu, is, sx], store == Store::Add);
        },
    );
}

/// `dx (+)= k * (m * dy - s - (x - mu) * is * sx)` over one plane, `[k, m, s, mu, is, sx]`.
#[inline(always)]
fn backward_plane_body(dx: &mut [f32], dy: &[f32], x: &[f32], [k, m, s, mu, is, sx]: [f32; 6], add: bool) {
    let grad = |gy: f32, v: f32| k * (m * gy - s - (v - mu) * is * sx);
    // One loop per case, so each vectorises.
    if add {
        dx.iter_mut().zip(dy).zip(x).for_each(|((d, &gy), &v)| *d += grad(gy, v));
    } else {
        dx.iter_mut().zip(dy).zip(x).for_each(|((d, &gy), &v)| *d = grad(gy, v));
    }
}

compiled_per_isa! {
    /// `backward_plane_body` compiled for `isa`.
    fn backward_plane => backward_plane_body(dx: &mut [f32], dy: &[f32], x: &[f32], coefficients: [f32; 6], add: bool)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::isa::Isa;
    use crate::rng::Rng;

    /// A plane's gradient sums are the f64 sums of the same f32 terms within 16 f32 roundings
    /// of the terms' sizes, with the same bits on every ISA this CPU has: planes shorter than a
    /// block, whole blocks, blocks and a tail (MNIST's 196 and 784, ResNet's 3136). So are the
    /// statistics' sums and the elementwise passes (the affine map with and without the ReLU,
    /// the input gradient written and added).
    #[test]
    fn plane_grad_sums_are_the_sums_on_every_isa() {
        let mut rng = Rng::new(8);
        for len in [0, 1, 15, 255, 256, 257, 784, 3136, 12544 + 3] {
            let dy = rng.uniform_vec(len, -2.0, 2.0);
            let x = rng.uniform_vec(len, -3.0, 5.0);
            let (m, is) = (0.7f32, 1.3f32);
            let terms: Vec<(f64, f64)> = dy.iter().zip(&x).map(|(&g, &v)| (g as f64, (g * (v - m) * is) as f64)).collect();
            let want = terms.iter().fold((0.0, 0.0), |a, t| (a.0 + t.0, a.1 + t.1));
            let size = terms.iter().fold((0.0, 0.0), |a, t| (a.0 + t.0.abs(), a.1 + t.1.abs()));
            let scalar = plane_grad_sums(Isa::Scalar, &dy, &x, m, is);
            let close = |got: f64, want: f64, size: f64| (got - want).abs() <= 16.0 * f32::EPSILON as f64 * size;
            assert!(close(scalar.0, want.0, size.0) && close(scalar.1, want.1, size.1), "{len} values: {scalar:?} vs {want:?}");
            for isa in Isa::testable("plane_grad_sums") {
                let got = plane_grad_sums(isa, &dy, &x, m, is);
                assert_eq!((got.0.to_bits(), got.1.to_bits()), (scalar.0.to_bits(), scalar.1.to_bits()), "{isa:?}, {len} values");
                // The elementwise passes: the baseline's bits, a NaN kept by the ReLU.
                let mut x_nan = x.clone();
                if len > 3 {
                    x_nan[3] = f32::NAN;
                }
                for relu in [false, true] {
                    let (mut got, mut base) = (vec![0.0; len], vec![0.0; len]);
                    affine_plane(isa, &mut got, &x_nan, 1.7, -0.4, relu);
                    affine_plane(Isa::Scalar, &mut base, &x_nan, 1.7, -0.4, relu);
                    assert_eq!(got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), base.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "{isa:?} affine, relu {relu}");
                }
                for add in [false, true] {
                    let coefficients = [0.3, len as f32, 1.1, 0.7, 1.3, -0.6];
                    let (mut got, mut base) = (dy.clone(), dy.clone());
                    backward_plane(isa, &mut got, &dy, &x, coefficients, add);
                    backward_plane(Isa::Scalar, &mut base, &dy, &x, coefficients, add);
                    assert_eq!(got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), base.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "{isa:?} backward, add {add}");
                }
                // The statistics' sums too: the same bits as the baseline's, near the f64 sums.
                for mean in [None, Some(0.7)] {
                    let want: f64 = x.iter().map(|&v| mean.map_or(v as f64, |m| (v as f64 - m).powi(2))).sum();
                    let (got, base) = (plane_sums(isa, &x, mean), plane_sums(Isa::Scalar, &x, mean));
                    assert_eq!(got.to_bits(), base.to_bits(), "{isa:?}, {len} values, mean {mean:?}");
                    assert!((got - want).abs() <= 1e-12 * (1.0 + want.abs()), "{len} values, mean {mean:?}: {got} vs {want}");
                }
            }
        }
    }
}
