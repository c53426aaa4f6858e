//! Checkpoints: one safetensors file with the model's tensors under their PyTorch names, the
//! optimizer's state under `optimizer.<name>`, and metadata saying where training stands.
//! `safetensors.torch.load_file` reads it; PyTorch's `load_state_dict` takes the entries
//! without the `optimizer.` prefix.

use crate::error::{Error, Result};
use crate::io::safetensors::write;
use crate::net::Net;
use crate::optim::Optimizer;
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Prefix of optimizer entries in a checkpoint.
pub const OPTIMIZER_PREFIX: &str = "optimizer.";

/// Where training stands when a checkpoint is written.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Progress {
    /// Optimizer steps taken so far.
    pub step: usize,
    /// Best validation accuracy so far (for `best.safetensors`).
    pub best_val_accuracy: f32,
    /// Sums over the current epoch's steps so far, so a resumed epoch reports what an
    /// uninterrupted one would.
    pub epoch_loss_sum: f64,
    pub epoch_correct: usize,
    pub epoch_seen: usize,
}

/// What the metadata of a fovea weights file says.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WeightsInfo {
    pub model: String,
    pub classes: Vec<String>,
    pub input: Vec<usize>,
}

pub fn save(path: &Path, net: &Net, optimizer: Option<&dyn Optimizer>, info: &WeightsInfo, progress: Option<&Progress>) -> Result<()> {
    let opt_state: Vec<(String, Tensor)> = optimizer
        .map(|o| o.state().into_iter().map(|(k, v)| (format!("{OPTIMIZER_PREFIX}{k}"), v)).collect())
        .unwrap_or_default();
    let mut tensors: Vec<(String, &Tensor)> = net.state();
    tensors.extend(opt_state.iter().map(|(k, v)| (k.clone(), v)));
    let json = |v: &dyn erased::Json| v.to_json();
    let mut meta = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("fovea".to_string(), json(info)),
    ]);
    if let Some(o) = optimizer {
        meta.insert("optimizer".into(), o.name().into());
    }
    if let Some(p) = progress {
        meta.insert("progress".into(), json(p));
    }
    write(path, &tensors, Some(meta))
}

/// A loaded weights file: model tensors, optimizer tensors, and the metadata fovea wrote.
pub struct Loaded {
    pub model: BTreeMap<String, Tensor>,
    pub optimizer: BTreeMap<String, Tensor>,
    pub optimizer_name: Option<String>,
    pub info: Option<WeightsInfo>,
    pub progress: Option<Progress>,
}

/// Reads the checkpoint or weights file at `path`.
pub fn load(path: &Path) -> Result<Loaded> {
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    parse(&bytes).map_err(|m| Error::file(path, m))
}

/// A checkpoint's tensors and metadata from its bytes; the message says what is wrong.
pub fn parse(bytes: &[u8]) -> std::result::Result<Loaded, String> {
    let f = crate::io::safetensors::parse(bytes)?;
    let mut model = BTreeMap::new();
    let mut optimizer = BTreeMap::new();
    for (k, v) in f.floats {
        match k.strip_prefix(OPTIMIZER_PREFIX) {
            Some(rest) => optimizer.insert(rest.to_string(), v),
            None => model.insert(k, v),
        };
    }
    let meta = |key: &str| f.metadata.get(key).map(|s| s.as_str());
    let info = match meta("fovea") {
        Some(s) => Some(serde_json::from_str(s).map_err(|e| format!("bad fovea metadata: {e}"))?),
        None => None,
    };
    let progress = match meta("progress") {
        Some(s) => Some(serde_json::from_str(s).map_err(|e| format!("bad progress metadata: {e}"))?),
        None => None,
    };
    Ok(Loaded { model, optimizer, optimizer_name: meta("optimizer").map(String::from), info, progress })
}

/// One line per tensor that holds values that are not numbers, `fc1.weight: 1 NaN, 0
/// infinite values`, in name order; empty when every value is finite.
pub fn nonfinite_report<'a>(tensors: impl IntoIterator<Item = (&'a String, &'a Tensor)>) -> Vec<String> {
    tensors
        .into_iter()
        .filter_map(|(name, t)| {
            let nan = t.data().iter().filter(|v| v.is_nan()).count();
            let inf = t.data().iter().filter(|v| v.is_infinite()).count();
            (nan + inf > 0).then(|| format!("{name}: {nan} NaN, {inf} infinite values"))
        })
        .collect()
}

/// Loads the model tensors of the weights file at `path` into `net`, with errors that name
/// the file.
pub fn load_weights(path: &Path, net: &mut Net) -> Result<Loaded> {
    let loaded = load(path)?;
    net.load_state(&loaded.model).map_err(|e| Error::file(path, e.to_string()))?;
    Ok(loaded)
}

mod erased {
    /// Serialises anything serde can, for metadata strings.
    pub trait Json {
        fn to_json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> String {
            serde_json::to_string(self).unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod nonfinite_tests {
    use super::*;

    #[test]
    fn the_report_names_each_tensor_with_its_counts() {
        let mut m = BTreeMap::new();
        m.insert("conv1.weight".to_string(), Tensor::from_vec(&[3], vec![1.0, 2.0, 3.0]).unwrap());
        m.insert("fc1.weight".to_string(), Tensor::from_vec(&[4], vec![f32::NAN, 1.0, f32::INFINITY, f32::NEG_INFINITY]).unwrap());
        m.insert("fc2.bias".to_string(), Tensor::from_vec(&[2], vec![f32::NAN, f32::NAN]).unwrap());
        assert_eq!(nonfinite_report(&m), vec!["fc1.weight: 1 NaN, 2 infinite values", "fc2.bias: 2 NaN, 0 infinite values"]);
        m.remove("fc1.weight");
        m.remove("fc2.bias");
        assert!(nonfinite_report(&m).is_empty());
    }
}
