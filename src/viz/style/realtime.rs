//! Real-time style transfer (Johnson, Alahi and Fei-Fei, "Perceptual Losses for Real-Time Style
//! Transfer and Super-Resolution", 2016): a feed-forward network ([`crate::models::transformer`])
//! trained on photos to minimise the perceptual losses of Gatys et al. (this module's parent:
//! content against the photo itself, style against one painting's Gram matrices) measured by a
//! fixed VGG, so that one forward pass stylises any photo.
//!
//! The trainer keeps `fovea train`'s habits: a run directory with `config.json`, `metrics.jsonl`
//! and `last.safetensors` (the network, Adam's state and the step), checkpoints every few steps
//! and when stopped, and `--resume`. Its randomness is the epoch's shuffle of the photos, a
//! function of (seed, epoch), so a resumed run is bit-identical to an uninterrupted one at the
//! same thread count.

use super::{content_loss, gram, style_layer_loss, total_variation, LossWeights, Losses, StyleLayers};
use crate::data::Normalize;
use crate::error::{Error, Result};
use crate::layers::{BackwardCtx, ForwardCtx, Mode};
use crate::models::transformer::{self, transformer_net};
use crate::net::Net;
use crate::optim::{Adam, Optimizer};
use crate::rng::{mix64, Rng};
use crate::tensor::Tensor;
use crate::train::checkpoint::{self, Progress, WeightsInfo};
use crate::train::RunOptions;
use crate::ReluRule;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Everything that decides a training run; saved as `config.json` in the run directory.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RealtimeConfig {
    /// The painting.
    pub style: PathBuf,
    /// The folder of photos (COCO's train2014 in the paper).
    pub data: PathBuf,
    /// The loss network (`vgg19`, or `vgg16` as the paper) and its weights.
    pub model: String,
    pub weights: PathBuf,
    /// Max pools swapped for average pools in the loss network (`avg`), or not (`max`).
    pub pool: String,
    /// Where the trained network is written.
    pub out: PathBuf,
    /// Side of the square training crops, and of the painting (the paper's 256).
    pub size: usize,
    /// The network's width: 32 (the paper's) gives 32, 64 and 128 channels.
    pub width: usize,
    pub batch_size: usize,
    pub epochs: usize,
    /// Adam's learning rate (the paper's 1e-3).
    pub lr: f32,
    pub style_layers: Vec<String>,
    pub content_layer: String,
    pub alpha: f32,
    pub beta: f32,
    pub gamma: f32,
    pub seed: u64,
    /// Worker threads (recorded: the same seed and thread count give the same numbers).
    pub threads: usize,
    /// A metrics line every this many steps.
    pub log_every: usize,
    /// A checkpoint (and `preview.png`) every this many steps, besides the end.
    pub checkpoint_every: usize,
}

/// Johnson et al.'s layers in torchvision's VGG-19: content at relu2_2, style at relu1_2,
/// relu2_2, relu3_3 and relu4_3 (the paper's VGG-16 layers; in VGG-16 relu4_3 is features.22).
pub fn johnson_layers(model: &str) -> StyleLayers {
    let relu4_3 = if model == "vgg16" || model == "vgg16_bn" { "features.22" } else { "features.24" };
    StyleLayers { style: ["features.3", "features.8", "features.15", relu4_3].map(String::from).to_vec(), content: "features.8".into() }
}

/// The default style weight: the paper's balance (style 5 x content, with its losses
/// normalised by C H W) in Gatys et al.'s units at 256 pixels: `beta / alpha = 2 * 5 * N M * L`
/// with N M = 128 x 128 x 128 cells at relu2_2 and L = 4 style layers, about 8.4e7.
pub const DEFAULT_BETA: f32 = 1e8;

impl RealtimeConfig {
    /// The paper's settings: 256-pixel crops, batch 4, 2 epochs, Adam at 1e-3, width 32.
    pub fn defaults(style: &Path, data: &Path, model: &str, weights: &Path, out: &Path) -> Self {
        let layers = johnson_layers(model);
        RealtimeConfig {
            style: style.to_path_buf(),
            data: data.to_path_buf(),
            model: model.to_string(),
            weights: weights.to_path_buf(),
            pool: "max".into(),
            out: out.to_path_buf(),
            size: 256,
            width: transformer::DEFAULT_WIDTH,
            batch_size: 4,
            epochs: 2,
            lr: 1e-3,
            style_layers: layers.style,
            content_layer: layers.content,
            alpha: 1.0,
            beta: DEFAULT_BETA,
            gamma: 0.0,
            seed: 1,
            threads: rayon::current_num_threads(),
            log_every: 20,
            checkpoint_every: 500,
        }
    }

    /// Refuses settings no run can use, before anything is read.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(m));
        if !(transformer::MIN_SIDE..=4096).contains(&self.size) {
            return bad(format!("--size {} : training crops take {} to 4096 pixels", self.size, transformer::MIN_SIDE));
        }
        if !(1..=1024).contains(&self.width) {
            return bad(format!("--width {}: the network's width is 1 to 1024 channels (the paper's 32)", self.width));
        }
        if self.epochs == 0 || !(1..=4096).contains(&self.batch_size) {
            return bad(format!("epochs ({}) must be at least 1 and the batch size ({}) 1 to 4096", self.epochs, self.batch_size));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("the learning rate must be a number above 0, not {}", self.lr));
        }
        for (name, v) in [("alpha", self.alpha), ("beta", self.beta), ("gamma", self.gamma)] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("--{name} must be a number of at least 0, not {v}"));
            }
        }
        if self.style_layers.is_empty() {
            return bad("give at least one style layer".into());
        }
        Ok(())
    }

    fn layers(&self) -> StyleLayers {
        StyleLayers { style: self.style_layers.clone(), content: self.content_layer.clone() }
    }

    fn weights(&self) -> LossWeights {
        LossWeights { alpha: self.alpha, beta: self.beta, gamma: self.gamma }
    }
}

/// Reads the `config.json` of a run directory.
pub fn read_config(run_dir: &Path) -> Result<RealtimeConfig> {
    let p = run_dir.join("config.json");
    let bytes = std::fs::read(&p).map_err(|e| Error::file(&p, format!("cannot read: {e}")))?;
    let cfg: RealtimeConfig =
        serde_json::from_slice(&bytes).map_err(|e| Error::file(&p, format!("is not the configuration of a style network's training: {e}")))?;
    cfg.check().map_err(|e| Error::file(&p, format!("holds a configuration fovea cannot run: {e}")))?;
    Ok(cfg)
}

/// What a finished (or stopped) run reached.
#[derive(Clone, Debug)]
pub struct RealtimeOutcome {
    pub steps: usize,
    /// Whether it stopped early (Ctrl-C) with a checkpoint.
    pub stopped: bool,
    /// The mean losses of the first and of the last logged window of steps this call ran.
    pub first: Losses,
    pub last: Losses,
    pub seconds_per_step: f64,
}

/// One metrics line.
#[derive(Serialize, Deserialize)]
struct StepRecord {
    step: usize,
    epoch: usize,
    content: f64,
    style: f64,
    tv: f64,
    total: f64,
    images_per_sec: f64,
}

/// The loss network's input for pictures in 0-255: `(x / 255 - mean) / std` per channel.
fn normalise(x: &Tensor, norm: &Normalize) -> Tensor {
    let s = x.shape();
    let plane = s[2] * s[3];
    let mut out = x.clone();
    for (i, p) in out.data_mut().chunks_mut(plane).enumerate() {
        let (m, sd) = norm.channel(i % s[1]);
        p.iter_mut().for_each(|v| *v = (*v / 255.0 - m) / sd);
    }
    out
}

/// The loss network's features at `layer`: `[B, N, h, w]`, with N and M = h w.
fn features<'a>(net: &'a Net, layer: &str) -> Result<(&'a Tensor, usize, usize)> {
    let v = net.value(layer).ok_or_else(|| crate::viz::no_node(net, layer))?;
    match *v.shape() {
        [_, n, h, w] => Ok((v, n, h * w)),
        ref s => Err(Error::shape(format!("style transfer reads maps [B, C, H, W]; {layer} gives {s:?}"))),
    }
}

/// The perceptual losses of a batch of stylised pictures against their photos' content and the
/// painting's Gram matrices, averaged over the batch.
pub struct Perceptual<'a> {
    pub net: &'a mut Net,
    pub norm: &'a Normalize,
    pub layers: StyleLayers,
    pub weights: LossWeights,
    /// The painting's Gram matrix at each style layer.
    grams: Vec<Vec<f32>>,
    deepest: String,
    /// Kept from step to step (tens of megabytes each at 256 pixels, which the allocator would
    /// otherwise map, fault in and zero again every step): the photos' content features, and
    /// the seed gradient at the content layer and at each style layer.
    content_targets: Tensor,
    seeds: Vec<(String, Tensor)>,
}

impl<'a> Perceptual<'a> {
    /// The losses for painting `style` (`[1, 3, S, S]`, 0-255) read by `net`.
    pub fn new(net: &'a mut Net, norm: &'a Normalize, layers: StyleLayers, weights: LossWeights, style: &Tensor) -> Result<Self> {
        let deepest = super::deepest(net, &layers)?;
        let seeds = std::iter::once(&layers.content).chain(&layers.style).map(|l| (l.clone(), Tensor::default())).collect();
        let mut p = Perceptual { net, norm, layers, weights, grams: Vec::new(), deepest, content_targets: Tensor::default(), seeds };
        p.run(style, "painting")?;
        for l in &p.layers.style {
            let (f, n, m) = features(p.net, l)?;
            p.grams.push(gram(f.data(), n, m));
        }
        Ok(p)
    }

    fn run(&mut self, x: &Tensor, what: &str) -> Result<()> {
        let s = x.shape();
        let ctx = ForwardCtx { mode: Mode::Eval, ..Default::default() };
        self.net.forward_to(&normalise(x, self.norm), &ctx, &self.deepest).map_err(|e| {
            Error::Invalid(format!("the {what} at {}x{} pixels is too small for the layers up to {} ({e}); give a larger --size", s[3], s[2], self.deepest))
        })?;
        Ok(())
    }

    /// The mean losses of pictures `y` (`[B, 3, S, S]`, 0-255) stylised from photos `x` (same
    /// shape), and the gradient of the mean weighted total with respect to `y`.
    pub fn losses_and_gradient(&mut self, x: &Tensor, y: &Tensor) -> Result<(Losses, Tensor)> {
        let b = x.shape()[0];
        // The photos' own features at the content layer are the content targets.
        let ctx = ForwardCtx { mode: Mode::Eval, ..Default::default() };
        let targets = self.net.forward_to(&normalise(x, self.norm), &ctx, &self.layers.content)?;
        self.content_targets.set_shape(targets.shape());
        self.content_targets.data_mut().copy_from_slice(targets.data());
        self.run(y, "stylised picture")?;
        let per_image = 1.0 / b as f64;
        let mut sum = Losses::default();
        let (f, ..) = features(self.net, &self.layers.content)?;
        let seed = &mut self.seeds[0].1;
        seed.set_shape(f.shape());
        let each = f.len() / b;
        for ((fi, pi), si) in f.data().chunks(each).zip(self.content_targets.data().chunks(each)).zip(seed.data_mut().chunks_mut(each)) {
            let (c, g) = content_loss(fi, pi);
            sum.content += c * per_image;
            let k = (self.weights.alpha as f64 * per_image) as f32;
            si.iter_mut().zip(&g).for_each(|(s, g)| *s = g * k);
        }
        let w_l = 1.0 / self.layers.style.len() as f64;
        for ((l, a), (_, seed)) in self.layers.style.iter().zip(&self.grams).zip(&mut self.seeds[1..]) {
            let (f, n, m) = features(self.net, l)?;
            seed.set_shape(f.shape());
            for (fi, si) in f.data().chunks(n * m).zip(seed.data_mut().chunks_mut(n * m)) {
                let (e, g) = style_layer_loss(fi, a, n, m);
                sum.style += w_l * e * per_image;
                let k = (self.weights.beta as f64 * w_l * per_image) as f32;
                si.iter_mut().zip(&g).for_each(|(s, g)| *s = g * k);
            }
        }
        let refs: Vec<(&str, &Tensor)> = self.seeds.iter().map(|(n, t)| (n.as_str(), t)).collect();
        self.net.backward_seeds(&refs, &BackwardCtx { rule: ReluRule::Plain, param_grads: false, input_grad: true })?;
        let mut grad = self.net.input_grad().clone();
        // Total variation of the loss network's input, as `fovea style`.
        let (tv, tv_grad) = total_variation(&normalise(y, self.norm));
        sum.tv = tv * per_image;
        if self.weights.gamma != 0.0 {
            let k = (self.weights.gamma as f64 * per_image) as f32;
            grad.data_mut().iter_mut().zip(&tv_grad).for_each(|(g, t)| *g += k * t);
        }
        // From the normalised input back to pixels: d/dy = d/dx' / (255 std).
        let plane = y.shape()[2] * y.shape()[3];
        for (i, p) in grad.data_mut().chunks_mut(plane).enumerate() {
            let k = 1.0 / (255.0 * self.norm.channel(i % 3).1);
            p.iter_mut().for_each(|v| *v *= k);
        }
        let w = &self.weights;
        sum.total = w.alpha as f64 * sum.content + w.beta as f64 * sum.style + w.gamma as f64 * sum.tv;
        Ok((sum, grad))
    }
}

/// The painting as `[1, 3, size, size]`, 0-255 (stretched: a style has no aspect to keep).
pub fn painting(path: &Path, size: usize) -> Result<Tensor> {
    let img = crate::data::folder::open_image(path)?;
    let rgb = img.resize_exact(size as u32, size as u32, image::imageops::FilterType::Triangle).to_rgb8();
    Tensor::from_vec(&[1, 3, size, size], super::photos::planes(&rgb))
}

/// The metadata of a trained network.
fn info(cfg: &RealtimeConfig) -> WeightsInfo {
    WeightsInfo { model: transformer::NAME.into(), classes: Vec::new(), input: vec![3, cfg.size, cfg.size] }
}

/// Trains a style network as `cfg` says into `run_dir`, reading features with `loss_net` (the
/// VGG of `cfg.model` with its weights loaded; `norm` its input normalisation), and writes it to
/// `cfg.out`. With `resume`, continues from the run directory's `last.safetensors`.
pub fn train(cfg: &RealtimeConfig, loss_net: &mut Net, norm: &Normalize, run_dir: &Path, resume: bool, opts: &RunOptions) -> Result<RealtimeOutcome> {
    cfg.check()?;
    if opts.group.is_some() {
        return Err(Error::Invalid("a style network trains in one process; --distributed is for fovea train".into()));
    }
    let photos = super::photos::list(&cfg.data)?;
    if photos.len() < cfg.batch_size {
        return Err(Error::file(&cfg.data, format!("holds {} photo(s), fewer than a batch of {}", photos.len(), cfg.batch_size)));
    }
    let style = painting(&cfg.style, cfg.size)?;
    let mut losses = Perceptual::new(loss_net, norm, cfg.layers(), cfg.weights(), &style)?;
    let mut net = transformer_net(cfg.width, [3, cfg.size, cfg.size])?;
    net.init(cfg.seed);
    // Only its output is read: each ReLU is applied by the instance norm before it.
    net.fuse_activations(true);
    let mut adam = Adam::new(0.0, false);
    std::fs::create_dir_all(run_dir).map_err(|e| Error::file(run_dir, format!("cannot create: {e}")))?;
    crate::io::atomic::remove_stale_temporaries(run_dir);
    let last_path = run_dir.join("last.safetensors");
    let mut progress = Progress::default();
    if resume && last_path.is_file() {
        let loaded = checkpoint::load(&last_path)?;
        let bad = checkpoint::nonfinite_report(loaded.model.iter().chain(&loaded.optimizer));
        if !bad.is_empty() {
            return Err(Error::file(&last_path, format!("holds values that are not numbers ({}): it cannot be resumed", bad.join("; "))));
        }
        if loaded.info.as_ref().map(|i| i.model.as_str()) != Some(transformer::NAME) {
            return Err(Error::file(&last_path, "is not a style network's checkpoint"));
        }
        net.load_state(&loaded.model).map_err(|e| Error::file(&last_path, e.to_string()))?;
        adam.load_state(&loaded.optimizer)?;
        progress = loaded.progress.ok_or_else(|| Error::file(&last_path, "has no training progress: not a checkpoint"))?;
        if opts.verbose {
            println!("resuming from step {} ({})", progress.step, last_path.display());
        }
    } else {
        if resume && opts.verbose {
            println!("{} holds no checkpoint yet: the run starts again from step 0", run_dir.display());
        }
        let text = serde_json::to_string_pretty(cfg).map_err(|e| Error::Invalid(e.to_string()))?;
        crate::io::atomic::write_atomic(&run_dir.join("config.json"), text.as_bytes())?;
    }
    let metrics_path = run_dir.join("metrics.jsonl");
    keep_metrics_through(&metrics_path, (progress.step > 0).then_some(progress.step))?;

    let steps_per_epoch = photos.len() / cfg.batch_size;
    let total_steps = steps_per_epoch * cfg.epochs;
    let info = info(cfg);
    let back = BackwardCtx { param_grads: true, input_grad: false, ..BackwardCtx::default() };
    let train_ctx = ForwardCtx { mode: Mode::Train, backward_from_output_only: true, ..Default::default() };
    let out_name = net.output_name().to_string();
    let mut bar: Option<crate::progress::Progress> = None;
    let mut order: Vec<usize> = Vec::new();
    let (mut window, mut window_steps, mut window_start) = (Losses::default(), 0usize, Instant::now());
    let mut outcome = RealtimeOutcome { steps: progress.step, stopped: false, first: Losses::default(), last: Losses::default(), seconds_per_step: 0.0 };
    let (start, start_step) = (Instant::now(), progress.step);
    let mut first_logged = false;
    while progress.step < total_steps {
        let step = progress.step;
        let (epoch, pos) = (step / steps_per_epoch, step % steps_per_epoch);
        if order.is_empty() || pos == 0 {
            order = (0..photos.len()).collect();
            Rng::new(mix64(cfg.seed ^ mix64(0x57E1 + epoch as u64))).shuffle(&mut order);
            if opts.progress {
                let mut b = crate::progress::Progress::new(steps_per_epoch as u64, &format!("epoch {}/{}", epoch + 1, cfg.epochs));
                b.set_position(pos as u64);
                bar = Some(b);
            }
        }
        let paths: Vec<&Path> = order[pos * cfg.batch_size..(pos + 1) * cfg.batch_size].iter().map(|&i| photos[i].as_path()).collect();
        let x = super::photos::batch(&paths, cfg.size)?;
        let y = net.forward(&x, &train_ctx)?.clone();
        let (l, dy) = losses.losses_and_gradient(&x, &y)?;
        if !l.total.is_finite() {
            return Err(Error::Invalid(format!(
                "step {}: the loss is {} (content {}, style {}); try a smaller --lr. {}",
                step + 1, l.total, l.content, l.style, last_good(&last_path)
            )));
        }
        net.backward_fresh(&out_name, &dy, &back)?;
        if !net.grads_finite() {
            return Err(Error::Invalid(format!(
                "step {}: the gradient of {} is not finite; try a smaller --lr. {}",
                step + 1, net.first_nonfinite_grad().unwrap_or_default(), last_good(&last_path)
            )));
        }
        adam.step(&mut net.params_mut(), cfg.lr);
        progress.step += 1;
        progress.epoch_loss_sum += l.total;
        progress.epoch_seen += 1;
        accumulate(&mut window, &l);
        window_steps += 1;
        if let Some(b) = &mut bar {
            b.set_message(format!("total {:.4e}", l.total));
            b.inc(1);
        }
        let stop = opts.stop.is_some_and(|s| s.load(Ordering::SeqCst));
        let end_of_epoch = progress.step % steps_per_epoch == 0;
        if progress.step % cfg.log_every.max(1) == 0 || end_of_epoch || stop || progress.step == total_steps {
            let mean = scaled(&window, 1.0 / window_steps as f64);
            let secs = window_start.elapsed().as_secs_f64().max(1e-9);
            let record = StepRecord {
                step: progress.step,
                epoch: epoch + 1,
                content: mean.content,
                style: mean.style,
                tv: mean.tv,
                total: mean.total,
                images_per_sec: (window_steps * cfg.batch_size) as f64 / secs,
            };
            append_metrics(&metrics_path, &record)?;
            if !first_logged {
                outcome.first = mean;
                first_logged = true;
            }
            outcome.last = mean;
            (window, window_steps, window_start) = (Losses::default(), 0, Instant::now());
        }
        if end_of_epoch {
            if let Some(mut b) = bar.take() {
                b.finish_and_clear();
            }
            if opts.verbose {
                println!(
                    "epoch {}/{}: mean total {:.4e} over {} steps",
                    epoch + 1, cfg.epochs, progress.epoch_loss_sum / progress.epoch_seen.max(1) as f64, progress.epoch_seen
                );
            }
            (progress.epoch_loss_sum, progress.epoch_seen) = (0.0, 0);
        }
        let due = cfg.checkpoint_every > 0 && progress.step % cfg.checkpoint_every == 0;
        if due || stop || progress.step == total_steps {
            checkpoint::save(&last_path, &net, Some(&adam), &info, Some(&progress))?;
            write_preview(&mut net, photos[0].as_path(), cfg.size, &run_dir.join("preview.png"))?;
        }
        if stop {
            outcome.stopped = true;
            break;
        }
    }
    if let Some(b) = bar.take() {
        b.abandon();
    }
    checkpoint::save(&cfg.out, &net, None, &info, None)?;
    outcome.steps = progress.step;
    outcome.seconds_per_step = start.elapsed().as_secs_f64() / (progress.step - start_step).max(1) as f64;
    Ok(outcome)
}

fn last_good(last_path: &Path) -> String {
    if last_path.exists() {
        format!("{} holds the last good network", last_path.display())
    } else {
        "no checkpoint had been written yet".to_string()
    }
}

fn accumulate(sum: &mut Losses, l: &Losses) {
    sum.content += l.content;
    sum.style += l.style;
    sum.tv += l.tv;
    sum.total += l.total;
}

fn scaled(l: &Losses, k: f64) -> Losses {
    Losses { content: l.content * k, style: l.style * k, tv: l.tv * k, total: l.total * k }
}

/// Starts the metrics log, or when resuming at `step` keeps its lines up to that step (those
/// written after the checkpoint are dropped, so the log reads as one run).
fn keep_metrics_through(path: &Path, step: Option<usize>) -> Result<()> {
    let kept = match (step, std::fs::read(path)) {
        (Some(s), Ok(bytes)) => bytes
            .split(|&b| b == b'\n')
            .filter(|l| serde_json::from_slice::<StepRecord>(l).is_ok_and(|r| r.step <= s))
            .flat_map(|l| l.iter().copied().chain([b'\n']))
            .collect(),
        _ => Vec::new(),
    };
    crate::io::atomic::write_atomic(path, &kept)
}

fn append_metrics(path: &Path, r: &StepRecord) -> Result<()> {
    use std::io::Write;
    let line = serde_json::to_string(r).map_err(|e| Error::Invalid(e.to_string()))? + "\n";
    let mut f = std::fs::OpenOptions::new().append(true).create(true).open(path).map_err(|e| Error::file(path, format!("cannot append: {e}")))?;
    f.write_all(line.as_bytes()).map_err(|e| Error::file(path, format!("cannot append: {e}")))
}

/// The first photo stylised by the network so far, beside it, for watching a run.
fn write_preview(net: &mut Net, photo: &Path, size: usize, out: &Path) -> Result<()> {
    let x = Tensor::from_vec(&[1, 3, size, size], super::photos::load_square(photo, size)?)?;
    let y = apply(net, &x)?;
    let pair = side_by_side(&to_rgb(&x), &to_rgb(&y));
    crate::viz::render::save_image(out, &pair)
}

fn side_by_side(a: &image::RgbImage, b: &image::RgbImage) -> image::RgbImage {
    let mut out = image::RgbImage::new(a.width() + b.width(), a.height().max(b.height()));
    image::imageops::replace(&mut out, a, 0, 0);
    image::imageops::replace(&mut out, b, a.width() as i64, 0);
    out
}

/// Pixels `[1, 3, H, W]` in 0-255 (clamped, rounded) as a picture.
pub fn to_rgb(x: &Tensor) -> image::RgbImage {
    let s = x.shape();
    let (h, w) = (s[2], s[3]);
    let plane = h * w;
    let px = |ch: usize, i: usize| x.data()[ch * plane + i].clamp(0.0, 255.0).round() as u8;
    image::RgbImage::from_fn(w as u32, h as u32, |xx, y| {
        let i = y as usize * w + xx as usize;
        image::Rgb([px(0, i), px(1, i), px(2, i)])
    })
}

/// Stylises photo `x` (`[1, 3, H, W]`, 0-255, sides of at least `MIN_SIDE`) in one forward
/// pass: padded by reflection to sides that are multiples of 4 (the network halves twice and
/// doubles twice), run, cropped back to H x W. Pixels out are 0-255, not yet clamped.
pub fn apply(net: &mut Net, x: &Tensor) -> Result<Tensor> {
    let s = x.shape().to_vec();
    let (h, w) = (s[2], s[3]);
    if h.min(w) < transformer::MIN_SIDE {
        return Err(Error::shape(format!("a {w}x{h} photo is too small to stylise: give sides of at least {} pixels", transformer::MIN_SIDE)));
    }
    let (ph, pw) = (h.next_multiple_of(4), w.next_multiple_of(4));
    let padded = if (ph, pw) == (h, w) {
        x.clone()
    } else {
        let mut p = Tensor::zeros(&[s[0], s[1], ph, pw]);
        crate::kernels::resample::reflect_pad_forward(p.data_mut(), x.data(), h, w, [0, ph - h, 0, pw - w]);
        p
    };
    // Only the output is wanted: the lean pass holds a fraction of the values.
    let y = net.forward_lean(&padded, &ForwardCtx { mode: Mode::Eval, ..Default::default() })?;
    let mut out = Tensor::zeros(&s);
    let plane_in = ph * pw;
    for (o, p) in out.data_mut().chunks_mut(h * w).zip(y.data().chunks(plane_in)) {
        for (orow, prow) in o.chunks_mut(w).zip(p.chunks(pw)) {
            orow.copy_from_slice(&prow[..w]);
        }
    }
    Ok(out)
}

/// A trained style network from a safetensors file (fovea's, or pytorch/examples' state dict
/// saved with safetensors): its width is read from `conv1.conv2d.weight`; the stale instance
/// norm statistics that PyTorch before 0.4 saved (`in1.running_mean` ...) are ignored, as that
/// example's `stylize` does.
pub fn load(path: &Path) -> Result<Net> {
    load_for(path, [3, 256, 256])
}

/// As `load`, the network built for pictures of `input` (`[3, H, W]`; what an export writes).
pub fn load_for(path: &Path, input: [usize; 3]) -> Result<Net> {
    let loaded = checkpoint::load(path)?;
    if let Some(i) = &loaded.info {
        if i.model != transformer::NAME {
            return Err(Error::file(path, format!("holds a {} model, not a style network (train one with fovea style --train)", i.model)));
        }
    }
    let first = loaded.model.get("conv1.conv2d.weight").ok_or_else(|| {
        Error::file(path, "has no conv1.conv2d.weight: not a style network (fovea style --train writes one; pytorch/examples' fast_neural_style too)")
    })?;
    let width = match *first.shape() {
        [w, 3, 9, 9] if w > 0 => w,
        ref s => return Err(Error::file(path, format!("conv1.conv2d.weight has shape {s:?}; a style network's is [width, 3, 9, 9]"))),
    };
    let bad = checkpoint::nonfinite_report(loaded.model.iter());
    if !bad.is_empty() {
        return Err(Error::file(path, format!("holds values that are not numbers ({})", bad.join("; "))));
    }
    let mut net = transformer_net(width, input).map_err(|e| Error::file(path, e.to_string()))?;
    let tensors: std::collections::BTreeMap<String, Tensor> =
        loaded.model.into_iter().filter(|(k, _)| !(k.ends_with(".running_mean") || k.ends_with(".running_var"))).collect();
    net.load_state(&tensors).map_err(|e| Error::file(path, e.to_string()))?;
    // Not fused: `apply`'s lean pass is about memory, and there the fused ReLUs changed which
    // freed buffers got reused (1024x1024: peak 2.12 -> 2.15 GB) for 2% of the time.
    Ok(net)
}
