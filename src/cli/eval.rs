//! `fovea eval`: test accuracy and confusion matrix of trained weights.

use fovea::train::evaluate::evaluate;
use fovea::{data, models, Result};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    m: super::weights::ModelArgs,
    /// Data directory (its test split is used).
    #[arg(long, default_value = "data/mnist")]
    data: PathBuf,
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
    /// One line of JSON: {"accuracy": ..., "confusion": [[...]]}.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let super::weights::LoadedModel { mut net, .. } = a.m.load()?;
    let s = net.input_shape().to_vec();
    let split = data::load_dir(&a.data, [s[0], s[1], s[2]])?;
    if split.test.is_empty() {
        return Err(fovea::Error::file(&a.data, "has no test images"));
    }
    let e = evaluate(&mut net, &split.test, &models::normalization(&a.m.model), a.batch_size)?;
    if !e.loss.is_finite() {
        eprintln!("warning: the test loss is {}{}", e.loss, if a.json { " (written as null)" } else { "" });
    }
    if a.json {
        println!("{}", serde_json::json!({"accuracy": e.accuracy, "loss": e.loss, "confusion": e.confusion}));
        return Ok(());
    }
    println!("test accuracy {:.2}% ({} images), loss {:.4}", 100.0 * e.accuracy, split.test.len(), e.loss);
    println!("confusion matrix (rows: true class, columns: predicted):");
    let names = &split.test.classes;
    let w = names.iter().map(|n| n.len()).max().unwrap_or(1).max(5);
    print!("{:>w$}", "");
    for n in names {
        print!(" {n:>w$}");
    }
    println!();
    for (n, row) in names.iter().zip(&e.confusion) {
        print!("{n:>w$}");
        for v in row {
            print!(" {v:>w$}");
        }
        println!();
    }
    Ok(())
}
