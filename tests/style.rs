//! Style transfer: seeds at several layers backpropagate as the sum of separate passes, the
//! total's gradient at the image matches finite differences, a run on small images with random
//! VGG-19 weights brings the total down tenfold, and the bad inputs get words.

mod common;

use fovea::layers::{BackwardCtx, ForwardCtx, Mode};
use fovea::rng::Rng;
use fovea::viz::style::{losses_and_gradient, stylize, targets, Init, LossWeights, Optimizer, StyleLayers};
use fovea::{models, ReluRule, Tensor};

fn image(seed: u64, h: usize, w: usize) -> Tensor {
    let mut rng = Rng::new(seed);
    Tensor::from_vec(&[1, 3, h, w], rng.uniform_vec(3 * h * w, -1.5, 1.5)).unwrap()
}

#[test]
fn seeds_at_several_layers_are_the_sum_of_separate_passes() {
    let mut net = models::build("vgg11", 10, 3).unwrap();
    let x = image(1, 40, 40);
    let ctx = BackwardCtx { rule: ReluRule::Plain, param_grads: false, input_grad: true };
    net.forward_to(&x, &ForwardCtx { mode: Mode::Eval, seed: 0, ..Default::default() }, "features.9").unwrap();
    let mut rng = Rng::new(2);
    let mut seed = |layer: &str| {
        let s = net.value(layer).unwrap().shape().to_vec();
        Tensor::from_vec(&s, rng.uniform_vec(s.iter().product(), -1.0, 1.0)).unwrap()
    };
    let (a, b) = (seed("features.1"), seed("features.9"));
    net.backward("features.1", &a, &ctx).unwrap();
    let ga = net.input_grad().clone();
    net.backward("features.9", &b, &ctx).unwrap();
    let gb = net.input_grad().clone();
    net.backward_seeds(&[("features.9", &b), ("features.1", &a)], &ctx).unwrap();
    let both = net.input_grad();
    for ((s, x), y) in both.data().iter().zip(ga.data()).zip(gb.data()) {
        assert!((s - (x + y)).abs() <= 1e-4 * (1.0 + (x + y).abs()), "{s} vs {x} + {y}");
    }
}

#[test]
fn a_style_run_brings_the_total_down_tenfold() {
    let mut net = models::build("vgg19", 10, 5).unwrap();
    let (content, style) = (image(10, 48, 48), image(11, 48, 48));
    let layers = StyleLayers::default();
    let weights = LossWeights { alpha: 1.0, beta: 1e3, gamma: 1e-3 };

    // The gradient of each term at the image against central differences of the term, along
    // the gradient itself (a step that changes the loss far above f32's rounding).
    let x = image(12, 48, 48);
    for w in [LossWeights { alpha: 1.0, beta: 0.0, gamma: 0.0 }, LossWeights { alpha: 0.0, beta: 1e3, gamma: 0.0 }, LossWeights { alpha: 0.0, beta: 0.0, gamma: 1.0 }, weights] {
        let t = targets(&mut net, &content, &style, &layers).unwrap();
        let (l0, g) = losses_and_gradient(&mut net, &x, &t, &layers, &w).unwrap();
        let g2: f64 = g.data().iter().map(|v| (*v as f64).powi(2)).sum();
        let h = (1e-3 * l0.total / g2) as f32;
        let mut along = |h: f32| {
            let moved = Tensor::from_vec(x.shape(), x.data().iter().zip(g.data()).map(|(a, b)| a + h * b).collect()).unwrap();
            losses_and_gradient(&mut net, &moved, &t, &layers, &w).unwrap().0.total
        };
        let numeric = (along(h) - along(-h)) / (2.0 * h as f64);
        assert!((numeric - g2).abs() < 0.02 * g2, "{w:?}: directional derivative {numeric} vs {g2}");
    }

    for optimizer in [Optimizer::Lbfgs { history: 10 }, Optimizer::Adam { lr: 0.05 }] {
        let mut totals = Vec::new();
        let weights = LossWeights { gamma: 0.0, ..weights };
        let out = stylize(&mut net, &content, &style, &layers, &weights, Init::Noise, optimizer, 25, 1, |step, l| {
            assert_eq!(step, totals.len(), "steps are reported in order, from 0");
            assert!((l.total - (l.content + 1e3 * l.style)).abs() <= 1e-6 * l.total.abs().max(1.0));
            totals.push(l.total);
        })
        .unwrap();
        assert_eq!(out.shape(), content.shape());
        let (first, last) = (totals[0], *totals.last().unwrap());
        assert!(last < first / 10.0, "{optimizer:?}: total {first} -> {last}: {totals:?}");
    }
}

#[test]
fn bad_inputs_are_named() {
    let mut net = models::build("vgg19", 10, 5).unwrap();
    let layers = StyleLayers::default();
    // A grey content photo against a colour painting.
    let grey = Tensor::zeros(&[1, 1, 48, 48]);
    let e = targets(&mut net, &grey, &image(1, 48, 48), &layers).err().unwrap().to_string();
    assert!(e.contains("content image has 1 channels, the style image 3"), "{e}");
    // Too small for conv5_1 after four pools.
    let e = targets(&mut net, &image(1, 12, 12), &image(2, 12, 12), &layers).err().unwrap().to_string();
    assert!(e.contains("content image at 12x12 pixels is too small") && e.contains("--size"), "{e}");
    let bad = StyleLayers { style: vec!["features.1".into(), "conv9".into()], content: "features.22".into() };
    let e = targets(&mut net, &image(1, 48, 48), &image(2, 48, 48), &bad).err().unwrap().to_string();
    assert!(e.contains("no node named \"conv9\""), "{e}");
}

#[test]
fn the_command_writes_the_picture_and_one_line_per_step() {
    let dir = std::env::temp_dir().join(format!("fovea-style-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A small net and greyscale images: the command's plumbing, not VGG's pictures.
    let weights = common::save_weights(&dir, "mnist-cnn", "w.safetensors");
    let stripes = dir.join("stripes.png");
    image::GrayImage::from_fn(40, 30, |x, y| image::Luma([if (x + y) % 6 < 3 { 220 } else { 30 }])).save(&stripes).unwrap();
    let camera = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/images/camera.png");
    let chelsea = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/images/chelsea.png");
    let bin = env!("CARGO_BIN_EXE_fovea");
    let run = |style: &str, out: &str, extra: &[&str]| {
        std::process::Command::new(bin)
            .args(["style", "--model", "mnist-cnn", "--weights", &weights, "--content", camera, "--style", style])
            .args(["--style-layers", "relu1,relu2", "--content-layer", "relu2", "--size", "32", "-o"])
            .arg(dir.join(out))
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(stripes.to_str().unwrap(), "out.png", &["--steps", "4", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.iter().map(|l| l["step"].as_u64().unwrap()).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    for l in &lines {
        let (c, s, t) = (l["content"].as_f64().unwrap(), l["style"].as_f64().unwrap(), l["total"].as_f64().unwrap());
        assert!((t - (c + 1e3 * s)).abs() <= 1e-4 * t.max(1.0), "{l}");
    }
    assert_eq!(lines[0]["content"].as_f64(), Some(0.0), "from the content photo, the content loss starts at 0");
    assert!(lines[4]["total"].as_f64() < lines[0]["total"].as_f64());
    let img = image::open(dir.join("out.png")).unwrap();
    assert_eq!((img.width(), img.height()), (32, 32), "camera.png is 512x512: its shorter side scaled to 32");

    // A greyscale photo and a colour painting: refused, nothing written.
    let out = run(chelsea, "x.png", &["--steps", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("greyscale") && err.contains("colour"), "{err}");
    assert!(!dir.join("x.png").exists());
    std::fs::remove_dir_all(&dir).ok();
}
