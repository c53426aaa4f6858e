//! DeepDream (Mordvintsev, Olah and Tyka, "Inceptionism", 2015): gradient ascent on a photo
//! itself to raise what a layer sees in it, from the smallest octave up, the detail gained at
//! each octave carried to the next, with random rolls (jitter) and steps normalised by the
//! gradient's mean magnitude, as in the original notebook.

use super::ascent::{random_roll, roll};
use super::cam::resize_bilinear;
use crate::data::Normalize;
use crate::error::{Error, Result};
use crate::layers::{BackwardCtx, ForwardCtx, Mode};
use crate::net::Net;
use crate::rng::Rng;
use crate::tensor::Tensor;
use crate::ReluRule;

/// What the dream raises at the layer.
#[derive(Clone, Debug)]
pub enum Objective {
    /// The mean of the squares of every activation (the original "L2" objective).
    Squares,
    /// The mean of the squares of one channel's activations.
    Channel(usize),
    /// Controlled dreaming: each position's activation vector matched to the guide image's most
    /// similar one (largest dot product), the mean of those dot products raised. Holds the
    /// guide's activations at the layer, `[1, C, h, w]`.
    Guide(Tensor),
}

#[derive(Clone, Debug)]
pub struct DreamConfig {
    pub octaves: usize,
    /// Each octave is this many times smaller than the one above.
    pub octave_scale: f32,
    /// Gradient steps per octave.
    pub steps: usize,
    /// The mean change of a pixel per step, in grey levels of 0-255 (1.5 in the notebook).
    pub step_size: f32,
    /// Largest random roll in pixels before each step (undone after it).
    pub jitter: usize,
    pub seed: u64,
}

impl Default for DreamConfig {
    fn default() -> Self {
        DreamConfig { octaves: 4, octave_scale: 1.4, steps: 10, step_size: 1.5, jitter: 32, seed: 0 }
    }
}

/// One step's report: octave (1 = the smallest), step within it (1-based), the objective
/// before the step's update, and the image so far.
pub struct DreamStep<'a> {
    pub octave: usize,
    pub step: usize,
    pub objective: f32,
    pub image: &'a Tensor,
}

/// The objective's value for the layer's output `a` (`[1, C, h, w]`) and its gradient there.
pub fn objective_and_gradient(objective: &Objective, a: &Tensor) -> Result<(f32, Tensor)> {
    let s = a.shape().to_vec();
    let [_, c, h, w] = s[..] else {
        return Err(Error::shape(format!("a dream needs a layer of maps [1, C, H, W], this one gives {s:?}")));
    };
    let plane = h * w;
    let mut g = Tensor::zeros(&s);
    let value = match objective {
        Objective::Squares => {
            let n = a.data().len() as f32;
            for (gv, &v) in g.data_mut().iter_mut().zip(a.data()) {
                *gv = 2.0 * v / n;
            }
            a.data().iter().map(|v| v * v).sum::<f32>() / n
        }
        Objective::Channel(ch) => {
            if *ch >= c {
                return Err(Error::Invalid(format!("channel {ch} is outside the layer's {c} channels (0-{})", c.saturating_sub(1))));
            }
            let maps = &a.data()[ch * plane..(ch + 1) * plane];
            for (gv, &v) in g.data_mut()[ch * plane..(ch + 1) * plane].iter_mut().zip(maps) {
                *gv = 2.0 * v / plane as f32;
            }
            maps.iter().map(|v| v * v).sum::<f32>() / plane as f32
        }
        Objective::Guide(guide) => {
            let gs = guide.shape();
            if gs.len() != 4 || gs[1] != c {
                return Err(Error::shape(format!("the guide's activations have shape {gs:?}, the layer gives {c} channels")));
            }
            let gplane = gs[2] * gs[3];
            let (x, y) = (a.data(), guide.data());
            let mut total = 0.0;
            for p in 0..plane {
                // The guide position whose activation vector best matches this one.
                let (mut best, mut best_q) = (f32::NEG_INFINITY, 0);
                for q in 0..gplane {
                    let dot: f32 = (0..c).map(|k| x[k * plane + p] * y[k * gplane + q]).sum();
                    if dot > best {
                        (best, best_q) = (dot, q);
                    }
                }
                total += best;
                for k in 0..c {
                    g.data_mut()[k * plane + p] = y[k * gplane + best_q] / plane as f32;
                }
            }
            total / plane as f32
        }
    };
    Ok((value, g))
}

/// Resizes every plane of `x` (`[1, C, H, W]`) to `h` x `w`, bilinearly.
pub fn resize(x: &Tensor, h: usize, w: usize) -> Tensor {
    let s = x.shape();
    let (c, ih, iw) = (s[1], s[2], s[3]);
    let data: Vec<f32> = x.data().chunks(ih * iw).flat_map(|p| resize_bilinear(p, (ih, iw), (h, w))).collect();
    Tensor::from_vec(&[1, c, h, w], data).unwrap_or_else(|_| Tensor::zeros(&[1, c, h, w]))
}

/// The octave sizes, the photo's first: each `octave_scale` times smaller than the one before.
fn octave_sizes(h: usize, w: usize, cfg: &DreamConfig) -> Vec<(usize, usize)> {
    (0..cfg.octaves.max(1))
        .map(|k| {
            let f = cfg.octave_scale.max(1.0).powi(k as i32);
            (((h as f32 / f).round() as usize).max(1), ((w as f32 / f).round() as usize).max(1))
        })
        .collect()
}

/// Dreams on `image` (`[1, C, H, W]`, normalised by `norm`) at node `layer` and returns the
/// dreamed image, of the same size. `each_step` sees every step.
pub fn dream(
    net: &mut Net,
    layer: &str,
    image: &Tensor,
    objective: &Objective,
    cfg: &DreamConfig,
    norm: &Normalize,
    mut each_step: impl FnMut(&DreamStep),
) -> Result<Tensor> {
    let s = image.shape().to_vec();
    let [1, c, h, w] = s[..] else {
        return Err(Error::shape(format!("a dream takes one image [1, C, H, W], not {s:?}")));
    };
    let sizes = octave_sizes(h, w, cfg);
    let eval = ForwardCtx { mode: Mode::Eval, seed: 0, ..Default::default() };
    // A layer past the flattening has no maps to raise, whatever the size.
    let mut own = vec![1];
    own.extend_from_slice(net.input_shape());
    let layer = &super::resolve_node(net, layer)?;
    let position = net.node_names().position(|n| n == layer).ok_or_else(|| super::no_node(net, layer))?;
    if let Some(shape) = net.shapes_for(&own)?.get(position + 1) {
        if shape.len() != 4 {
            return Err(Error::Invalid(format!("a dream needs a layer of maps [1, C, H, W]; {layer} gives {shape:?}: choose a node before the flattening")));
        }
    }
    // The smallest octave must still pass through the layer: say so now, not mid-dream.
    let (sh, sw) = *sizes.last().unwrap_or(&(h, w));
    net.forward_to(&Tensor::zeros(&[1, c, sh, sw]), &eval, layer).map_err(|e| {
        Error::Invalid(format!(
            "the smallest of {} octaves is {sw}x{sh} pixels, too small for {layer} ({e}); give fewer --octaves, a smaller --octave-scale or a larger image",
            sizes.len()
        ))
    })?;
    // Pixel bounds and step sizes per channel, in the normalised space the net reads.
    let stats: Vec<(f32, f32)> = (0..c).map(|ch| norm.channel(ch)).collect();
    let lo: Vec<f32> = stats.iter().map(|(m, s)| (0.0 - m) / s).collect();
    let hi: Vec<f32> = stats.iter().map(|(m, s)| (1.0 - m) / s).collect();
    let step: Vec<f32> = stats.iter().map(|(_, s)| cfg.step_size / 255.0 / s).collect();

    let mut bases = vec![image.clone()];
    for &(oh, ow) in &sizes[1..] {
        let smaller = resize(bases.last().unwrap_or(image), oh, ow);
        bases.push(smaller);
    }
    let mut rng = Rng::new(cfg.seed);
    let mut detail = Tensor::zeros(&[1, c, sh, sw]);
    let mut x = image.clone();
    let back = BackwardCtx { rule: ReluRule::Plain, param_grads: false, input_grad: true };
    for (octave, base) in bases.iter().rev().enumerate() {
        let (oh, ow) = (base.shape()[2], base.shape()[3]);
        detail = resize(&detail, oh, ow);
        x = base.clone();
        for (v, d) in x.data_mut().iter_mut().zip(detail.data()) {
            *v += d;
        }
        for i in 0..cfg.steps {
            let (dy, dx) = random_roll(&mut rng, cfg.jitter);
            roll(&mut x, dy, dx);
            let a = net.forward_to(&x, &eval, layer)?.clone();
            let (value, seed) = objective_and_gradient(objective, &a)?;
            net.backward(layer, &seed, &back)?;
            let g = net.input_grad();
            let mean_abs = g.data().iter().map(|v| v.abs()).sum::<f32>() / g.data().len().max(1) as f32;
            if mean_abs > 0.0 && mean_abs.is_finite() {
                let plane = oh * ow;
                for (ch, (xs, gs)) in x.data_mut().chunks_mut(plane).zip(g.data().chunks(plane)).enumerate() {
                    let k = step[ch] / mean_abs;
                    for (v, gv) in xs.iter_mut().zip(gs) {
                        *v = (*v + k * gv).clamp(lo[ch], hi[ch]);
                    }
                }
            }
            roll(&mut x, -dy, -dx);
            each_step(&DreamStep { octave: octave + 1, step: i + 1, objective: value, image: &x });
        }
        detail = x.clone();
        for (d, b) in detail.data_mut().iter_mut().zip(base.data()) {
            *d -= b;
        }
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The analytic gradients of the three objectives against central differences.
    #[test]
    fn objective_gradients_match_finite_differences() {
        let mut rng = Rng::new(3);
        let a = Tensor::from_vec(&[1, 3, 4, 5], rng.uniform_vec(60, -1.0, 1.0)).unwrap();
        let guide = Tensor::from_vec(&[1, 3, 2, 3], rng.uniform_vec(18, -1.0, 1.0)).unwrap();
        for objective in [Objective::Squares, Objective::Channel(1), Objective::Guide(guide)] {
            let (_, g) = objective_and_gradient(&objective, &a).unwrap();
            for i in [0, 7, 23, 41, 59] {
                let h = 1e-3;
                let at = |d: f32| {
                    let mut b = a.clone();
                    b.data_mut()[i] += d;
                    objective_and_gradient(&objective, &b).unwrap().0 as f64
                };
                let numeric = (at(h) - at(-h)) / (2.0 * h as f64);
                assert!((numeric - g.data()[i] as f64).abs() < 1e-3, "{objective:?} at {i}: {numeric} vs {}", g.data()[i]);
            }
        }
        assert!(objective_and_gradient(&Objective::Channel(3), &a).is_err());
    }

    #[test]
    fn octaves_shrink_from_the_photo() {
        let cfg = DreamConfig { octaves: 4, octave_scale: 1.4, ..DreamConfig::default() };
        assert_eq!(octave_sizes(280, 140, &cfg), vec![(280, 140), (200, 100), (143, 71), (102, 51)]);
    }
}
