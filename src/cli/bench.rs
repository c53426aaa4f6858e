//! `fovea bench conv`: GFLOP/s of the convolution kernels on the shapes of
//! `../shared/bench/common.py`, to set beside PyTorch's figures from the same machine.

use fovea::geometry::{Padding, Window2d};
use fovea::kernels::conv2d::{conv2d_backward, conv2d_forward, ConvDims, ConvScratch};
use fovea::rng::Rng;
use fovea::Result;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// What to measure: `conv` (the baseline's conv shapes) or `gemm` (plain matrix products).
    #[arg(default_value = "conv", value_parser = ["conv", "gemm"])]
    what: String,
    /// Shapes by letter (a-f, as in the PyTorch baseline); default all.
    #[arg(long, value_delimiter = ',')]
    shapes: Vec<String>,
    /// Repetitions per measurement; the median is reported.
    #[arg(long, default_value_t = 20)]
    reps: usize,
}

/// (letter, N, Cin, H, W, Cout, k, stride, pad), as the baseline's `common.py`.
type ConvShape = (&'static str, usize, usize, usize, usize, usize, usize, usize, usize);
const SHAPES: &[ConvShape] = &[
    ("a", 64, 1, 28, 28, 32, 5, 1, 2),
    ("b", 64, 32, 14, 14, 64, 5, 1, 2),
    ("c", 32, 64, 32, 32, 64, 3, 1, 1),
    ("d", 8, 64, 56, 56, 64, 3, 1, 1),
    ("e", 8, 3, 227, 227, 96, 11, 4, 0),
    ("f", 32, 256, 28, 28, 64, 1, 1, 0),
];

fn median_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up: buffers allocated and touched
    let mut times: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    times[times.len() / 2]
}

pub fn run(a: Args) -> Result<()> {
    if a.what == "gemm" {
        return run_gemm(&a);
    }
    let threads = rayon::current_num_threads();
    println!("shape\top\tframework\tthreads\treps\tmedian_ms\tGFLOP/s");
    let mut rng = Rng::new(1);
    for &(letter, n, ci, h, w, co, k, s, p) in SHAPES {
        if !a.shapes.is_empty() && !a.shapes.iter().any(|x| x == letter) {
            continue;
        }
        let geom = Window2d::square(k, s, Padding::uniform(p)).resolve(h, w)?;
        let d = ConvDims { n, c_in: ci, c_out: co, groups: 1, geom };
        let (ho, wo) = geom.out_hw();
        let x = rng.uniform_vec(n * ci * h * w, -1.0, 1.0);
        let wt = rng.uniform_vec(co * ci * k * k, -0.1, 0.1);
        let b = rng.uniform_vec(co, -0.1, 0.1);
        let dy = rng.uniform_vec(n * co * ho * wo, -1.0, 1.0);
        let mut y = vec![0.0; dy.len()];
        let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; wt.len()], vec![0.0; co]);
        let mut scratch = ConvScratch::default();
        let gflop = 2.0 * d.macs() as f64 / 1e9;
        let report = |op: &str, ms: f64| {
            println!("{letter}\t{op}\tfovea\t{threads}\t{}\t{ms:.3}\t{:.1}", a.reps, gflop / (ms / 1e3));
        };
        report("fwd", median_ms(a.reps, || conv2d_forward(&mut y, &x, &wt, Some(&b), &d, &mut scratch)));
        report(
            "bwd_input",
            median_ms(a.reps, || conv2d_backward(Some(&mut dx), None, None, &dy, &x, &wt, &d, &mut scratch)),
        );
        report(
            "bwd_weight",
            median_ms(a.reps, || conv2d_backward(None, Some(&mut dw), Some(&mut db), &dy, &x, &wt, &d, &mut scratch)),
        );
    }
    Ok(())
}

/// Matrix products `[m, k] @ [k, n]`: square sizes, and the per-sample products of shape b.
fn run_gemm(a: &Args) -> Result<()> {
    use fovea::kernels::matmul::{matmul, Mat, Threads};
    let threads = rayon::current_num_threads();
    println!("m\tn\tk\tthreads\tmedian_ms\tGFLOP/s");
    let mut rng = Rng::new(2);
    for (m, n, k) in [(512, 512, 512), (1024, 1024, 1024), (64, 196, 800), (800, 196, 64), (64, 800, 196), (64, 12544, 800)] {
        let x = rng.uniform_vec(m * k, -1.0, 1.0);
        let y = rng.uniform_vec(k * n, -1.0, 1.0);
        let mut z = vec![0.0; m * n];
        let ms = median_ms(a.reps, || matmul(&mut z, Mat::n(&x), Mat::n(&y), m, n, k, false, Threads::Pool));
        println!("{m}\t{n}\t{k}\t{threads}\t{ms:.3}\t{:.1}", 2.0 * (m * n * k) as f64 / 1e9 / (ms / 1e3));
    }
    Ok(())
}
