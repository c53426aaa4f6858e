//! `fovea viz class` and `fovea viz neuron`: gradient ascent to a class score or to units,
//! channels and directions, in pixel space (Simonyan's and Yosinski's regularisers, Nguyen's
//! facets and center bias) or in Lucid's Fourier basis (transforms, diversity).

use super::viz::{save_raw, Common};
use super::weights::{image_input, LoadedModel};
use fovea::viz::ascent::{ascend, AscentConfig};
use fovea::viz::target::Target;
use fovea::viz::{gradient_image, input_image, render};
use fovea::{data, models, Error, Net, Result};
use std::path::PathBuf;

/// `viz class`: a class score's ascent, alone or from the data set's facets.
#[derive(clap::Args)]
pub struct ClassArgs {
    #[command(flatten)]
    pub(super) common: Common,
    /// The class: its index or its label.
    #[arg(long)]
    class: String,
    #[command(flatten)]
    ascent: AscentArgs,
    /// Nguyen et al.'s center bias: only a centred square is updated, growing from a third of
    /// the image to all of it by three quarters of the steps.
    #[arg(long)]
    center_bias: bool,
    /// Nguyen et al.'s multifaceted visualization: cluster the data set's top-scoring images of
    /// the class into this many groups (k-means on --codes) and ascend from each group's mean
    /// image; writes OUT-facet<k>.png (0: one ascent, no data needed).
    #[arg(long, default_value_t = 0)]
    facets: usize,
    /// Data directory for --facets [default: the MNIST bundled in the binary].
    #[arg(long, requires = "facets")]
    data: Option<PathBuf>,
    /// Hidden layer whose codes are clustered for --facets [default: the layer before the
    /// output].
    #[arg(long, requires = "facets")]
    codes: Option<String>,
}

/// `viz neuron`: one unit's ascent.
#[derive(clap::Args)]
pub struct NeuronArgs {
    #[command(flatten)]
    pub(super) common: Common,
    /// LAYER:CHANNEL[:Y:X]: one unit of a node's output (before its ReLU), at the map's centre
    /// unless Y:X is given. Repeat, or combine with --channel and --direction: the objectives
    /// are summed.
    #[arg(long, required_unless_present_any = ["channel", "direction"])]
    neuron: Vec<String>,
    /// LAYER:CHANNEL: a whole channel, the mean of its map over positions.
    #[arg(long)]
    channel: Vec<String>,
    /// LAYER:V1,V2,...: a direction in the node's activation space (one value per channel), the
    /// mean over positions of its dot product with the activations.
    #[arg(long)]
    direction: Vec<String>,
    #[command(flatten)]
    ascent: AscentArgs,
}

/// The ascent's settings, shared by `viz class` and `viz neuron`.
#[derive(clap::Args)]
pub struct AscentArgs {
    /// Gradient steps [default: 200, or the preset's: 500, 750, 1000, 1000].
    #[arg(long)]
    steps: Option<usize>,
    /// Learning rate of each step: image += step-size * (gradient - 2 * l2 * image).
    #[arg(long, default_value_t = 1.0)]
    step_size: f32,
    /// Simonyan et al.'s L2 penalty lambda.
    #[arg(long, default_value_t = 1e-2)]
    l2: f32,
    /// Yosinski et al.'s weight decay per step.
    #[arg(long, default_value_t = 0.0)]
    decay: f32,
    /// Blur every this many steps (0: never).
    #[arg(long, default_value_t = 4)]
    blur_every: usize,
    /// Gaussian blur width in pixels.
    #[arg(long, default_value_t = 0.5)]
    blur_sigma: f32,
    /// Zero pixels of small norm below this percentile.
    #[arg(long, default_value_t = 0.0)]
    clip_norm: f32,
    /// Zero pixels of small contribution below this percentile.
    #[arg(long, default_value_t = 0.0)]
    clip_contrib: f32,
    /// Random shifts of up to this many pixels per step.
    #[arg(long, default_value_t = 0)]
    jitter: usize,
    /// Start from Gaussian noise of this std (0: the zero image).
    #[arg(long, default_value_t = 0.0)]
    noise: f32,
    /// Seed of the noise start and the jitter.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also save the image ([1, C, H, W], normalised) to this safetensors file.
    #[arg(long)]
    raw: Option<PathBuf>,
    /// Also save the image every this many steps, as OUT-<step>.png (0: only the last).
    #[arg(long, default_value_t = 0)]
    every: usize,
    /// One of Yosinski et al.'s four regulariser combinations (rows 1-4 of their Table 1),
    /// with the deep visualization toolbox's steps and learning-rate policy for it; replaces
    /// --l2, --decay, --blur-*, --clip-* and --step-size.
    #[arg(long, value_parser = clap::builder::TypedValueParser::map(clap::builder::PossibleValuesParser::new(["1", "2", "3", "4"]), |s: String| s.parse::<u8>().unwrap_or(1)))]
    preset: Option<u8>,
    /// Start from this image instead of zeros or noise.
    #[arg(long)]
    start: Option<PathBuf>,
    /// `pixel`: the pixels are the parameters (Simonyan's and Yosinski's regularisers apply);
    /// `fft`: Lucid's Fourier basis with 1/f scaling, optimised by Adam (--lr), robust to
    /// --jitter rolls; the pixel regularisers do not apply.
    #[arg(long, default_value = "pixel", value_parser = ["pixel", "fft"])]
    param: String,
    /// With --param fft: colours through ImageNet's decorrelated colour basis (3 channels).
    #[arg(long)]
    decorrelate: bool,
    /// With --param fft: Lucid's transformation robustness, a random scale (0.9-1.1), rotation
    /// (up to 10 degrees) and shift (up to --jitter pixels) before each step.
    #[arg(long)]
    transforms: bool,
    /// With --param fft: render this many images at once, written as OUT-<k>.png.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// With --param fft and --batch: Lucid's diversity, this weight times the similarity of
    /// the images' Gram matrices at --diversity-layer subtracted from the objective.
    #[arg(long, default_value_t = 0.0)]
    diversity: f32,
    /// The node whose Gram matrices --diversity compares [default: the last convolutional
    /// block's ReLU output, as Grad-CAM's].
    #[arg(long)]
    diversity_layer: Option<String>,
    /// With --param fft: Adam's learning rate on the spectrum.
    #[arg(long, default_value_t = 0.05)]
    lr: f32,
}

pub(super) fn class_ascent(a: ClassArgs) -> Result<()> {
    let LoadedModel { mut net, classes } = a.common.m.load()?;
    let target = Target::parse_class(&a.class, &classes)?;
    let cfg = AscentConfig { center_bias: a.center_bias, ..a.ascent.config(pixel_std(&a.common.m.model))? };
    if a.facets > 0 {
        let Target::Class(class) = target else { unreachable!("parse_class gives a class") };
        return facets(&a, &mut net, class, &cfg);
    }
    ascent(&a.common, &a.ascent, &mut net, &target, &cfg)
}

pub(super) fn neuron_ascent(a: NeuronArgs) -> Result<()> {
    let LoadedModel { mut net, .. } = a.common.m.load()?;
    let mut parts = Vec::new();
    for n in &a.neuron {
        parts.push(Target::parse_neuron(n)?);
    }
    for c in &a.channel {
        parts.push(Target::parse_channel(c)?);
    }
    for d in &a.direction {
        parts.push(Target::parse_direction(d)?);
    }
    let target = if parts.len() == 1 { parts.remove(0) } else { Target::Sum(parts) };
    let cfg = a.ascent.config(pixel_std(&a.common.m.model))?;
    ascent(&a.common, &a.ascent, &mut net, &target, &cfg)
}

/// The mean standard deviation by which a model's input pixels (0-1) are normalised.
fn pixel_std(model: &str) -> f32 {
    let std = models::normalization(model).std;
    std.iter().sum::<f32>() / std.len().max(1) as f32
}

impl AscentArgs {
    /// The settings given, or a preset's regularisers, steps and learning rates (for a model
    /// whose pixels are normalised by `pixel_std`) with the given jitter and start.
    fn config(&self, pixel_std: f32) -> Result<AscentConfig> {
        let cfg = AscentConfig {
            steps: self.steps.unwrap_or(200),
            step_size: self.step_size,
            l2: self.l2,
            decay: self.decay,
            blur_every: self.blur_every,
            blur_sigma: self.blur_sigma,
            clip_norm_pct: self.clip_norm,
            clip_contrib_pct: self.clip_contrib,
            jitter: self.jitter,
            noise: self.noise,
            seed: self.seed,
            ..AscentConfig::default()
        };
        match self.preset {
            None => Ok(cfg),
            Some(row) => {
                let p = AscentConfig::yosinski_schedule(row as usize, pixel_std).ok_or_else(|| Error::Invalid(format!("no preset {row}: presets are 1-4")))?;
                Ok(AscentConfig { steps: self.steps.unwrap_or(p.steps), jitter: cfg.jitter, noise: cfg.noise, seed: cfg.seed, ..p })
            }
        }
    }
}

/// Lucid's rendering of `target`: the picture in `common.out`, the objective printed.
fn fourier_ascent(common: &Common, a: &AscentArgs, net: &mut Net, target: &Target) -> Result<()> {
    let cfg = fovea::viz::lucid::LucidConfig {
        steps: a.steps.unwrap_or(512),
        lr: a.lr,
        jitter: a.jitter,
        transforms: a.transforms,
        decorrelate: a.decorrelate,
        seed: a.seed,
        ..Default::default()
    };
    let norm = models::normalization(&common.m.model);
    let layer = match &a.diversity_layer {
        Some(l) => fovea::viz::resolve_node(net, l)?,
        None => fovea::viz::cam::default_layer(net)?,
    };
    let diversity = (a.diversity != 0.0).then_some((a.diversity, layer.as_str()));
    if diversity.is_some() && a.batch < 2 {
        return Err(Error::Invalid("--diversity pushes a batch of images apart: give --batch 2 or more".into()));
    }
    let mut bar = fovea::progress::Progress::new(cfg.steps as u64, "ascent");
    let (images, values) = fovea::viz::lucid::render_fourier_batch(net, target, &cfg, &norm, a.batch, diversity, |_, v| {
        bar.set_message(format!("objective {v:.3}"));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    let stem = common.out.file_stem().map_or("ascent".into(), |s| s.to_string_lossy().to_string());
    let ext = common.out.extension().map_or("png".into(), |e| e.to_string_lossy().to_string());
    for (k, pixels) in images.iter().enumerate() {
        // Pixels in 0-1 are already the picture: shown through the identity normalisation.
        let shown = input_image(pixels, &fovea::data::Normalize { mean: vec![0.0], std: vec![1.0] });
        let path = if images.len() == 1 { common.out.clone() } else { common.out.with_file_name(format!("{stem}-{k}.{ext}")) };
        render::save_image(&path, &render::enlarge(&shown, render::factor_for(shown.width(), 224)))?;
        if images.len() == 1 {
            // The raw image as the net reads it: normalised, unrounded.
            let plane = pixels.shape()[2] * pixels.shape()[3];
            let mut x = pixels.clone();
            for (ch, p) in x.data_mut().chunks_mut(plane).enumerate() {
                let (m, sd) = norm.channel(ch);
                p.iter_mut().for_each(|v| *v = (*v - m) / sd);
            }
            save_raw(&a.raw, "image", &x)?;
        }
    }
    let written = if images.len() == 1 { common.out.display().to_string() } else { format!("{} images {stem}-0..{}.{ext}", images.len(), images.len() - 1) };
    println!(
        "wrote {} ({target}, Fourier basis{}: objective {:.3} -> {:.3} in {} steps)",
        written,
        if cfg.decorrelate { ", decorrelated colours" } else { "" },
        values.first().copied().unwrap_or(0.0),
        values.last().copied().unwrap_or(0.0),
        values.len()
    );
    Ok(())
}

/// One ascent to `target`, its picture in `common.out`, the objective along the way printed.
fn ascent(common: &Common, a: &AscentArgs, net: &mut Net, target: &Target, cfg: &AscentConfig) -> Result<()> {
    if a.param == "fft" {
        return fourier_ascent(common, a, net, target);
    }
    if a.batch > 1 || a.diversity != 0.0 || a.transforms || a.decorrelate {
        return Err(Error::Invalid("--batch, --diversity, --transforms and --decorrelate belong to Lucid's rendering: add --param fft".into()));
    }
    let start = match &a.start {
        Some(p) => Some(image_input(net, &common.m.model, p)?),
        None => None,
    };
    let mut bar = fovea::progress::Progress::new(cfg.steps as u64, "ascent");
    let out = common.out.clone();
    let mut saved = Ok(());
    let (img, values) = ascend(net, target, cfg, start.as_ref(), |step, v, x| {
        bar.inc(1);
        bar.set_message(format!("objective {v:.3}"));
        if a.every > 0 && (step + 1) % a.every == 0 && saved.is_ok() {
            let stem = out.file_stem().map_or("ascent".into(), |s| s.to_string_lossy().to_string());
            let path = out.with_file_name(format!("{stem}-{:04}.png", step + 1));
            let shown = gradient_image(x, false, 99.5);
            saved = render::save_image(&path, &render::enlarge(&shown, render::factor_for(shown.width(), 224)));
        }
    })?;
    saved?;
    bar.finish_and_clear();
    let shown = gradient_image(&img, false, 99.5);
    render::save_image(&common.out, &render::enlarge(&shown, render::factor_for(shown.width(), 224)))?;
    save_raw(&a.raw, "image", &img)?;
    // The objective along the way, at ten evenly spaced steps.
    let every = values.len().div_ceil(10).max(1);
    for (i, v) in values.iter().enumerate().filter(|(i, _)| (i + 1) % every == 0 || *i == 0) {
        println!("step {:>5}  objective {v:.4}", i + 1);
    }
    println!(
        "wrote {} ({}: objective {:.3} -> {:.3} in {} steps)",
        common.out.display(), target, values.first().copied().unwrap_or(0.0), values.last().copied().unwrap_or(0.0), values.len()
    );
    Ok(())
}

/// Multifaceted visualization: one ascent from the mean image of each cluster of the class's
/// top-scoring data images.
fn facets(a: &ClassArgs, net: &mut Net, class: usize, cfg: &AscentConfig) -> Result<()> {
    let target = Target::Class(class);
    let s = net.input_shape().to_vec();
    let split = data::load_dir(&super::args::data_or_bundled(&a.data), [s[0], s[1], s[2]])?;
    let ds = if split.test.is_empty() { split.train } else { split.test };
    let norm = models::normalization(&a.common.m.model);
    let layer = match &a.codes {
        Some(l) => l.clone(),
        None => {
            let names: Vec<String> = net.node_names().map(String::from).collect();
            let linear: Vec<&String> = names.iter().filter(|n| net.layer(n).is_some_and(|l| l.kind() == "Linear")).collect();
            linear.iter().rev().nth(1).map(|n| n.to_string()).unwrap_or_else(|| names[names.len().saturating_sub(2)].clone())
        }
    };
    let found = fovea::viz::facets::facet_starts(net, &ds, &norm, class, &layer, a.facets, 200, a.ascent.seed)?;
    let stem = a.common.out.file_stem().map_or("class".into(), |s| s.to_string_lossy().to_string());
    for (k, start) in found.iter().enumerate() {
        let (img, values) = ascend(net, &target, cfg, Some(start), |_, _, _| {})?;
        let path = a.common.out.with_file_name(format!("{stem}-facet{k}.png"));
        let shown = gradient_image(&img, false, 99.5);
        render::save_image(&path, &render::enlarge(&shown, render::factor_for(shown.width(), 224)))?;
        println!("wrote {} (objective {:.3})", path.display(), values.last().copied().unwrap_or(0.0));
    }
    Ok(())
}
