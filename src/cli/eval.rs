//! `fovea eval`: test accuracy and confusion matrix of trained weights.

use fovea::train::evaluate::evaluate;
use fovea::{data, models, Result};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    m: super::weights::ModelArgs,
    /// Data directory, as for `fovea train` (its test split is used) [default: the MNIST
    /// bundled in the binary].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Images per forward pass (memory, not results).
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
    /// One line of JSON: {"accuracy": ..., "confusion": [[...]]}.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let super::weights::LoadedModel { mut net, .. } = a.m.load()?;
    // Only the logits are read: each ReLU after a convolution is applied by the convolution.
    net.fuse_activations(true);
    let s = net.input_shape().to_vec();
    let dir = super::args::data_or_bundled(&a.data);
    let split = data::load_dir(&dir, [s[0], s[1], s[2]])?;
    if split.test.is_empty() {
        return Err(fovea::Error::file(&dir, "has no test images"));
    }
    let e = evaluate(&mut net, &split.test, &models::normalization(&a.m.model), a.batch_size)?;
    if !e.loss.is_finite() {
        eprintln!("warning: the test loss is {}{}", e.loss, if a.json { " (written as null)" } else { "" });
    }
    if a.json {
        // The accuracy as the exact ratio of the counts, not an f32 widened to f64.
        let correct: u64 = (0..e.confusion.len()).map(|i| e.confusion[i][i] as u64).sum();
        let total: u64 = e.confusion.iter().flatten().map(|&c| c as u64).sum();
        let accuracy = serde_json::Number::from_f64(correct as f64 / total.max(1) as f64).map_or(serde_json::Value::Null, serde_json::Value::Number);
        println!("{}", serde_json::json!({"accuracy": accuracy, "loss": super::args::json_f32(e.loss), "confusion": e.confusion}));
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
