//! The model zoo: functions that build a `Net` with PyTorch's parameter names.

mod lenet;

pub use lenet::{lenet5, mnist_cnn};

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
