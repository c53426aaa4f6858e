//! Accuracy, loss and confusion matrix of a net on a data set, in evaluation mode.

use crate::data::{fill_batch, Dataset, Normalize};
use crate::error::Result;
use crate::layers::{ForwardCtx, Mode};
use crate::loss::softmax_cross_entropy;
use crate::net::Net;
use crate::tensor::Tensor;

#[derive(Clone, Debug)]
pub struct Evaluation {
    pub loss: f32,
    pub accuracy: f32,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u32>>,
}

/// Runs `net` over all of `ds` in batches of `batch` images.
pub fn evaluate(net: &mut Net, ds: &Dataset, norm: &Normalize, batch: usize) -> Result<Evaluation> {
    let k = ds.classes.len().max(1);
    let mut confusion = vec![vec![0u32; k]; k];
    let (mut x, mut labels) = (Tensor::default(), Vec::new());
    let (mut loss_sum, mut correct) = (0.0f64, 0usize);
    let indices: Vec<usize> = (0..ds.len()).collect();
    for chunk in indices.chunks(batch.max(1)) {
        fill_batch(ds, chunk, norm, None, &mut x, &mut labels);
        let logits = net.forward(&x, &ForwardCtx { mode: Mode::Eval, seed: 0 })?;
        let r = softmax_cross_entropy(logits, &labels)?;
        loss_sum += r.loss as f64 * chunk.len() as f64;
        for (&pred, &truth) in logits.argmax_rows().iter().zip(&labels) {
            correct += (pred == truth) as usize;
            if truth < k && pred < k {
                confusion[truth][pred] += 1;
            }
        }
    }
    let n = ds.len().max(1) as f64;
    Ok(Evaluation { loss: (loss_sum / n) as f32, accuracy: (correct as f64 / n) as f32, confusion })
}
