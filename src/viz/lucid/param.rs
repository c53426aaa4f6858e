//! The image parameterisations of Olah, Mordvintsev and Schubert's "Feature Visualization"
//! (Distill, 2017) and their library Lucid: the image as a Fourier spectrum scaled by 1/f (so
//! that a gradient step moves all frequencies alike instead of favouring the high ones that
//! make noise), its colours through the decorrelated colour basis of ImageNet, and a sigmoid
//! that keeps every pixel in (0, 1). Rendering and its backward pass are written out here:
//! `pixels = sigmoid(M * Re(IFFT(scale * spectrum)) / 4)`, IFFT orthonormal.

use crate::tensor::Tensor;
use rustfft::num_complex::Complex32;
use rustfft::FftPlanner;

/// Lucid's square root of ImageNet's colour correlation (RGB), columns scaled to norm <= 1.
const COLOR_SQRT: [[f32; 3]; 3] = [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]];

fn color_matrix() -> [[f32; 3]; 3] {
    let max_norm = (0..3).map(|j| (0..3).map(|i| COLOR_SQRT[i][j].powi(2)).sum::<f32>().sqrt()).fold(0.0, f32::max);
    COLOR_SQRT.map(|row| row.map(|v| v / max_norm))
}

/// The inverse of a 3x3 matrix (the colour basis is invertible).
fn inverse(m: [[f32; 3]; 3]) -> [[f32; 3]; 3] {
    let m = m.map(|r| r.map(|v| v as f64));
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    let c = |r0: usize, c0: usize, r1: usize, c1: usize| m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0];
    let adj = [
        [c(1, 1, 2, 2), -c(0, 1, 2, 2), c(0, 1, 1, 2)],
        [-c(1, 0, 2, 2), c(0, 0, 2, 2), -c(0, 0, 1, 2)],
        [c(1, 0, 2, 1), -c(0, 0, 2, 1), c(0, 0, 1, 1)],
    ];
    adj.map(|r| r.map(|v| (v / det) as f32))
}

/// Orthonormal 2-d DFT of `[h, w]` complex data in place; `inverse` for the inverse transform.
fn fft2(data: &mut [Complex32], h: usize, w: usize, inverse: bool) {
    let mut planner = FftPlanner::<f32>::new();
    let (row, col) = if inverse { (planner.plan_fft_inverse(w), planner.plan_fft_inverse(h)) } else { (planner.plan_fft_forward(w), planner.plan_fft_forward(h)) };
    for r in data.chunks_mut(w) {
        row.process(r);
    }
    let mut column = vec![Complex32::new(0.0, 0.0); h];
    for x in 0..w {
        for y in 0..h {
            column[y] = data[y * w + x];
        }
        col.process(&mut column);
        for y in 0..h {
            data[y * w + x] = column[y];
        }
    }
    let k = 1.0 / ((h * w) as f32).sqrt();
    data.iter_mut().for_each(|v| *v *= k);
}

/// `1 / max(|f|, 1 / max(h, w))` for each frequency of an `h x w` spectrum (NumPy's `fftfreq`).
fn spectrum_scale(h: usize, w: usize) -> Vec<f32> {
    let freq = |k: usize, n: usize| if k < n.div_ceil(2) { k as f32 / n as f32 } else { (k as f32 - n as f32) / n as f32 };
    let floor = 1.0 / h.max(w) as f32;
    (0..h).flat_map(|y| (0..w).map(move |x| 1.0 / (freq(y, h).powi(2) + freq(x, w).powi(2)).sqrt().max(floor))).collect()
}

/// An image of `c` channels (1 or 3), `h x w`, held as its scaled spectrum.
#[derive(Clone, Debug)]
pub struct FourierImage {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    /// Real and imaginary parts of each channel's spectrum, `[c, h, w]`: the parameters.
    pub re: Vec<f32>,
    pub im: Vec<f32>,
    /// Colours through the decorrelated basis (3 channels only).
    pub decorrelate: bool,
    scale: Vec<f32>,
}

impl FourierImage {
    /// Lucid's start: a spectrum of normal noise of standard deviation `sd` (0.01).
    pub fn random(c: usize, h: usize, w: usize, sd: f32, seed: u64, decorrelate: bool) -> Self {
        let mut rng = crate::rng::Rng::new(seed);
        let n = c * h * w;
        let re = (0..n).map(|_| sd * rng.normal()).collect();
        let im = (0..n).map(|_| sd * rng.normal()).collect();
        FourierImage { c, h, w, re, im, decorrelate: decorrelate && c == 3, scale: spectrum_scale(h, w) }
    }

    /// The parameters that render `pixels` (`[1, C, H, W]`, values in (0, 1); clamped to
    /// [1e-4, 1 - 1e-4] first, where the sigmoid can still reach them).
    pub fn from_pixels(pixels: &Tensor, decorrelate: bool) -> Self {
        let s = pixels.shape();
        let (c, h, w) = (s[1], s[2], s[3]);
        let plane = h * w;
        let mut t: Vec<f32> = pixels.data().iter().map(|&p| {
            let p = p.clamp(1e-4, 1.0 - 1e-4);
            (p / (1.0 - p)).ln()
        }).collect();
        let decorrelate = decorrelate && c == 3;
        if decorrelate {
            let inv = inverse(color_matrix());
            for i in 0..plane {
                let v = [t[i], t[plane + i], t[2 * plane + i]];
                for (ch, row) in inv.iter().enumerate() {
                    t[ch * plane + i] = row[0] * v[0] + row[1] * v[1] + row[2] * v[2];
                }
            }
        }
        let scale = spectrum_scale(h, w);
        let (mut re, mut im) = (vec![0.0; c * plane], vec![0.0; c * plane]);
        for ch in 0..c {
            let mut spec: Vec<Complex32> = t[ch * plane..(ch + 1) * plane].iter().map(|&v| Complex32::new(4.0 * v, 0.0)).collect();
            fft2(&mut spec, h, w, false);
            for (i, v) in spec.iter().enumerate() {
                re[ch * plane + i] = v.re / scale[i];
                im[ch * plane + i] = v.im / scale[i];
            }
        }
        FourierImage { c, h, w, re, im, decorrelate, scale }
    }

    /// The colour values before the sigmoid, `[c, h, w]`.
    fn logits(&self) -> Vec<f32> {
        let plane = self.h * self.w;
        let mut z = vec![0.0; self.c * plane];
        for ch in 0..self.c {
            let r = ch * plane..(ch + 1) * plane;
            let mut spec: Vec<Complex32> =
                self.re[r.clone()].iter().zip(&self.im[r.clone()]).zip(&self.scale).map(|((a, b), s)| Complex32::new(a * s, b * s)).collect();
            fft2(&mut spec, self.h, self.w, true);
            for (zv, v) in z[r].iter_mut().zip(&spec) {
                *zv = v.re / 4.0;
            }
        }
        if self.decorrelate {
            let m = color_matrix();
            for i in 0..plane {
                let v = [z[i], z[plane + i], z[2 * plane + i]];
                for (ch, row) in m.iter().enumerate() {
                    z[ch * plane + i] = row[0] * v[0] + row[1] * v[1] + row[2] * v[2];
                }
            }
        }
        z
    }

    /// The image, `[1, C, H, W]`, pixels in (0, 1).
    pub fn render(&self) -> Tensor {
        let p = self.logits().iter().map(|&t| 1.0 / (1.0 + (-t).exp())).collect();
        Tensor::from_vec(&[1, self.c, self.h, self.w], p).unwrap_or_else(|_| Tensor::zeros(&[1, self.c, self.h, self.w]))
    }

    /// The gradient with respect to the parameters `(re, im)` of an objective whose gradient
    /// with respect to the rendered pixels is `d_pixels` (`[1, C, H, W]`).
    pub fn backward(&self, d_pixels: &Tensor) -> (Vec<f32>, Vec<f32>) {
        let plane = self.h * self.w;
        let p = self.render();
        // Through the sigmoid.
        let mut dz: Vec<f32> = d_pixels.data().iter().zip(p.data()).map(|(g, p)| g * p * (1.0 - p)).collect();
        // Through the colour matrix: its transpose.
        if self.decorrelate {
            let m = color_matrix();
            for i in 0..plane {
                let v = [dz[i], dz[plane + i], dz[2 * plane + i]];
                for ch in 0..3 {
                    dz[ch * plane + i] = m[0][ch] * v[0] + m[1][ch] * v[1] + m[2][ch] * v[2];
                }
            }
        }
        // Through Re(IFFT(.)) / 4: the forward transform of the real gradient.
        let (mut dre, mut dim) = (vec![0.0; self.c * plane], vec![0.0; self.c * plane]);
        for ch in 0..self.c {
            let mut spec: Vec<Complex32> = dz[ch * plane..(ch + 1) * plane].iter().map(|&g| Complex32::new(g / 4.0, 0.0)).collect();
            fft2(&mut spec, self.h, self.w, false);
            for (i, v) in spec.iter().enumerate() {
                dre[ch * plane + i] = v.re * self.scale[i];
                dim[ch * plane + i] = v.im * self.scale[i];
            }
        }
        (dre, dim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_round_trips_through_its_spectrum() {
        let mut rng = crate::rng::Rng::new(6);
        for (c, h, w, decorrelate) in [(3, 12, 17, true), (3, 8, 8, false), (1, 9, 6, false)] {
            let px = Tensor::from_vec(&[1, c, h, w], rng.uniform_vec(c * h * w, 0.02, 0.98)).unwrap();
            let back = FourierImage::from_pixels(&px, decorrelate).render();
            let err = back.data().iter().zip(px.data()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(err < 1e-4, "{c}x{h}x{w} decorrelate {decorrelate}: {err}");
        }
        let m = color_matrix();
        let inv = inverse(m);
        #[allow(clippy::needless_range_loop)] // a matrix product written as its definition
        for i in 0..3 {
            for j in 0..3 {
                let v: f32 = (0..3).map(|k| m[i][k] * inv[k][j]).sum();
                assert!((v - if i == j { 1.0 } else { 0.0 }).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn the_backward_pass_matches_finite_differences() {
        let img = FourierImage::random(3, 6, 7, 0.5, 2, true);
        let mut rng = crate::rng::Rng::new(8);
        let weights = rng.uniform_vec(3 * 6 * 7, -1.0, 1.0);
        let objective = |f: &FourierImage| f.render().data().iter().zip(&weights).map(|(p, w)| (*p as f64) * *w as f64).sum::<f64>();
        let (dre, dim) = img.backward(&Tensor::from_vec(&[1, 3, 6, 7], weights.clone()).unwrap());
        for i in [0, 5, 40, 77, 120] {
            for (part, analytic) in [(0, dre[i]), (1, dim[i])] {
                let at = |d: f32| {
                    let mut f = img.clone();
                    if part == 0 { f.re[i] += d } else { f.im[i] += d }
                    objective(&f)
                };
                let numeric = (at(1e-2) - at(-1e-2)) / 2e-2;
                assert!((numeric - analytic as f64).abs() < 1e-3 * (1.0 + numeric.abs()), "part {part} at {i}: {numeric} vs {analytic}");
            }
        }
    }
}
