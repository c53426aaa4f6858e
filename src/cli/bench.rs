//! `fovea bench conv`: GFLOP/s of the convolution kernels on the shapes of
//! `../shared/bench/common.py`, to set beside PyTorch's figures from the same machine.

use fovea::geometry::{Padding, Window2d};
use fovea::kernels::conv::{conv2d_backward_via, conv2d_forward_via, ConvDims, ConvPath, ConvScratch, Kernel};
use fovea::rng::Rng;
use fovea::Result;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// What to measure, each as the median of --reps runs: `conv` (the baseline's conv shapes,
    /// forward and both gradients: ms and GFLOP/s), `gemm` (matrix products: GFLOP/s),
    /// `step` (training steps of --model, node by node: ms and images/s), `pool` (max pooling
    /// 2x2 on 64x32x28x28, forward and backward, and ResNet-18's 3x3
    /// stride-2 pool on 8x64x112x112, forward: ms). `train` (epochs of MNIST as the
    /// baseline's `mnist_torch.py`: TRAIN lines with seconds per epoch) and `infer` (batch 256
    /// in evaluation mode: INFER lines with images/s) print in the baseline's format.
    #[arg(default_value = "conv", value_parser = ["conv", "gemm", "step", "pool", "train", "infer"])]
    what: String,
    /// Shapes by letter (a-f, as in the PyTorch baseline; default all six), or `r3`, `r4`:
    /// ResNet-18's 3x3 layers of 256 channels on 14x14 and 512 on 7x7, batch 8; `s9`: the
    /// style network's last layer (32 -> 3, 9x9, batch 4 of 256x256); `l1`, `l2`: LeNet-5's
    /// conv1 and conv2; `x2`: AlexNet's conv2 (64 -> 192, 5x5 on 27x27, batch 8).
    #[arg(long, value_delimiter = ',')]
    shapes: Vec<String>,
    /// Repetitions per measurement, at least (more for fast calls, to fill about 2 s as the
    /// baseline does, at most 100 or this); the median is reported.
    #[arg(long, default_value_t = 20)]
    reps: usize,
    /// Model for `step`, `train` and `infer`.
    #[arg(long, default_value = "mnist-cnn")]
    model: String,
    /// Epochs for `train`.
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// MNIST for `train` (IDX files, as `fovea train --data`) [default: the MNIST bundled in
    /// the binary].
    #[arg(long)]
    data: Option<std::path::PathBuf>,
    /// Batch size for `step`.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Input size CxHxW for `step`, for models that take other sizes (3x32x32: VGG-16 on
    /// CIFAR-10) [default: the model's].
    #[arg(long, value_parser = super::args::parse_input)]
    input: Option<[usize; 3]>,
    /// Convolution kernels for `conv`: `auto` (what training uses), `tiled` (fovea's widest
    /// tile, direct), `tiled-avx512`, `tiled-avx2`, `winograd-avx512`, `winograd-avx2`
    /// (F(2x2, 3x3) or F(2x2, 5x5) on that tile, stride-1 layers of those filters only), `narrow-avx512`, `narrow-avx2` (the forward pass
    /// with output pixels in the tile's lanes, for few output channels), `gemm` (im2col + gemm); several to
    /// compare them side by side. Each line names what ran (a tile the CPU lacks runs as
    /// `gemm`, Winograd where it does not apply as the direct tile).
    #[arg(long, value_delimiter = ',', default_value = "auto", value_parser = ["auto", "tiled", "tiled-avx512", "tiled-avx2", "winograd-avx512", "winograd-avx2", "narrow-avx512", "narrow-avx2", "gemm"])]
    path: Vec<String>,
    /// Operations for `conv` (a profile of one of them, say).
    #[arg(long, value_delimiter = ',', default_value = "fwd,bwd_input,bwd_weight", value_parser = ["fwd", "bwd_input", "bwd_weight"])]
    ops: Vec<String>,
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

/// fovea's own, not in the baseline's list, run when asked by name (`--shapes r3,r4,s9,l1,l2,x2`):
/// ResNet-18's 3x3 layers of its last two stages at batch 8 (large weights, small maps: the
/// weights, not the image, stream through cache), `scripts/bench_torch_convs.py` times them in
/// PyTorch; the style network's last layer at training size (32 -> 3 channels, 9x9, batch 4
/// of 256x256) and LeNet-5's conv1 (6 channels, 5x5 on 28x28, batch 128): few output
/// channels; LeNet-5's conv2 (6 -> 16, 5x5 on 14x14, batch 128): few input channels and
/// small maps; AlexNet's conv2 (64 -> 192, 5x5 on 27x27, batch 8): a 5x5 layer whose
/// transformed weights (1.8 MB) outgrow L2, which Winograd by channels reads a point at a
/// time.
const EXTRA_SHAPES: &[ConvShape] = &[
    ("r3", 8, 256, 14, 14, 256, 3, 1, 1),
    ("r4", 8, 512, 7, 7, 512, 3, 1, 1),
    ("s9", 4, 32, 256, 256, 3, 9, 1, 4),
    ("l1", 128, 1, 28, 28, 6, 5, 1, 2),
    ("l2", 128, 6, 14, 14, 16, 5, 1, 0),
    ("x2", 8, 64, 27, 27, 192, 5, 1, 2),
];

/// Seconds of calls before the process's first measurement (`median_and_min_ms`).
const SETTLE_S: f64 = 0.5;

fn median_ms(reps: usize, f: impl FnMut()) -> f64 {
    median_and_min_ms(reps, f).0
}

/// (median, fastest) of timed calls after two warm-up calls (buffers allocated and touched),
/// counted as the baseline's `bench()` (`../shared/bench/common.py`) counts them: at least
/// `reps`, more for fast calls, to fill about 2 s (at most 100, or `reps`). Twenty calls of a
/// 0.5 ms convolution are 10 ms, over before a waking core has settled: shape a's forward pass
/// at two threads gave medians of 0.52-0.97 ms from run to run, its fastest 0.43-0.48. The
/// fastest is the steadier figure on a shared machine.
///
/// The process's first measurement first runs its call for `SETTLE_S`: a Python baseline has
/// kept the cores busy for a second or two importing its framework before it times anything,
/// where fovea starts cold (shape a's forward pass, the script's first, gave 57 GFLOP/s in
/// that slot against 88-93 when run again).
fn median_and_min_ms(reps: usize, mut f: impl FnMut()) -> (f64, f64, usize) {
    static SETTLED: std::sync::Once = std::sync::Once::new();
    SETTLED.call_once(|| {
        let start = Instant::now();
        while start.elapsed().as_secs_f64() < SETTLE_S {
            f();
        }
    });
    let start = Instant::now();
    f();
    let first = start.elapsed().as_secs_f64();
    f();
    let reps = ((2.0 / first.max(1e-6)) as usize).clamp(reps.max(1), reps.max(100));
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    (times[times.len() / 2], times[0], reps)
}

fn conv_path(name: &str) -> ConvPath {
    match name {
        "tiled" => ConvPath::Tiled,
        "tiled-avx512" => ConvPath::Tile(Kernel::AVX512),
        "tiled-avx2" => ConvPath::Tile(Kernel::AVX2),
        "winograd-avx512" => ConvPath::Winograd(Kernel::AVX512),
        "winograd-avx2" => ConvPath::Winograd(Kernel::AVX2),
        "narrow-avx512" => ConvPath::Narrow(Kernel::AVX512),
        "narrow-avx2" => ConvPath::Narrow(Kernel::AVX2),
        "gemm" => ConvPath::Gemm,
        _ => ConvPath::Auto,
    }
}

pub fn run(a: Args) -> Result<()> {
    if a.what == "gemm" {
        return run_gemm(&a);
    }
    if a.what == "step" {
        return run_step(&a);
    }
    if a.what == "pool" {
        return run_pool(&a);
    }
    if a.what == "train" {
        return run_train(&a);
    }
    if a.what == "infer" {
        return run_infer(&a);
    }
    let threads = rayon::current_num_threads();
    println!("shape\top\tframework\tthreads\treps\tmedian_ms\tGFLOP/s\tmin_ms");
    let mut rng = Rng::new(1);
    for &(letter, n, ci, h, w, co, k, s, p) in SHAPES.iter().chain(EXTRA_SHAPES) {
        let asked = if a.shapes.is_empty() { SHAPES.iter().any(|x| x.0 == letter) } else { a.shapes.iter().any(|x| x == letter) };
        if !asked {
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
        // Named by what they run on this shape: `fovea-tiled-avx512`, `fovea-gemm`, ...
        let paths: Vec<_> = a.path.iter().map(|p| conv_path(p)).map(|p| (p, format!("fovea-{}", p.forward_name(&d)))).collect();
        let report = |op: &str, name: &str, (ms, min, reps): (f64, f64, usize)| {
            println!("{letter}\t{op}\t{name}\t{threads}\t{reps}\t{ms:.3}\t{:.1}\t{min:.3}", gflop / (ms / 1e3));
        };
        // Each operation on every path in turn, so the paths are compared side by side.
        for op in ["fwd", "bwd_input", "bwd_weight"].into_iter().filter(|op| a.ops.iter().any(|o| o == op)) {
            for (path, name) in &paths {
                let path = *path;
                let t = median_and_min_ms(a.reps, || match op {
                    "fwd" => conv2d_forward_via(path, &mut y, &x, &wt, Some(&b), &d, &mut scratch),
                    "bwd_input" => conv2d_backward_via(path, Some(&mut dx), None, None, &dy, &x, &wt, &d, &mut scratch),
                    _ => conv2d_backward_via(path, None, Some(&mut dw), Some(&mut db), &dy, &x, &wt, &d, &mut scratch),
                });
                report(op, name, t);
            }
        }
    }
    Ok(())
}

/// Matrix products `[m, k] @ [k, n]`: square sizes, and the per-sample products of shape b.
fn run_gemm(a: &Args) -> Result<()> {
    use fovea::kernels::matmul::{matmul, Mat, Threads};
    let threads = rayon::current_num_threads();
    println!("m\tn\tk\tthreads\tmedian_ms\tGFLOP/s");
    let mut rng = Rng::new(2);
    for (m, n, k) in [(512, 512, 512), (1024, 1024, 1024), (64, 196, 800), (800, 196, 64), (64, 800, 196), (64, 12544, 800), (128, 1024, 3136), (1024, 3136, 128)] {
        let x = rng.uniform_vec(m * k, -1.0, 1.0);
        let y = rng.uniform_vec(k * n, -1.0, 1.0);
        let mut z = vec![0.0; m * n];
        let ms = median_ms(a.reps, || matmul(&mut z, Mat::n(&x), Mat::n(&y), m, n, k, false, Threads::Pool));
        println!("{m}\t{n}\t{k}\t{threads}\t{ms:.3}\t{:.1}", 2.0 * (m * n * k) as f64 / 1e9 / (ms / 1e3));
    }
    Ok(())
}

/// Training steps (forward, loss, backward, Adam) of a model on random data, with the time of
/// every node.
fn run_step(a: &Args) -> Result<()> {
    use fovea::{loss::softmax_cross_entropy, optim, BackwardCtx, ForwardCtx, Mode, Tensor};
    let mut net = fovea::models::build_for(&a.model, fovea::models::default_classes(&a.model), a.input, 1)?;
    net.fuse_activations(true);
    let mut shape = vec![a.batch_size];
    shape.extend_from_slice(net.input_shape());
    let mut rng = Rng::new(3);
    let x = Tensor::from_vec(&shape, rng.uniform_vec(shape.iter().product(), -1.0, 1.0))?;
    let labels: Vec<usize> = (0..a.batch_size).map(|i| i % 10).collect();
    // Inference alone first: evaluation mode, no backward pass, the lean pass inference runs.
    let infer = median_ms(a.reps, || {
        let _ = net.forward_lean(&x, &ForwardCtx { mode: Mode::Eval, seed: 0, ..Default::default() });
    });
    let mut opt = optim::build("adam", 0.9, false, 0.0)?;
    let out = net.output_name().to_string();
    let back = BackwardCtx { input_grad: false, ..BackwardCtx::default() };
    // Seconds outside the layers: loss, the optimizer, the trainer's scan of the gradients for
    // non-finite values.
    let mut outside = [0.0f64; 3];
    let mut step = |net: &mut fovea::Net, s: u64, outside: &mut [f64; 3]| -> Result<()> {
        let logits = net.forward(&x, &ForwardCtx { mode: Mode::Train, seed: s, backward_from_output_only: true, ..Default::default() })?;
        let t = Instant::now();
        let r = softmax_cross_entropy(logits, &labels)?;
        outside[0] += t.elapsed().as_secs_f64();
        // As the trainer: the parameter gradients start over inside the backward pass (those
        // of layers that cannot write them outright are zeroed there: in `step`, not `layers`).
        net.backward_fresh(&out, &r.d_logits, &back)?;
        let t = Instant::now();
        let finite = net.grads_finite();
        outside[2] += t.elapsed().as_secs_f64();
        if !finite {
            return Err(fovea::Error::Invalid("a gradient is not finite".into()));
        }
        let t = Instant::now();
        opt.step(&mut net.params_mut(), 1e-4);
        outside[1] += t.elapsed().as_secs_f64();
        Ok(())
    };
    step(&mut net, 0, &mut outside)?;
    outside = [0.0; 3];
    net.start_timing();
    let t = Instant::now();
    let mut bar = fovea::progress::Progress::new(a.reps as u64, "training steps");
    for s in 0..a.reps as u64 {
        step(&mut net, s + 1, &mut outside)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let total = t.elapsed().as_secs_f64() / a.reps as f64 * 1e3;
    println!("node\tforward_ms\tbackward_ms");
    let mut layers = 0.0;
    for (name, f, b) in net.timings() {
        println!("{name}\t{:.3}\t{:.3}", f / a.reps as f64 * 1e3, b / a.reps as f64 * 1e3);
        layers += (f + b) / a.reps as f64 * 1e3;
    }
    for (what, secs) in ["loss", "optimizer", "finite_check"].iter().zip(outside) {
        println!("{what}\t{:.3}", secs / a.reps as f64 * 1e3);
    }
    println!("layers\t{layers:.3}\nstep\t{total:.3}\t({:.0} images/s, {} thread(s))", a.batch_size as f64 / total * 1e3, rayon::current_num_threads());
    println!("forward (eval, median)\t{infer:.3}\t({:.0} images/s)", a.batch_size as f64 / infer * 1e3);
    Ok(())
}

/// Max pooling 2x2 stride 2 on (64, 32, 28, 28), as the baseline measures it.
fn run_pool(a: &Args) -> Result<()> {
    use fovea::kernels::pool::{max_pool_backward, max_pool_forward};
    let g = Window2d::square(2, 2, Padding::Valid).resolve(28, 28)?;
    let mut rng = Rng::new(4);
    let x = rng.uniform_vec(64 * 32 * 28 * 28, -1.0, 1.0);
    let (mut y, mut arg) = (vec![0.0; 64 * 32 * 196], vec![0u32; 64 * 32 * 196]);
    let dy = rng.uniform_vec(y.len(), -1.0, 1.0);
    let mut dx = vec![0.0; x.len()];
    let threads = rayon::current_num_threads();
    println!("op\tthreads\tmedian_ms");
    println!("maxpool_fwd\t{threads}\t{:.3}", median_ms(a.reps, || max_pool_forward(&mut y, &mut arg, &x, &g)));
    println!("maxpool_bwd\t{threads}\t{:.3}", median_ms(a.reps, || max_pool_backward(&mut dx, &dy, &arg, 784, 196, fovea::kernels::Store::Add)));
    // ResNet-18's pool at batch 8: 3x3 at stride 2, padding 1, 64 x 112 x 112 -> 56 x 56.
    let g = Window2d::square(3, 2, Padding::uniform(1)).resolve(112, 112)?;
    let x = rng.uniform_vec(8 * 64 * 112 * 112, -1.0, 1.0);
    let (mut y, mut arg) = (vec![0.0; 8 * 64 * 56 * 56], vec![0u32; 8 * 64 * 56 * 56]);
    println!("maxpool3x3s2_fwd\t{threads}\t{:.3}", median_ms(a.reps, || max_pool_forward(&mut y, &mut arg, &x, &g)));
    Ok(())
}

/// Epochs of MNIST as the baseline's `mnist_torch.py` trains them: all 60,000 training
/// images (nothing held out), batch 128, Adam at a constant 1e-3, no shifts; one line per
/// epoch, `TRAIN model threads epoch epoch_seconds train_loss test_accuracy` (seconds of the
/// training steps alone; evaluation and checkpoints are outside).
fn run_train(a: &Args) -> Result<()> {
    use fovea::train::{train, RunOptions, TrainConfig};
    let threads = rayon::current_num_threads();
    let mut cfg = TrainConfig::defaults(&a.model, &super::args::data_or_bundled(&a.data));
    (cfg.epochs, cfg.batch_size, cfg.val_size, cfg.shift) = (a.epochs, 128, 0, 0);
    (cfg.optimizer, cfg.lr, cfg.schedule) = ("adam".into(), 1e-3, "constant".into());
    (cfg.checkpoint_every, cfg.log_every, cfg.threads) = (0, 1_000_000, threads);
    let dir = std::env::temp_dir().join(format!("fovea-bench-train-{}", std::process::id()));
    let outcome = train(&cfg, &dir, false, &RunOptions { progress: true, ..RunOptions::default() });
    let _ = std::fs::remove_dir_all(&dir);
    let outcome = outcome?;
    let test = outcome.test_accuracy.map_or("-".to_string(), |t| format!("{t:.4}"));
    for (epoch, (secs, loss)) in outcome.seconds_per_epoch.iter().zip(&outcome.train_loss_per_epoch).enumerate() {
        // Only the last epoch's test accuracy is kept by the trainer.
        let acc = if epoch + 1 == outcome.seconds_per_epoch.len() { test.clone() } else { "-".into() };
        println!("TRAIN\t{}\t{threads}\t{}\t{secs:.2}\t{loss:.4}\t{acc}", a.model, epoch + 1);
    }
    Ok(())
}

/// Inference at batch 256 in evaluation mode, as the baseline measures it (at least 20
/// repetitions and about 2 s): `INFER model fovea threads reps median_ms N img/s`.
fn run_infer(a: &Args) -> Result<()> {
    use fovea::{ForwardCtx, Mode, Tensor};
    let mut net = fovea::models::build(&a.model, fovea::models::default_classes(&a.model), 1)?;
    net.fuse_activations(true);
    let mut shape = vec![256];
    shape.extend_from_slice(net.input_shape());
    let x = Tensor::from_vec(&shape, Rng::new(5).uniform_vec(shape.iter().product(), -1.0, 1.0))?;
    let ctx = ForwardCtx { mode: Mode::Eval, seed: 0, ..Default::default() };
    // What `fovea predict` and `fovea eval` run: the logits alone, no value kept.
    net.forward_lean(&x, &ctx)?;
    let (mut times, start) = (Vec::new(), Instant::now());
    while times.len() < 20 || start.elapsed().as_secs_f64() < 2.0 {
        let t = Instant::now();
        net.forward_lean(&x, &ctx)?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|x, y| x.total_cmp(y));
    let median = times[times.len() / 2];
    println!("INFER\t{}\tfovea\t{}\t{}\t{:.3}\t{:.0} img/s", a.model, rayon::current_num_threads(), times.len(), median * 1e3, 256.0 / median);
    Ok(())
}
