//! Feature visualization as Lucid renders it: the image parameterised in a decorrelated
//! Fourier basis (`param::FourierImage`), random rolls each step for robustness, and Adam
//! ascending the target's value. No pixel-space regulariser is needed: the parameterisation
//! itself keeps high-frequency noise from taking over.

pub mod diversity;
pub mod param;
pub mod transform;

use param::FourierImage;
use super::target::Target;
use crate::data::Normalize;
use crate::error::Result;
use crate::layers::{BackwardCtx, ForwardCtx, Mode};
use crate::net::Net;
use crate::optim::VecAdam;
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
pub fn render_fourier(net: &mut Net, target: &Target, cfg: &LucidConfig, norm: &Normalize, progress: impl FnMut(usize, f32)) -> Result<(Tensor, Vec<f32>)> {
    let (mut images, values) = render_fourier_batch(net, target, cfg, norm, 1, None, progress)?;
    Ok((images.remove(0), values))
}

/// Renders `batch` images of `target` at once; with `diversity = Some((weight, layer))`, the
/// objective is the target's value (summed over the batch) minus `weight` times Lucid's
/// diversity of their Gram matrices at `layer`, so each image finds another facet. Returns the
/// pictures (each `[1, C, H, W]`, pixels in 0-1) and the objective at each step.
pub fn render_fourier_batch(
    net: &mut Net,
    target: &Target,
    cfg: &LucidConfig,
    norm: &Normalize,
    batch: usize,
    diversity: Option<(f32, &str)>,
    mut progress: impl FnMut(usize, f32),
) -> Result<(Vec<Tensor>, Vec<f32>)> {
    let s = net.input_shape().to_vec();
    let (c, h, w) = (s[0], s[1], s[2]);
    let plane = h * w;
    let batch = batch.max(1);
    let mut images: Vec<FourierImage> = (0..batch).map(|b| FourierImage::random(c, h, w, cfg.sd, cfg.seed.wrapping_add(b as u64), cfg.decorrelate)).collect();
    let mut rng = Rng::new(cfg.seed ^ 0x7177);
    let n = images[0].re.len();
    // One Adam per image and part of its spectrum (Adam works coordinate by coordinate).
    let mut adams: Vec<(VecAdam, VecAdam)> = (0..batch).map(|_| (VecAdam::new(n), VecAdam::new(n))).collect();
    let mut values = Vec::with_capacity(cfg.steps);
    let eval = ForwardCtx { mode: Mode::Eval, seed: 0, ..Default::default() };
    let back = BackwardCtx { rule: ReluRule::Plain, param_grads: false, input_grad: true };
    for step in 1..=cfg.steps {
        // The batch as the net sees it: each image through the same random view, normalised.
        let affine = cfg.transforms.then(|| transform::Affine::random(&mut rng, cfg.jitter));
        // The affine view shifts already; otherwise a roll does.
        let (dy, dx) = if affine.is_some() { (0, 0) } else { super::ascent::random_roll(&mut rng, cfg.jitter) };
        let mut x = Vec::with_capacity(batch * c * plane);
        for img in &images {
            let pixels = img.render();
            let mut seen = match &affine {
                Some(a) => transform::sample(&pixels, a, 0.5),
                None => pixels,
            };
            for (ch, p) in seen.data_mut().chunks_mut(plane).enumerate() {
                let (mean, std) = norm.channel(ch);
                p.iter_mut().for_each(|v| *v = (*v - mean) / std);
            }
            super::ascent::roll(&mut seen, dy, dx);
            x.extend_from_slice(seen.data());
        }
        let x = Tensor::from_vec(&[batch, c, h, w], x)?;
        net.forward(&x, &eval)?;
        let mut seeds = target.seeds(net)?;
        let mut value: f32 = seeds.iter().map(|(node, seed)| net.value(node).map_or(0.0, |t| t.data().iter().zip(seed.data()).map(|(a, b)| a * b).sum::<f32>())).sum();
        if let Some((weight, layer)) = diversity {
            let a = net.value(layer).ok_or_else(|| super::no_node(net, layer))?;
            let (d, g) = diversity::diversity_and_gradient(a)?;
            value -= weight * d;
            seeds.push((layer.to_string(), Tensor::from_vec(g.shape(), g.data().iter().map(|v| -weight * v).collect())?));
        }
        let refs: Vec<(&str, &Tensor)> = seeds.iter().map(|(n, t)| (n.as_str(), t)).collect();
        net.backward_seeds(&refs, &back)?;
        let all = net.input_grad().clone();
        for (b, img) in images.iter_mut().enumerate() {
            let mut g = Tensor::from_vec(&[1, c, h, w], all.data()[b * c * plane..(b + 1) * c * plane].to_vec())?;
            super::ascent::roll(&mut g, -dy, -dx);
            for (ch, gp) in g.data_mut().chunks_mut(plane).enumerate() {
                let std = norm.channel(ch).1;
                gp.iter_mut().for_each(|v| *v /= std);
            }
            if let Some(a) = &affine {
                g = transform::sample_backward(&g, a);
            }
            let (dre, dim) = img.backward(&g);
            // Ascent: a step down the negative gradient.
            adams[b].0.step(&mut img.re, &dre, -cfg.lr);
            adams[b].1.step(&mut img.im, &dim, -cfg.lr);
        }
        values.push(value);
        progress(step, value);
    }
    Ok((images.iter().map(|i| i.render()).collect(), values))
}
