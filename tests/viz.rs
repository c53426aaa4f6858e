//! Visualizations: properties of the gradients and of gradient ascent, the regularisers, and
//! the `viz` and `report` commands on bundled data and photos.

use fovea::rng::Rng;
use fovea::viz::ascent::{ascend, clip_pixels, gaussian_blur, AscentConfig, LrPolicy};
use fovea::viz::target::{input_gradient, saliency, Target};
use fovea::{models, ReluRule, Tensor};

fn digit_like(seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    let v: Vec<f32> = (0..784)
        .map(|i| {
            let (y, x) = (i / 28, i % 28);
            let stroke = (8..20).contains(&y) && (11..16).contains(&x);
            if stroke { 2.5 } else { -0.42 + 0.05 * rng.normal() }
        })
        .collect();
    Tensor::from_vec(&[1, 1, 28, 28], v).unwrap()
}

#[test]
fn a_neuron_that_is_off_has_no_plain_or_guided_gradient() {
    let mut net = models::build("mnist-cnn", 10, 5).unwrap();
    let x = digit_like(1);
    net.forward(&x, &fovea::ForwardCtx::default()).unwrap();
    let pre = net.value("conv2").unwrap().clone();
    let (c, h, w) = (64, 14, 14);
    // One neuron whose pre-activation is negative and one positive, seen after the ReLU.
    let find = |positive: bool| (0..c * h * w).find(|&i| (pre.data()[i] > 0.0) == positive).unwrap();
    for (idx, on) in [(find(false), false), (find(true), true)] {
        let t = Target::Neuron { node: "relu2".into(), channel: idx / (h * w), at: Some(((idx / w) % h, idx % w)) };
        let (plain, _) = input_gradient(&mut net, &x, &t, ReluRule::Plain).unwrap();
        let (guided, _) = input_gradient(&mut net, &x, &t, ReluRule::Guided).unwrap();
        let (deconv, _) = input_gradient(&mut net, &x, &t, ReluRule::Deconvnet).unwrap();
        let any = |g: &Tensor| g.data().iter().any(|&v| v != 0.0);
        assert_eq!(any(&plain), on, "plain, neuron on = {on}");
        assert_eq!(any(&guided), on, "guided, neuron on = {on}");
        assert!(any(&deconv), "deconvnet ignores the forward pass's sign");
    }
}

#[test]
fn a_batch_gives_the_same_maps_as_its_images_one_by_one() {
    let mut net = models::build("lenet5", 10, 8).unwrap();
    let images: Vec<Tensor> = (0..3).map(digit_like).collect();
    let mut batch = Vec::new();
    for im in &images {
        batch.extend_from_slice(im.data());
    }
    let batch = Tensor::from_vec(&[3, 1, 28, 28], batch).unwrap();
    for target in [Target::Class(6), Target::Neuron { node: "conv2".into(), channel: 9, at: Some((3, 4)) }] {
        for rule in [ReluRule::Plain, ReluRule::Guided, ReluRule::Deconvnet] {
            let (together, _) = input_gradient(&mut net, &batch, &target, rule).unwrap();
            for (i, im) in images.iter().enumerate() {
                let (alone, _) = input_gradient(&mut net, im, &target, rule).unwrap();
                let part = &together.data()[i * 784..(i + 1) * 784];
                let scale = alone.data().iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
                assert!(part.iter().zip(alone.data()).all(|(a, b)| (a - b).abs() <= 1e-5 * scale), "{target:?} {rule:?} image {i}");
            }
        }
    }
}

#[test]
fn saliency_is_the_largest_absolute_gradient_over_channels() {
    let g = Tensor::from_vec(&[1, 3, 1, 2], vec![0.5, -2.0, -1.0, 0.25, 0.1, 1.5]).unwrap();
    assert_eq!(saliency(&g), vec![1.0, 2.0]);
}

#[test]
fn gradient_ascent_with_a_small_step_raises_the_objective() {
    let mut net = models::build("lenet5", 10, 2).unwrap();
    for target in [Target::Class(3), Target::Neuron { node: "conv2".into(), channel: 4, at: None }] {
        let cfg = AscentConfig { steps: 30, step_size: 0.05, l2: 0.0, ..AscentConfig::default() };
        let (img, values) = ascend(&mut net, &target, &cfg, None, |_, _, _| {}).unwrap();
        assert!(values.last().unwrap() > values.first().unwrap(), "{target:?}: {values:?}");
        assert!(values.windows(2).filter(|w| w[1] < w[0]).count() <= 3, "{target:?}: {values:?}");
        assert_eq!(img.shape(), &[1, 1, 28, 28]);
    }
}

#[test]
fn yosinskis_four_presets() {
    let rows: Vec<(f32, f32, usize, f32, f32)> = (1..=4)
        .map(|r| {
            let c = AscentConfig::yosinski(r).unwrap();
            (c.decay, c.blur_sigma, c.blur_every, c.clip_norm_pct, c.clip_contrib_pct)
        })
        .collect();
    assert_eq!(rows, vec![(0.0, 0.5, 4, 50.0, 0.0), (0.3, 0.0, 0, 20.0, 0.0), (0.0001, 1.0, 4, 0.0, 0.0), (0.0, 0.5, 4, 0.0, 90.0)]);
    assert!(AscentConfig::yosinski(0).is_none() && AscentConfig::yosinski(5).is_none());
    // Each preset still raises a class score from a zero start.
    let mut net = models::build("lenet5", 10, 2).unwrap();
    for r in 1..=4 {
        let cfg = AscentConfig { steps: 15, step_size: 0.05, ..AscentConfig::yosinski(r).unwrap() };
        let (_, v) = ascend(&mut net, &Target::Class(1), &cfg, None, |_, _, _| {}).unwrap();
        assert!(v.last().unwrap() > v.first().unwrap(), "preset {r}: {v:?}");
    }
    // The toolbox's iterations and learning rates, converted from Caffe's 0-255 pixels to an
    // image normalised by MNIST's std.
    let to_norm = 1.0 / (255.0f32 * 0.3081).powi(2);
    let s: Vec<(usize, LrPolicy, f32)> = (1..=4)
        .map(|r| {
            let c = AscentConfig::yosinski_schedule(r, 0.3081).unwrap();
            (c.steps, c.lr_policy, c.step_size)
        })
        .collect();
    assert_eq!(s[0], (500, LrPolicy::Progress { desired: 2.0, max: 100.0 * to_norm }, 0.0));
    assert_eq!(s[1], (750, LrPolicy::Constant, 100.0 * to_norm));
    assert_eq!(s[2], (1000, LrPolicy::Constant, 100.0 * to_norm));
    assert_eq!(s[3], (1000, LrPolicy::Progress { desired: 2.0, max: 1e8 * to_norm }, 0.0));
}

/// The "progress" policy picks the rate that raises the objective by the desired amount to
/// first order: on a ReLU net, with a step too small to change which units are on, exactly.
#[test]
fn the_progress_policy_makes_the_progress_it_asks_for() {
    let mut net = models::build("lenet5", 10, 4).unwrap();
    let start = digit_like(3);
    for desired in [1e-4f32, 1e-3] {
        let cfg = AscentConfig { steps: 2, l2: 0.0, lr_policy: LrPolicy::Progress { desired, max: 1e9 }, ..AscentConfig::default() };
        let (_, v) = ascend(&mut net, &Target::Class(2), &cfg, Some(&start), |_, _, _| {}).unwrap();
        let made = v[1] - v[0];
        assert!((made - desired).abs() < 0.05 * desired, "asked {desired}, made {made}");
    }
    // Capped: a maximum rate of 0 makes no progress.
    let cfg = AscentConfig { steps: 2, l2: 0.0, lr_policy: LrPolicy::Progress { desired: 1.0, max: 0.0 }, ..AscentConfig::default() };
    let (_, v) = ascend(&mut net, &Target::Class(2), &cfg, Some(&start), |_, _, _| {}).unwrap();
    assert_eq!(v[0], v[1]);
}

#[test]
fn a_normalised_blur_keeps_each_channels_sum() {
    // Content away from the borders: nothing is lost at the edges.
    let (h, w) = (20, 24);
    let mut rng = Rng::new(4);
    let mut x = vec![0.0f32; 2 * h * w];
    for c in 0..2 {
        for y in 6..14 {
            for xx in 7..17 {
                x[c * h * w + y * w + xx] = rng.uniform(-1.0, 2.0);
            }
        }
    }
    let sums: Vec<f32> = x.chunks(h * w).map(|p| p.iter().sum()).collect();
    let before = x.clone();
    gaussian_blur(&mut x, h, w, 1.0);
    for (c, p) in x.chunks(h * w).enumerate() {
        assert!((p.iter().sum::<f32>() - sums[c]).abs() < 1e-3, "channel {c}");
    }
    assert_ne!(x, before);
}

#[test]
fn percentile_clipping_zeroes_the_stated_share() {
    let mut x = Tensor::from_vec(&[1, 2, 10, 10], (0..200).map(|v| 1.0 + v as f32).collect()).unwrap();
    let score: Vec<f32> = (0..100).map(|v| v as f32).collect();
    clip_pixels(&mut x, &score, 30.0);
    let zero = (0..100).filter(|&i| x.data()[i] == 0.0 && x.data()[100 + i] == 0.0).count();
    assert!((29..=31).contains(&zero), "{zero} of 100 pixels zeroed at the 30th percentile");
}

#[test]
fn grad_cam_and_occlusion() {
    let mut net = models::build("mnist-cnn", 10, 5).unwrap();
    let x = digit_like(2);
    let cam = fovea::viz::cam::grad_cam(&mut net, &x, 4, "conv2").unwrap();
    assert_eq!(cam.len(), 784);
    assert!(cam.iter().all(|v| *v >= 0.0 && v.is_finite()));
    assert!(fovea::viz::cam::grad_cam(&mut net, &x, 4, "fc1").is_err());
    let ggc = fovea::viz::cam::guided_grad_cam(&mut net, &x, 4, "conv2").unwrap();
    assert_eq!(ggc.shape(), &[1, 1, 28, 28]);
    // Where Grad-CAM is zero, guided Grad-CAM is zero too.
    assert!(cam.iter().zip(ggc.data()).all(|(c, g)| *c > 0.0 || *g == 0.0));

    // An image that is grey everywhere: covering any part with grey changes nothing.
    let norm = fovea::data::Normalize::mnist();
    let grey = Tensor::full(&[1, 1, 28, 28], (0.5 - 0.1307) / 0.3081);
    let map = fovea::viz::cam::occlusion(&mut net, &grey, 2, 7, 7, &norm).unwrap();
    assert!(map.iter().all(|v| v.abs() < 1e-5), "{:?}", &map[..10]);
    // On a digit, covering its stroke changes the score somewhere.
    let map = fovea::viz::cam::occlusion(&mut net, &x, 2, 6, 3, &norm).unwrap();
    assert!(map.iter().any(|v| v.abs() > 1e-4));
    assert!(fovea::viz::cam::occlusion(&mut net, &x, 2, 40, 3, &norm).is_err());
}

#[test]
fn top_patches_are_the_strongest_responses_with_their_receptive_fields() {
    let mut net = models::build("mnist-cnn", 10, 5).unwrap();
    let ds = fovea::data::Dataset {
        shape: [1, 28, 28],
        pixels: (0..20 * 784).map(|i| ((i * 7919) % 251) as u8).collect(),
        labels: vec![0; 20],
        classes: (0..10).map(|c| c.to_string()).collect(),
    };
    let norm = fovea::data::Normalize::mnist();
    let found = fovea::viz::patches::top_patches(&mut net, &ds, &norm, "conv2", &[3, 7], 5, 20).unwrap();
    for (k, ch) in [3usize, 7].iter().enumerate() {
        let list = &found[k];
        assert_eq!(list.len(), 5);
        assert!(list.windows(2).all(|w| w[0].value >= w[1].value));
        for p in list {
            // The value is the channel's maximum over that image's map.
            let (mut x, mut l) = (Tensor::default(), Vec::new());
            fovea::data::fill_batch(&ds, &[p.image], &norm, None, &mut x, &mut l);
            net.forward(&x, &fovea::ForwardCtx::default()).unwrap();
            let map = &net.value("conv2").unwrap().data()[ch * 196..(ch + 1) * 196];
            assert_eq!(map.iter().cloned().fold(f32::MIN, f32::max), p.value);
            assert_eq!(map[p.y * 14 + p.x], p.value);
            assert_eq!(p.region, net.receptive_field("conv2", p.y, p.x).unwrap());
        }
    }
    assert!(fovea::viz::patches::top_patches(&mut net, &ds, &norm, "conv2", &[64], 5, 20).is_err());
}

#[test]
fn the_commands_run_on_real_images() {
    let bin = env!("CARGO_BIN_EXE_fovea");
    let dir = std::env::temp_dir().join(format!("fovea-viz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Weights for a colour model and for the MNIST net, as training would save them.
    let save = |model: &str, classes: usize, input: Option<[usize; 3]>, name: &str| {
        let net = models::build_for(model, classes, input, 1).unwrap();
        let info = fovea::train::checkpoint::WeightsInfo {
            model: model.into(),
            classes: (0..classes).map(|c| format!("class{c}")).collect(),
            input: net.input_shape().to_vec(),
        };
        let p = dir.join(name);
        fovea::train::checkpoint::save(&p, &net, None, &info, None).unwrap();
        p
    };
    let rgb = save("resnet18", 4, Some([3, 64, 64]), "resnet.safetensors");
    let mnist = save("mnist-cnn", 10, None, "cnn.safetensors");
    let photo = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/images/chelsea.png");
    let grey = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/images/camera.png");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let png = |n: &str| dir.join(n).to_string_lossy().to_string();
    let (r, m) = (rgb.to_string_lossy().to_string(), mnist.to_string_lossy().to_string());
    run(&["viz", "filters", "--model", "resnet18", "--weights", &r, "-o", &png("f.png")]);
    run(&["viz", "filters", "--model", "mnist-cnn", "--weights", &m, "--layer", "conv2", "-o", &png("f2.png")]);
    run(&["viz", "activations", "--model", "resnet18", "--weights", &r, "--layer", "layer1.0.conv1", photo, "-o", &png("a.png")]);
    run(&["viz", "saliency", "--model", "resnet18", "--weights", &r, photo, "--overlay", "-o", &png("s.png"), "--raw", &png("s.safetensors")]);
    run(&["viz", "guided", "--model", "mnist-cnn", "--weights", &m, grey, "--class", "7", "-o", &png("g.png")]);
    run(&["viz", "deconvnet", "--model", "mnist-cnn", "--weights", &m, grey, "--neuron", "conv2:5:4:6", "-o", &png("d.png")]);
    let out = run(&["viz", "class", "--model", "mnist-cnn", "--weights", &m, "--class", "3", "--steps", "20", "-o", &png("c.png")]);
    assert!(out.contains("objective"), "{out}");
    run(&["viz", "gradcam", "--model", "resnet18", "--weights", &r, photo, "--layer", "layer4.1.conv2", "-o", &png("cam.png")]);
    run(&["viz", "gradcam", "--model", "mnist-cnn", "--weights", &m, grey, "--layer", "conv2", "--guided", "-o", &png("gcam.png")]);
    run(&["viz", "occlusion", "--model", "mnist-cnn", "--weights", &m, grey, "--class", "class1", "-o", &png("occ.png")]);
    run(&["filter", "--kernel", "gaussian:1.5", photo, "-o", &png("blur.png")]);
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist");
    run(&["viz", "patches", "--model", "mnist-cnn", "--weights", &m, "--neuron", "conv1:3", "--data", data, "--limit", "300", "-o", &png("p.png")]);
    run(&["viz", "class", "--model", "mnist-cnn", "--weights", &m, "--class", "1", "--steps", "5", "--preset", "4", "--start", grey, "-o", &png("p4.png")]);
    let out = run(&["viz", "class", "--model", "mnist-cnn", "--weights", &m, "--class", "2", "--steps", "5", "--facets", "2", "--data", data, "-o", &png("facet.png")]);
    assert!(out.contains("facet0.png") && out.contains("facet1.png"), "{out}");
    let out = run(&["viz", "neuron", "--model", "mnist-cnn", "--weights", &m, "--neuron", "conv1:2", "--steps", "10", "--jitter", "1", "-o", &png("n.png")]);
    // Said as a user writes it, no Rust debug text (`Neuron { node: .. }`).
    assert!(out.contains("neuron conv1:2") && !out.contains("Neuron {") && !out.contains("Class("), "{out}");
    for f in ["f.png", "f2.png", "a.png", "s.png", "g.png", "d.png", "c.png", "n.png", "cam.png", "gcam.png", "occ.png", "blur.png", "p.png", "p4.png", "facet-facet0.png"] {
        let img = image::open(dir.join(f)).unwrap();
        assert!(img.width() >= 28 && img.height() >= 28, "{f}");
    }
    // f2: conv2's 64 filters x 32 input channels as tiles.
    assert!(image::open(dir.join("f2.png")).unwrap().width() > 32 * 5);
    let raw = fovea::io::safetensors::read(&dir.join("s.safetensors")).unwrap();
    assert_eq!(raw.floats["gradient"].shape(), &[1, 3, 64, 64]);

    // The report on the bundled MNIST: one HTML file with inlined images, no links out.
    run(&["report", "--model", "mnist-cnn", "--weights", &m, "--data", data, "--ascent-steps", "5", "-o", &png("r.html")]);
    let html = std::fs::read_to_string(dir.join("r.html")).unwrap();
    assert!(html.contains("<table>") && html.matches("data:image/png;base64,").count() >= 10);
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("src=\"/"));

    // Bad input: a neuron outside the layer, a layer that is not a conv.
    let out = std::process::Command::new(bin)
        .args(["viz", "guided", "--model", "mnist-cnn", "--weights", &m, grey, "--neuron", "conv2:99", "-o", &png("x.png")])
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("conv2:99"));
    let out = std::process::Command::new(bin)
        .args(["viz", "filters", "--model", "mnist-cnn", "--weights", &m, "--layer", "fc1", "-o", &png("x.png")])
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not a convolution"));

    // The format follows the extension: `.jpg` writes JPEG bytes; an unknown extension is
    // refused before any work, and nothing is written.
    run(&["filter", "--kernel", "sobel", photo, "-o", &png("edges.jpg")]);
    let bytes = std::fs::read(dir.join("edges.jpg")).unwrap();
    assert_eq!(&bytes[..3], &[0xFF, 0xD8, 0xFF], "not JPEG bytes");
    assert_eq!(image::guess_format(&std::fs::read(dir.join("blur.png")).unwrap()).unwrap(), image::ImageFormat::Png);
    for args in [vec!["filter", "--kernel", "sobel", photo, "-o", &png("edges.gif")] as Vec<&str>, vec!["viz", "filters", "--model", "mnist-cnn", "--weights", &m, "-o", &png("f.bmp")]] {
        let out = std::process::Command::new(bin).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(".png, .jpg or .jpeg"), "{args:?}: {err}");
    }
    assert!(!dir.join("edges.gif").exists() && !dir.join("f.bmp").exists());

    // Words for the natural mistakes: each names what is wrong and what is accepted.
    let images_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/images");
    for (args, want) in [
        (vec!["viz", "activations", "--model", "mnist-cnn", "--weights", &m, "--layer", "nope", grey, "-o", &png("x.png")], "the nodes are conv1, relu1"),
        (vec!["filter", "--kernel", "gaussian:-1", photo, "-o", &png("x.png")], "sigma must be a number above 0"),
        (vec!["viz", "class", "--model", "mnist-cnn", "--weights", &m, "--class", "99", "-o", &png("x.png")], "classes 0-9"),
        (vec!["viz", "class", "--model", "mnist-cnn", "--weights", &m, "--class", "3", "--preset", "foo", "-o", &png("x.png")], "possible values: 1, 2, 3, 4"),
        (vec!["predict", "--model", "mnist-cnn", "--weights", &m, images_dir], "is a directory, not an image"),
        // Each ascent takes its own target: a class option on `viz neuron` is refused, not obeyed.
        (vec!["viz", "neuron", "--model", "mnist-cnn", "--weights", &m, "--class", "3", "-o", &png("x.png")], "unexpected argument '--class'"),
        (vec!["viz", "class", "--model", "mnist-cnn", "--weights", &m, "--neuron", "conv1:0", "-o", &png("x.png")], "unexpected argument '--neuron'"),
        (vec!["viz", "class", "--model", "mnist-cnn", "--weights", &m, "--class", "3", "--codes", "fc1", "-o", &png("x.png")], "--facets"),
    ] {
        let out = std::process::Command::new(bin).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{args:?}: {err}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Grad-CAM's default node is the last convolutional block's rectified output in every family.
#[test]
fn grad_cam_defaults_to_the_last_rectified_maps() {
    for (model, want) in [("mnist-cnn", "relu2"), ("lenet5", "relu2"), ("resnet18", "layer4.1.relu"), ("googlenet", "inception5b"), ("alexnet", "features.11"), ("vgg16", "features.29")] {
        let (net, _) = fovea::models::architecture(model, 10, None).unwrap();
        assert_eq!(fovea::viz::cam::default_layer(&net).unwrap(), want, "{model}");
    }
}

/// Lucid's rendering (Fourier basis, decorrelated colours, Adam, rolls) raises a neuron of a
/// colour model and a class of a grey one, every pixel a valid colour.
#[test]
fn the_fourier_rendering_raises_its_objective() {
    use fovea::viz::lucid::{render_fourier, LucidConfig};
    for (model, input, target, decorrelate) in [
        ("resnet18", Some([3, 48, 48]), Target::Neuron { node: "layer2.0.conv1".into(), channel: 3, at: None }, true),
        ("lenet5", None, Target::Class(4), false),
    ] {
        let mut net = models::build_for(model, 10, input, 3).unwrap();
        let cfg = LucidConfig { steps: 40, decorrelate, transforms: decorrelate, ..LucidConfig::default() };
        let (px, values) = render_fourier(&mut net, &target, &cfg, &models::normalization(model), |_, _| {}).unwrap();
        assert_eq!(&px.shape()[1..], net.input_shape());
        assert!(px.data().iter().all(|&p| p > 0.0 && p < 1.0));
        let (first, last) = (values[..5].iter().sum::<f32>() / 5.0, values[35..].iter().sum::<f32>() / 5.0);
        assert!(last > first, "{model}: {values:?}");
    }
}

/// A channel is the mean of its map; a one-hot direction is that channel; a sum's gradient is
/// the sum of its parts' gradients (their seeds go down in one pass).
#[test]
fn channel_direction_and_sum_objectives() {
    let mut net = models::build("lenet5", 10, 5).unwrap();
    let x = digit_like(7);
    let channel = Target::Channel { node: "conv2".into(), channel: 3 };
    let (g_channel, v_channel) = input_gradient(&mut net, &x, &channel, ReluRule::Plain).unwrap();
    let map = net.value("conv2").unwrap();
    let plane = map.shape()[2] * map.shape()[3];
    let mean = map.data()[3 * plane..4 * plane].iter().sum::<f32>() / plane as f32;
    assert!((v_channel - mean).abs() < 1e-5, "{v_channel} vs {mean}");
    let mut onehot = vec![0.0; 16];
    onehot[3] = 1.0;
    let (g_dir, v_dir) = input_gradient(&mut net, &x, &Target::Direction { node: "conv2".into(), vector: onehot }, ReluRule::Plain).unwrap();
    assert!((v_dir - v_channel).abs() < 1e-6 && g_dir.data() == g_channel.data());
    let unit = Target::Neuron { node: "fc1".into(), channel: 7, at: None };
    let (g_unit, v_unit) = input_gradient(&mut net, &x, &unit, ReluRule::Plain).unwrap();
    let (g_sum, v_sum) = input_gradient(&mut net, &x, &Target::Sum(vec![channel.clone(), unit]), ReluRule::Plain).unwrap();
    assert!((v_sum - (v_channel + v_unit)).abs() < 1e-5);
    for ((s, a), b) in g_sum.data().iter().zip(g_channel.data()).zip(g_unit.data()) {
        assert!((s - (a + b)).abs() <= 1e-5 * (1.0 + (a + b).abs()));
    }
    let e = input_gradient(&mut net, &x, &Target::Direction { node: "conv2".into(), vector: vec![1.0; 5] }, ReluRule::Plain).err().unwrap().to_string();
    assert!(e.contains("5 values, conv2 has 16 channels"), "{e}");
    assert!(Target::parse_direction("conv2:1,x").is_err() && Target::parse_channel("conv2").is_err());
}

/// Nguyen et al.'s center bias: early steps change only the centre square, which grows until
/// the whole image is open at three quarters of the steps.
#[test]
fn the_center_bias_grows_the_image_from_the_middle() {
    use fovea::viz::ascent::center_fraction;
    assert!((center_fraction(0, 100) - 1.0 / 3.0).abs() < 1e-6);
    assert_eq!(center_fraction(75, 100), 1.0);
    let mut net = models::build("lenet5", 10, 2).unwrap();
    let cfg = AscentConfig { steps: 40, step_size: 0.05, l2: 0.0, jitter: 2, center_bias: true, ..AscentConfig::default() };
    let mut early = None;
    let (last, _) = ascend(&mut net, &Target::Class(5), &cfg, None, |step, _, x| {
        if step == 2 {
            early = Some(x.clone());
        }
    })
    .unwrap();
    let early = early.unwrap();
    // At step 2 the square is 28 * (1/3 + 2/3 * 2/30) ~ 11.6 -> 12 pixels wide: rows and columns 8..20.
    let changed = |t: &Tensor, y: usize, x: usize| t.data()[y * 28 + x] != 0.0;
    assert!((0..28).all(|y| (0..28).all(|x| (8..20).contains(&y) && (8..20).contains(&x) || !changed(&early, y, x))));
    assert!(changed(&early, 14, 14));
    assert!(changed(&last, 1, 1) || changed(&last, 26, 26), "by the end the corners are open too");
}

/// Lucid's diversity: the same batch rendered with the diversity term ends with images whose
/// Gram matrices at the layer are less alike than without it.
#[test]
fn diversity_pushes_a_batch_apart() {
    use fovea::viz::lucid::diversity::diversity_and_gradient;
    use fovea::viz::lucid::{render_fourier_batch, LucidConfig};
    let mut net = models::build("lenet5", 10, 6).unwrap();
    let norm = models::normalization("lenet5");
    let cfg = LucidConfig { steps: 40, decorrelate: false, ..LucidConfig::default() };
    let mut similarity = |weight: f32| {
        let d = (weight > 0.0).then_some((weight, "relu2"));
        let (images, _) = render_fourier_batch(&mut net, &Target::Class(3), &cfg, &norm, 3, d, |_, _| {}).unwrap();
        let mut x = Vec::new();
        for img in &images {
            x.extend(img.data().iter().map(|p| (p - 0.1307) / 0.3081));
        }
        net.forward(&Tensor::from_vec(&[3, 1, 28, 28], x).unwrap(), &fovea::ForwardCtx::default()).unwrap();
        diversity_and_gradient(net.value("relu2").unwrap()).unwrap().0
    };
    let (without, with) = (similarity(0.0), similarity(50.0));
    assert!(with < without, "diversity {with} should be below {without}");
}
