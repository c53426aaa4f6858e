//! `fovea viz ...` and `fovea report`: pictures of what a trained model does.

use super::weights::{image_input, LoadedModel};
use fovea::viz::report::{write_report, ReportInput};
use fovea::viz::target::{input_gradient, Target};
use fovea::viz::{activations_image, filters_image, gradient_image, input_image, render};
use fovea::{data, models, Error, Net, ReluRule, Result, Tensor};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Clone)]
pub struct Common {
    #[command(flatten)]
    pub(super) m: super::weights::ModelArgs,
    /// The picture to write; its extension (png, jpg, ...) names the format.
    #[arg(short = 'o', long = "out", default_value = "viz.png")]
    pub(super) out: PathBuf,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Every filter of a conv layer as an image.
    Filters {
        #[command(flatten)]
        common: Common,
        /// The conv layer.
        #[arg(long, default_value = "conv1")]
        layer: String,
    },
    /// Every channel's activation map of a layer for one image.
    Activations {
        #[command(flatten)]
        common: Common,
        /// The node whose output is shown (e.g. conv1, relu2, layer1.0.relu).
        #[arg(long)]
        layer: String,
        /// A PNG or JPEG (converted to the model's input).
        image: PathBuf,
    },
    /// Saliency map (Simonyan et al.): max over colour channels of |d score / d pixel|.
    Saliency(GradArgs),
    /// Guided backpropagation (Springenberg et al.).
    Guided(GradArgs),
    /// Deconvnet (Zeiler and Fergus).
    Deconvnet(GradArgs),
    /// Grad-CAM (or guided Grad-CAM with --guided) at a conv layer.
    Gradcam {
        #[command(flatten)]
        common: Common,
        /// A PNG or JPEG (converted to the model's input).
        image: PathBuf,
        /// The node whose maps are weighted (e.g. relu2, layer4.1.relu); default: the last
        /// convolutional block's ReLU output.
        #[arg(long)]
        layer: Option<String>,
        /// Class (index or label); default: the predicted one.
        #[arg(long)]
        class: Option<String>,
        /// Multiply by guided backprop (guided Grad-CAM).
        #[arg(long)]
        guided: bool,
        /// Also save the unrendered map ([H, W]) to this safetensors file.
        #[arg(long)]
        raw: Option<PathBuf>,
    },
    /// Occlusion sensitivity: the drop in the class score as a grey square slides over the image.
    Occlusion {
        #[command(flatten)]
        common: Common,
        /// A PNG or JPEG (converted to the model's input).
        image: PathBuf,
        /// Class (index or label); default: the predicted one.
        #[arg(long)]
        class: Option<String>,
        /// Side of the grey square in pixels.
        #[arg(long, default_value_t = 8)]
        size: usize,
        /// Pixels the square moves between positions.
        #[arg(long, default_value_t = 4)]
        stride: usize,
        /// Also save the unrendered map ([H, W]) to this safetensors file.
        #[arg(long)]
        raw: Option<PathBuf>,
    },
    /// The data set's top patches for a channel, each beside its guided backprop.
    Patches {
        #[command(flatten)]
        common: Common,
        /// LAYER:CHANNEL.
        #[arg(long)]
        neuron: String,
        /// Data directory (its test split, or its training images when it has no test split)
        /// [default: the MNIST bundled in the binary].
        #[arg(long)]
        data: Option<PathBuf>,
        /// Patches shown.
        #[arg(long, default_value_t = 9)]
        top: usize,
        /// Images scanned at most.
        #[arg(long, default_value_t = 10000)]
        limit: usize,
    },
    /// Gradient ascent to a class score (Simonyan et al.; Nguyen et al.'s facets).
    Class(super::ascent::ClassArgs),
    /// Gradient ascent to one neuron (Yosinski et al.).
    Neuron(super::ascent::NeuronArgs),
}

#[derive(clap::Args)]
pub struct GradArgs {
    #[command(flatten)]
    common: Common,
    /// A PNG or JPEG (converted to the model's input).
    image: PathBuf,
    /// Class (index or label); default: the predicted one.
    #[arg(long, conflicts_with = "neuron")]
    class: Option<String>,
    /// LAYER:CHANNEL[:Y:X] (a layer's output before its ReLU; without Y:X, the map's centre).
    #[arg(long)]
    neuron: Option<String>,
    /// Percentile of magnitudes at which the colour map saturates.
    #[arg(long, default_value_t = 99.0)]
    clip: f32,
    /// Blend the map over the input image.
    #[arg(long)]
    overlay: bool,
    /// Also save the unrendered gradient ([1, C, H, W]) to this safetensors file.
    #[arg(long)]
    raw: Option<PathBuf>,
}

pub(super) fn save_raw(path: &Option<PathBuf>, name: &str, t: &Tensor) -> Result<()> {
    match path {
        Some(p) => fovea::io::safetensors::write(p, &[(name.to_string(), t)], None),
        None => Ok(()),
    }
}

/// The image file a `viz` command writes.
fn out_path(cmd: &Command) -> &std::path::Path {
    match cmd {
        Command::Filters { common, .. }
        | Command::Activations { common, .. }
        | Command::Gradcam { common, .. }
        | Command::Occlusion { common, .. }
        | Command::Patches { common, .. } => &common.out,
        Command::Saliency(a) | Command::Guided(a) | Command::Deconvnet(a) => &a.common.out,
        Command::Class(a) => &a.common.out,
        Command::Neuron(a) => &a.common.out,
    }
}

pub fn run(cmd: Command) -> Result<()> {
    // A name whose format cannot be written is refused before any work is done.
    render::image_format_for(out_path(&cmd))?;
    match cmd {
        Command::Filters { common, layer } => {
            let LoadedModel { net, .. } = common.m.load()?;
            render::save_image(&common.out, &filters_image(&net, &layer)?)?;
            println!("wrote {}", common.out.display());
        }
        Command::Activations { common, layer, image } => {
            let LoadedModel { mut net, .. } = common.m.load()?;
            let x = image_input(&net, &common.m.model, &image)?;
            render::save_image(&common.out, &activations_image(&mut net, &x, &layer, &models::normalization(&common.m.model))?)?;
            println!("wrote {}", common.out.display());
        }
        Command::Saliency(a) => gradient(a, ReluRule::Plain, true)?,
        Command::Guided(a) => gradient(a, ReluRule::Guided, false)?,
        Command::Deconvnet(a) => gradient(a, ReluRule::Deconvnet, false)?,
        Command::Class(a) => super::ascent::class_ascent(a)?,
        Command::Neuron(a) => super::ascent::neuron_ascent(a)?,
        Command::Patches { common, neuron, data: dir, top, limit } => {
            let LoadedModel { mut net, .. } = common.m.load()?;
            let (layer, channel) = match Target::parse_neuron(&neuron)? {
                Target::Neuron { node, channel, .. } => (node, channel),
                _ => return Err(Error::Invalid(format!("{neuron:?} is not LAYER:CHANNEL"))),
            };
            let s = net.input_shape().to_vec();
            let split = data::load_dir(&super::args::data_or_bundled(&dir), [s[0], s[1], s[2]])?;
            let ds = if split.test.is_empty() { split.train } else { split.test };
            let norm = models::normalization(&common.m.model);
            let found = fovea::viz::patches::top_patches(&mut net, &ds, &norm, &layer, &[channel], top.max(1), limit)?;
            let img = fovea::viz::patches::patches_image(&mut net, &ds, &norm, &layer, channel, &found[0], 3)?;
            render::save_image(&common.out, &img)?;
            let values: Vec<String> = found[0].iter().map(|p| format!("{:.2}", p.value)).collect();
            println!("wrote {} (top activations {})", common.out.display(), values.join(", "));
        }
        Command::Gradcam { common, image, layer, class, guided, raw } => {
            let LoadedModel { mut net, classes } = common.m.load()?;
            let x = image_input(&net, &common.m.model, &image)?;
            let class = pick_class(&mut net, &x, class.as_deref(), &classes)?;
            let layer = match layer {
                Some(l) => l,
                None => fovea::viz::cam::default_layer(&net)?,
            };
            let s = x.shape().to_vec();
            let cam = fovea::viz::cam::grad_cam(&mut net, &x, class, &layer)?;
            if cam.iter().all(|&v| v == 0.0) {
                eprintln!(
                    "warning: the Grad-CAM map of class {class} at {layer} is zero everywhere (no positive evidence there); a ReLU output such as {} shows more",
                    fovea::viz::cam::default_layer(&net).unwrap_or_else(|_| "a later layer".into())
                );
            }
            let img = if guided {
                let g = fovea::viz::cam::guided_grad_cam(&mut net, &x, class, &layer)?;
                save_raw(&raw, "guided_grad_cam", &g)?;
                gradient_image(&g, false, 99.0)
            } else {
                save_raw(&raw, "grad_cam", &Tensor::from_vec(&[s[2], s[3]], cam.clone())?)?;
                render::overlay(&input_image(&x, &models::normalization(&common.m.model)), &render::hot(&cam, s[2], s[3], 100.0), 0.6)
            };
            render::save_image(&common.out, &render::enlarge(&img, render::factor_for(img.width(), 224)))?;
            println!("wrote {} (class {class}, layer {layer})", common.out.display());
        }
        Command::Occlusion { common, image, class, size, stride, raw } => {
            let LoadedModel { mut net, classes } = common.m.load()?;
            let x = image_input(&net, &common.m.model, &image)?;
            let class = pick_class(&mut net, &x, class.as_deref(), &classes)?;
            let norm = models::normalization(&common.m.model);
            let map = fovea::viz::cam::occlusion(&mut net, &x, class, size, stride, &norm)?;
            let s = x.shape().to_vec();
            save_raw(&raw, "occlusion", &Tensor::from_vec(&[s[2], s[3]], map.clone())?)?;
            let img = render::overlay(&input_image(&x, &norm), &render::diverging(&map, s[2], s[3], 100.0), 0.6);
            render::save_image(&common.out, &render::enlarge(&img, render::factor_for(img.width(), 224)))?;
            println!("wrote {} (class {class})", common.out.display());
        }
    }
    Ok(())
}

/// The class given (index or label), or the one the net predicts for `x`.
fn pick_class(net: &mut Net, x: &Tensor, class: Option<&str>, classes: &[String]) -> Result<usize> {
    match class {
        Some(c) => fovea::viz::target::class_index(c, classes),
        None => Ok(net.forward(x, &fovea::ForwardCtx::default())?.argmax_rows()[0]),
    }
}

fn gradient(a: GradArgs, rule: ReluRule, saliency: bool) -> Result<()> {
    let LoadedModel { mut net, classes } = a.common.m.load()?;
    let x = image_input(&net, &a.common.m.model, &a.image)?;
    let target = match (&a.class, &a.neuron) {
        (Some(c), _) => Target::parse_class(c, &classes)?,
        (_, Some(n)) => Target::parse_neuron(n)?,
        (None, None) => {
            let logits = net.forward(&x, &fovea::ForwardCtx::default())?;
            Target::Class(logits.argmax_rows()[0])
        }
    };
    let (grad, value) = input_gradient(&mut net, &x, &target, rule)?;
    let mut img = gradient_image(&grad, saliency, a.clip);
    if a.overlay {
        img = render::overlay(&input_image(&x, &models::normalization(&a.common.m.model)), &img, 0.6);
    }
    let img = render::enlarge(&img, render::factor_for(img.width(), 224));
    render::save_image(&a.common.out, &img)?;
    save_raw(&a.raw, "gradient", &grad)?;
    println!("wrote {} ({target}, value {value:.4})", a.common.out.display());
    Ok(())
}

#[derive(clap::Args)]
pub struct ReportArgs {
    #[command(flatten)]
    m: super::weights::ModelArgs,
    /// Data directory whose test images are shown (`bundled:mnist`: the MNIST bundled in the
    /// binary); without it, the sections that need test images are left out.
    #[arg(long)]
    data: Option<PathBuf>,
    /// A training run directory, for its curves.
    #[arg(long)]
    run: Option<PathBuf>,
    /// Gradient-ascent steps per class picture (0: none).
    #[arg(long, default_value_t = 100)]
    ascent_steps: usize,
    /// The HTML page to write (self-contained: pictures inlined).
    #[arg(short = 'o', long = "out", default_value = "report.html")]
    out: PathBuf,
}

impl ReportArgs {
    /// The report a training run writes at its end.
    pub fn for_run(model: &str, weights: &Path, data: &Path, run: &Path, input: Option<[usize; 3]>, out: &Path) -> Self {
        ReportArgs {
            m: super::weights::ModelArgs { model: model.to_string(), weights: weights.to_path_buf(), input, allow_nonfinite: false },
            data: Some(data.to_path_buf()),
            run: Some(run.to_path_buf()),
            ascent_steps: 100,
            out: out.to_path_buf(),
        }
    }
}

/// Writes a report for weights, with test images from `data` when given.
pub fn report(a: ReportArgs) -> Result<()> {
    let LoadedModel { mut net, classes } = a.m.load()?;
    let s = net.input_shape().to_vec();
    let test = match &a.data {
        Some(d) => Some(data::load_dir(d, [s[0], s[1], s[2]])?.test),
        None => None,
    };
    let no_data_reason = match (&a.data, &test) {
        (None, _) => Some(format!(
            "no --data was given (for the MNIST nets, --data {} uses the MNIST bundled in the binary)",
            data::bundled::BUNDLED_MNIST
        )),
        (Some(d), Some(t)) if t.is_empty() => Some(format!(
            "{} holds no test split (an image folder needs train/<class>/ beside test/<class>/ for one)",
            d.display()
        )),
        _ => None,
    };
    let norm = models::normalization(&a.m.model);
    let input = ReportInput {
        model: &a.m.model,
        weights: &a.m.weights,
        norm: &norm,
        classes: &classes,
        data: test.as_ref(),
        no_data_reason,
        run_dir: a.run.clone(),
        ascent_steps: a.ascent_steps,
    };
    let t = std::time::Instant::now();
    write_report(&mut net, &input, &a.out)?;
    println!("wrote {} in {:.1} s", a.out.display(), t.elapsed().as_secs_f32());
    Ok(())
}

#[derive(clap::Args)]
pub struct FilterArgs {
    /// sobel, sobel-x, sobel-y, laplacian, gaussian:SIGMA or box:K.
    #[arg(long, default_value = "sobel")]
    kernel: String,
    /// A PNG or JPEG, filtered in grey.
    image: PathBuf,
    /// The picture to write; its extension (png, jpg, ...) names the format.
    #[arg(short = 'o', long = "out", default_value = "filtered.png")]
    out: PathBuf,
}

/// `fovea filter`: a classic kernel through the networks' own convolution.
pub fn filter(a: FilterArgs) -> Result<()> {
    render::image_format_for(&a.out)?;
    let kernel = fovea::viz::filter::Kernel::parse(&a.kernel)?;
    let img = data::folder::open_image(&a.image)?;
    render::save_image(&a.out, &fovea::viz::filter::filter_image(&img, kernel)?)?;
    println!("wrote {} ({} of {}x{})", a.out.display(), a.kernel, img.width(), img.height());
    Ok(())
}
