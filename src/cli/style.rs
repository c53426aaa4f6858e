//! `fovea style`: Gatys et al.'s style transfer on torchvision's VGG-19; with `--train` and
//! `--apply`, Johnson et al.'s real-time style transfer (`style_realtime.rs`).

use super::weights::{LoadedModel, ModelArgs};
use fovea::viz::style::{average_pools, stylize, Init, LossWeights, Optimizer, StyleLayers};
use fovea::viz::{image_tensor, input_image, render};
use fovea::{data, models, Error, Result};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The photo whose content is kept (Gatys et al.'s optimisation).
    #[arg(long, required_unless_present_any = ["train", "apply"], conflicts_with_all = ["train", "apply"])]
    pub(super) content: Option<PathBuf>,
    /// The painting whose style is taken (resized to the content's size, or to the training
    /// crops' with --train).
    #[arg(long, required_unless_present_any = ["apply", "resume"])]
    pub(super) style: Option<PathBuf>,
    /// The network whose features define content and style.
    #[arg(long, default_value = "vgg19", value_parser = clap::builder::PossibleValuesParser::new(models::NAMES))]
    pub(super) model: String,
    /// Its weights (torchvision's vgg19 state_dict saved with safetensors: see the README).
    #[arg(long, required_unless_present_any = ["apply", "resume"])]
    pub(super) weights: Option<PathBuf>,
    /// The picture to write (png, jpg), or with --train the style network (.safetensors)
    /// [default: style.png; with --train <painting>.safetensors; with --apply <photo>-styled.png].
    #[arg(short = 'o', long = "out")]
    pub(super) out: Option<PathBuf>,
    /// Nodes whose Gram matrices carry the style, comma-separated [default: features.1,
    /// features.6, features.11, features.20, features.29: conv1_1 ... conv5_1's ReLUs; with
    /// --train features.3,8,15,24: relu1_2, relu2_2, relu3_3, relu4_3, Johnson et al.'s].
    #[arg(long, value_delimiter = ',')]
    pub(super) style_layers: Vec<String>,
    /// The node whose features carry the content [default: features.22, conv4_2's ReLU; with
    /// --train features.8, relu2_2].
    #[arg(long)]
    pub(super) content_layer: Option<String>,
    /// `avg` swaps the max pools for average pools, as the paper suggests.
    #[arg(long, default_value = "max", value_parser = ["max", "avg"])]
    pub(super) pool: String,
    /// The content photo's shorter side in pixels (not resampled when it already is); with
    /// --train the side of the square training crops; with --apply the photo's shorter side
    /// [default: 512; with --train 256; with --apply the photo's own].
    #[arg(long)]
    pub(super) size: Option<u32>,
    /// Where the image starts.
    #[arg(long, default_value = "content", value_parser = ["content", "style", "noise"])]
    pub(super) init: String,
    /// lbfgs (the paper's) or adam.
    #[arg(long, default_value = "lbfgs", value_parser = ["lbfgs", "adam"])]
    pub(super) optimizer: String,
    /// Optimisation steps (L-BFGS iterations or Adam steps).
    #[arg(long, default_value_t = 300)]
    pub(super) steps: usize,
    /// Adam's learning rate, in the normalised image's units [default: 0.02; with --train
    /// 0.001, for the network's weights].
    #[arg(long)]
    pub(super) lr: Option<f32>,
    /// Weight of the content loss.
    #[arg(long)]
    pub(super) alpha: Option<f32>,
    /// Weight of the style loss [default: 1000; with --train 1e8, Johnson et al.'s balance].
    #[arg(long)]
    pub(super) beta: Option<f32>,
    /// Weight of the total variation.
    #[arg(long)]
    pub(super) gamma: Option<f32>,
    /// Seed of the noise start, or with --train of the network's weights and the photos' order.
    #[arg(long)]
    pub(super) seed: Option<u64>,
    /// One line of JSON per step: {"step", "content", "style", "tv", "total"}, step 0 first.
    #[arg(long, conflicts_with_all = ["train", "apply"])]
    pub(super) json: bool,

    /// Train a feed-forward style network on a folder of photos (Johnson et al.'s real-time
    /// style transfer) and write it to -o.
    #[arg(long, conflicts_with = "apply")]
    pub(super) train: bool,
    /// With --train: the folder of photos (PNG, JPEG, subfolders too; COCO's train2014 in the
    /// paper).
    #[arg(long, requires = "train")]
    pub(super) data: Option<PathBuf>,
    /// With --train: passes over the photos [default: 2].
    #[arg(long, requires = "train")]
    pub(super) epochs: Option<usize>,
    /// With --train: photos per step [default: 4].
    #[arg(long, requires = "train")]
    pub(super) batch_size: Option<usize>,
    /// With --train: the network's width, its first layer's channels [default: 32, the paper's].
    #[arg(long, requires = "train")]
    pub(super) width: Option<usize>,
    /// With --train: a line in metrics.jsonl every this many steps [default: 20].
    #[arg(long, requires = "train")]
    pub(super) log_every: Option<usize>,
    /// With --train: a checkpoint and preview.png every this many steps [default: 500].
    #[arg(long, requires = "train")]
    pub(super) checkpoint_every: Option<usize>,
    /// With --train: the run directory [default: runs/style-<painting>-<YYYYMMDD-HHMMSS>].
    #[arg(long, requires = "train", conflicts_with = "resume")]
    pub(super) run: Option<PathBuf>,
    /// With --train: continue the run in this directory from its last checkpoint.
    #[arg(long, requires = "train")]
    pub(super) resume: Option<PathBuf>,
    /// With --train: replace the run already in the --run directory.
    #[arg(long, requires = "train", conflicts_with = "resume")]
    pub(super) force: bool,

    /// Stylise a photo with this trained style network (from --train, or pytorch/examples'
    /// fast_neural_style saved with safetensors) in one forward pass.
    #[arg(long, value_name = "NETWORK")]
    pub(super) apply: Option<PathBuf>,
    /// With --apply: the photo to stylise.
    #[arg(requires = "apply")]
    pub(super) photo: Option<PathBuf>,
}

fn colour(img: &image::DynamicImage) -> bool {
    img.color().has_color()
}

pub fn run(a: Args) -> Result<()> {
    if a.train {
        return super::style_realtime::train(a);
    }
    if a.apply.is_some() {
        return super::style_realtime::apply(a);
    }
    let (Some(content_path), Some(style_path), Some(weights)) = (a.content.clone(), a.style.clone(), a.weights.clone()) else {
        return Err(Error::Invalid("give --content PHOTO, --style PAINTING and --weights VGG (or --train, or --apply)".into()));
    };
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("style.png"));
    render::image_format_for(&out)?;
    // Before minutes of optimisation, not after.
    fovea::io::atomic::check_destination(&out)?;
    let size = a.size.unwrap_or(512);
    if size == 0 {
        return Err(Error::Invalid("--size must be at least 1".into()));
    }
    let (content_img, style_img) = (data::folder::open_image(&content_path)?, data::folder::open_image(&style_path)?);
    if colour(&content_img) != colour(&style_img) {
        let mode = |c: bool| if c { "colour" } else { "greyscale" };
        return Err(Error::Invalid(format!(
            "{} is {}, {} is {}: give two colour images (or two greyscale ones)",
            content_path.display(), mode(colour(&content_img)), style_path.display(), mode(colour(&style_img))
        )));
    }
    let m = ModelArgs { model: a.model.clone(), weights, input: None, allow_nonfinite: false };
    let LoadedModel { mut net, .. } = m.load()?;
    if a.pool == "avg" {
        average_pools(&mut net)?;
    }
    let norm = models::normalization(&a.model);
    let channels = net.input_shape()[0];
    let content_img = data::folder::fit_short_side(content_img, size);
    let style_img = style_img.resize_exact(content_img.width(), content_img.height(), image::imageops::FilterType::Triangle);
    let (content, style) = (image_tensor(&content_img, channels, &norm), image_tensor(&style_img, channels, &norm));
    let mut layers = StyleLayers::default();
    if !a.style_layers.is_empty() {
        layers.style = a.style_layers.clone();
    }
    if let Some(c) = &a.content_layer {
        layers.content = c.clone();
    }
    let d = LossWeights::default();
    let weights = LossWeights { alpha: a.alpha.unwrap_or(d.alpha), beta: a.beta.unwrap_or(d.beta), gamma: a.gamma.unwrap_or(d.gamma) };
    let init = match a.init.as_str() {
        "style" => Init::Style,
        "noise" => Init::Noise,
        _ => Init::Content,
    };
    let optimizer = if a.optimizer == "adam" { Optimizer::Adam { lr: a.lr.unwrap_or(0.02) } } else { Optimizer::Lbfgs { history: 10 } };
    let mut bar = if a.json { fovea::progress::Progress::hidden() } else { fovea::progress::Progress::new(a.steps as u64, "style") };
    let (mut first, mut last) = (None, 0.0);
    let picture = stylize(&mut net, &content, &style, &layers, &weights, init, optimizer, a.steps, a.seed.unwrap_or(0), |step, l| {
        if a.json {
            let j = |v: f64| super::args::json_f32(v as f32);
            println!("{}", serde_json::json!({"step": step, "content": j(l.content), "style": j(l.style), "tv": j(l.tv), "total": j(l.total)}));
        }
        first.get_or_insert(l.total);
        last = l.total;
        if step > 0 {
            bar.set_message(format!("total {:.4e}", l.total));
            bar.inc(1);
        }
    })?;
    bar.finish_and_clear();
    render::save_image(&out, &input_image(&picture, &norm))?;
    if !a.json {
        println!(
            "wrote {} ({}x{}, {} {} steps: total {:.4e} -> {:.4e})",
            out.display(), content_img.width(), content_img.height(), a.steps, a.optimizer, first.unwrap_or(0.0), last
        );
    }
    Ok(())
}
