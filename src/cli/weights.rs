//! Building a model and loading weights into it, for the commands that use trained models.

use fovea::train::checkpoint;
use fovea::{models, Error, Net, Result};
use std::path::Path;

/// The ImageNet class names of torchvision's weights, bundled.
const IMAGENET: &str = include_str!("../../assets/imagenet_classes.txt");

/// The model, its weights and (when not its default) its input size: the arguments of every
/// command that uses trained weights.
#[derive(clap::Args, Clone)]
pub struct ModelArgs {
    /// The model the weights belong to (`fovea summary MODEL` shows its layers).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(models::NAMES))]
    pub model: String,
    /// fovea weights, or a torchvision state_dict saved with safetensors.
    #[arg(long)]
    pub weights: std::path::PathBuf,
    /// Input size CxHxW when the model was trained at another size than its default.
    #[arg(long, value_parser = super::args::parse_input)]
    pub input: Option<[usize; 3]>,
    /// Load weights even if some are NaN or infinite (refused otherwise), to study them.
    #[arg(long)]
    pub allow_nonfinite: bool,
}

impl ModelArgs {
    /// Builds the model and loads the weights.
    pub fn load(&self) -> Result<LoadedModel> {
        load(&self.model, &self.weights, self.input, self.allow_nonfinite)
    }
}

/// A model with weights loaded, and the names of its classes.
pub struct LoadedModel {
    pub net: Net,
    pub classes: Vec<String>,
}

/// Builds `model` to fit the weights at `path` (fovea's own, or a torchvision `state_dict`
/// saved with safetensors) and loads them. The class count comes from the file's metadata or
/// the output layer's weight; the names from the metadata, ImageNet's for 1000 classes, or
/// numbers.
/// Weights that are not all numbers are refused, naming each tensor and its counts, unless
/// `allow_nonfinite` (then a warning says the same).
pub fn load(model: &str, path: &Path, input: Option<[usize; 3]>, allow_nonfinite: bool) -> Result<LoadedModel> {
    let file = checkpoint::load(path)?;
    let nonfinite = checkpoint::nonfinite_report(&file.model);
    if !nonfinite.is_empty() {
        let list = nonfinite.join("; ");
        if !allow_nonfinite {
            return Err(Error::file(path, format!("holds values that are not numbers ({list}); --allow-nonfinite loads them anyway")));
        }
        eprintln!("warning: {}: loading values that are not numbers ({list})", path.display());
    }
    if let Some(info) = file.info.as_ref().filter(|i| !i.model.is_empty() && i.model != model) {
        return Err(Error::file(path, format!("holds weights for {}, not {model}: use --model {}", info.model, info.model)));
    }
    let input = input.or_else(|| {
        file.info.as_ref().and_then(|i| <[usize; 3]>::try_from(i.input.as_slice()).ok())
    });
    let (probe, _) = models::architecture(model, models::default_classes(model), input)?;
    let out = probe.output_name().to_string();
    let classes = match (&file.info, file.model.get(&format!("{out}.weight"))) {
        (Some(i), _) if !i.classes.is_empty() => i.classes.clone(),
        (_, Some(w)) => class_names(w.shape()[0]),
        (_, None) => return Err(Error::file(path, format!("has no {out}.weight: not weights for {model}"))),
    };
    let (mut net, _) = models::architecture(model, classes.len(), input)?;
    net.load_state(&file.model).map_err(|e| Error::file(path, e.to_string()))?;
    Ok(LoadedModel { net, classes })
}

/// Names for `count` classes with no names given: ImageNet's for 1000, else the numbers.
pub fn class_names(count: usize) -> Vec<String> {
    if count == 1000 {
        IMAGENET.lines().map(String::from).collect()
    } else {
        (0..count).map(|c| c.to_string()).collect()
    }
}

/// One image file as `net`'s input batch `[1, C, H, W]`, preprocessed as `model` expects:
/// ImageNet models see what torchvision's evaluation shows them (short side resized, centre
/// crop), the MNIST nets the whole image squeezed to 28x28; then normalised.
pub fn image_input(net: &Net, model: &str, path: &Path) -> Result<fovea::Tensor> {
    image_input_inverted(net, model, path, false)
}

/// `image_input`, with every pixel inverted first (`255 - v`) when `invert`: the MNIST nets
/// learned white digits on black, and a scanned or drawn digit is usually black on white.
pub fn image_input_inverted(net: &Net, model: &str, path: &Path, invert: bool) -> Result<fovea::Tensor> {
    use fovea::data::folder::{load_image_fit, Fit};
    let s = net.input_shape();
    let shape = [s[0], s[1], s[2]];
    let fit = if shape[0] == 3 { Fit::ResizeCrop } else { Fit::Stretch };
    let pixels = load_image_fit(path, shape, fit)?;
    Ok(fovea::data::single_input(shape, pixels, &models::normalization(model), invert))
}
