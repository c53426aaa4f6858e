//! The model zoo: torchvision's parameter totals, the lecture's AlexNet table line by line,
//! torchvision-named weights loaded from safetensors giving PyTorch's logits and gradients, and every family
//! learning on a small input.

use fovea::loss::softmax_cross_entropy;
use fovea::models::{architecture, build_for, default_classes};
use fovea::optim;
use fovea::train::checkpoint::load_weights;
use fovea::{BackwardCtx, ForwardCtx, Mode, Tensor};
use std::collections::HashMap;

#[test]
fn parameter_totals_match_torchvision() {
    for (name, total) in [
        ("alexnet", 61_100_840),
        ("vgg11", 132_863_336),
        ("vgg16", 138_357_544),
        ("vgg19", 143_667_240),
        ("vgg16_bn", 138_365_992),
        ("resnet18", 11_689_512),
        ("resnet34", 21_797_672),
        ("resnet50", 25_557_032),
        ("resnet101", 44_549_160),
        ("googlenet", 6_624_904),
        ("googlenet-aux", 13_004_888),
        ("alexnet-1012", 62_378_344),
    ] {
        let (net, _) = architecture(name, 1000, None).unwrap();
        assert_eq!(net.summary(None).unwrap().total_params, total, "{name}");
    }
}

#[test]
fn the_lecture_alexnet_table() {
    let (net, _) = architecture("alexnet-1012", 1000, None).unwrap();
    let s = net.summary(None).unwrap();
    let shape = |n: &str| s.layers.iter().find(|r| r.name == n).unwrap().output.clone();
    for (node, chw) in [
        ("conv1", [96, 55, 55]),
        ("pool1", [96, 27, 27]),
        ("norm1", [96, 27, 27]),
        ("conv2", [256, 27, 27]),
        ("pool2", [256, 13, 13]),
        ("norm2", [256, 13, 13]),
        ("conv3", [384, 13, 13]),
        ("conv4", [384, 13, 13]),
        ("conv5", [256, 13, 13]),
        ("pool3", [256, 6, 6]),
    ] {
        assert_eq!(shape(node), chw.to_vec(), "{node}");
    }
    assert_eq!((shape("fc6"), shape("fc7"), shape("fc8")), (vec![4096], vec![4096], vec![1000]));
    // The lecture's parameter count of CONV1: (11*11*3 + 1) * 96.
    assert_eq!(s.layers[0].params, 34_944);
    assert!(s.to_string().contains("[55x55x96]"));
}

/// `u[i]` in [-1, 1) for the tensor `name`, as `scripts/torchvision_logits.py` defines it:
/// the top 24 bits of splitmix64(fnv1a64(name) ^ (i * golden ratio)).
fn uniform(name: &str, n: usize) -> Vec<f64> {
    let key = name.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01B3));
    (0..n as u64)
        .map(|i| {
            let mut z = (key ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 40) as f64 / (1u64 << 23) as f64 - 1.0
        })
        .collect()
}

/// A state_dict tensor's pseudo-random value, as the script fills it.
fn weight_value(name: &str, shape: &[usize]) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let one_d_weight = name.ends_with("weight") && shape.len() == 1;
    uniform(name, n)
        .into_iter()
        .map(|u| {
            let v = if name.ends_with("running_var") || one_d_weight {
                1.0 + 0.5 * u
            } else if shape.len() >= 2 {
                u * (3.0 / (n / shape[0]) as f64).sqrt()
            } else {
                0.05 * u
            };
            v as f32
        })
        .collect()
}

/// `got` against `want` (sampled every `every` values of `got`): the relative error of the
/// whole (Euclidean norms) within `l2_tol`, every value within `max_tol` of the largest
/// reference value, and the reference not all zero.
fn assert_sampled(what: &str, got: &[f32], want: &serde_json::Value, every: usize, l2_tol: f32, max_tol: f32) {
    let want: Vec<f32> = want.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    let got: Vec<f32> = got.iter().step_by(every).copied().collect();
    assert_eq!(got.len(), want.len(), "{what}: {} sampled values, the reference has {}", got.len(), want.len());
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(scale > 0.0, "{what}: the reference is all zero");
    let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    let err: f32 = got.iter().zip(&want).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt();
    let rel = err / want.iter().map(|b| b * b).sum::<f32>().sqrt();
    println!("{what}: relative error {rel:.1e}, worst {worst:.1e} of {scale:.1e}");
    assert!(rel <= l2_tol && worst <= max_tol * scale, "{what}: relative error {rel:.2e}, worst difference {worst} (largest reference value {scale})");
}

/// torchvision's resnet18, googlenet and alexnet with pseudo-random weights under torchvision's
/// names, loaded from a safetensors file as torchvision would save it: the logits, and the
/// gradients of `sum(logits * R)` with respect to the input and to two parameters, against
/// PyTorch's (`scripts/torchvision_logits.py` wrote `tests/data/torchvision_logits.json`).
#[test]
fn torchvision_named_weights_give_pytorchs_logits_and_gradients() {
    let reference: serde_json::Value =
        serde_json::from_str(include_str!("data/torchvision_logits.json")).unwrap();
    let to_f32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
    let x = Tensor::from_vec(&[2, 3, 224, 224], to_f32(uniform("input", 2 * 3 * 224 * 224))).unwrap();
    let r = Tensor::from_vec(&[2, 1000], to_f32(uniform("seed", 2 * 1000))).unwrap();
    let input_every = reference["input_every"].as_u64().unwrap() as usize;
    let dir = std::env::temp_dir().join(format!("fovea-zoo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for model in ["resnet18", "googlenet", "alexnet"] {
        let mut net = build_for(model, 1000, None, 0).unwrap();
        // A safetensors file as torchvision's state_dict would be saved: every tensor under its
        // torchvision name, and batch norm's int64 num_batches_tracked beside its statistics.
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>, safetensors::Dtype)> = Vec::new();
        for (name, t) in net.state() {
            let bytes = weight_value(&name, t.shape()).iter().flat_map(|v| v.to_le_bytes()).collect();
            tensors.push((name.clone(), t.shape().to_vec(), bytes, safetensors::Dtype::F32));
            if name.ends_with("running_var") {
                let counter = name.replace("running_var", "num_batches_tracked");
                tensors.push((counter, vec![], 7i64.to_le_bytes().to_vec(), safetensors::Dtype::I64));
            }
        }
        let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
            .iter()
            .map(|(n, s, b, d)| (n.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        let path = dir.join(format!("{model}.safetensors"));
        safetensors::serialize_to_file(views, None::<HashMap<String, String>>, &path).unwrap();
        load_weights(&path, &mut net).unwrap();

        let want = &reference["models"][model];
        let logits = net.forward(&x, &ForwardCtx { mode: Mode::Eval, seed: 0, ..Default::default() }).unwrap().clone();
        for row in 0..2 {
            let got = &logits.data()[row * 1000..(row + 1) * 1000];
            assert_sampled(&format!("{model} image {row}: logits"), got, &want["logits"][row], 1, 1e-4, 1e-3);
            let w: Vec<f32> = want["logits"][row].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            let argmax = |v: &[f32]| v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
            assert_eq!(argmax(got), argmax(&w), "{model} image {row}: top class");
        }
        // Gradients: a value that lands within rounding of a ReLU's kink in one framework and
        // not in the other reroutes a little of the gradient (one such value in resnet18's
        // layer1 moves 0.4% of the gradients below it by ~1%), so the gradients are judged by
        // their relative error as a whole; a zero, halved or misrouted gradient is far above it.
        net.zero_grads();
        let out = net.output_name().to_string();
        net.backward(&out, &r, &BackwardCtx { param_grads: true, input_grad: true, ..BackwardCtx::default() }).unwrap();
        assert_sampled(&format!("{model}: input gradient"), net.input_grad().data(), &want["grad_input"], input_every, 1e-2, 0.05);
        let grads: HashMap<String, Vec<f32>> = net.params().into_iter().map(|(n, p)| (n, p.grad.data().to_vec())).collect();
        for (name, g) in want["grads"].as_object().unwrap() {
            let every = g["every"].as_u64().unwrap() as usize;
            let got = grads.get(name).unwrap_or_else(|| panic!("{model} has no parameter {name}"));
            assert_sampled(&format!("{model}: gradient of {name}"), got, &g["values"], every, 1e-2, 0.05);
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Eight steps of `optimizer` on one fixed batch: the mean loss of the last two steps must be
/// below `fall` times that of the first two.
fn learns(model: &str, input: [usize; 3], batch: usize, optimizer: &str, lr: f32, fall: f32) {
    let classes = 5;
    let mut net = build_for(model, classes, Some(input), 3).unwrap();
    let mut rng = fovea::rng::Rng::new(9);
    let mut shape = vec![batch];
    shape.extend_from_slice(&input);
    let x = Tensor::from_vec(&shape, rng.uniform_vec(shape.iter().product(), -1.0, 1.0)).unwrap();
    let labels: Vec<usize> = (0..batch).map(|i| i % classes).collect();
    let mut opt = optim::build(optimizer, 0.9, false, 0.0).unwrap();
    let out = net.output_name().to_string();
    let mut losses = Vec::new();
    for step in 0..8 {
        let logits = net.forward(&x, &ForwardCtx { mode: Mode::Train, seed: step, ..Default::default() }).unwrap();
        let r = softmax_cross_entropy(logits, &labels).unwrap();
        losses.push(r.loss);
        net.zero_grads();
        net.backward(&out, &r.d_logits, &BackwardCtx { input_grad: false, ..BackwardCtx::default() }).unwrap();
        opt.step(&mut net.params_mut(), lr);
    }
    let (first, last) = (losses[0] + losses[1], losses[6] + losses[7]);
    assert!(last < fall * first, "{model}: the loss did not fall below {fall} of its start: {losses:?}");
}

#[test]
fn every_family_trains_on_small_inputs() {
    learns("resnet18", [3, 32, 32], 8, "sgd", 0.05, 0.8);
    learns("vgg11_bn", [3, 32, 32], 8, "sgd", 0.002, 0.8);
    learns("googlenet", [3, 64, 64], 8, "sgd", 0.05, 0.8);
    // PyTorch's default initialisation (AlexNet, LeNet-5) starts with tiny logits: a slower start.
    learns("alexnet", [3, 64, 64], 8, "sgd", 0.1, 0.98);
    learns("lenet5", [1, 28, 28], 8, "sgd", 0.05, 0.98);
    assert_eq!(default_classes("vgg16"), 1000);
}

#[test]
fn wrong_inputs_are_refused_with_the_reason() {
    let e = build_for("mnist-cnn", 10, Some([3, 32, 32]), 0).unwrap_err().to_string();
    assert!(e.contains("mnist-cnn") && e.contains("[1, 28, 28]"), "{e}");
    // The lecture's AlexNet sizes fc6 from its input: 128x128 leaves 2x2x256 = 1,024 features.
    let (net, _) = architecture("alexnet-1012", 10, Some([3, 128, 128])).unwrap();
    let s = net.summary(None).unwrap();
    assert_eq!(s.layers.iter().find(|r| r.name == "pool3").unwrap().output, vec![256, 2, 2]);
    assert_eq!(s.layers.iter().find(|r| r.name == "fc6").unwrap().params, 1024 * 4096 + 4096);
    // Too small for three pooling stages.
    let e = architecture("alexnet-1012", 10, Some([3, 40, 40])).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("pool") || e.contains("does not fit"), "{e}");
    let e = build_for("resnet7", 10, None, 0).unwrap_err().to_string();
    assert!(e.contains("18, 34, 50"), "{e}");
}

#[test]
fn the_summary_command_prints_the_table_and_json() {
    let bin = env!("CARGO_BIN_EXE_fovea");
    let out = std::process::Command::new(bin).args(["summary", "alexnet", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["total_params"], 61_100_840);
    let first = &v["layers"][0];
    assert_eq!((first["name"].as_str(), first["kind"].as_str()), (Some("features.0"), Some("Conv2d")));
    assert_eq!(first["output"], serde_json::json!([64, 55, 55]));
    assert_eq!(first["params"], 64 * 3 * 121 + 64);
    assert!(first["macs"].as_u64().unwrap() > 0 && v["total_macs"].as_u64().unwrap() > 0);

    let out = std::process::Command::new(bin).args(["summary", "resnet18", "--input", "3x32x32", "--classes", "10"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[1x1x512]") && text.contains("11,181,642"), "{text}");
    let out = std::process::Command::new(bin).args(["summary", "vgg16", "--input", "3x16x16"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("features."), "{}", String::from_utf8_lossy(&out.stderr));
}
