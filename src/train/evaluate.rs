//! Accuracy, loss and confusion matrix of a net on a data set, in evaluation mode; for a
//! distributed run, each rank evaluates its share of the set and the tallies are summed.

use crate::data::{fill_batch, Dataset, Normalize};
use crate::distributed::{share, Collective};
use crate::error::Result;
use crate::layers::{ForwardCtx, Mode};
use crate::loss::softmax_cross_entropy;
use crate::net::Net;
use crate::tensor::Tensor;
use std::ops::Range;

#[derive(Clone, Debug)]
pub struct Evaluation {
    pub loss: f32,
    pub accuracy: f32,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u32>>,
}

/// Runs `net` over all of `ds` in batches of `batch` images.
pub fn evaluate(net: &mut Net, ds: &Dataset, norm: &Normalize, batch: usize) -> Result<Evaluation> {
    Ok(tally(net, ds, norm, batch, 0..ds.len())?.evaluation(ds.len()))
}

/// As `evaluate`, with each rank of `group` running its share of `ds`; every rank gets the
/// whole set's evaluation.
pub fn evaluate_shared(net: &mut Net, ds: &Dataset, norm: &Normalize, batch: usize, group: &dyn Collective) -> Result<Evaluation> {
    let mine = tally(net, ds, norm, batch, share(ds.len(), group.rank(), group.size()))?;
    // The confusion counts, then the loss sum and the number correct, summed over the ranks
    // (f64 holds the counts exactly).
    let mut flat: Vec<f64> = mine.confusion.iter().flatten().map(|&c| f64::from(c)).collect();
    flat.extend([mine.loss_sum, mine.correct as f64]);
    group.sum_f64("the evaluation", &mut flat)?;
    let k = mine.confusion.len();
    let all = Tally {
        loss_sum: flat[k * k],
        correct: flat[k * k + 1] as usize,
        confusion: flat[..k * k].chunks(k.max(1)).map(|row| row.iter().map(|&c| c as u32).collect()).collect(),
    };
    Ok(all.evaluation(ds.len()))
}

/// Sums over some of a data set's images.
struct Tally {
    loss_sum: f64,
    correct: usize,
    confusion: Vec<Vec<u32>>,
}

impl Tally {
    fn evaluation(self, images: usize) -> Evaluation {
        let n = images.max(1) as f64;
        Evaluation { loss: (self.loss_sum / n) as f32, accuracy: (self.correct as f64 / n) as f32, confusion: self.confusion }
    }
}

/// Runs `net` over the images `range` of `ds` in batches of `batch` images.
fn tally(net: &mut Net, ds: &Dataset, norm: &Normalize, batch: usize, range: Range<usize>) -> Result<Tally> {
    let k = ds.classes.len().max(1);
    let mut confusion = vec![vec![0u32; k]; k];
    let (mut x, mut labels) = (Tensor::default(), Vec::new());
    let (mut loss_sum, mut correct) = (0.0f64, 0usize);
    let indices: Vec<usize> = range.collect();
    for chunk in indices.chunks(batch.max(1)) {
        fill_batch(ds, chunk, norm, None, &mut x, &mut labels);
        // The logits alone: no value is kept, pools run inside their convolutions.
        let logits = &net.forward_lean(&x, &ForwardCtx { mode: Mode::Eval, seed: 0, ..Default::default() })?;
        let r = softmax_cross_entropy(logits, &labels)?;
        loss_sum += r.loss as f64 * chunk.len() as f64;
        for (&pred, &truth) in logits.argmax_rows().iter().zip(&labels) {
            correct += (pred == truth) as usize;
            if truth < k && pred < k {
                confusion[truth][pred] += 1;
            }
        }
    }
    Ok(Tally { loss_sum, correct, confusion })
}
