//! Real-time style transfer (Johnson et al.): the batch's perceptual losses and their gradient
//! at the stylised pictures (finite differences), a training run on small photos with random
//! VGG-19 weights that lowers its loss, a resumed run bit-identical to an uninterrupted one,
//! stylising photos of any size, networks saved by pytorch/examples, and the command.

mod common;

use fovea::rng::Rng;
use fovea::train::RunOptions;
use fovea::viz::style::realtime::{self, johnson_layers, Perceptual, RealtimeConfig};
use fovea::viz::style::LossWeights;
use fovea::{models, Tensor};
use prost::Message;
use std::path::{Path, PathBuf};

/// Smooth random pictures (a few sine waves per channel), 0-255, as PNG files in `dir`.
fn write_photos(dir: &Path, n: usize, w: u32, h: u32) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let mut rng = Rng::new(3);
    for i in 0..n {
        let f: Vec<f32> = rng.uniform_vec(9, 0.02, 0.3);
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            let v = |c: usize| (127.5 + 120.0 * (f[3 * c] * x as f32 + f[3 * c + 1] * y as f32 + f[3 * c + 2] * (x * y) as f32 * 0.01).sin()) as u8;
            image::Rgb([v(0), v(1), v(2)])
        });
        // Half in a subfolder: the folder is read recursively.
        let name = if i % 2 == 0 { format!("p{i}.png") } else { format!("sub/p{i}.png") };
        img.save(dir.join(name)).unwrap();
    }
}

fn stripes(path: &Path) {
    image::RgbImage::from_fn(40, 40, |x, y| if (x + 2 * y) % 8 < 4 { image::Rgb([230, 40, 20]) } else { image::Rgb([20, 40, 200]) }).save(path).unwrap();
}

/// A run of a small network on 6 photos of 40x30, crops of 24, random VGG-19 weights.
fn setup(name: &str) -> (PathBuf, RealtimeConfig) {
    let dir = common::temp_dir(name);
    write_photos(&dir.join("photos"), 6, 40, 30);
    stripes(&dir.join("style.png"));
    let weights = common::save_weights(&dir, "vgg19", "vgg19.safetensors");
    let mut cfg = RealtimeConfig::defaults(&dir.join("style.png"), &dir.join("photos"), "vgg19", Path::new(&weights), &dir.join("painter.safetensors"));
    (cfg.size, cfg.width, cfg.batch_size, cfg.epochs, cfg.lr, cfg.log_every, cfg.checkpoint_every) = (24, 4, 2, 4, 5e-2, 1, 5);
    (dir, cfg)
}

fn vgg19() -> fovea::Net {
    models::build_for("vgg19", 10, None, 1).unwrap()
}

fn pixels(seed: u64, shape: &[usize]) -> Tensor {
    Tensor::from_vec(shape, Rng::new(seed).uniform_vec(shape.iter().product(), 0.0, 255.0)).unwrap()
}

#[test]
fn the_batch_losses_gradient_matches_finite_differences() {
    let mut net = vgg19();
    let norm = models::normalization("vgg19");
    let style = pixels(1, &[1, 3, 24, 24]);
    let (x, y) = (pixels(2, &[2, 3, 24, 24]), pixels(3, &[2, 3, 24, 24]));
    for w in [LossWeights { alpha: 1.0, beta: 0.0, gamma: 0.0 }, LossWeights { alpha: 0.0, beta: 1e8, gamma: 0.0 }, LossWeights { alpha: 0.0, beta: 0.0, gamma: 1.0 }, LossWeights { alpha: 1.0, beta: 1e8, gamma: 1e-2 }] {
        let mut p = Perceptual::new(&mut net, &norm, johnson_layers("vgg19"), w, &style).unwrap();
        let (l0, g) = p.losses_and_gradient(&x, &y).unwrap();
        assert!((l0.total - (w.alpha as f64 * l0.content + w.beta as f64 * l0.style + w.gamma as f64 * l0.tv)).abs() <= 1e-9 * l0.total.abs());
        // Along the gradient itself, a step that changes the loss far above f32's rounding.
        let g2: f64 = g.data().iter().map(|v| (*v as f64).powi(2)).sum();
        let h = (1e-3 * l0.total / g2) as f32;
        let mut along = |h: f32| {
            let moved = Tensor::from_vec(y.shape(), y.data().iter().zip(g.data()).map(|(a, b)| a + h * b).collect()).unwrap();
            p.losses_and_gradient(&x, &moved).unwrap().0.total
        };
        let numeric = (along(h) - along(-h)) / (2.0 * h as f64);
        assert!((numeric - g2).abs() < 0.02 * g2, "{w:?}: directional derivative {numeric} vs {g2}");
    }
    // The mean over the batch: a batch of two photos has the mean of each one's losses alone,
    // and each stylised picture half the gradient it has alone (each photo paired with its own
    // stylisation, not its neighbour's).
    let mut p = Perceptual::new(&mut net, &norm, johnson_layers("vgg19"), LossWeights { alpha: 1.0, beta: 1e8, gamma: 1.0 }, &style).unwrap();
    let image = |t: &Tensor, i: usize| Tensor::from_vec(&[1, 3, 24, 24], t.data()[i * 1728..(i + 1) * 1728].to_vec()).unwrap();
    let (both, g_both) = p.losses_and_gradient(&x, &y).unwrap();
    let mut mean = [0.0f64; 3];
    for i in 0..2 {
        let (alone, g_alone) = p.losses_and_gradient(&image(&x, i), &image(&y, i)).unwrap();
        for (m, v) in mean.iter_mut().zip([alone.content, alone.style, alone.tv]) {
            *m += v / 2.0;
        }
        for (u, v) in g_alone.data().iter().zip(&g_both.data()[i * 1728..(i + 1) * 1728]) {
            assert!((2.0 * v - u).abs() <= 1e-4 * (u.abs() + 1e-3), "image {i}: alone {u}, in the batch of two 2 x {v}");
        }
    }
    for (name, m, v) in [("content", mean[0], both.content), ("style", mean[1], both.style), ("tv", mean[2], both.tv)] {
        assert!((m - v).abs() <= 1e-5 * m.abs(), "{name}: mean of the images alone {m}, batch {v}");
    }
}

#[test]
fn training_lowers_the_loss_and_resumes_bit_for_bit() {
    let (dir, cfg) = setup("realtime-train");
    let norm = models::normalization("vgg19");
    let opts = RunOptions::default();
    // Uninterrupted: 4 epochs of 3 steps.
    let outcome = realtime::train(&cfg, &mut vgg19(), &norm, &dir.join("run-a"), false, &opts).unwrap();
    assert_eq!((outcome.steps, outcome.stopped), (12, false));
    let log: Vec<serde_json::Value> =
        std::fs::read_to_string(dir.join("run-a/metrics.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(log.iter().map(|r| r["step"].as_u64().unwrap()).collect::<Vec<_>>(), (1..=12).collect::<Vec<_>>());
    let totals: Vec<f64> = log.iter().map(|r| r["total"].as_f64().unwrap()).collect();
    let (first, last) = (totals[..3].iter().sum::<f64>(), totals[9..].iter().sum::<f64>());
    assert!(last < first / 5.0, "the mean total of the last epoch is not a fifth of the first's: {totals:?}");
    for f in ["config.json", "last.safetensors", "preview.png"] {
        assert!(dir.join("run-a").join(f).is_file(), "{f}");
    }
    let preview = image::open(dir.join("run-a/preview.png")).unwrap();
    assert_eq!((preview.width(), preview.height()), (48, 24), "the first photo's crop and its stylisation side by side");
    let a = fovea::train::checkpoint::load(&cfg.out).unwrap();
    assert!(a.optimizer.is_empty() && a.progress.is_none(), "the network alone, no optimizer state");
    assert_eq!(a.model["conv1.conv2d.weight"].shape(), &[4, 3, 9, 9]);

    // Stopped after 2 epochs (a shorter run), then resumed to 4.
    let short = RealtimeConfig { epochs: 2, out: dir.join("b.safetensors"), ..cfg.clone() };
    realtime::train(&short, &mut vgg19(), &norm, &dir.join("run-b"), false, &opts).unwrap();
    let resumed = RealtimeConfig { epochs: 4, ..short };
    let o = realtime::train(&resumed, &mut vgg19(), &norm, &dir.join("run-b"), true, &opts).unwrap();
    assert_eq!(o.steps, 12);
    let b = fovea::train::checkpoint::load(&dir.join("b.safetensors")).unwrap();
    assert_eq!(a.model.keys().collect::<Vec<_>>(), b.model.keys().collect::<Vec<_>>());
    for (k, t) in &a.model {
        assert_eq!(t.data(), b.model[k].data(), "{k}: the resumed run differs from the uninterrupted one");
    }
    let log_b = std::fs::read_to_string(dir.join("run-b/metrics.jsonl")).unwrap();
    assert_eq!(log_b.lines().count(), 12, "the resumed log reads as one run");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_settings_and_data_are_named() {
    let (dir, cfg) = setup("realtime-bad");
    let norm = models::normalization("vgg19");
    let opts = RunOptions::default();
    let err = |c: &RealtimeConfig| realtime::train(c, &mut vgg19(), &norm, &dir.join("run"), false, &opts).expect_err("an error").to_string();
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = err(&RealtimeConfig { data: empty.clone(), ..cfg.clone() });
    assert!(e.contains("empty") && e.contains("no PNG or JPEG"), "{e}");
    let e = err(&RealtimeConfig { batch_size: 7, ..cfg.clone() });
    assert!(e.contains("6 photo(s), fewer than a batch of 7"), "{e}");
    let e = err(&RealtimeConfig { size: 4, ..cfg.clone() });
    assert!(e.contains("--size 4"), "{e}");
    let e = err(&RealtimeConfig { style_layers: vec!["features.3".into(), "conv9".into()], ..cfg.clone() });
    assert!(e.contains("no node named \"conv9\""), "{e}");
    // Crops too small for four poolings before relu4_3... VGG's features.24 is after 3 pools:
    // 8 pixels give 1x1 maps there, which still compute; 5 pixels cannot pool three times.
    let e = err(&RealtimeConfig { size: 5, ..cfg.clone() });
    assert!(e.contains("too small") && e.contains("--size"), "{e}");
    // A photo that is not an image: its name in the error, no network written.
    std::fs::write(dir.join("photos/broken.png"), b"not a png").unwrap();
    let e = err(&RealtimeConfig { out: dir.join("never.safetensors"), ..cfg.clone() });
    assert!(e.contains("broken.png"), "{e}");
    assert!(!dir.join("never.safetensors").exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn any_photo_size_is_stylised_whole() {
    let mut net = models::transformer_net(4, [3, 32, 32]).unwrap();
    net.init(2);
    for (h, w) in [(32, 32), (37, 23), (5, 9), (30, 41)] {
        let x = pixels(h as u64, &[1, 3, h, w]);
        let y = realtime::apply(&mut net, &x).unwrap();
        assert_eq!(y.shape(), &[1, 3, h, w]);
        assert!(y.data().iter().all(|v| v.is_finite()));
    }
    // A multiple of 4 runs as it is: the same as the network's own forward pass.
    let x = pixels(9, &[1, 3, 16, 20]);
    let direct = net.forward(&x, &fovea::ForwardCtx::default()).unwrap().clone();
    assert_eq!(realtime::apply(&mut net, &x).unwrap().data(), direct.data());
    let e = realtime::apply(&mut net, &pixels(1, &[1, 3, 4, 30])).err().unwrap().to_string();
    assert!(e.contains("too small") && e.contains("at least 5"), "{e}");
}

/// pytorch/examples' networks saved with safetensors load as they are, width read from the
/// file, the stale instance-norm statistics of old PyTorch ignored; the golden case's network
/// (width 4) gives PyTorch's output.
#[test]
fn a_pytorch_examples_network_loads_as_it_is() {
    let golden = fovea::io::safetensors::read(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/golden/transformer_net.safetensors"))).unwrap();
    let mut tensors: Vec<(String, Tensor)> =
        golden.floats.iter().filter(|(k, _)| !k.starts_with("grad") && !["input", "output"].contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
    tensors.push(("in1.running_mean".into(), Tensor::zeros(&[4])));
    tensors.push(("in1.running_var".into(), Tensor::full(&[4], 1.0)));
    let dir = common::temp_dir("realtime-load");
    let path = dir.join("candy.safetensors");
    let refs: Vec<(String, &Tensor)> = tensors.iter().map(|(k, v)| (k.clone(), v)).collect();
    fovea::io::safetensors::write(&path, &refs, None).unwrap();
    let mut net = realtime::load(&path).unwrap();
    let x = &golden.floats["input"];
    let y = realtime::apply(&mut net, x).unwrap();
    let want = &golden.floats["output"];
    let worst = y.data().iter().zip(want.data()).map(|(a, b)| (a - b).abs() / (1.0 + b.abs())).fold(0.0f32, f32::max);
    assert!(worst < 1e-3, "worst relative difference {worst}");
    // A classifier's weights are not a style network.
    let w = common::save_weights(&dir, "lenet5", "lenet.safetensors");
    let e = realtime::load(Path::new(&w)).err().unwrap().to_string();
    assert!(e.contains("lenet.safetensors") && e.contains("not a style network"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_commands_train_resume_and_apply() {
    let (dir, cfg) = setup("realtime-cli");
    let bin = env!("CARGO_BIN_EXE_fovea");
    let run = |args: &[&str]| std::process::Command::new(bin).args(args).current_dir(&dir).env("FOVEA_PROGRESS_SECS", "0").output().unwrap();
    let text = |o: &std::process::Output| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let weights = cfg.weights.to_str().unwrap();
    let train = ["style", "--train", "--style", "style.png", "--data", "photos", "--weights", weights, "--size", "24", "--width", "4", "--batch-size", "2", "--lr", "0.01"];
    let o = run(&[&train[..], &["--epochs", "1", "--run", "run", "-o", "painter.safetensors"]].concat());
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("wrote painter.safetensors (3 steps"), "{}", text(&o));
    // The same run directory again: refused, the way on named.
    let o = run(&[&train[..], &["--epochs", "1", "--run", "run", "-o", "painter.safetensors"]].concat());
    assert!(!o.status.success() && text(&o).contains("fovea style --train --resume run"), "{}", text(&o));
    // Resumed with other settings: refused; with more epochs: continues.
    let o = run(&["style", "--train", "--resume", "run", "--lr", "0.1"]);
    assert!(!o.status.success() && text(&o).contains("only --epochs may change, not --lr"), "{}", text(&o));
    let o = run(&["style", "--train", "--resume", "run", "--epochs", "2"]);
    assert!(o.status.success() && text(&o).contains("resuming from step 3") && text(&o).contains("(6 steps"), "{}", text(&o));
    // The network in one forward pass, on a photo of another size.
    let o = run(&["style", "--apply", "painter.safetensors", "photos/p0.png", "-o", "out.png"]);
    assert!(o.status.success() && text(&o).contains("per megapixel"), "{}", text(&o));
    let img = image::open(dir.join("out.png")).unwrap();
    assert_eq!((img.width(), img.height()), (40, 30));
    let o = run(&["style", "--apply", "painter.safetensors", "photos/p0.png", "--size", "12"]);
    assert!(o.status.success(), "{}", text(&o));
    let img = image::open(dir.join("photos/p0-styled.png")).unwrap();
    assert_eq!((img.width(), img.height()), (16, 12), "the shorter side scaled to --size");
    // The network as ONNX, for other runtimes: pictures in, pictures out, as fovea paints them
    // (tract runs the file on fovea's own test data).
    std::fs::create_dir_all(dir.join("td")).unwrap();
    let o = run(&["export", "--model", "transformer-net", "--weights", "painter.safetensors", "--input", "3x24x32", "-o", "painter.onnx", "--test-data", "td"]);
    assert!(o.status.success() && text(&o).contains("output `image` [N, 3, 24, 32]"), "{}", text(&o));
    let pb = |f: &str| fovea::export::proto::TensorProto::decode(&std::fs::read(dir.join("td/test_data_set_0").join(f)).unwrap()[..]).unwrap();
    let floats = |t: &fovea::export::proto::TensorProto| t.raw_data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect::<Vec<f32>>();
    let (x, want) = (pb("input_0.pb"), pb("output_0.pb"));
    let shape: Vec<usize> = x.dims.iter().map(|&d| d as usize).collect();
    let got = common::run_tract(&std::fs::read(dir.join("painter.onnx")).unwrap(), &Tensor::from_vec(&shape, floats(&x)).unwrap());
    let want = floats(&want);
    let top = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-4 * top, "tract {g} against fovea {w}");
    }
    let o = run(&["export", "--model", "transformer-net", "--weights", "painter.safetensors", "--input", "3x25x32", "-o", "odd.onnx"]);
    assert!(!o.status.success() && text(&o).contains("multiples of 4") && !dir.join("odd.onnx").exists(), "{}", text(&o));
    // Bad input: a picture name for the network, a classifier as the network, a tiny photo.
    let o = run(&[&train[..], &["--epochs", "1", "--run", "run2", "-o", "painter.png"]].concat());
    assert!(!o.status.success() && text(&o).contains("ending in .safetensors"), "{}", text(&o));
    let o = run(&["style", "--apply", weights, "photos/p0.png", "-o", "x.png"]);
    assert!(!o.status.success() && text(&o).contains("not a style network"), "{}", text(&o));
    image::RgbImage::new(4, 4).save(dir.join("tiny.png")).unwrap();
    let o = run(&["style", "--apply", "painter.safetensors", "tiny.png", "-o", "x.png"]);
    assert!(!o.status.success() && text(&o).contains("tiny.png") && text(&o).contains("too small"), "{}", text(&o));
    assert!(!dir.join("x.png").exists());
    std::fs::remove_dir_all(&dir).ok();
}
