//! Feature visualization as Lucid renders it: the image parameterised in a decorrelated
//! Fourier basis (`param::FourierImage`), random rolls each step for robustness, and Adam
//! ascending the target's value. No pixel-space regulariser is needed: the parameterisation
//! itself keeps high-frequency noise from taking over.

use super::param::FourierImage;
use super::target::{input_gradient, Target};
use crate::data::Normalize;
use crate::error::Result;
use crate::net::Net;
use crate::rng::Rng;
use crate::tensor::Tensor;
use crate::ReluRule;

#[derive(Clone, Debug)]
pub struct LucidConfig {
    /// Adam steps (Lucid renders 512 by default).
    pub steps: usize,
    /// Adam's learning rate on the spectrum (Lucid's 0.05).
    pub lr: f32,
    /// Largest random roll (or, with `transforms`, shift) in pixels before each step.
    pub jitter: usize,
    /// Lucid's transformation robustness: each step sees the image through a random scale,
    /// rotation and shift (`transform::Affine::random`), grey outside.
    pub transforms: bool,
    /// Colours through the decorrelated basis (3-channel models).
    pub decorrelate: bool,
    /// Standard deviation of the starting spectrum.
    pub sd: f32,
    pub seed: u64,
}

impl Default for LucidConfig {
    fn default() -> Self {
        LucidConfig { steps: 512, lr: 0.05, jitter: 4, transforms: false, decorrelate: true, sd: 0.01, seed: 0 }
    }
}

/// Renders `target` at the net's input size; returns the picture (`[1, C, H, W]`, pixels in
/// 0-1) and the target's value at each step. `progress(step, value)` after each step.
pub fn render_fourier(net: &mut Net, target: &Target, cfg: &LucidConfig, norm: &Normalize, mut progress: impl FnMut(usize, f32)) -> Result<(Tensor, Vec<f32>)> {
    let s = net.input_shape().to_vec();
    let (c, h, w) = (s[0], s[1], s[2]);
    let plane = h * w;
    let stat = |v: &[f32], ch: usize, d: f32| v.get(ch).or(v.last()).copied().unwrap_or(d);
    let mut img = FourierImage::random(c, h, w, cfg.sd, cfg.seed, cfg.decorrelate);
    let mut rng = Rng::new(cfg.seed ^ 0x7177);
    let n = img.re.len();
    let (mut m, mut v) = (vec![0.0f32; 2 * n], vec![0.0f32; 2 * n]);
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let mut values = Vec::with_capacity(cfg.steps);
    for step in 1..=cfg.steps {
        let pixels = img.render();
        let affine = cfg.transforms.then(|| super::transform::Affine::random(&mut rng, cfg.jitter));
        let mut x = match &affine {
            Some(a) => super::transform::sample(&pixels, a, 0.5),
            None => pixels.clone(),
        };
        for (ch, p) in x.data_mut().chunks_mut(plane).enumerate() {
            let (mean, std) = (stat(&norm.mean, ch, 0.0), stat(&norm.std, ch, 1.0));
            p.iter_mut().for_each(|v| *v = (*v - mean) / std);
        }
        let j = if affine.is_some() { 0 } else { cfg.jitter as isize };
        let (dy, dx) = if j > 0 { (rng.below(2 * cfg.jitter + 1) as isize - j, rng.below(2 * cfg.jitter + 1) as isize - j) } else { (0, 0) };
        super::ascent::roll(&mut x, dy, dx);
        let (mut g, value) = input_gradient(net, &x, target, ReluRule::Plain)?;
        super::ascent::roll(&mut g, -dy, -dx);
        for (ch, gp) in g.data_mut().chunks_mut(plane).enumerate() {
            let std = stat(&norm.std, ch, 1.0);
            gp.iter_mut().for_each(|v| *v /= std);
        }
        if let Some(a) = &affine {
            g = super::transform::sample_backward(&g, a);
        }
        let (dre, dim) = img.backward(&g);
        let (c1, c2) = (1.0 - b1.powi(step as i32), 1.0 - b2.powi(step as i32));
        for (k, grad) in dre.iter().chain(&dim).enumerate() {
            m[k] = b1 * m[k] + (1.0 - b1) * grad;
            v[k] = b2 * v[k] + (1.0 - b2) * grad * grad;
            let delta = cfg.lr * (m[k] / c1) / ((v[k] / c2).sqrt() + eps);
            if k < n {
                img.re[k] += delta;
            } else {
                img.im[k - n] += delta;
            }
        }
        values.push(value);
        progress(step, value);
    }
    Ok((img.render(), values))
}
