//! `fovea dream`: DeepDream on a photo (or a digit, with the MNIST nets).

use super::weights::{LoadedModel, ModelArgs};
use fovea::viz::dream::{dream, DreamConfig, Objective};
use fovea::viz::{image_tensor, input_image, render};
use fovea::{data, models, Error, ForwardCtx, Mode, Result};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    m: ModelArgs,
    /// The node whose activations the dream raises (e.g. inception4c, layer3, relu2; `fovea
    /// summary MODEL` lists them). Deeper nodes dream objects, shallower ones textures.
    #[arg(long)]
    layer: String,
    /// The photo to dream on (PNG or JPEG), kept at its size unless --size is given.
    image: PathBuf,
    /// The dreamed picture to write; its extension (png, jpg) names the format.
    #[arg(short = 'o', long = "out", default_value = "dream.png")]
    out: PathBuf,
    /// Dream one channel of the layer (the mean of its squares) instead of all of them.
    #[arg(long, conflicts_with = "guide")]
    channel: Option<usize>,
    /// Controlled dreaming: raise what matches this image's activations at the layer.
    #[arg(long)]
    guide: Option<PathBuf>,
    /// Scales, smallest first; the detail gained at one is carried up to the next.
    #[arg(long, default_value_t = 4)]
    octaves: usize,
    /// How many times smaller each octave is than the one above.
    #[arg(long, default_value_t = 1.4)]
    octave_scale: f32,
    /// Gradient steps per octave.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Mean change of a pixel per step, in grey levels (0-255).
    #[arg(long, default_value_t = 1.5)]
    step_size: f32,
    /// Largest random roll in pixels before each step.
    #[arg(long, default_value_t = 32)]
    jitter: usize,
    /// Seed of the rolls.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Resize the photo (and the guide) so its shorter side has this many pixels first
    /// [default: as it is].
    #[arg(long)]
    size: Option<u32>,
    /// One line of JSON per step: {"octave", "step", "objective"}.
    #[arg(long)]
    json: bool,
    /// Also save the picture every this many steps, as OUT-<octave>-<step>.png (0: never).
    #[arg(long, default_value_t = 0)]
    every: usize,
}

/// The image at `path`, its shorter side `size` pixels when given.
fn load(path: &Path, size: Option<u32>) -> Result<image::DynamicImage> {
    let img = data::folder::open_image(path)?;
    match size {
        Some(0) => Err(Error::Invalid("--size must be at least 1".into())),
        Some(s) => Ok(data::folder::fit_short_side(img, s)),
        None => Ok(img),
    }
}

pub fn run(a: Args) -> Result<()> {
    render::image_format_for(&a.out)?;
    // Before minutes of optimisation, not after.
    fovea::io::atomic::check_destination(&a.out)?;
    let LoadedModel { mut net, .. } = a.m.load()?;
    let norm = models::normalization(&a.m.model);
    let channels = net.input_shape()[0];
    let x = image_tensor(&load(&a.image, a.size)?, channels, &norm);
    // A block's name (layer3) means its last node (layer3.1.relu).
    let layer = fovea::viz::resolve_node(&net, &a.layer)?;
    let objective = match (&a.channel, &a.guide) {
        (Some(c), _) => Objective::Channel(*c),
        (None, Some(g)) => {
            let gx = image_tensor(&load(g, a.size)?, channels, &norm);
            let act = net.forward_to(&gx, &ForwardCtx { mode: Mode::Eval, seed: 0, ..Default::default() }, &layer).map_err(|e| Error::file(g, format!("as a guide: {e}")))?;
            Objective::Guide(act.clone())
        }
        (None, None) => Objective::Squares,
    };
    let cfg = DreamConfig { octaves: a.octaves, octave_scale: a.octave_scale, steps: a.steps, step_size: a.step_size, jitter: a.jitter, seed: a.seed };
    if !(a.octave_scale.is_finite() && a.octave_scale >= 1.0) || a.octaves == 0 {
        return Err(Error::Invalid("--octaves must be at least 1 and --octave-scale a number of at least 1".into()));
    }
    let total = (cfg.octaves * cfg.steps) as u64;
    let mut bar = if a.json { fovea::progress::Progress::hidden() } else { fovea::progress::Progress::new(total, "dream") };
    let stem = a.out.file_stem().map_or("dream".into(), |s| s.to_string_lossy().to_string());
    let ext = a.out.extension().map_or("png".into(), |e| e.to_string_lossy().to_string());
    let (mut first, mut last, mut saved) = (None, 0.0f32, Ok(()));
    let out = dream(&mut net, &layer, &x, &objective, &cfg, &norm, |s| {
        if a.json {
            println!("{}", serde_json::json!({"octave": s.octave, "step": s.step, "objective": super::args::json_f32(s.objective)}));
        }
        first.get_or_insert(s.objective);
        last = s.objective;
        bar.set_message(format!("octave {} objective {:.4}", s.octave, s.objective));
        bar.inc(1);
        if a.every > 0 && s.step % a.every == 0 && saved.is_ok() {
            let path = a.out.with_file_name(format!("{stem}-{}-{:03}.{ext}", s.octave, s.step));
            saved = render::save_image(&path, &input_image(s.image, &norm));
        }
    })?;
    saved?;
    bar.finish_and_clear();
    render::save_image(&a.out, &input_image(&out, &norm))?;
    if !a.json {
        let (h, w) = (out.shape()[2], out.shape()[3]);
        println!(
            "wrote {} ({w}x{h}, {} octaves of {} steps at {}: objective {:.4} at the smallest octave's first step, {:.4} at the end)",
            a.out.display(), cfg.octaves, cfg.steps, layer, first.unwrap_or(0.0), last
        );
    }
    Ok(())
}
