//! The graph: Captum's hand-checkable backprop tables under the three ReLU rules, error
//! messages that name the layer and shapes, summaries, receptive fields, determinism.

use fovea::layers::*;
use fovea::{models, BackwardCtx, ForwardCtx, Mode, Net, Padding, ReluRule, Tensor};

/// Captum's test model: input 0..15 as a 1x1x4x4 image; conv 1 -> 2 channels 3x3, weights 1,
/// bias [-50, -75]; ReLU; flatten to 8; fc 8 -> 4, every row five 1s then three -1s, bias 0;
/// ReLU.
fn captum_net() -> Net {
    let mut net = Net::new(&[1, 4, 4]);
    net.push("conv", Conv2d::new(Conv2dConfig::new(1, 2, 3)).unwrap()).unwrap();
    net.push("relu1", Relu).unwrap();
    net.push("flatten", Flatten).unwrap();
    net.push("fc", Linear::new(8, 4)).unwrap();
    net.push("relu2", Relu).unwrap();
    for (name, p) in net.params_mut() {
        let v = p.value.data_mut();
        match name.as_str() {
            "conv.weight" => v.fill(1.0),
            "conv.bias" => v.copy_from_slice(&[-50.0, -75.0]),
            "fc.weight" => {
                for row in v.chunks_mut(8) {
                    row.copy_from_slice(&[1.0, 1.0, 1.0, 1.0, 1.0, -1.0, -1.0, -1.0]);
                }
            }
            _ => v.fill(0.0),
        }
    }
    net
}

fn captum_gradient(rule: ReluRule) -> Vec<f32> {
    let mut net = captum_net();
    let x = Tensor::from_vec(&[1, 1, 4, 4], (0..16).map(|v| v as f32).collect()).unwrap();
    net.forward(&x, &ForwardCtx::default()).unwrap();
    let mut seed = Tensor::zeros(&[1, 4]);
    seed.data_mut()[0] = 1.0;
    net.backward("relu2", &seed, &BackwardCtx { rule, param_grads: false, input_grad: true }).unwrap();
    net.input_grad().data().to_vec()
}

#[test]
fn captum_tables_for_the_three_relu_rules() {
    let plain = [0., 1., 1., 1., 0., 1., 1., 1., 0., 1., 1., 1., 0., 0., 0., 0.];
    let guided = [0., 1., 1., 1., 1., 3., 3., 2., 1., 3., 3., 2., 1., 2., 2., 1.];
    let deconv = [2., 3., 3., 1., 3., 5., 5., 2., 3., 5., 5., 2., 1., 2., 2., 1.];
    assert_eq!(captum_gradient(ReluRule::Plain), plain);
    assert_eq!(captum_gradient(ReluRule::Guided), guided);
    assert_eq!(captum_gradient(ReluRule::Deconvnet), deconv);
}

#[test]
fn without_relu_the_three_rules_agree() {
    let mut net = Net::new(&[1, 6, 6]);
    net.push("conv", Conv2d::new(Conv2dConfig::new(1, 3, 3)).unwrap()).unwrap();
    net.push("pool", MaxPool2d::square(2, 2)).unwrap();
    net.init(4);
    let x = Tensor::from_vec(&[1, 1, 6, 6], (0..36).map(|v| ((v * 7) % 11) as f32).collect()).unwrap();
    net.forward(&x, &ForwardCtx::default()).unwrap();
    let mut seed = Tensor::zeros(&[1, 3, 2, 2]);
    seed.data_mut()[5] = 1.0;
    let mut grads = Vec::new();
    for rule in [ReluRule::Plain, ReluRule::Guided, ReluRule::Deconvnet] {
        net.backward("pool", &seed, &BackwardCtx { rule, param_grads: false, input_grad: true }).unwrap();
        grads.push(net.input_grad().clone());
    }
    assert!(grads.iter().any(|g| g.data().iter().any(|&v| v != 0.0)));
    assert_eq!(grads[0], grads[1]);
    assert_eq!(grads[0], grads[2]);
}

#[test]
fn shape_errors_name_the_layer_and_the_shapes() {
    let mut net = Net::new(&[3, 32, 32]);
    net.push("conv1", Conv2d::new(Conv2dConfig::new(3, 16, 3)).unwrap()).unwrap();
    // conv2 expects 8 channels but conv1 gives 16: refused at build time, naming conv2.
    let err = net.push("conv2", Conv2d::new(Conv2dConfig::new(8, 4, 3)).unwrap()).err().unwrap().to_string();
    assert!(err.starts_with("conv2:") && err.contains("16 channels") && err.contains("needs 8"), "{err}");
    // A filter larger than the map.
    let err = net.push("big", Conv2d::new(Conv2dConfig::new(16, 4, 31)).unwrap()).err().unwrap().to_string();
    assert!(err.starts_with("big:") && err.contains("does not fit"), "{err}");
    // A linear layer on an unflattened map.
    let err = net.push("fc", Linear::new(10, 2)).err().unwrap().to_string();
    assert!(err.contains("fc:") && err.contains("[1, 16, 30, 30]") && err.contains("flatten"), "{err}");
    // The net is still usable after refused additions.
    net.push("pool", MaxPool2d::square(2, 2)).unwrap();
    // Wrong input at run time.
    let err = net.forward(&Tensor::zeros(&[2, 1, 32, 32]), &ForwardCtx::default()).unwrap_err().to_string();
    assert!(err.starts_with("conv1:") && err.contains("[2, 1, 32, 32]"), "{err}");
    // Graph errors.
    assert!(net.add("x", Relu, &["nope"]).unwrap_err().to_string().contains("nope"));
    assert!(net.add("conv1", Relu, &["input"]).is_err());
    assert!(net.add("sum", Add, &["conv1"]).is_err());
    // A seed of the wrong shape.
    net.forward(&Tensor::zeros(&[1, 3, 32, 32]), &ForwardCtx::default()).unwrap();
    let err = net.backward("pool", &Tensor::zeros(&[1, 3]), &BackwardCtx::default()).unwrap_err().to_string();
    assert!(err.contains("pool") && err.contains("[1, 16, 15, 15]"), "{err}");
    assert!(net.backward("nowhere", &Tensor::zeros(&[1]), &BackwardCtx::default()).unwrap_err().to_string().contains("conv1"));
}

#[test]
fn summary_counts_and_leftovers() {
    let net = models::build("lenet5", 10, 0).unwrap();
    let s = net.summary(None).unwrap();
    assert_eq!(s.total_params, 61_706); // torch: sum(p.numel()) of the golden LeNet-5
    let conv2 = s.layers.iter().find(|r| r.name == "conv2").unwrap();
    assert_eq!((conv2.output.clone(), conv2.params, conv2.macs), (vec![16, 10, 10], 2416, 240_000));

    // The lecture's 7x7 input with a 3x3 filter at stride 3 leaves a row and a column over.
    let mut net = Net::new(&[1, 7, 7]);
    net.push("conv", Conv2d::new(Conv2dConfig::new(1, 1, 3).stride(3)).unwrap()).unwrap();
    let s = net.summary(None).unwrap();
    assert_eq!((s.layers[0].output.clone(), s.layers[0].leftover), (vec![1, 2, 2], [1, 1]));
    assert!(s.to_string().contains("1 rows, 1 cols"), "{s}");
    let s = net.summary(Some(&[1, 9, 9])).unwrap();
    assert_eq!((s.layers[0].output.clone(), s.layers[0].leftover), (vec![1, 3, 3], [0, 0]));

    // The table writes shapes as the lecture does.
    let text = models::build("mnist-cnn", 10, 0).unwrap().summary(None).unwrap().to_string();
    assert!(text.contains("[14x14x64]") && text.contains("[3136]") && text.contains("3,274,634"), "{text}");
}

#[test]
fn a_conv_neuron_has_no_gradient_outside_its_receptive_field() {
    let mut net = models::build("mnist-cnn", 10, 3).unwrap();
    let x = Tensor::from_vec(&[1, 1, 28, 28], (0..784).map(|i| ((i * 37) % 101) as f32 / 101.0).collect()).unwrap();
    net.forward(&x, &ForwardCtx::default()).unwrap();
    let (c, y, xx) = (5, 4, 9);
    let field = net.receptive_field("conv2", y, xx).unwrap();
    // conv2 at (4, 9) of a 14x14 map: pool1 cells 2..6 x 7..11, conv1 cells 4..13 x 14..23,
    // input cells 2..15 x 12..25.
    assert_eq!((field.y0, field.y1, field.x0, field.x1), (2, 15, 12, 25));
    let mut seed = Tensor::zeros(net.value("conv2").unwrap().shape());
    seed.data_mut()[(c * 14 + y) * 14 + xx] = 1.0;
    net.backward("conv2", &seed, &BackwardCtx { rule: ReluRule::Plain, param_grads: false, input_grad: true }).unwrap();
    let g = net.input_grad();
    let mut inside = 0;
    for r in 0..28 {
        for col in 0..28 {
            let v = g.data()[r * 28 + col];
            let within = (field.y0..=field.y1).contains(&r) && (field.x0..=field.x1).contains(&col);
            if within {
                inside += (v != 0.0) as usize;
            } else {
                assert_eq!(v, 0.0, "gradient at ({r}, {col}) outside the receptive field");
            }
        }
    }
    assert!(inside > 0);
}

#[test]
fn same_seed_and_threads_give_the_same_bits() {
    let run = || {
        let mut net = models::build("mnist-cnn", 10, 7).unwrap();
        let x = Tensor::from_vec(&[16, 1, 28, 28], (0..16 * 784).map(|i| ((i * 13) % 29) as f32 / 29.0).collect()).unwrap();
        let logits = net.forward(&x, &ForwardCtx { mode: Mode::Train, seed: 11, ..Default::default() }).unwrap().clone();
        let r = fovea::loss::softmax_cross_entropy(&logits, &[3; 16]).unwrap();
        net.backward("fc2", &r.d_logits, &BackwardCtx::default()).unwrap();
        let grads: Vec<Tensor> = net.params().into_iter().map(|(_, p)| p.grad.clone()).collect();
        (logits, grads)
    };
    let (a, b) = (run(), run());
    assert_eq!(a.0, b.0);
    assert_eq!(a.1, b.1);
    // Dropout draws another mask for another step seed.
    let mut d = Dropout::new(0.5).unwrap();
    let x = Tensor::full(&[1, 64], 1.0);
    let mut y1 = Tensor::zeros(&[1, 64]);
    let mut y2 = Tensor::zeros(&[1, 64]);
    d.forward(&[&x], &mut y1, &ForwardCtx { mode: Mode::Train, seed: 1, ..Default::default() }).unwrap();
    d.forward(&[&x], &mut y2, &ForwardCtx { mode: Mode::Train, seed: 2, ..Default::default() }).unwrap();
    assert_ne!(y1, y2);
    let kept = y1.data().iter().filter(|&&v| v == 2.0).count();
    assert!((16..=48).contains(&kept), "kept {kept} of 64 at p = 0.5");
}

#[test]
fn state_loads_strictly_and_lists_every_problem() {
    let mut net = Net::new(&[3, 8, 8]);
    net.push("conv1", Conv2d::new(Conv2dConfig::new(3, 4, 3).padding(Padding::Same)).unwrap()).unwrap();
    net.push("bn1", BatchNorm2d::new(4)).unwrap();
    let mut state: std::collections::BTreeMap<String, Tensor> =
        net.state().into_iter().map(|(n, t)| (n, t.clone())).collect();
    assert!(state.contains_key("bn1.running_var"));
    state.insert("bn1.num_batches_tracked".into(), Tensor::zeros(&[]));
    state.get_mut("conv1.bias").unwrap().data_mut()[0] = 0.5;
    net.load_state(&state).unwrap();
    assert_eq!(net.state()[1].1.data()[0], 0.5);

    state.remove("bn1.bias");
    state.insert("fc.weight".into(), Tensor::zeros(&[2]));
    state.insert("conv1.weight".into(), Tensor::zeros(&[4, 3, 5, 5]));
    let err = net.load_state(&state).unwrap_err().to_string();
    assert!(err.contains("missing: bn1.bias"), "{err}");
    assert!(err.contains("unexpected: fc.weight"), "{err}");
    assert!(err.contains("conv1.weight: has shape [4, 3, 5, 5], the model needs [4, 3, 3, 3]"), "{err}");
}

/// The README's library example, kept compiling and running.
#[test]
fn the_readme_example_runs() -> fovea::Result<()> {
    use fovea::{loss, models, BackwardCtx, ForwardCtx, Mode, ReluRule, Tensor};
    let mut net = models::build("lenet5", 10, 42)?;
    let x = Tensor::zeros(&[8, 1, 28, 28]);
    let logits = net.forward(&x, &ForwardCtx { mode: Mode::Train, seed: 1, ..Default::default() })?.clone();
    let xent = loss::softmax_cross_entropy(&logits, &[0; 8])?;
    net.backward("fc3", &xent.d_logits, &BackwardCtx::default())?;
    let mut seed = Tensor::zeros(net.value("conv2").unwrap().shape());
    seed.data_mut()[5 * 100 + 4 * 10 + 6] = 1.0;
    net.backward("conv2", &seed, &BackwardCtx { rule: ReluRule::Guided, param_grads: false, input_grad: true })?;
    assert_eq!(net.input_grad().shape(), &[8, 1, 28, 28]);
    assert!(net.params().iter().any(|(_, p)| p.grad.data().iter().any(|&g| g != 0.0)));
    Ok(())
}

/// The lean forward pass (buffers handed on once no node needs them) gives the full pass's
/// output bit for bit, on nets with branches (GoogLeNet's concatenations, ResNet's residual
/// additions, the style network's) and on nets whose convolutions pool as they go, keeping
/// the pooled output alone once fused (the MNIST nets' 2x2 pools, AlexNet's overlapping 3x3
/// ones), and the net runs normally afterwards.
#[test]
fn the_lean_forward_pass_gives_the_full_passes_output() {
    let ctx = ForwardCtx { mode: Mode::Eval, seed: 0, ..Default::default() };
    let mut rng = fovea::rng::Rng::new(5);
    let mut style = fovea::models::transformer_net(4, [3, 20, 24]).unwrap();
    style.init(3);
    let built = |model: &str| fovea::models::build(model, 10, 1).unwrap();
    let nets = [
        ("resnet18", built("resnet18"), [2, 3, 64, 64]),
        ("googlenet", built("googlenet"), [1, 3, 64, 64]),
        ("style", style, [2, 3, 20, 24]),
        ("mnist-cnn", built("mnist-cnn"), [5, 1, 28, 28]),
        ("lenet5", built("lenet5"), [3, 1, 28, 28]),
        ("alexnet", built("alexnet"), [2, 3, 95, 95]),
    ];
    for (name, mut net, shape) in nets {
        let x = Tensor::from_vec(&shape, rng.uniform_vec(shape.iter().product(), -1.0, 1.0)).unwrap();
        let full = net.forward(&x, &ctx).unwrap().clone();
        let lean = net.forward_lean(&x, &ctx).unwrap();
        assert_eq!(lean.shape(), full.shape(), "{name}");
        assert!(lean.data() == full.data(), "{name}: the lean pass differs");
        // Twice in a row (the pool now holds the last pass's buffers), then a full pass again.
        assert!(net.forward_lean(&x, &ctx).unwrap().data() == full.data(), "{name}: a second lean pass differs");
        assert!(net.forward(&x, &ctx).unwrap().data() == full.data(), "{name}: a full pass after the lean one differs");
        // With each ReLU fused into its producer: the same output, lean (twice) and full.
        net.fuse_activations(true);
        for round in 0..2 {
            assert!(net.forward_lean(&x, &ctx).unwrap().data() == full.data(), "{name}: fused lean pass {round} differs");
        }
        assert!(net.forward(&x, &ctx).unwrap().data() == full.data(), "{name}: a fused full pass differs");
    }
}

/// One training pass (forward in training mode, backward to the parameters and the input) of
/// `net` on `x`, the forward pass told that only a backward pass from the output follows
/// (`ForwardCtx::backward_from_output_only`) or not: the output, every parameter gradient and
/// the input gradient.
fn pass_told(net: &mut Net, x: &Tensor, backward_from_output_only: bool) -> (Tensor, Vec<Tensor>, Tensor) {
    net.zero_grads();
    let out = net.forward(x, &ForwardCtx { mode: Mode::Train, seed: 5, backward_from_output_only, ..Default::default() }).unwrap().clone();
    let seed = Tensor::from_vec(out.shape(), (0..out.len()).map(|i| ((i * 7) % 13) as f32 / 13.0 - 0.4).collect()).unwrap();
    let last = net.output_name().to_string();
    net.backward(&last, &seed, &BackwardCtx { input_grad: true, ..Default::default() }).unwrap();
    let grads = net.params().into_iter().map(|(_, p)| p.grad.clone()).collect();
    (out, grads, net.input_grad().clone())
}

/// `pass_told`, every value kept.
fn pass(net: &mut Net, x: &Tensor) -> (Tensor, Vec<Tensor>, Tensor) {
    pass_told(net, x, false)
}

/// A ReLU fused into the convolution before it (`Net::fuse_activations`) gives the unfused
/// net's bits: output, parameter gradients and input gradient, twice in a row (the buffers
/// change hands between passes), on nets where it fuses (convolutions straight into ReLUs) and
/// where it must not (a convolution's output read twice, a ReLU after batch norm or a sum).
#[test]
fn fused_activations_give_the_unfused_bits() {
    // A convolution read by a ReLU and by a sum: not fused; one read by its ReLU alone: fused.
    let branchy = || {
        let mut net = Net::new(&[3, 12, 12]);
        net.push("conv1", Conv2d::new(Conv2dConfig::new(3, 8, 3).padding(Padding::Same)).unwrap()).unwrap();
        net.add("relu1", Relu, &["conv1"]).unwrap();
        net.add("sum", Add, &["relu1", "conv1"]).unwrap();
        net.push("conv2", Conv2d::new(Conv2dConfig::new(8, 4, 3)).unwrap()).unwrap();
        net.push("relu2", Relu).unwrap();
        net.init(3);
        net
    };
    let zoo = |name: &str, input: Option<[usize; 3]>| models::build_for(name, 10, input, 7).unwrap();
    // (net, batch shape, nodes whose output their ReLU takes over, a node that keeps its own)
    type Build = Box<dyn Fn() -> Net>;
    type Case<'a> = (Build, Vec<usize>, &'a [&'a str], Option<&'a str>);
    let cases: Vec<Case> = vec![
        (Box::new(move || zoo("mnist-cnn", None)), vec![4, 1, 28, 28], &["conv1"], None),
        (Box::new(move || zoo("lenet5", None)), vec![3, 1, 28, 28], &[], None),
        (Box::new(move || zoo("alexnet", Some([3, 67, 67]))), vec![2, 3, 67, 67], &[], None),
        // Batch norm into ReLU and a residual sum into ReLU: both fused.
        (Box::new(move || zoo("resnet18", Some([3, 32, 32]))), vec![2, 3, 32, 32], &["bn1", "layer1.0.add"], None),
        // Instance norm into ReLU, reflection padding, upsampling: the style network.
        (Box::new(|| { let mut n = models::transformer::transformer_net(4, [3, 16, 16]).unwrap(); n.init(9); n }), vec![2, 3, 16, 16], &["in1"], None),
        (Box::new(branchy), vec![2, 3, 12, 12], &["conv2"], Some("conv1")),
    ];
    for (build, shape, fused_nodes, unfused_node) in cases {
        let (mut plain, mut fused) = (build(), build());
        fused.fuse_activations(true);
        let n: usize = shape.iter().product();
        let x = Tensor::from_vec(&shape, (0..n).map(|i| ((i * 31) % 17) as f32 / 17.0 - 0.3).collect()).unwrap();
        // The fused net's forward pass told that only a backward pass from the output follows
        // (rounds 2 and 3: conv -> ReLU -> max pool leaves the ReLU's output unwritten), and not.
        for round in 0..4 {
            let (a, b) = (pass(&mut plain, &x), pass_told(&mut fused, &x, round >= 2));
            assert_eq!(a.0, b.0, "{shape:?} round {round}: output");
            assert_eq!(a.1, b.1, "{shape:?} round {round}: parameter gradients");
            assert_eq!(a.2, b.2, "{shape:?} round {round}: input gradient");
        }
        for &fused_node in fused_nodes {
            assert!(plain.value(fused_node).is_some());
            assert!(fused.value(fused_node).is_none(), "{fused_node}'s output is the ReLU's now");
            assert!(fused.forward_to(&x, &ForwardCtx::default(), fused_node).is_err());
        }
        if let Some(node) = unfused_node {
            assert_eq!(fused.value(node), plain.value(node), "{node} has two readers: not fused");
        }
        if fused_nodes.contains(&"conv1") {
            // mnist-cnn's pool1 sent its gradient through relu1 to conv1: relu1's own is not kept.
            assert!(fused.grad("relu1").unwrap().is_empty() && !plain.grad("relu1").unwrap().is_empty());
            // And conv1 pooled each sample as it went: pool1 took no time of its own.
            fused.start_timing();
            fused.forward(&x, &ForwardCtx::default()).unwrap();
            let took = |node: &str| fused.timings().iter().find(|t| t.0 == node).unwrap().1;
            assert!(took("pool1") == 0.0 && took("conv1") > 0.0);
        }
        // Undone, every value is there again.
        fused.fuse_activations(false);
        fused.forward(&x, &ForwardCtx::default()).unwrap();
        for &fused_node in fused_nodes {
            assert!(fused.value(fused_node).is_some());
        }
    }
}

/// Told that only a plain backward pass from the output follows, a fused net leaves out the
/// ReLU outputs that a max pool alone reads (the convolution pools and takes the pool's
/// gradient): `value` finds nothing there, a backward pass that would read one (another ReLU
/// rule, a seed at the ReLU) fails and names it, the pass from the output and one from the
/// pool run; the next forward pass not told keeps it again.
#[test]
fn a_relu_output_left_out_for_the_backward_pass_is_never_read() {
    let mut net = models::build_for("mnist-cnn", 10, None, 3).unwrap();
    net.fuse_activations(true);
    let x = Tensor::from_vec(&[2, 1, 28, 28], (0..2 * 784).map(|i| ((i * 13) % 17) as f32 / 17.0 - 0.3).collect()).unwrap();
    let told = ForwardCtx { mode: Mode::Train, seed: 1, backward_from_output_only: true, ..Default::default() };
    let seed_at = |net: &Net, node: &str| {
        let shape = net.value(node).map(|v| v.shape().to_vec()).unwrap_or_else(|| vec![2, 32, 28, 28]);
        Tensor::from_vec(&shape, vec![0.5; shape.iter().product()]).unwrap()
    };
    net.forward(&x, &told).unwrap();
    assert!(net.value("relu1").is_none() && net.value("relu2").is_none(), "the pooled ReLUs' outputs are left out");
    assert!(net.value("pool1").is_some() && net.value("relu3").is_some(), "the others are kept");
    for (from, rule) in [("relu1", ReluRule::Plain), ("fc2", ReluRule::Guided), ("pool2", ReluRule::Deconvnet)] {
        let seed = seed_at(&net, from);
        let err = net.backward(from, &seed, &BackwardCtx { rule, ..Default::default() }).unwrap_err().to_string();
        assert!(err.contains("relu") && err.contains("did not keep its output"), "from {from}, {rule:?}: {err}");
    }
    for from in ["fc2", "pool1"] {
        let seed = seed_at(&net, from);
        net.backward(from, &seed, &BackwardCtx::default()).unwrap();
    }
    net.forward(&x, &ForwardCtx { backward_from_output_only: false, ..told }).unwrap();
    assert!(net.value("relu1").is_some());
    let seed = seed_at(&net, "relu1");
    net.backward("relu1", &seed, &BackwardCtx { rule: ReluRule::Guided, ..Default::default() }).unwrap();
}

/// A max pool after a fused ReLU sends the plain gradient through it in one pass; under guided
/// backprop and deconvnet, and from a seed at the ReLU itself, the ReLU's own backward runs as
/// without fusion: the same input gradients bit for bit, on AlexNet (3x3 pools at stride 2, so
/// a cell can take gradients from two windows) and the MNIST net (2x2).
#[test]
fn gradients_through_a_fused_relu_and_pool_are_the_unfused_ones() {
    let cases = [("alexnet", [2, 3, 67, 67], "features.4", "features.5"), ("mnist-cnn", [3, 1, 28, 28], "relu1", "pool1")];
    for (name, shape, relu, pool) in cases {
        let input = (shape[1] != 1).then_some([shape[1], shape[2], shape[3]]);
        let (mut plain, mut fused) = (models::build_for(name, 10, input, 3).unwrap(), models::build_for(name, 10, input, 3).unwrap());
        fused.fuse_activations(true);
        let n: usize = shape.iter().product();
        let x = Tensor::from_vec(&shape, (0..n).map(|i| ((i * 29) % 19) as f32 / 19.0 - 0.45).collect()).unwrap();
        for rule in [ReluRule::Plain, ReluRule::Guided, ReluRule::Deconvnet] {
            for from in [pool, relu] {
                let mut grads = Vec::new();
                for net in [&mut plain, &mut fused] {
                    net.forward(&x, &ForwardCtx::default()).unwrap();
                    let shape = net.value(from).unwrap().shape().to_vec();
                    let seed = Tensor::from_vec(&shape, (0..shape.iter().product()).map(|i| ((i * 7) % 11) as f32 / 11.0 - 0.3).collect()).unwrap();
                    net.backward(from, &seed, &BackwardCtx { rule, param_grads: false, input_grad: true }).unwrap();
                    grads.push(net.input_grad().clone());
                }
                assert!(grads[0].data().iter().any(|&g| g != 0.0), "{name} {rule:?} from {from}: a gradient of zeros proves nothing");
                assert_eq!(grads[0], grads[1], "{name} {rule:?} from {from}");
            }
        }
    }
}

/// `backward_fresh` gives what `zero_grads` and `backward` give, whatever the parameter
/// gradients held before (NaN here): fully connected layers write theirs, the others' and
/// those of layers the pass does not reach (a pass from relu2 leaves the classifier out) are
/// zeroed; the layers add again afterwards.
#[test]
fn fresh_backward_passes_are_zero_then_backward() {
    for (name, shape, from) in [("mnist-cnn", [3, 1, 28, 28], "fc2"), ("mnist-cnn", [3, 1, 28, 28], "relu2"), ("alexnet", [2, 3, 67, 67], "classifier.6")] {
        let input = (shape[1] != 1).then_some([shape[1], shape[2], shape[3]]);
        let (mut plain, mut fresh) = (models::build_for(name, 10, input, 3).unwrap(), models::build_for(name, 10, input, 3).unwrap());
        fresh.fuse_activations(true);
        let n: usize = shape.iter().product();
        let x = Tensor::from_vec(&shape, (0..n).map(|i| ((i * 23) % 19) as f32 / 19.0 - 0.4).collect()).unwrap();
        let ctx = ForwardCtx { mode: Mode::Train, seed: 4, ..Default::default() };
        let back = BackwardCtx::default();
        let mut grads = Vec::new();
        for (k, net) in [&mut plain, &mut fresh].into_iter().enumerate() {
            net.forward(&x, &ctx).unwrap();
            let shape = net.value(from).unwrap().shape().to_vec();
            let seed = Tensor::from_vec(&shape, (0..shape.iter().product()).map(|i| ((i * 5) % 7) as f32 / 7.0 - 0.4).collect()).unwrap();
            if k == 0 {
                net.zero_grads();
                net.backward(from, &seed, &back).unwrap();
            } else {
                net.params_mut().into_iter().for_each(|(_, p)| p.grad.fill(f32::NAN));
                net.backward_fresh(from, &seed, &back).unwrap();
            }
            grads.push(net.params().into_iter().map(|(_, p)| p.grad.clone()).collect::<Vec<_>>());
            if k == 1 {
                // Afterwards a plain pass adds to them again: twice the gradients (up to the
                // order of the sums: a convolution adds per-thread partial sums in turn).
                net.backward(from, &seed, &back).unwrap();
                let doubled: Vec<Tensor> = net.params().into_iter().map(|(_, p)| p.grad.clone()).collect();
                for (d, g) in doubled.iter().zip(&grads[1]) {
                    let twice = |d: f32, g: f32| (d - 2.0 * g).abs() <= 1e-4 * (g.abs() + 1e-3);
                    assert!(d.data().iter().zip(g.data()).all(|(&d, &g)| twice(d, g)), "{name} from {from}: the second pass did not add");
                }
            }
        }
        assert!(grads[0].iter().any(|g| g.data().iter().any(|&v| v != 0.0)), "{name} from {from}: zeros prove nothing");
        assert_eq!(grads[0], grads[1], "{name} from {from}");
    }
}

/// A value's only reader writes its gradient over the buffer the last pass left (the net does
/// not zero it first): gradients after a pass on other images are those of a fresh net, bit for
/// bit, with and without fused activations, through max pools, batch norm, instance norm (the
/// style network), ReLUs, dropout, flattening and fully connected layers.
#[test]
fn gradients_do_not_depend_on_the_pass_before() {
    let zoo = |name: &str, input: Option<[usize; 3]>| match name {
        "style" => {
            let mut net = models::transformer::transformer_net(4, [3, 16, 16]).unwrap();
            net.init(9);
            net
        }
        _ => models::build_for(name, 10, input, 7).unwrap(),
    };
    let cases = [
        ("mnist-cnn", None, [3, 1, 28, 28]),
        ("resnet18", Some([3, 32, 32]), [2, 3, 32, 32]),
        ("alexnet", Some([3, 67, 67]), [2, 3, 67, 67]),
        ("style", None, [2, 3, 16, 16]),
    ];
    for (name, input, shape) in cases {
        let n: usize = shape.iter().product();
        let images = |k: usize| Tensor::from_vec(&shape, (0..n).map(|i| ((i * (29 + 2 * k)) % 17) as f32 / 17.0 - 0.4).collect()).unwrap();
        for fuse in [false, true] {
            let (mut used, mut fresh) = (zoo(name, input), zoo(name, input));
            used.fuse_activations(fuse);
            fresh.fuse_activations(fuse);
            pass(&mut used, &images(1));
            let (a, b) = (pass(&mut used, &images(2)), pass(&mut fresh, &images(2)));
            assert_eq!(a.0, b.0, "{name}, fused {fuse}: output");
            assert_eq!(a.1, b.1, "{name}, fused {fuse}: parameter gradients");
            assert_eq!(a.2, b.2, "{name}, fused {fuse}: input gradient");
        }
    }
}

/// Captum's tables hold with the first ReLU fused into the convolution.
#[test]
fn captum_tables_hold_with_fused_activations() {
    for rule in [ReluRule::Plain, ReluRule::Guided, ReluRule::Deconvnet] {
        let mut net = captum_net();
        net.fuse_activations(true);
        let x = Tensor::from_vec(&[1, 1, 4, 4], (0..16).map(|v| v as f32).collect()).unwrap();
        net.forward(&x, &ForwardCtx::default()).unwrap();
        assert!(net.value("conv").is_none(), "the convolution's ReLU is fused");
        let mut seed = Tensor::zeros(&[1, 4]);
        seed.data_mut()[0] = 1.0;
        net.backward("relu2", &seed, &BackwardCtx { rule, param_grads: false, input_grad: true }).unwrap();
        assert_eq!(net.input_grad().data(), captum_gradient(rule), "{rule:?}");
    }
}
