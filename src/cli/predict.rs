//! `fovea predict`: the top classes of each image, with probabilities.

use fovea::data::folder::{load_image_fit, Fit};
use fovea::data::{fill_batch, Dataset};
use fovea::kernels::softmax::softmax_rows;
use fovea::{models, ForwardCtx, Result, Tensor};
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
}

pub fn run(a: Args) -> Result<()> {
    let super::weights::Loaded { mut net, classes } = a.m.load()?;
    let s = net.input_shape().to_vec();
    let shape = [s[0], s[1], s[2]];
    let norm = models::normalization(&a.m.model);
    // ImageNet models see what torchvision's evaluation shows them: short side resized, centre
    // crop. The MNIST nets see the whole image squeezed to 28x28.
    let fit = if shape[0] == 3 { Fit::ResizeCrop } else { Fit::Stretch };
    for path in &a.images {
        let pixels = load_image_fit(path, shape, fit)?;
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
            println!("{}:", path.display());
            for &c in &order {
                println!("  {:>6.2}%  {} ({c})", 100.0 * probs[c], classes.get(c).map_or("?", |s| s.as_str()));
            }
        }
    }
    Ok(())
}
