//! CIFAR-10 in its binary format: records of one label byte and 3072 pixel bytes (1024 red,
//! 1024 green, 1024 blue, each 32x32 row-major), in `data_batch_1.bin` ... `data_batch_5.bin`
//! and `test_batch.bin`; class names in `batches.meta.txt`.

use super::Dataset;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

const RECORD: usize = 1 + 3 * 32 * 32;
const DEFAULT_CLASSES: [&str; 10] = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// `dir` or `dir/cifar-10-batches-bin`, whichever holds `test_batch.bin` or `data_batch_1.bin`.
pub fn find_dir(dir: &Path) -> Option<PathBuf> {
    [dir.to_path_buf(), dir.join("cifar-10-batches-bin")]
        .into_iter()
        .find(|d| d.join("data_batch_1.bin").is_file() || d.join("test_batch.bin").is_file())
}

fn read_batches(paths: &[PathBuf], classes: &[String]) -> Result<Dataset> {
    let mut ds = Dataset { shape: [3, 32, 32], pixels: Vec::new(), labels: Vec::new(), classes: classes.to_vec() };
    for p in paths {
        let bytes = std::fs::read(p).map_err(|e| Error::file(p, format!("cannot read: {e}")))?;
        append_batch(&mut ds, &bytes).map_err(|m| Error::file(p, m))?;
    }
    Ok(ds)
}

/// Appends the records of one batch file's bytes to `ds` (whose classes are set); the message
/// says what is wrong.
pub fn append_batch(ds: &mut Dataset, bytes: &[u8]) -> std::result::Result<(), String> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        return Err(format!("is {} bytes, not a whole number of {RECORD}-byte CIFAR-10 records (truncated or not CIFAR-10)", bytes.len()));
    }
    for (r, rec) in bytes.chunks_exact(RECORD).enumerate() {
        if rec[0] as usize >= ds.classes.len() {
            return Err(format!("record {r} has label {}, there are {} classes", rec[0], ds.classes.len()));
        }
    }
    ds.labels.extend(bytes.chunks_exact(RECORD).map(|rec| rec[0] as u16));
    ds.pixels.reserve(bytes.len() / RECORD * (RECORD - 1));
    for rec in bytes.chunks_exact(RECORD) {
        ds.pixels.extend_from_slice(&rec[1..]);
    }
    Ok(())
}

/// `(train, test)` from a CIFAR-10 binary directory. Training batches that are absent are
/// skipped (a subset is fine), but at least one must exist, and the test batch too.
pub fn load(dir: &Path) -> Result<(Dataset, Dataset)> {
    let classes: Vec<String> = std::fs::read_to_string(dir.join("batches.meta.txt"))
        .ok()
        .map(|t| t.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect::<Vec<_>>())
        .filter(|c| c.len() >= 2)
        .unwrap_or_else(|| DEFAULT_CLASSES.iter().map(|s| s.to_string()).collect());
    let train: Vec<PathBuf> = (1..=5).map(|i| dir.join(format!("data_batch_{i}.bin"))).filter(|p| p.is_file()).collect();
    if train.is_empty() {
        return Err(Error::file(dir.join("data_batch_1.bin"), "not found: no CIFAR-10 training batch"));
    }
    let test = dir.join("test_batch.bin");
    if !test.is_file() {
        return Err(Error::file(&test, "not found"));
    }
    Ok((read_batches(&train, &classes)?, read_batches(&[test], &classes)?))
}
