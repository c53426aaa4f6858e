//! `fovea style`: Gatys et al.'s style transfer on torchvision's VGG-19.

use super::weights::{LoadedModel, ModelArgs};
use fovea::viz::style::{average_pools, stylize, Init, LossWeights, Optimizer, StyleLayers};
use fovea::viz::{image_tensor, input_image, render};
use fovea::{data, models, Error, Result};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The photo whose content is kept.
    #[arg(long)]
    content: PathBuf,
    /// The painting whose style is taken (resized to the content's size).
    #[arg(long)]
    style: PathBuf,
    /// The network whose features define content and style.
    #[arg(long, default_value = "vgg19", value_parser = clap::builder::PossibleValuesParser::new(models::NAMES))]
    model: String,
    /// Its weights (torchvision's vgg19 state_dict saved with safetensors: see the README).
    #[arg(long)]
    weights: PathBuf,
    /// The picture to write; its extension (png, jpg) names the format.
    #[arg(short = 'o', long = "out", default_value = "style.png")]
    out: PathBuf,
    /// Nodes whose Gram matrices carry the style, comma-separated [default: features.1,
    /// features.6, features.11, features.20, features.29: conv1_1 ... conv5_1's ReLUs].
    #[arg(long, value_delimiter = ',')]
    style_layers: Vec<String>,
    /// The node whose features carry the content [default: features.22, conv4_2's ReLU].
    #[arg(long)]
    content_layer: Option<String>,
    /// `avg` swaps the max pools for average pools, as the paper suggests.
    #[arg(long, default_value = "max", value_parser = ["max", "avg"])]
    pool: String,
    /// The content photo's shorter side in pixels (not resampled when it already is).
    #[arg(long, default_value_t = 512)]
    size: u32,
    /// Where the image starts.
    #[arg(long, default_value = "content", value_parser = ["content", "style", "noise"])]
    init: String,
    /// lbfgs (the paper's) or adam.
    #[arg(long, default_value = "lbfgs", value_parser = ["lbfgs", "adam"])]
    optimizer: String,
    /// Optimisation steps (L-BFGS iterations or Adam steps).
    #[arg(long, default_value_t = 300)]
    steps: usize,
    /// Adam's learning rate, in the normalised image's units.
    #[arg(long, default_value_t = 0.02)]
    lr: f32,
    /// Weight of the content loss.
    #[arg(long, default_value_t = 1.0)]
    alpha: f32,
    /// Weight of the style loss.
    #[arg(long, default_value_t = 1e3)]
    beta: f32,
    /// Weight of the total variation.
    #[arg(long, default_value_t = 0.0)]
    gamma: f32,
    /// Seed of the noise start.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// One line of JSON per step: {"step", "content", "style", "tv", "total"}, step 0 first.
    #[arg(long)]
    json: bool,
}

fn colour(img: &image::DynamicImage) -> bool {
    img.color().has_color()
}

pub fn run(a: Args) -> Result<()> {
    render::image_format_for(&a.out)?;
    // Before minutes of optimisation, not after.
    fovea::io::atomic::check_destination(&a.out)?;
    if a.size == 0 {
        return Err(Error::Invalid("--size must be at least 1".into()));
    }
    let (content_img, style_img) = (data::folder::open_image(&a.content)?, data::folder::open_image(&a.style)?);
    if colour(&content_img) != colour(&style_img) {
        let mode = |c: bool| if c { "colour" } else { "greyscale" };
        return Err(Error::Invalid(format!(
            "{} is {}, {} is {}: give two colour images (or two greyscale ones)",
            a.content.display(), mode(colour(&content_img)), a.style.display(), mode(colour(&style_img))
        )));
    }
    let m = ModelArgs { model: a.model.clone(), weights: a.weights.clone(), input: None, allow_nonfinite: false };
    let LoadedModel { mut net, .. } = m.load()?;
    if a.pool == "avg" {
        average_pools(&mut net)?;
    }
    let norm = models::normalization(&a.model);
    let channels = net.input_shape()[0];
    let content_img = data::folder::fit_short_side(content_img, a.size);
    let style_img = style_img.resize_exact(content_img.width(), content_img.height(), image::imageops::FilterType::Triangle);
    let (content, style) = (image_tensor(&content_img, channels, &norm), image_tensor(&style_img, channels, &norm));
    let mut layers = StyleLayers::default();
    if !a.style_layers.is_empty() {
        layers.style = a.style_layers.clone();
    }
    if let Some(c) = &a.content_layer {
        layers.content = c.clone();
    }
    let weights = LossWeights { alpha: a.alpha, beta: a.beta, gamma: a.gamma };
    let init = match a.init.as_str() {
        "style" => Init::Style,
        "noise" => Init::Noise,
        _ => Init::Content,
    };
    let optimizer = if a.optimizer == "adam" { Optimizer::Adam { lr: a.lr } } else { Optimizer::Lbfgs { history: 10 } };
    let mut bar = if a.json { fovea::progress::Progress::hidden() } else { fovea::progress::Progress::new(a.steps as u64, "style") };
    let (mut first, mut last) = (None, 0.0);
    let out = stylize(&mut net, &content, &style, &layers, &weights, init, optimizer, a.steps, a.seed, |step, l| {
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
    render::save_image(&a.out, &input_image(&out, &norm))?;
    if !a.json {
        println!(
            "wrote {} ({}x{}, {} {} steps: total {:.4e} -> {:.4e})",
            a.out.display(), content_img.width(), content_img.height(), a.steps, a.optimizer, first.unwrap_or(0.0), last
        );
    }
    Ok(())
}
