//! The metrics log: JSON lines, one per logged step (`"kind": "step"`) and one per epoch
//! (`"kind": "epoch"`), appended as training goes.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Record {
    Step { epoch: usize, step: usize, loss: f32, accuracy: f32, lr: f32, images_per_sec: f32 },
    Epoch {
        epoch: usize,
        step: usize,
        train_loss: f32,
        train_accuracy: f32,
        val_loss: Option<f32>,
        val_accuracy: Option<f32>,
        test_loss: Option<f32>,
        test_accuracy: Option<f32>,
        seconds: f32,
    },
}

impl Record {
    pub fn step(&self) -> usize {
        match self {
            Record::Step { step, .. } | Record::Epoch { step, .. } => *step,
        }
    }
}

pub struct MetricsLog {
    path: PathBuf,
}

impl MetricsLog {
    /// A log at `path`. When resuming at `keep_through_step`, records past that step (written
    /// after the checkpoint) are dropped, so the log reads as one uninterrupted run.
    pub fn open(path: &Path, keep_through_step: Option<usize>) -> Result<Self> {
        match keep_through_step {
            None => {
                crate::io::atomic::write_atomic(path, b"")?;
            }
            Some(step) => {
                let kept: Vec<Record> = read(path)?.into_iter().filter(|r| r.step() <= step).collect();
                let mut text = String::new();
                for r in &kept {
                    text.push_str(&serde_json::to_string(r).unwrap_or_default());
                    text.push('\n');
                }
                crate::io::atomic::write_atomic(path, text.as_bytes())?;
            }
        }
        Ok(MetricsLog { path: path.to_path_buf() })
    }

    pub fn append(&mut self, r: &Record) -> Result<()> {
        let line = serde_json::to_string(r).map_err(|e| Error::Invalid(e.to_string()))? + "\n";
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.path)
            .map_err(|e| Error::file(&self.path, format!("cannot append: {e}")))?;
        f.write_all(line.as_bytes()).map_err(|e| Error::file(&self.path, format!("cannot append: {e}")))
    }
}

/// Every record of a metrics log; lines that do not parse (a torn last line) are skipped.
pub fn read(path: &Path) -> Result<Vec<Record>> {
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    Ok(parse(&bytes))
}

/// The records of a metrics log's bytes; lines that are not a record (torn, not UTF-8) are
/// skipped.
pub fn parse(bytes: &[u8]) -> Vec<Record> {
    bytes.split(|&b| b == b'\n').filter_map(|l| serde_json::from_slice(l).ok()).collect()
}
