//! Optimizers with PyTorch's update rules (SGD with momentum, Nesterov and weight decay; Adam
//! and AdamW) and learning-rate schedules. Their state is named per parameter so a checkpoint
//! can hold it beside the weights.

mod adam;
pub mod lbfgs;
mod schedule;
mod sgd;
mod vec_adam;

pub use adam::Adam;
pub use schedule::Schedule;
pub use sgd::Sgd;
pub use vec_adam::VecAdam;

use crate::error::{Error, Result};
use crate::layers::Param;
use crate::tensor::Tensor;
use std::collections::BTreeMap;

/// One update of every parameter from its accumulated gradient.
pub trait Optimizer: Send {
    /// `sgd`, `adam` or `adamw`.
    fn name(&self) -> &'static str;

    /// Applies one step at learning rate `lr` to the named parameters.
    fn step(&mut self, params: &mut [(String, &mut Param)], lr: f32);

    /// The optimizer's state by name (`<kind>.<param name>`, e.g. `exp_avg.conv1.weight`,
    /// and `step` counters as one-element tensors).
    fn state(&self) -> Vec<(String, Tensor)>;

    /// Restores what `state` returned.
    fn load_state(&mut self, state: &BTreeMap<String, Tensor>) -> Result<()>;
}

/// The optimizer called `name` with PyTorch's defaults for the rest.
pub fn build(name: &str, momentum: f32, nesterov: bool, weight_decay: f32) -> Result<Box<dyn Optimizer>> {
    match name {
        "sgd" => Ok(Box::new(Sgd::new(momentum, nesterov, weight_decay))),
        "adam" => Ok(Box::new(Adam::new(weight_decay, false))),
        "adamw" => Ok(Box::new(Adam::new(weight_decay, true))),
        other => Err(Error::Invalid(format!("unknown optimizer {other:?}: use sgd, adam or adamw"))),
    }
}

/// A buffer of `len` zeros under `name` in `map`, created on first use.
fn slot<'a>(map: &'a mut BTreeMap<String, Vec<f32>>, name: &str, len: usize) -> &'a mut Vec<f32> {
    map.entry(name.to_string()).or_insert_with(|| vec![0.0; len])
}

fn export(prefix: &str, map: &BTreeMap<String, Vec<f32>>) -> Vec<(String, Tensor)> {
    map.iter()
        .map(|(k, v)| (format!("{prefix}.{k}"), Tensor::from_vec(&[v.len()], v.clone()).unwrap_or_default()))
        .collect()
}

fn import(prefix: &str, state: &BTreeMap<String, Tensor>) -> BTreeMap<String, Vec<f32>> {
    let p = format!("{prefix}.");
    state
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(&p).map(|name| (name.to_string(), v.data().to_vec())))
        .collect()
}
