//! `fovea predict`: the top classes of each image, with probabilities.

use fovea::{ForwardCtx, Result};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    m: super::weights::ModelArgs,
    /// PNG or JPEG images of any size (converted to the model's input).
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// One JSON object per image: {"file", "logits", "top": [{"class", "label", "prob"}]}.
    #[arg(long)]
    json: bool,
    /// Invert the images first (255 - value). The MNIST nets (mnist-cnn, lenet5) learned white
    /// digits on a black 28x28 field: give --invert for a black digit on white paper.
    #[arg(long)]
    invert: bool,
}

pub fn run(a: Args) -> Result<()> {
    let super::weights::LoadedModel { mut net, classes } = a.m.load()?;
    // Only the logits are read: each ReLU after a convolution is applied by the convolution.
    net.fuse_activations(true);
    for path in &a.images {
        let x = super::weights::image_input_inverted(&net, &a.m.model, path, a.invert)?;
        let logits = net.forward_lean(&x, &ForwardCtx::default())?;
        let nonfinite = logits.data().iter().filter(|v| !v.is_finite()).count();
        if nonfinite > 0 {
            // The lean pass keeps no value: a full one finds where the first non-number arose.
            net.forward(&x, &ForwardCtx::default())?;
            let at = net.first_nonfinite_value().unwrap_or("?").to_string();
            let form = if a.json { " (written as null)" } else { "" };
            eprintln!("warning: {}: {nonfinite} of the {} logits are not numbers{form}; they first appear at {at}", path.display(), logits.len());
        }
        if a.json {
            println!("{}", fovea::predict::prediction_json(&path.display().to_string(), logits.data(), &classes, a.top));
        } else {
            println!("{}:", path.display());
            let (probs, order) = fovea::predict::top_classes(logits.data(), a.top);
            for &c in &order {
                // `7`, not `7 (7)`, when the label is the index itself.
                let name = classes.get(c).map_or("?".to_string(), |s| if *s == c.to_string() { s.clone() } else { format!("{s} ({c})") });
                println!("  {:>6.2}%  {name}", 100.0 * probs[c]);
            }
        }
    }
    Ok(())
}
