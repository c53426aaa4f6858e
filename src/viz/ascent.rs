//! Gradient ascent on the input image to a class or a neuron (Simonyan et al.; Yosinski et al.):
//! start from zeros, noise or an image; repeat forward, seed the target with 1, backpropagate to
//! the image, step; regularise with L2 decay, Gaussian blur every few steps, clipping of pixels
//! of small norm or small contribution, and random jitter.

use super::target::{input_gradient, Target};
use crate::error::Result;
use crate::net::Net;
use crate::rng::Rng;
use crate::tensor::Tensor;
use crate::ReluRule;

/// The regularisers and the step. Defaults: 200 steps of size 1 with Simonyan's L2 decay.
#[derive(Clone, Debug)]
pub struct AscentConfig {
    pub steps: usize,
    pub step_size: f32,
    /// Simonyan et al.'s lambda: maximise `S(I) - lambda * ||I||^2`.
    pub l2: f32,
    /// Yosinski et al.'s decay: `I <- (1 - decay) * I` after each step.
    pub decay: f32,
    /// Blur with this Gaussian width every `blur_every` steps (0: never).
    pub blur_every: usize,
    pub blur_sigma: f32,
    /// Zero the pixels whose norm over channels is below this percentile (0: off).
    pub clip_norm_pct: f32,
    /// Zero the pixels whose contribution `|sum_c I * grad|` is below this percentile (0: off).
    pub clip_contrib_pct: f32,
    /// Shift the image by up to this many pixels before each step, and back after.
    pub jitter: usize,
    /// Start from seeded Gaussian noise of this standard deviation (0: the zero image).
    pub noise: f32,
    pub seed: u64,
    /// How each step's learning rate is chosen.
    pub lr_policy: LrPolicy,
    /// Nguyen et al.'s center bias (multifaceted visualization): only a centred square is
    /// updated, its side growing from a third of the image to all of it by three quarters of
    /// the steps, so one object forms in the middle instead of fragments everywhere.
    pub center_bias: bool,
}

/// The side of the centre-bias square at `step` of `steps`, as a fraction of the image.
pub fn center_fraction(step: usize, steps: usize) -> f32 {
    let opened = (0.75 * steps as f32).max(1.0);
    (1.0 / 3.0 + (2.0 / 3.0) * step as f32 / opened).min(1.0)
}

/// The learning rate of each step, as the deep visualization toolbox chooses it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LrPolicy {
    /// `step_size` at every step.
    Constant,
    /// The rate that would raise the objective by `desired` to first order,
    /// `desired / |gradient|^2`, at most `max` (the toolbox's "progress" policy).
    Progress { desired: f32, max: f32 },
}

impl Default for AscentConfig {
    fn default() -> Self {
        AscentConfig {
            steps: 200,
            step_size: 1.0,
            l2: 1e-3,
            decay: 0.0,
            blur_every: 0,
            blur_sigma: 0.5,
            clip_norm_pct: 0.0,
            clip_contrib_pct: 0.0,
            jitter: 0,
            noise: 0.0,
            seed: 0,
            lr_policy: LrPolicy::Constant,
            center_bias: false,
        }
    }
}

impl AscentConfig {
    /// The four hyperparameter combinations of Yosinski et al. (2015), Table 1, rows 1-4:
    /// `(decay, blur width, blur every, norm percentile, contribution percentile)` =
    /// `(0, 0.5, 4, 50, 0)`, `(0.3, 0, 0, 20, 0)`, `(0.0001, 1.0, 4, 0, 0)`, `(0, 0.5, 4, 0, 90)`.
    /// Simonyan's L2 penalty is off in them (their decay plays that role).
    pub fn yosinski(row: usize) -> Option<AscentConfig> {
        let (decay, blur_sigma, blur_every, clip_norm_pct, clip_contrib_pct) = match row {
            1 => (0.0, 0.5, 4, 50.0, 0.0),
            2 => (0.3, 0.0, 0, 20.0, 0.0),
            3 => (0.0001, 1.0, 4, 0.0, 0.0),
            4 => (0.0, 0.5, 4, 0.0, 90.0),
            _ => return None,
        };
        Some(AscentConfig { decay, blur_sigma, blur_every, clip_norm_pct, clip_contrib_pct, l2: 0.0, ..AscentConfig::default() })
    }

    /// A Yosinski preset with the deep visualization toolbox's iterations and learning-rate
    /// policies for it (500, 750, 1000, 1000 steps; "progress" with max 100 and desired
    /// progress 2, constant 100, constant 100, "progress" with max 1e8). The toolbox's rates
    /// act on Caffe's 0-255 pixels; fovea's image is normalised by `pixel_std` (of 0-1
    /// pixels), so a rate `r` there is `r / (255 pixel_std)^2` here (the "progress" rate,
    /// `desired / |g|^2`, is the same in both units; its cap is converted).
    pub fn yosinski_schedule(row: usize, pixel_std: f32) -> Option<Self> {
        let to_normalised = 1.0 / (255.0 * pixel_std).powi(2);
        let (steps, lr_policy, step_size) = match row {
            1 => (500, LrPolicy::Progress { desired: 2.0, max: 100.0 * to_normalised }, 0.0),
            2 => (750, LrPolicy::Constant, 100.0 * to_normalised),
            3 => (1000, LrPolicy::Constant, 100.0 * to_normalised),
            4 => (1000, LrPolicy::Progress { desired: 2.0, max: 1e8 * to_normalised }, 0.0),
            _ => return None,
        };
        Some(AscentConfig { steps, lr_policy, step_size, ..Self::yosinski(row)? })
    }
}

/// A random roll of up to `jitter` pixels each way, `(dy, dx)`; no draw when `jitter` is 0.
pub(crate) fn random_roll(rng: &mut Rng, jitter: usize) -> (isize, isize) {
    if jitter == 0 {
        return (0, 0);
    }
    let j = jitter as isize;
    (rng.below(2 * jitter + 1) as isize - j, rng.below(2 * jitter + 1) as isize - j)
}

/// Rolls every plane of `x` (`[1, C, H, W]`) by `(dy, dx)` with wrap-around.
pub(crate) fn roll(x: &mut Tensor, dy: isize, dx: isize) {
    let s = x.shape().to_vec();
    let (h, w) = (s[2], s[3]);
    for plane in x.data_mut().chunks_mut(h * w) {
        let src = plane.to_vec();
        for y in 0..h {
            for xx in 0..w {
                let sy = (y as isize - dy).rem_euclid(h as isize) as usize;
                let sx = (xx as isize - dx).rem_euclid(w as isize) as usize;
                plane[y * w + xx] = src[sy * w + sx];
            }
        }
    }
}

/// A normalised Gaussian blur of each plane (`[.., H, W]` planes of `h * w`), separable,
/// borders clamped; keeps each plane's sum away from the borders and its mean level.
pub fn gaussian_blur(data: &mut [f32], h: usize, w: usize, sigma: f32) {
    if sigma <= 0.0 {
        return;
    }
    let r = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f32> = (-r..=r).map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp()).collect();
    let total: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|k| k / total).collect();
    for plane in data.chunks_mut(h * w) {
        let mut tmp = vec![0.0; h * w];
        for y in 0..h {
            for x in 0..w {
                tmp[y * w + x] = (-r..=r)
                    .map(|i| kernel[(i + r) as usize] * plane[y * w + (x as isize + i).clamp(0, w as isize - 1) as usize])
                    .sum();
            }
        }
        for y in 0..h {
            for x in 0..w {
                plane[y * w + x] = (-r..=r)
                    .map(|i| kernel[(i + r) as usize] * tmp[(y as isize + i).clamp(0, h as isize - 1) as usize * w + x])
                    .sum();
            }
        }
    }
}

/// Zeroes every pixel (all channels) whose `score` is below the `pct` percentile.
pub fn clip_pixels(x: &mut Tensor, score: &[f32], pct: f32) {
    if pct <= 0.0 {
        return;
    }
    let cut = super::render::percentile(score, pct, false);
    let plane = score.len();
    for (i, &s) in score.iter().enumerate() {
        if s < cut {
            for ch in x.data_mut().chunks_mut(plane) {
                ch[i] = 0.0;
            }
        }
    }
}

/// Runs the ascent on an image of the net's input shape, starting from `start` when given.
/// Returns the image (`[1, C, H, W]`, in the net's normalised input space) and the target's
/// value at each step. `progress` is called after each step with the step, the value and the
/// image so far.
pub fn ascend(net: &mut Net, target: &Target, cfg: &AscentConfig, start: Option<&Tensor>, mut progress: impl FnMut(usize, f32, &Tensor)) -> Result<(Tensor, Vec<f32>)> {
    let mut shape = vec![1];
    shape.extend_from_slice(net.input_shape());
    let (h, w) = (shape[2], shape[3]);
    let mut rng = Rng::new(cfg.seed);
    let mut x = match start {
        Some(s) => s.clone(),
        None => {
            let n: usize = shape.iter().product();
            Tensor::from_vec(&shape, (0..n).map(|_| cfg.noise * rng.normal()).collect())?
        }
    };
    let mut values = Vec::with_capacity(cfg.steps);
    for step in 0..cfg.steps {
        let (dy, dx) = random_roll(&mut rng, cfg.jitter);
        roll(&mut x, dy, dx);
        let (grad, value) = input_gradient(net, &x, target, ReluRule::Plain)?;
        values.push(value);
        let lr = match cfg.lr_policy {
            LrPolicy::Constant => cfg.step_size,
            LrPolicy::Progress { desired, max } => {
                let g2: f32 = grad.data().iter().map(|g| g * g).sum();
                if g2 > 0.0 { (desired / g2).min(max) } else { 0.0 }
            }
        };
        // The region this step may change: all of it, or the growing centre square.
        let (y_lo, y_hi, x_lo, x_hi) = if cfg.center_bias {
            let f = center_fraction(step, cfg.steps);
            let (sh, sw) = (((h as f32 * f).ceil() as usize).min(h), ((w as f32 * f).ceil() as usize).min(w));
            ((h - sh) / 2, (h - sh) / 2 + sh, (w - sw) / 2, (w - sw) / 2 + sw)
        } else {
            (0, h, 0, w)
        };
        // x is rolled by (dy, dx) here: the square stays put in the image's own coordinates.
        let inside = |i: usize| {
            let yy = ((i % (h * w)) / w) as isize - dy;
            let xx = (i % w) as isize - dx;
            (y_lo..y_hi).contains(&(yy.rem_euclid(h as isize) as usize)) && (x_lo..x_hi).contains(&(xx.rem_euclid(w as isize) as usize))
        };
        for (i, (v, g)) in x.data_mut().iter_mut().zip(grad.data()).enumerate() {
            if !cfg.center_bias || inside(i) {
                *v += lr * (g - 2.0 * cfg.l2 * *v);
                *v *= 1.0 - cfg.decay;
            }
        }
        roll(&mut x, -dy, -dx);
        if cfg.blur_every > 0 && (step + 1) % cfg.blur_every == 0 {
            gaussian_blur(x.data_mut(), h, w, cfg.blur_sigma);
        }
        if cfg.clip_norm_pct > 0.0 {
            let plane = h * w;
            let norm: Vec<f32> = (0..plane).map(|i| x.data().chunks(plane).map(|c| c[i] * c[i]).sum::<f32>().sqrt()).collect();
            clip_pixels(&mut x, &norm, cfg.clip_norm_pct);
        }
        if cfg.clip_contrib_pct > 0.0 {
            let plane = h * w;
            let contrib: Vec<f32> = (0..plane)
                .map(|i| x.data().chunks(plane).zip(grad.data().chunks(plane)).map(|(a, g)| a[i] * g[i]).sum::<f32>().abs())
                .collect();
            clip_pixels(&mut x, &contrib, cfg.clip_contrib_pct);
        }
        progress(step, value, &x);
    }
    Ok((x, values))
}
