//! The model zoo: functions that build a `Net` with PyTorch's parameter names.

mod lenet;

pub use lenet::{lenet5, mnist_cnn};

use crate::data::Normalize;
use crate::error::{Error, Result};
use crate::net::Net;

/// Names accepted by `build`.
pub const NAMES: &[&str] = &["mnist-cnn", "lenet5"];

/// Builds model `name` for `classes` classes, initialised from `seed` as PyTorch would.
pub fn build(name: &str, classes: usize, seed: u64) -> Result<Net> {
    let mut net = match name {
        "mnist-cnn" => mnist_cnn(classes)?,
        "lenet5" => lenet5(classes)?,
        other => {
            return Err(Error::Invalid(format!("unknown model {other:?}; the models are {}", NAMES.join(", "))))
        }
    };
    net.init(seed);
    Ok(net)
}

/// How model `name` expects its input normalised (pixels first scaled to [0, 1]), in training
/// and prediction alike.
pub fn normalization(name: &str) -> Normalize {
    match name {
        "mnist-cnn" | "lenet5" => Normalize::mnist(),
        _ => Normalize::imagenet(),
    }
}
