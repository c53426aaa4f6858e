//! `fovea predict`: the top classes of each image, with probabilities.

use fovea::data::folder::load_image;
use fovea::data::{fill_batch, Dataset};
use fovea::kernels::softmax::softmax_rows;
use fovea::train::checkpoint::load_weights;
use fovea::{models, ForwardCtx, Result, Tensor};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(models::NAMES))]
    model: String,
    #[arg(long)]
    weights: PathBuf,
    /// PNG or JPEG images of any size (converted to the model's input).
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 3)]
    top: usize,
    /// One JSON object per image: {"file", "logits", "top": [{"class", "label", "prob"}]}.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let probe = fovea::train::checkpoint::load(&a.weights)?;
    let classes: Vec<String> = match probe.info.map(|i| i.classes).filter(|c| !c.is_empty()) {
        Some(c) => c,
        None => (0..10).map(|d| d.to_string()).collect(),
    };
    let mut net = models::build(&a.model, classes.len(), 0)?;
    load_weights(&a.weights, &mut net)?;
    let s = net.input_shape().to_vec();
    let shape = [s[0], s[1], s[2]];
    let norm = models::normalization(&a.model);
    for path in &a.images {
        let pixels = load_image(path, shape)?;
        let ds = Dataset { shape, pixels, labels: vec![0], classes: classes.clone() };
        let (mut x, mut labels) = (Tensor::default(), Vec::new());
        fill_batch(&ds, &[0], &norm, None, &mut x, &mut labels);
        let logits = net.forward(&x, &ForwardCtx::default())?.clone();
        let mut probs = vec![0.0; logits.len()];
        softmax_rows(&mut probs, logits.data(), logits.len());
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&i, &j| probs[j].total_cmp(&probs[i]));
        order.truncate(a.top.max(1));
        if a.json {
            let top: Vec<_> = order
                .iter()
                .map(|&c| serde_json::json!({"class": c, "label": classes.get(c).cloned().unwrap_or_default(), "prob": probs[c]}))
                .collect();
            println!("{}", serde_json::json!({"file": path.display().to_string(), "logits": logits.data(), "top": top}));
        } else {
            let tops: Vec<String> = order
                .iter()
                .map(|&c| format!("{} {:.1}%", classes.get(c).map_or("?", |s| s.as_str()), 100.0 * probs[c]))
                .collect();
            println!("{}: {}", path.display(), tops.join(", "));
        }
    }
    Ok(())
}
