//! The MNIST files of the checkout's `data/mnist`, compiled into the binary (11 MB of gzip), so
//! that the main job runs from any directory and after `cargo install`. A run records this
//! source as the path `bundled:mnist`, so `--resume` finds it again anywhere.

use super::{mnist, Dataset};
use crate::error::Result;
use std::path::Path;

/// The `--data` value (and config.json entry) that names the bundled MNIST.
pub const BUNDLED_MNIST: &str = "bundled:mnist";

macro_rules! mnist_file {
    ($name:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist/", $name, "-ubyte.gz"))
    };
}

static FILES: [&[u8]; 4] = [
    mnist_file!("train-images-idx3"),
    mnist_file!("train-labels-idx1"),
    mnist_file!("t10k-images-idx3"),
    mnist_file!("t10k-labels-idx1"),
];

/// Whether `path` names the bundled MNIST rather than a folder.
pub fn is_bundled(path: &Path) -> bool {
    path.as_os_str() == BUNDLED_MNIST
}

/// `(train, test)`: MNIST's 60,000 training and 10,000 test images.
pub fn load() -> Result<(Dataset, Dataset)> {
    mnist::load_bytes(Path::new(BUNDLED_MNIST), FILES)
}
