//! `fovea export`: trained weights as a standard ONNX model, for ONNX Runtime, TensorRT,
//! browsers and the rest; with `--test-data`, a random input and fovea's logits for it in
//! ONNX's own test layout, so any runtime can be checked against fovea
//! (`scripts/onnx_check.py`).

use fovea::export::{self, Batch, ModelInfo, OnnxOptions};
use fovea::io::atomic::{check_destination, write_atomic};
use fovea::models::transformer;
use fovea::{models, Error, ForwardCtx, Result, Tensor};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// The model to export (`fovea summary MODEL` shows its layers), or `transformer-net`: a
    /// style network from `fovea style --train` (input and output `image`, RGB 0-255).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(models::NAMES.iter().copied().chain([transformer::NAME])))]
    model: String,
    /// fovea weights, or a torchvision state_dict saved with safetensors. Without: the model as
    /// PyTorch initialises it (seeded by --seed), to look at the graph or test a runtime.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Input size CxHxW when the model was trained at another size than its default (a style
    /// network: the picture size to export for, default 3x256x256, sides a multiple of 4).
    #[arg(long, value_parser = super::args::parse_input)]
    input: Option<[usize; 3]>,
    /// Load weights even if some are NaN or infinite (refused otherwise).
    #[arg(long)]
    allow_nonfinite: bool,
    /// Where to write the ONNX file.
    #[arg(short, long)]
    out: PathBuf,
    /// The batch dimension: `dynamic` (any size, named N) or a fixed number of images.
    #[arg(long, default_value = "dynamic", value_parser = parse_batch)]
    batch: Batch,
    /// The ONNX opset to write (13 to 22).
    #[arg(long, default_value_t = 17)]
    opset: i64,
    /// Fold each batch norm into the convolution before it instead of writing a
    /// BatchNormalization node (fewer nodes; the same numbers to rounding).
    #[arg(long)]
    fold_batchnorm: bool,
    /// Also write a random input batch and fovea's logits for it as
    /// DIR/test_data_set_0/{input_0,output_0}.pb (ONNX TensorProto files).
    #[arg(long, value_name = "DIR")]
    test_data: Option<PathBuf>,
    /// Seed of the initial weights (without --weights) and of the test input.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn parse_batch(s: &str) -> std::result::Result<Batch, String> {
    match s {
        "dynamic" => Ok(Batch::Dynamic),
        _ => match s.parse::<usize>() {
            Ok(n) if n > 0 => Ok(Batch::Fixed(n)),
            _ => Err(format!("{s:?} is neither `dynamic` nor a number of images (1 or more)")),
        },
    }
}

pub fn run(a: Args) -> Result<()> {
    check_destination(&a.out)?;
    if let Some(dir) = &a.test_data {
        check_destination(&dir.join("test_data_set_0"))?;
    }
    if a.model == transformer::NAME {
        return run_style_network(&a);
    }
    let (mut net, classes) = match &a.weights {
        Some(w) => {
            let l = super::weights::load(&a.model, w, a.input, a.allow_nonfinite)?;
            (l.net, l.classes)
        }
        None => {
            let k = models::default_classes(&a.model);
            eprintln!("no --weights: exporting {} as PyTorch initialises it (seed {})", a.model, a.seed);
            (models::build_for(&a.model, k, a.input, a.seed)?, super::weights::class_names(k))
        }
    };
    let norm = models::normalization(&a.model);
    let info = ModelInfo {
        name: a.model.clone(),
        metadata: vec![
            ("fovea.model".into(), a.model.clone()),
            ("fovea.classes".into(), serde_json::to_string(&classes).unwrap_or_default()),
            ("fovea.normalize".into(), serde_json::json!({"mean": norm.mean, "std": norm.std}).to_string()),
        ],
    };
    let written = write_model(&a, &net, &info, a.fold_batchnorm, export::OUTPUT)?;
    let batch = batch_label(a.batch);
    let input: Vec<String> = net.input_shape().iter().map(|d| d.to_string()).collect();
    println!(
        "{written}; input `input` [{batch}, {}] normalised with mean {:?} std {:?}, output `{}` [{batch}, {}]",
        input.join(", "),
        norm.mean,
        norm.std,
        export::OUTPUT,
        classes.len()
    );
    if let Some(dir) = &a.test_data {
        let x = random_input(net.input_shape(), test_batch(a.batch), a.seed);
        let set = write_test_data(dir, &mut net, &x, export::OUTPUT)?;
        println!("wrote {}: a random input of {} and fovea's logits for it", set.display(), x.shape()[0]);
    }
    Ok(())
}

/// Writes `net` as ONNX to `--out` (atomically) and says what was written:
/// `wrote F (S MB): N nodes, P parameters, opset O`.
fn write_model(a: &Args, net: &fovea::Net, info: &ModelInfo, fold_batchnorm: bool, output: &'static str) -> Result<String> {
    let opts = OnnxOptions { batch: a.batch, opset: a.opset, fold_batchnorm, output };
    let model = export::to_model(net, info, &opts)?;
    let bytes = prost::Message::encode_to_vec(&model);
    write_atomic(&a.out, &bytes)?;
    Ok(format!(
        "wrote {} ({:.1} MB): {} nodes, {} parameters, opset {}",
        a.out.display(),
        bytes.len() as f64 / 1e6,
        model.graph.as_ref().map_or(0, |g| g.node.len()),
        net.param_count(),
        a.opset
    ))
}

/// The batch dimension as the summary line prints it.
fn batch_label(batch: Batch) -> String {
    match batch {
        Batch::Dynamic => "N".to_string(),
        Batch::Fixed(n) => n.to_string(),
    }
}

/// Images in the `--test-data` batch: the fixed batch, or 2 for a dynamic one.
fn test_batch(batch: Batch) -> usize {
    match batch {
        Batch::Fixed(n) => n,
        Batch::Dynamic => 2,
    }
}

/// `x` and `net`'s output for it (named `output`) in ONNX's test layout,
/// `DIR/test_data_set_0/{input_0,output_0}.pb`; returns the set's folder.
fn write_test_data(dir: &Path, net: &mut fovea::Net, x: &Tensor, output: &str) -> Result<PathBuf> {
    let y = net.forward(x, &ForwardCtx::default())?.clone();
    let set = dir.join("test_data_set_0");
    std::fs::create_dir_all(&set).map_err(|e| Error::file(&set, format!("cannot create: {e}")))?;
    write_tensor(&set.join("input_0.pb"), "input", x)?;
    write_tensor(&set.join("output_0.pb"), output, &y)?;
    Ok(set)
}

/// A style network trained by `fovea style --train` (or pytorch/examples'): pictures in, pictures
/// out, both `[N, 3, H, W]` RGB in 0-255 (no normalisation: the network takes raw pixels), at
/// the size of `--input` (default 3x256x256; sides a multiple of 4, which the network's two
/// strided convolutions and two upsamplings give back whole).
fn run_style_network(a: &Args) -> Result<()> {
    let weights = a.weights.as_deref().ok_or_else(|| {
        Error::Invalid(format!("--model {} needs --weights: a network trained by fovea style --train", transformer::NAME))
    })?;
    let input = a.input.unwrap_or([3, 256, 256]);
    let [c, h, w] = input;
    if c != 3 || h % 4 != 0 || w % 4 != 0 || h.min(w) < transformer::MIN_SIDE {
        return Err(Error::Invalid(format!(
            "--input {c}x{h}x{w}: a style network takes RGB pictures (3 channels) whose sides are multiples of 4, at least {}",
            transformer::MIN_SIDE.next_multiple_of(4)
        )));
    }
    let mut net = fovea::viz::style::realtime::load_for(weights, input)?;
    let info = ModelInfo {
        name: transformer::NAME.into(),
        metadata: vec![("fovea.model".into(), transformer::NAME.into()), ("fovea.pixels".into(), "RGB 0-255 in and out".into())],
    };
    let written = write_model(a, &net, &info, false, "image")?;
    let batch = batch_label(a.batch);
    println!("{written}; input `input` [{batch}, 3, {h}, {w}] RGB 0-255, output `image` [{batch}, 3, {h}, {w}] RGB 0-255");
    if let Some(dir) = &a.test_data {
        // Pixels in 0-255, as the network takes them.
        let mut x = random_input(net.input_shape(), test_batch(a.batch), a.seed);
        x.data_mut().iter_mut().for_each(|v| *v = (*v + 2.0) * 63.75);
        let set = write_test_data(dir, &mut net, &x, "image")?;
        println!("wrote {}: a random picture of {} and fovea's stylisation of it", set.display(), x.shape()[0]);
    }
    Ok(())
}

/// `[n, C, H, W]` uniform in [-2, 2], about the range of normalised images.
fn random_input(shape: &[usize], n: usize, seed: u64) -> Tensor {
    let mut full = vec![n];
    full.extend_from_slice(shape);
    let mut x = Tensor::zeros(&full);
    let mut rng = fovea::rng::Rng::new(seed ^ 0x7E57);
    x.data_mut().iter_mut().for_each(|v| *v = rng.uniform(-2.0, 2.0));
    x
}

/// One tensor as an ONNX `TensorProto` file (what `onnx.numpy_helper.to_array` reads).
fn write_tensor(path: &Path, name: &str, t: &Tensor) -> Result<()> {
    let p = export::onnx::float_tensor(name, t.shape(), t.data());
    write_atomic(path, &prost::Message::encode_to_vec(&p))
}
