//! `fovea export`: every model of the zoo, written as ONNX and run by another engine (tract, a
//! pure-Rust ONNX runtime), gives fovea's logits; the file names what fovea names; bad requests
//! get clear words and leave no file.

mod common;
use common::{run_tract, save_weights, temp_dir};
use fovea::export::{self, proto, Batch, ModelInfo, OnnxOptions};
use fovea::geometry::{Padding, Window2d};
use fovea::layers::{
    Add, AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, ChannelAffine, Concat, Conv2d, Conv2dConfig, Dropout, Flatten, InstanceNorm2d, Layer, Linear, Lrn, MaxPool2d,
    ReflectionPad2d, Relu, Softmax, UpsampleNearest2d,
};
use fovea::BackwardCtx;
use fovea::rng::Rng;
use fovea::{models, ForwardCtx, Mode, Net, Tensor};
use prost::Message;
use std::collections::BTreeMap;
use std::process::Command;


/// A random batch of `n` images for `net`.
fn random_input(net: &Net, n: usize, seed: u64) -> Tensor {
    let mut shape = vec![n];
    shape.extend_from_slice(net.input_shape());
    let mut rng = Rng::new(seed);
    let mut x = Tensor::zeros(&shape);
    // Each image brighter than the one before, so even nets that average most detail away
    // (global pooling after many layers) tell them apart.
    let per = x.len() / n;
    for (i, v) in x.data_mut().iter_mut().enumerate() {
        *v = rng.uniform(-1.5, 1.5) + 0.8 * (i / per) as f32 - 0.4;
    }
    x
}

/// Batch norms away from the identity, so exporting them wrong shows in the logits: running
/// statistics from `x` (thirty training-mode passes, as training would set them; they also
/// keep deep nets' activations from vanishing under their initialisation), then jittered, and
/// random scales and shifts.
fn perturb_batchnorms(net: &mut Net, x: &Tensor, seed: u64) {
    if !net.node_names().any(|n| net.layer(n).is_some_and(|l| l.kind() == "BatchNorm2d")) {
        return;
    }
    for _ in 0..30 {
        net.forward(x, &ForwardCtx { mode: Mode::Train, seed: 1, ..Default::default() }).unwrap();
    }
    let mut rng = Rng::new(seed);
    let mut state: BTreeMap<String, Tensor> = net.state().into_iter().map(|(k, t)| (k, t.clone())).collect();
    for (name, t) in state.iter_mut() {
        let (layer, key) = name.rsplit_once('.').unwrap();
        if net.layer(layer).is_none_or(|l| l.kind() != "BatchNorm2d") {
            continue;
        }
        for v in t.data_mut() {
            *v = match key {
                "running_var" => *v * rng.uniform(0.9, 1.1),
                "running_mean" => *v + rng.uniform(-0.05, 0.05),
                "weight" => rng.uniform(0.8, 1.2),
                _ => rng.uniform(-0.1, 0.1),
            };
        }
    }
    net.load_state(&state).unwrap();
}

/// Largest difference relative to the largest reference value.
fn relative_error(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "output sizes differ");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    got.iter().zip(want).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale
}

/// fovea's logits for `x` against tract's on `net` exported with `opts`.
fn check(net: &mut Net, x: &Tensor, opts: &OnnxOptions, what: &str) -> proto::ModelProto {
    let want = net.forward(x, &ForwardCtx::default()).unwrap().data().to_vec();
    assert!(want.iter().all(|v| v.is_finite()), "{what}: fovea's logits are not finite");
    // What reaches the output layer must be alive: activations that vanished under an
    // initialisation would leave only the output's bias to compare.
    let before = net.node_inputs(net.output_name()).unwrap()[0].to_string();
    let features = net.value(&before).unwrap().data().iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(features > 1e-2, "{what}: the features before the output layer are at most {features:.1e}: a weak comparison");
    let info = ModelInfo { name: what.into(), metadata: vec![] };
    let bytes = export::to_onnx(net, &info, opts).unwrap_or_else(|e| panic!("{what}: {e}"));
    let got = run_tract(&bytes, x);
    let err = relative_error(&got, &want);
    // Two engines sum in different orders, and a deep random net can amplify that rounding
    // (ResNet-101 with batch norms set from the data, through the gemm path). How much this net
    // amplifies it is measured on fovea alone: the logits' change when the input moves by
    // about one rounding step. The export must agree to 1e-4 or to 30 times that, the larger.
    let mut nudged = x.clone();
    nudged.data_mut().iter_mut().for_each(|v| *v *= 1.0 + f32::EPSILON);
    let amplified = relative_error(net.forward(&nudged, &ForwardCtx::default()).unwrap().data(), &want);
    let tolerance = (30.0 * amplified).max(1e-4);
    println!("{what}: relative difference {err:.1e} (the net's own rounding amplification {amplified:.1e})");
    assert!(err < tolerance, "{what}: tract's logits differ from fovea's by {err:.2e} (relative to the largest), above {tolerance:.1e}");
    proto::ModelProto::decode(&bytes[..]).unwrap()
}

/// Every model at a size small enough for a test (the adaptive pools then take their general
/// form) or its only size.
fn test_input(name: &str) -> Option<[usize; 3]> {
    match name {
        "mnist-cnn" | "lenet5" | "alexnet-1012" => None,
        n if n.starts_with("vgg") => Some([3, 32, 32]),
        n if n.starts_with("googlenet") => Some([3, 96, 96]),
        _ => Some([3, 64, 64]),
    }
}

#[test]
fn every_model_of_the_zoo_gives_fovea_logits_in_tract() {
    for (i, name) in models::NAMES.iter().enumerate() {
        let mut net = models::build_for(name, 10, test_input(name), 7 + i as u64).unwrap();
        let x = random_input(&net, 2, i as u64);
        perturb_batchnorms(&mut net, &x, 100 + i as u64);
        let model = check(&mut net, &x, &OnnxOptions::default(), name);
        let graph = model.graph.unwrap();
        // The graph's names are fovea's: every node is a node of the net (or a part of one).
        let nodes: Vec<&str> = net.node_names().collect();
        for n in &graph.node {
            let n = n.name.as_deref().unwrap();
            assert!(nodes.iter().any(|f| n == *f || n.strip_prefix(f).is_some_and(|rest| rest.starts_with('.'))), "{name}: node {n} is not fovea's");
        }
        assert_eq!(graph.input[0].name.as_deref(), Some("input"));
        assert_eq!(graph.output[0].name.as_deref(), Some("logits"));
        println!("{name}: {} ONNX nodes, {} initializers", graph.node.len(), graph.initializer.len());
    }
}

#[test]
fn folded_batch_norms_give_the_same_logits_with_fewer_nodes() {
    for name in ["vgg11_bn", "resnet18"] {
        let mut net = models::build_for(name, 10, test_input(name), 3).unwrap();
        let x = random_input(&net, 1, 9);
        perturb_batchnorms(&mut net, &x, 5);
        let kept = check(&mut net, &x, &OnnxOptions::default(), name);
        let folded = check(&mut net, &x, &OnnxOptions { fold_batchnorm: true, ..Default::default() }, name);
        let count = |m: &proto::ModelProto, op: &str| m.graph.as_ref().unwrap().node.iter().filter(|n| n.op_type.as_deref() == Some(op)).count();
        assert!(count(&kept, "BatchNormalization") > 0, "{name}: the batch norms are kept by default");
        assert_eq!(count(&folded, "BatchNormalization"), 0, "{name}: every batch norm follows a convolution and folds");
        assert_eq!(count(&folded, "Conv"), count(&kept, "Conv"));
    }
}

/// Johnson et al.'s style network (`fovea style --train`): instance norm, reflection padding and
/// nearest upsampling become `InstanceNormalization`, `Pad` (reflect) and `Resize` (nearest,
/// asymmetric, floor), and tract paints what fovea paints, at opsets 13 and 17 and 22.
#[test]
fn the_style_network_exports_exactly() {
    let mut net = models::transformer::transformer_net(4, [3, 20, 28]).unwrap();
    // Weights that are not an initialisation's (instance norms start at 1 and 0).
    let mut rng = Rng::new(17);
    for (_, p) in net.params_mut() {
        let v = rng.uniform_vec(p.value.len(), -0.5, 0.5);
        p.value.data_mut().copy_from_slice(&v);
    }
    let x = Tensor::from_vec(&[2, 3, 20, 28], rng.uniform_vec(2 * 3 * 20 * 28, 0.0, 255.0)).unwrap();
    // Its pads are the same on every side and its upsampling doubles: uneven pads and a scale
    // of 3 as well, each side telling apart (rows and columns of different sizes).
    let mut odd = Net::new(&[2, 5, 7]);
    odd.push("pad", ReflectionPad2d::new([1, 3, 0, 2])).unwrap();
    odd.push("up", UpsampleNearest2d::new(3).unwrap()).unwrap();
    odd.push("norm", InstanceNorm2d::new(2)).unwrap();
    odd.push("conv", Conv2d::new(Conv2dConfig::new(2, 3, 3).stride(2)).unwrap()).unwrap();
    let y = Tensor::from_vec(&[1, 2, 5, 7], rng.uniform_vec(70, -1.0, 1.0)).unwrap();
    check(&mut odd, &y, &OnnxOptions::default(), "uneven reflection pads, upsampling by 3");
    for opset in [13, 17, 22] {
        let model = check(&mut net, &x, &OnnxOptions { opset, ..Default::default() }, &format!("transformer-net, opset {opset}"));
        let ops: Vec<&str> = model.graph.as_ref().unwrap().node.iter().filter_map(|n| n.op_type.as_deref()).collect();
        for op in ["InstanceNormalization", "Pad", "Resize"] {
            assert!(ops.contains(&op), "no {op} among {ops:?}");
        }
    }
}

/// A custom layer fovea cannot describe to an exporter.
struct Mystery;
impl Layer for Mystery {
    fn kind(&self) -> &'static str {
        "Mystery"
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> fovea::Result<Vec<usize>> {
        Ok(inputs[0].to_vec())
    }
    fn forward(&mut self, inputs: &[&Tensor], out: &mut Tensor, _: &ForwardCtx) -> fovea::Result<()> {
        out.data_mut().copy_from_slice(inputs[0].data());
        Ok(())
    }
    fn backward(&mut self, _: &[&Tensor], _: &Tensor, _: &Tensor, _: &mut [Option<&mut Tensor>], _: &BackwardCtx) -> fovea::Result<()> {
        Ok(())
    }
}

/// Windows the zoo does not use: TensorFlow's SAME at stride 2 on an odd size, dilation,
/// groups, a filter that leaves cells over, padded ceil-mode max pooling, padded average
/// pooling, a three-way sum, a channel affine, LRN, unequal adaptive bins and a softmax output.
#[test]
fn every_window_and_operator_exports_exactly() {
    let mut net = Net::new(&[4, 15, 17]);
    let conv = |ci, co, k| Conv2dConfig::new(ci, co, k);
    net.push("scale", ChannelAffine::new(vec![1.5, 0.5, -1.0, 2.0], vec![0.1, -0.2, 0.3, 0.0]).unwrap()).unwrap();
    net.push("same", Conv2d::new(conv(4, 8, 3).stride(2).padding(Padding::Same)).unwrap()).unwrap(); // 8x9
    net.push("dilated", Conv2d::new(conv(8, 8, 3).dilation(2).pad(2).groups(2)).unwrap()).unwrap(); // 8x9
    net.push("relu", Relu).unwrap();
    net.push("lrn", Lrn::new(3, 1e-2, 0.75, 1.5).unwrap()).unwrap();
    net.add("left", Conv2d::new(conv(8, 8, 3).stride(3)).unwrap(), &["lrn"]).unwrap(); // 2x3, 2 rows over
    net.add("b", Conv2d::new(conv(8, 8, 1).stride(4)).unwrap(), &["lrn"]).unwrap(); // 2x3
    // Ceil mode that adds a window: 8x9 -> 4x4 (3x4 without); then windows that end in
    // different amounts of padding along rows (2, ceil mode) and columns (1, explicit): 2x3.
    net.add("c", MaxPool2d::new(Window2d { ceil_mode: true, ..Window2d::square(3, 2, Padding::Valid) }).unwrap(), &["lrn"]).unwrap();
    let tall = Window2d { kernel: [3, 3], stride: [3, 1], dilation: [1, 1], padding: Padding::explicit([0, 0, 0, 1]), ceil_mode: true };
    net.add("d", AvgPool2d::new(tall).unwrap(), &["c"]).unwrap();
    net.add("sum", Add, &["left", "b", "d"]).unwrap();
    net.add("cat", Concat, &["sum", "d"]).unwrap(); // 16x2x3
    net.push("bins", AdaptiveAvgPool2d::new(3, 2).unwrap()).unwrap(); // unequal bins both ways
    net.push("bn", BatchNorm2d::new(16).with_eps(1e-3)).unwrap();
    net.push("flatten", Flatten).unwrap();
    net.push("drop", Dropout::new(0.5).unwrap()).unwrap();
    net.push("fc", Linear::new(96, 5)).unwrap();
    net.push("softmax", Softmax).unwrap();
    net.init(11);
    let x = random_input(&net, 3, 13);
    perturb_batchnorms(&mut net, &x, 12);
    for batch in [Batch::Dynamic, Batch::Fixed(3)] {
        for opset in [13, 17, 22] {
            let model = check(&mut net, &x, &OnnxOptions { batch, opset, ..Default::default() }, &format!("windows, {batch:?} batch, opset {opset}"));
            assert_eq!(model.opset_import[0].version, Some(opset));
            let dim = &model.graph.unwrap().input[0].r#type.clone().unwrap();
            let text = format!("{dim:?}");
            match batch {
                Batch::Dynamic => assert!(text.contains("DimParam(\"N\")"), "{text}"),
                Batch::Fixed(n) => assert!(text.contains(&format!("DimValue({n})")), "{text}"),
            }
        }
    }
}

#[test]
fn what_cannot_be_expressed_is_named() {
    let info = ModelInfo::default();
    let mut net = Net::new(&[2, 6, 6]);
    net.push("odd", Mystery).unwrap();
    let e = export::to_onnx(&net, &info, &OnnxOptions::default()).unwrap_err().to_string();
    assert!(e.contains("node odd") && e.contains("Mystery"), "{e}");

    let mut net = Net::new(&[4, 6, 6]);
    net.push("lrn", Lrn::new(4, 1e-4, 0.75, 2.0).unwrap()).unwrap();
    let e = export::to_onnx(&net, &info, &OnnxOptions::default()).unwrap_err().to_string();
    assert!(e.contains("node lrn") && e.contains("even"), "{e}");

    let net = models::architecture("lenet5", 10, None).unwrap().0;
    let e = export::to_onnx(&net, &info, &OnnxOptions { opset: 9, ..Default::default() }).unwrap_err().to_string();
    assert!(e.contains("opset 9") && e.contains("13 to 22"), "{e}");
}

fn fovea(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fovea")).args(args).output().unwrap()
}

#[test]
fn the_command_writes_a_file_others_can_run() {
    let dir = temp_dir("export-cli");
    let weights = save_weights(&dir, "lenet5", "lenet5.safetensors");
    let out = dir.join("lenet5.onnx");
    let o = fovea(&["export", "--model", "lenet5", "--weights", &weights, "-o", out.to_str().unwrap(), "--batch", "4"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("lenet5.onnx") && said.contains("[4, 1, 28, 28]") && said.contains("logits"), "{said}");

    let bytes = std::fs::read(&out).unwrap();
    let model = proto::ModelProto::decode(&bytes[..]).unwrap();
    let meta: BTreeMap<_, _> = model.metadata_props.iter().map(|e| (e.key.clone().unwrap(), e.value.clone().unwrap())).collect();
    assert_eq!(meta["fovea.model"], "lenet5");
    assert!(meta["fovea.normalize"].contains("0.1307"), "{meta:?}");
    let mut net = fovea::models::architecture("lenet5", 10, None).unwrap().0;
    let saved = fovea::train::checkpoint::load(std::path::Path::new(&weights)).unwrap();
    net.load_state(&saved.model).unwrap();
    let x = random_input(&net, 4, 1);
    let want = net.forward(&x, &ForwardCtx::default()).unwrap().data().to_vec();
    assert!(relative_error(&run_tract(&bytes, &x), &want) < 1e-4);

    // A folder that does not exist: named, and nothing written anywhere.
    let missing = dir.join("no-such-folder").join("m.onnx");
    let o = fovea(&["export", "--model", "lenet5", "--weights", &weights, "-o", missing.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("no-such-folder") && err.contains("does not exist"), "{err}");
    assert!(!missing.parent().unwrap().exists());
    // A bad batch and an opset fovea does not write: clear words, no file.
    let o = fovea(&["export", "--model", "lenet5", "--weights", &weights, "-o", dir.join("b.onnx").to_str().unwrap(), "--batch", "0"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("dynamic"));
    let o = fovea(&["export", "--model", "lenet5", "--weights", &weights, "-o", dir.join("c.onnx").to_str().unwrap(), "--opset", "7"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("opset 7"));
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left.iter().filter(|n| n.contains(".onnx")).count(), 1, "only the first export left a file: {left:?}");
    std::fs::remove_dir_all(&dir).ok();
}


