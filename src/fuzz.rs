//! The entry points of the fuzz targets (`fuzz/`, run with `cargo fuzz`), one per reader of
//! outside bytes. Each takes arbitrary bytes, runs the reader and what consumes its result, and
//! must return without panicking, whatever the bytes: errors are the expected outcome. The
//! test suite replays the inputs kept in `tests/data/fuzz/<target>/` through the same functions.

use crate::data::{cifar, folder, idx, mnist, Dataset};
use std::path::Path;

/// A fuzz target: arbitrary bytes in, no panic out.
pub type Target = fn(&[u8]);

/// Every target by name, as `fuzz/fuzz_targets/<name>.rs` and `tests/data/fuzz/<name>/` call it.
pub const TARGETS: &[(&str, Target)] = &[
    ("idx", idx_file),
    ("mnist", mnist_files),
    ("cifar", cifar_batch),
    ("image", image_file),
    ("safetensors", safetensors_file),
    ("checkpoint", checkpoint_file),
    ("config", config_json),
    ("metrics", metrics_jsonl),
];

/// An IDX file, plain or gzip.
pub fn idx_file(data: &[u8]) {
    let _ = idx::read_idx_bytes(Path::new("fuzz.idx"), data);
}

/// The four MNIST files, cut from one input at the offsets its first three bytes give.
pub fn mnist_files(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let (head, rest) = data.split_at(3);
    let cut = |b: u8, len: usize| (b as usize * len / 256).min(len);
    let a = cut(head[0], rest.len());
    let b = a + cut(head[1], rest.len() - a);
    let c = b + cut(head[2], rest.len() - b);
    let _ = mnist::load_bytes(Path::new("fuzz"), [&rest[..a], &rest[a..b], &rest[b..c], &rest[c..]]);
}

/// A CIFAR-10 binary batch.
pub fn cifar_batch(data: &[u8]) {
    let mut ds = Dataset { shape: [3, 32, 32], pixels: Vec::new(), labels: Vec::new(), classes: (0..10).map(|c| c.to_string()).collect() };
    if cifar::append_batch(&mut ds, data).is_ok() {
        assert_eq!(ds.pixels.len(), ds.labels.len() * 3072, "a CIFAR-10 record is 3,072 pixels");
    }
}

/// A PNG or JPEG, decoded and fitted as `predict` does (MNIST's stretch, ImageNet's crop).
pub fn image_file(data: &[u8]) {
    if let Ok(img) = folder::decode_image(data) {
        if let Ok(px) = folder::fit_image(img.clone(), [1, 28, 28], folder::Fit::Stretch) {
            assert_eq!(px.len(), 28 * 28);
        }
        if let Ok(px) = folder::fit_image(img, [3, 64, 48], folder::Fit::ResizeCrop) {
            assert_eq!(px.len(), 3 * 64 * 48);
        }
    }
}

/// A safetensors file of any tensors.
pub fn safetensors_file(data: &[u8]) {
    let _ = crate::io::safetensors::parse(data);
}

/// A checkpoint, loaded into LeNet-5 as `--weights` and `--resume` load one.
pub fn checkpoint_file(data: &[u8]) {
    let Ok(loaded) = crate::train::checkpoint::parse(data) else { return };
    let _ = crate::train::checkpoint::nonfinite_report(&loaded.model);
    if let Ok((mut net, _)) = crate::models::architecture("lenet5", 10, None) {
        let _ = net.load_state(&loaded.model);
    }
}

/// A run directory's `config.json`.
pub fn config_json(data: &[u8]) {
    let _ = crate::train::parse_config(data);
}

/// A run directory's `metrics.jsonl`.
pub fn metrics_jsonl(data: &[u8]) {
    for r in crate::train::metrics::parse(data) {
        let _ = r.step();
    }
}
