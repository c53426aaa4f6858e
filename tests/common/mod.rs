//! What several test files share: temporary directories, a learnable toy MNIST written as
//! IDX files, and an ONNX file run by tract.
#![allow(dead_code)] // each test file uses its own part

use std::io::Write;
use std::path::{Path, PathBuf};

pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fovea-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

pub fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A learnable toy MNIST: digit k is a bright 6x6 square at a place that depends on k, over a
/// little noise.
pub fn toy_digits(n: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut rng = fovea::rng::Rng::new(seed);
    let (mut px, mut labels) = (Vec::new(), Vec::new());
    for i in 0..n {
        let k = i % 10;
        let (y0, x0) = (2 + (k / 5) * 12 + rng.below(3), 2 + (k % 5) * 5 + rng.below(2));
        for y in 0..28 {
            for x in 0..28 {
                let inside = (y0..y0 + 6).contains(&y) && (x0..x0 + 4).contains(&x);
                px.push(if inside { 200 + rng.below(55) as u8 } else { rng.below(40) as u8 });
            }
        }
        labels.push(k as u8);
    }
    (px, labels)
}

pub fn write_toy_mnist(dir: &Path, n_train: usize, n_test: usize) {
    let (px, lab) = toy_digits(n_train, 1);
    std::fs::write(dir.join("train-images-idx3-ubyte.gz"), gz(&idx_bytes(&[n_train as u32, 28, 28], &px))).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte.gz"), gz(&idx_bytes(&[n_train as u32], &lab))).unwrap();
    let (px, lab) = toy_digits(n_test, 2);
    // The test files uncompressed: both forms are read.
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), idx_bytes(&[n_test as u32, 28, 28], &px)).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx_bytes(&[n_test as u32], &lab)).unwrap();
}

/// A fresh temporary directory `name` holding a toy MNIST in its `mnist` folder: (root, data).
pub fn toy_mnist_dir(name: &str, n_train: usize, n_test: usize) -> (PathBuf, PathBuf) {
    let root = temp_dir(name);
    let data = root.join("mnist");
    std::fs::create_dir_all(&data).unwrap();
    write_toy_mnist(&data, n_train, n_test);
    (root, data)
}

/// The largest relative difference (norm of the difference over norm of `a`) between two
/// state dicts' tensors of the same names, with the tensor's name.
pub fn worst_difference(a: &std::collections::BTreeMap<String, fovea::Tensor>, b: &std::collections::BTreeMap<String, fovea::Tensor>) -> (f64, String) {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    a.iter()
        .map(|(k, ta)| {
            let diff: f64 = ta.data().iter().zip(b[k].data()).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum::<f64>().sqrt();
            let norm: f64 = ta.data().iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            (diff / norm.max(1e-30), k.clone())
        })
        .fold((0.0, String::new()), |w, d| if d.0 > w.0 { d } else { w })
}

/// Weights of `model` (seeded initialisation, 10 classes labelled by their index) saved in
/// `dir` as training would save them; returns the file's path as text.
pub fn save_weights(dir: &Path, model: &str, name: &str) -> String {
    let net = fovea::models::build_for(model, 10, None, 1).unwrap();
    let info = fovea::train::checkpoint::WeightsInfo { model: model.into(), classes: (0..10).map(|c| c.to_string()).collect(), input: net.input_shape().to_vec() };
    let path = dir.join(name);
    fovea::train::checkpoint::save(&path, &net, None, &info, None).unwrap();
    path.to_string_lossy().into_owned()
}

/// A `fovea serve` process on a free port of 127.0.0.1, killed when dropped.
pub struct Server {
    pub child: std::process::Child,
    /// `http://127.0.0.1:PORT/`.
    pub url: String,
}

impl Server {
    /// Starts `fovea serve --port 0` with `args` and waits for the address it prints.
    pub fn start(args: &[&str]) -> Server {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fovea"))
            .arg("serve")
            .args(["--port", "0"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("fovea serve starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap_or_else(|| {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err);
            panic!("fovea serve printed {line:?}, not its address; standard error: {err}")
        });
        Server { url: url.to_string(), child }
    }

    /// `url` + `path` (without its leading slash).
    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path.trim_start_matches('/'))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs an ONNX model with tract on `x` (`[N, C, H, W]`) and returns the first output.
pub fn run_tract(bytes: &[u8], x: &fovea::Tensor) -> Vec<f32> {
    use tract_onnx::prelude::*;
    let model = tract_onnx::onnx().model_for_read(&mut &bytes[..]).expect("tract reads the file");
    let model = model
        .with_input_fact(0, f32::fact(x.shape()).into())
        .unwrap()
        .into_optimized()
        .expect("tract optimizes the graph")
        .into_runnable()
        .unwrap();
    let input = tract_ndarray::ArrayD::from_shape_vec(x.shape(), x.data().to_vec()).unwrap();
    let out = model.run(tvec!(tract_onnx::prelude::Tensor::from(input).into())).expect("tract runs the graph");
    out[0].to_plain_array_view::<f32>().unwrap().iter().copied().collect()
}
