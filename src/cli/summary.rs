//! `fovea summary MODEL [--json]`.

use fovea::{models, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Model name (see `fovea summary --help` for the list).
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(models::NAMES))]
    model: String,
    /// Number of classes.
    #[arg(long, default_value_t = 10)]
    classes: usize,
    /// One JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let net = models::build(&a.model, a.classes, 0)?;
    let s = net.summary(None)?;
    if a.json {
        println!("{}", serde_json::to_string(&s).map_err(|e| fovea::Error::Invalid(e.to_string()))?);
    } else {
        println!("{s}");
    }
    Ok(())
}
