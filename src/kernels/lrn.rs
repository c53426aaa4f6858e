//! Local response normalisation across channels (AlexNet), PyTorch's convention:
//! `y_c = x_c / s_c^beta` with `s_c = k + alpha / size * sum of x_j^2` over the channels
//! `j in [c - size/2, c + (size-1)/2]` that exist.

use rayon::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LrnParams {
    pub size: usize,
    pub alpha: f32,
    pub beta: f32,
    pub k: f32,
}

/// `out: [N, C, H, W]` overwritten, `scale: [N, C, H, W]` receives `s` for the backward pass,
/// `input: [N, C, H, W]`.
pub fn lrn_forward(out: &mut [f32], scale: &mut [f32], input: &[f32], c: usize, plane: usize, p: &LrnParams) {
    let sample = c * plane;
    let (before, after) = (p.size / 2, (p.size - 1) / 2);
    let coef = p.alpha / p.size as f32;
    out.par_chunks_mut(sample).zip(scale.par_chunks_mut(sample)).zip(input.par_chunks(sample)).for_each(
        |((y, s), x)| {
            for ch in 0..c {
                let (lo, hi) = (ch.saturating_sub(before), (ch + after).min(c - 1));
                let s_plane = &mut s[ch * plane..(ch + 1) * plane];
                s_plane.fill(0.0);
                for j in lo..=hi {
                    for (acc, v) in s_plane.iter_mut().zip(&x[j * plane..(j + 1) * plane]) {
                        *acc += v * v;
                    }
                }
                for ((sv, yv), xv) in s_plane.iter_mut().zip(&mut y[ch * plane..(ch + 1) * plane]).zip(&x[ch * plane..(ch + 1) * plane]) {
                    *sv = p.k + coef * *sv;
                    *yv = xv * sv.powf(-p.beta);
                }
            }
        },
    );
}

/// `dx += ...` for LRN, from `dy`, the forward input `x`, output `y` and `scale` (all `[N, C, H, W]`):
/// `dx_i = dy_i * s_i^-beta - 2 beta alpha / size * x_i * sum_c dy_c y_c / s_c` over the
/// channels `c` whose window holds `i`.
#[allow(clippy::too_many_arguments)]
pub fn lrn_backward(dx: &mut [f32], dy: &[f32], x: &[f32], y: &[f32], scale: &[f32], c: usize, plane: usize, p: &LrnParams) {
    let sample = c * plane;
    let (before, after) = (p.size / 2, (p.size - 1) / 2);
    let coef = 2.0 * p.beta * p.alpha / p.size as f32;
    dx.par_chunks_mut(sample)
        .zip(dy.par_chunks(sample))
        .zip(x.par_chunks(sample))
        .zip(y.par_chunks(sample).zip(scale.par_chunks(sample)))
        .for_each(|(((dx, dy), x), (y, s))| {
            // t_c = dy_c * y_c / s_c, per channel plane.
            let t: Vec<f32> = dy.iter().zip(y).zip(s).map(|((g, y), s)| g * y / s).collect();
            let mut acc = vec![0.0f32; plane];
            for i in 0..c {
                // Channels c whose window [c - before, c + after] holds i: [i - after, i + before].
                let (lo, hi) = (i.saturating_sub(after), (i + before).min(c - 1));
                acc.fill(0.0);
                for ch in lo..=hi {
                    acc.iter_mut().zip(&t[ch * plane..(ch + 1) * plane]).for_each(|(a, t)| *a += t);
                }
                let r = i * plane..(i + 1) * plane;
                for ((((d, g), xv), sv), a) in dx[r.clone()].iter_mut().zip(&dy[r.clone()]).zip(&x[r.clone()]).zip(&s[r]).zip(&acc) {
                    *d += g * sv.powf(-p.beta) - coef * xv * a;
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition in f64: `y_c = x_c / (k + alpha / size * sum_j x_j^2)^beta` over
    /// `j in [c - size/2, c + (size-1)/2]`.
    fn lrn_ref(x: &[f64], c: usize, plane: usize, p: &LrnParams) -> Vec<f64> {
        let mut y = vec![0.0; x.len()];
        for n in 0..x.len() / (c * plane) {
            for ch in 0..c {
                for i in 0..plane {
                    let lo = ch as isize - (p.size / 2) as isize;
                    let hi = ch as isize + ((p.size - 1) / 2) as isize;
                    let sum: f64 = (lo..=hi).filter(|&j| j >= 0 && (j as usize) < c).map(|j| x[(n * c + j as usize) * plane + i].powi(2)).sum();
                    let s = p.k as f64 + p.alpha as f64 / p.size as f64 * sum;
                    y[(n * c + ch) * plane + i] = x[(n * c + ch) * plane + i] / s.powf(p.beta as f64);
                }
            }
        }
        y
    }

    /// Forward and backward against the definition and its finite differences, with an alpha
    /// large enough that the neighbours matter (AlexNet's 1e-4 hides a wrong window), for odd
    /// and even window sizes.
    #[test]
    fn forward_and_backward_are_the_definition() {
        let (n, c, plane) = (2, 7, 6);
        let mut rng = crate::rng::Rng::new(21);
        let x = rng.uniform_vec(n * c * plane, -2.0, 2.0);
        let dy = rng.uniform_vec(n * c * plane, -1.0, 1.0);
        for p in [LrnParams { size: 5, alpha: 1.0, beta: 0.75, k: 1.0 }, LrnParams { size: 4, alpha: 0.8, beta: 0.6, k: 2.0 }, LrnParams { size: 1, alpha: 2.0, beta: 1.0, k: 0.5 }] {
            let (mut y, mut s) = (vec![0.0; x.len()], vec![0.0; x.len()]);
            lrn_forward(&mut y, &mut s, &x, c, plane, &p);
            let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            let want = lrn_ref(&x64, c, plane, &p);
            assert!(y.iter().zip(&want).all(|(a, b)| (*a as f64 - b).abs() < 1e-5 * (1.0 + b.abs())), "{p:?}: forward");
            let mut dx = vec![0.5; x.len()];
            lrn_backward(&mut dx, &dy, &x, &y, &s, c, plane, &p);
            for i in 0..x.len() {
                let at = |d: f64| {
                    let mut x2 = x64.clone();
                    x2[i] += d;
                    lrn_ref(&x2, c, plane, &p).iter().zip(&dy).map(|(y, g)| y * *g as f64).sum::<f64>()
                };
                let numeric = 0.5 + (at(1e-6) - at(-1e-6)) / 2e-6;
                assert!((dx[i] as f64 - numeric).abs() < 1e-4 * (1.0 + numeric.abs()), "{p:?}: dx[{i}] {} vs {numeric}", dx[i]);
            }
        }
    }
}
