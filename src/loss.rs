//! Softmax cross-entropy on logits, fused and stable (the maximum logit is subtracted), as
//! PyTorch's `F.cross_entropy` with mean reduction.

use crate::error::{Error, Result};
use crate::kernels::softmax::softmax_cross_entropy as xent_kernel;
use crate::tensor::{fmt_shape, Tensor};

/// The loss and what training needs from it.
pub struct CrossEntropy {
    /// Mean loss over the batch.
    pub loss: f32,
    /// Softmax probabilities, `[N, K]`.
    pub probs: Tensor,
    /// Gradient of the mean loss with respect to the logits, `[N, K]`.
    pub d_logits: Tensor,
}

/// Mean softmax cross-entropy of `logits: [N, K]` against class indices `labels: [N]`.
pub fn softmax_cross_entropy(logits: &Tensor, labels: &[usize]) -> Result<CrossEntropy> {
    let (n, k) = match *logits.shape() {
        [n, k] if k > 0 => (n, k),
        _ => return Err(Error::shape(format!("logits have shape {}, expected [N, K]", fmt_shape(logits.shape())))),
    };
    if labels.len() != n {
        return Err(Error::shape(format!("{} labels for {n} rows of logits", labels.len())));
    }
    if let Some(&bad) = labels.iter().find(|&&l| l >= k) {
        return Err(Error::shape(format!("label {bad} is not below the {k} classes of the logits")));
    }
    let mut probs = Tensor::zeros(logits.shape());
    let mut d_logits = Tensor::zeros(logits.shape());
    let loss = xent_kernel(probs.data_mut(), d_logits.data_mut(), logits.data(), labels, k);
    Ok(CrossEntropy { loss, probs, d_logits })
}
