//! `fovea summary MODEL [--input CxHxW] [--json]`: the lecture's AlexNet table for any model.

use super::args::parse_input;
use fovea::{models, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Model name.
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(models::NAMES))]
    model: String,
    /// Input size CxHxW (default: the model's own, e.g. 3x224x224).
    #[arg(long, value_parser = parse_input)]
    input: Option<[usize; 3]>,
    /// Number of classes (default: 10 for the MNIST nets, 1000 for the others).
    #[arg(long)]
    classes: Option<usize>,
    /// One JSON object: {"layers": [{"name", "kind", "output": [C, H, W], "params", "macs", ...}],
    /// "total_params", "total_macs"}.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let classes = a.classes.unwrap_or_else(|| models::default_classes(&a.model));
    let (net, _) = models::architecture(&a.model, classes, a.input)?;
    let s = net.summary(None)?;
    if a.json {
        println!("{}", serde_json::to_string(&s).map_err(|e| fovea::Error::Invalid(e.to_string()))?);
    } else {
        println!("{s}");
    }
    Ok(())
}
