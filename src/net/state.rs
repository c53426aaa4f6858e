//! A net's state under PyTorch's names: trainable parameters and buffers (running statistics),
//! to save and to load, with every mismatch listed by name.

use super::Net;
use crate::error::{Error, Result};
use crate::tensor::{fmt_shape, Tensor};
use std::collections::BTreeMap;

/// Entries PyTorch saves that carry nothing fovea needs.
fn ignored(name: &str) -> bool {
    name.ends_with("num_batches_tracked")
}

impl Net {
    /// Parameters and buffers by PyTorch name (`conv1.weight`, `bn1.running_mean`), node order.
    pub fn state(&self) -> Vec<(String, &Tensor)> {
        let mut out = Vec::new();
        for n in &self.nodes {
            for (p, t) in n.layer.params() {
                out.push((format!("{}.{p}", n.name), &t.value));
            }
            for (b, t) in n.layer.buffers() {
                out.push((format!("{}.{b}", n.name), t));
            }
        }
        out
    }

    /// Loads every parameter and buffer from `tensors`. Strict: a missing name, an unexpected
    /// one or a shape that differs is an error listing all of them, and then nothing is changed.
    pub fn load_state(&mut self, tensors: &BTreeMap<String, Tensor>) -> Result<()> {
        let expected: BTreeMap<String, Vec<usize>> =
            self.state().into_iter().map(|(n, t)| (n, t.shape().to_vec())).collect();
        let mut problems = Vec::new();
        let missing: Vec<&str> = expected.keys().filter(|k| !tensors.contains_key(*k)).map(|k| k.as_str()).collect();
        if !missing.is_empty() {
            problems.push(format!("missing: {}", missing.join(", ")));
        }
        let unexpected: Vec<&str> = tensors
            .keys()
            .filter(|k| !expected.contains_key(*k) && !ignored(k))
            .map(|k| k.as_str())
            .collect();
        if !unexpected.is_empty() {
            problems.push(format!("unexpected: {}", unexpected.join(", ")));
        }
        for (name, shape) in &expected {
            if let Some(t) = tensors.get(name) {
                if t.shape() != shape.as_slice() {
                    problems.push(format!(
                        "{name}: has shape {}, the model needs {}",
                        fmt_shape(t.shape()),
                        fmt_shape(shape)
                    ));
                }
            }
        }
        if !problems.is_empty() {
            return Err(Error::State(format!("the weights do not match the model: {}", problems.join("; "))));
        }
        for n in &mut self.nodes {
            let name = n.name.clone();
            for (p, t) in n.layer.params_mut() {
                t.value.data_mut().copy_from_slice(tensors[&format!("{name}.{p}")].data());
            }
            for (b, t) in n.layer.buffers_mut() {
                t.data_mut().copy_from_slice(tensors[&format!("{name}.{b}")].data());
            }
        }
        Ok(())
    }
}
