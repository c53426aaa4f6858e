//! Finite-difference gradient checks for every layer, for the loss, and for a branching net.
//! The objective is `L = sum(out * R)` for a fixed random `R`, summed in f64; its gradient with
//! respect to each input value and each parameter is compared with a central difference.
//!
//! Each gradient tensor is judged as a whole: the relative error of its sampled values,
//! `|analytic - numeric| / |numeric|` (Euclidean norms), must stay under `REL_TOL`, and the
//! numeric gradient must not be negligible. A zero, halved or sign-flipped gradient gives a
//! relative error of 1, 0.5 or 2, so none can pass by accident (the test
//! `the_check_rejects_wrong_gradients` holds the check itself to that).

use fovea::geometry::{Padding, Window2d};
use fovea::layers::*;
use fovea::rng::Rng;
use fovea::{BackwardCtx, ForwardCtx, Layer, Mode, Net, Tensor};

const EPS: f64 = 1e-2;

fn objective(layer: &mut dyn Layer, inputs: &[Tensor], r: &Tensor, mode: Mode) -> f64 {
    let refs: Vec<&Tensor> = inputs.iter().collect();
    let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape()).collect();
    let mut out = Tensor::zeros(&layer.output_shape(&shapes).unwrap());
    layer.forward(&refs, &mut out, &ForwardCtx { mode, seed: 9, ..Default::default() }).unwrap();
    out.data().iter().zip(r.data()).map(|(a, b)| *a as f64 * *b as f64).sum()
}

/// Largest accepted `|analytic - numeric| / |numeric|` over one tensor's sampled values.
const REL_TOL: f64 = 1e-2;

/// Pairs of (analytic, numeric) values of one gradient tensor.
#[derive(Default)]
struct Compared(Vec<(f64, f64)>);

impl Compared {
    fn push(&mut self, analytic: f32, numeric: f64) {
        self.0.push((analytic as f64, numeric));
    }

    /// `|a - n| / |n|` over the pairs. A gradient that is truly zero (a bias before batch
    /// norm) has a numeric norm at the level of rounding; it is divided by that level instead,
    /// so the analytic one must be as small.
    fn relative_error(&self) -> f64 {
        assert!(!self.0.is_empty(), "no values compared");
        let err: f64 = self.0.iter().map(|(a, n)| (a - n) * (a - n)).sum::<f64>().sqrt();
        let norm: f64 = self.0.iter().map(|(_, n)| n * n).sum::<f64>().sqrt();
        err / norm.max(5e-3 * (self.0.len() as f64).sqrt())
    }

    fn assert_close(&self, what: &str) {
        let rel = self.relative_error();
        println!("{what}: relative error {rel:.1e} over {} values", self.0.len());
        if rel > REL_TOL {
            let (i, (a, n)) = self.0.iter().enumerate().max_by(|x, y| (x.1 .0 - x.1 .1).abs().total_cmp(&(y.1 .0 - y.1 .1).abs())).unwrap();
            panic!("{what}: relative error {rel:.2e} over {} values (worst: sample {i}, backward {a}, finite difference {n})", self.0.len());
        }
    }
}

/// Checks the input and parameter gradients of `layer` at `inputs`.
fn check(name: &str, layer: &mut dyn Layer, mut inputs: Vec<Tensor>, mode: Mode) {
    let mut rng = Rng::new(3);
    let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape()).collect();
    let out_shape = layer.output_shape(&shapes).unwrap();
    let r = Tensor::from_vec(&out_shape, rng.uniform_vec(out_shape.iter().product(), -1.0, 1.0)).unwrap();

    // Analytic gradients.
    for (_, p) in layer.params_mut() {
        p.grad.fill(0.0);
    }
    let refs: Vec<&Tensor> = inputs.iter().collect();
    let mut out = Tensor::zeros(&out_shape);
    layer.forward(&refs, &mut out, &ForwardCtx { mode, seed: 9, ..Default::default() }).unwrap();
    let mut d_inputs: Vec<Tensor> = inputs.iter().map(|t| Tensor::zeros(t.shape())).collect();
    {
        let mut slots: Vec<Option<&mut Tensor>> = d_inputs.iter_mut().map(Some).collect();
        layer.backward(&refs, &out, &r, &mut slots, &BackwardCtx::default()).unwrap();
    }
    let param_grads: Vec<(String, Tensor)> = layer.params().into_iter().map(|(n, p)| (n.to_string(), p.grad.clone())).collect();

    // Numeric gradients with respect to the inputs (a sample of at most 60 values each).
    for k in 0..inputs.len() {
        let len = inputs[k].len();
        let step = (len / 60).max(1);
        let mut compared = Compared::default();
        for i in (0..len).step_by(step) {
            let orig = inputs[k].data()[i];
            inputs[k].data_mut()[i] = orig + EPS as f32;
            let up = objective(layer, &inputs, &r, mode);
            inputs[k].data_mut()[i] = orig - EPS as f32;
            let down = objective(layer, &inputs, &r, mode);
            inputs[k].data_mut()[i] = orig;
            compared.push(d_inputs[k].data()[i], (up - down) / (2.0 * EPS));
        }
        compared.assert_close(&format!("{name}: d input{k}"));
    }
    // ... and with respect to each parameter.
    for (pname, grad) in param_grads {
        let len = grad.len();
        let step = (len / 40).max(1);
        let mut compared = Compared::default();
        for i in (0..len).step_by(step) {
            let nudge = |layer: &mut dyn Layer, delta: f32| {
                for (n, p) in layer.params_mut() {
                    if n == pname {
                        p.value.data_mut()[i] += delta;
                    }
                }
            };
            nudge(layer, EPS as f32);
            let up = objective(layer, &inputs, &r, mode);
            nudge(layer, -2.0 * EPS as f32);
            let down = objective(layer, &inputs, &r, mode);
            nudge(layer, EPS as f32);
            compared.push(grad.data()[i], (up - down) / (2.0 * EPS));
        }
        compared.assert_close(&format!("{name}: d {pname}"));
    }
}

fn random(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    Tensor::from_vec(shape, rng.uniform_vec(shape.iter().product(), -1.0, 1.0)).unwrap()
}

/// Distinct values on a grid 0.1 apart, shuffled, so no max-pool tie or ReLU kink lies within
/// a finite-difference step.
fn distinct(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut v: Vec<f32> = (0..n).map(|i| (i as f32 - n as f32 / 2.0) * 0.1 + 0.05).collect();
    Rng::new(seed).shuffle(&mut v);
    Tensor::from_vec(shape, v).unwrap()
}

fn initialised<L: Layer>(mut layer: L) -> L {
    layer.init(&mut Rng::new(5));
    layer
}

#[test]
fn conv2d_gradients() {
    let cases = [
        Conv2dConfig::new(3, 4, 3).pad(1),
        Conv2dConfig::new(2, 3, 5).padding(Padding::Same).stride(2),
        Conv2dConfig::new(4, 6, 3).groups(2).dilation(2).padding(Padding::Same),
        Conv2dConfig::new(3, 2, 1).bias(false),
        Conv2dConfig { kernel: [2, 3], stride: [1, 2], padding: Padding::explicit([0, 1, 2, 0]), ..Conv2dConfig::new(2, 2, 1) },
    ];
    for (i, cfg) in cases.into_iter().enumerate() {
        let mut conv = initialised(Conv2d::new(cfg).unwrap());
        check(&format!("conv case {i}"), &mut conv, vec![random(&[2, cfg.in_channels, 7, 6], i as u64)], Mode::Train);
    }
}

#[test]
fn pooling_gradients() {
    let x = distinct(&[2, 3, 7, 7], 1);
    check("max 2x2 s2", &mut MaxPool2d::square(2, 2), vec![x.clone()], Mode::Train);
    check("max 3x3 s2 overlapping", &mut MaxPool2d::square(3, 2), vec![x.clone()], Mode::Train);
    check("max 3x3 s2 ceil", &mut MaxPool2d::square(3, 2).with_ceil_mode(true), vec![x.clone()], Mode::Train);
    check("max 2x2 SAME", &mut MaxPool2d::square(2, 2).with_padding(Padding::Same), vec![x.clone()], Mode::Train);
    check("avg 3x3 s1 SAME", &mut AvgPool2d::square(3, 1).with_padding(Padding::Same), vec![x.clone()], Mode::Train);
    let w = Window2d { kernel: [2, 3], stride: [2, 1], dilation: [1, 1], padding: Padding::uniform(1), ceil_mode: false };
    check("avg 2x3 pad 1", &mut AvgPool2d::new(w).unwrap(), vec![x.clone()], Mode::Train);
    check("adaptive 7 -> 3", &mut AdaptiveAvgPool2d::new(3, 2).unwrap(), vec![x.clone()], Mode::Train);
    check("global", &mut AdaptiveAvgPool2d::global(), vec![x], Mode::Train);
}

#[test]
fn dense_and_elementwise_gradients() {
    check("linear", &mut initialised(Linear::new(12, 5)), vec![random(&[3, 12], 2)], Mode::Train);
    check("relu", &mut Relu, vec![distinct(&[2, 3, 4, 4], 3)], Mode::Train);
    check("softmax", &mut Softmax, vec![random(&[3, 6], 4)], Mode::Train);
    check("flatten", &mut Flatten, vec![random(&[2, 3, 2, 2], 5)], Mode::Train);
    check("dropout train", &mut Dropout::new(0.3).unwrap(), vec![random(&[4, 20], 6)], Mode::Train);
    check("dropout eval", &mut Dropout::new(0.3).unwrap(), vec![random(&[4, 20], 6)], Mode::Eval);
    check("add", &mut Add::default(), vec![random(&[2, 3, 2, 2], 7), random(&[2, 3, 2, 2], 8), random(&[2, 3, 2, 2], 9)], Mode::Train);
    check("concat", &mut Concat, vec![random(&[2, 1, 3, 2], 7), random(&[2, 3, 3, 2], 8)], Mode::Train);
}

#[test]
fn normalisation_gradients() {
    // Large inputs so that LRN's normalisation really bends the output.
    let mut x = random(&[2, 7, 3, 3], 10);
    x.data_mut().iter_mut().for_each(|v| *v *= 30.0);
    check("lrn alexnet", &mut Lrn::new(5, 1e-2, 0.75, 2.0).unwrap(), vec![x], Mode::Train);
    check("lrn size 4", &mut Lrn::new(4, 0.5, 0.75, 1.0).unwrap(), vec![random(&[2, 6, 2, 2], 11)], Mode::Train);
    let mut bn = BatchNorm2d::new(3);
    for (_, p) in bn.params_mut() {
        p.value = random(&[3], 12);
    }
    check("batchnorm train", &mut bn, vec![random(&[4, 3, 3, 3], 13)], Mode::Train);
    check("batchnorm eval", &mut bn, vec![random(&[4, 3, 3, 3], 14)], Mode::Eval);
    let mut inorm = InstanceNorm2d::new(3);
    for (_, p) in inorm.params_mut() {
        p.value = random(&[3], 15);
    }
    check("instance norm", &mut inorm, vec![random(&[2, 3, 3, 4], 16)], Mode::Train);
    check("instance norm eval", &mut inorm, vec![random(&[2, 3, 3, 4], 17)], Mode::Eval);
}

#[test]
fn resampling_gradients() {
    check("reflection pad 2", &mut ReflectionPad2d::uniform(2), vec![random(&[2, 2, 3, 4], 18)], Mode::Train);
    check("reflection pad [1, 2, 3, 0]", &mut ReflectionPad2d::new([1, 2, 3, 0]), vec![random(&[1, 2, 4, 5], 19)], Mode::Train);
    check("upsample x2", &mut UpsampleNearest2d::new(2).unwrap(), vec![random(&[2, 2, 3, 2], 20)], Mode::Train);
    check("upsample x3", &mut UpsampleNearest2d::new(3).unwrap(), vec![random(&[1, 2, 2, 3], 21)], Mode::Train);
}

#[test]
fn cross_entropy_gradient() {
    let logits = random(&[4, 7], 15);
    let labels = [0, 6, 3, 3];
    let r = fovea::loss::softmax_cross_entropy(&logits, &labels).unwrap();
    let mut compared = Compared::default();
    for i in 0..logits.len() {
        let mut up = logits.clone();
        up.data_mut()[i] += EPS as f32;
        let mut down = logits.clone();
        down.data_mut()[i] -= EPS as f32;
        compared.push(r.d_logits.data()[i], (xent_f64(&up, &labels) - xent_f64(&down, &labels)) / (2.0 * EPS));
    }
    compared.assert_close("xent d logits");
    // Logits of 1000 and more stay finite.
    let big = Tensor::from_vec(&[1, 3], vec![1000.0, 1010.0, -1000.0]).unwrap();
    let r = fovea::loss::softmax_cross_entropy(&big, &[0]).unwrap();
    assert!((r.loss - 10.0).abs() < 1e-3, "loss {}", r.loss);
}

/// A small net with every kind of merge: a value feeding two branches, a channel
/// concatenation, a residual addition, batch norm, pooling and a classifier. Two values are
/// read by layers that write their input's gradient outright when they are its only reader
/// (dropout, a fully connected layer), each before another reader, so a writer that
/// overwrote the other's share would show.
fn branching_net() -> Net {
    let mut net = Net::new(&[2, 8, 8]);
    net.add("stem", Conv2d::new(Conv2dConfig::new(2, 4, 3).pad(1)).unwrap(), &["input"]).unwrap();
    net.add("stem_relu", Relu, &["stem"]).unwrap();
    // No biases before batch norm (as ResNet): their true gradient is zero, which a finite
    // difference through f32 rounding cannot confirm.
    net.add("b1", Conv2d::new(Conv2dConfig::new(4, 2, 1).bias(false)).unwrap(), &["stem_relu"]).unwrap();
    net.add("b2", Conv2d::new(Conv2dConfig::new(4, 2, 3).pad(1).bias(false)).unwrap(), &["stem_relu"]).unwrap();
    net.add("cat", Concat, &["b1", "b2"]).unwrap();
    net.add("bn", BatchNorm2d::new(4), &["cat"]).unwrap();
    net.add("res", Add, &["bn", "stem_relu"]).unwrap();
    net.add("pool", MaxPool2d::square(2, 2), &["res"]).unwrap();
    net.add("drop", Dropout::new(0.25).unwrap(), &["pool"]).unwrap();
    net.add("mix", Add, &["drop", "pool"]).unwrap();
    net.add("gap", AdaptiveAvgPool2d::new(2, 2).unwrap(), &["mix"]).unwrap();
    net.add("flat", Flatten, &["gap"]).unwrap();
    net.add("fc_a", Linear::new(16, 3), &["flat"]).unwrap();
    net.add("fc_b", Linear::new(16, 3), &["flat"]).unwrap();
    net.add("fc", Add, &["fc_a", "fc_b"]).unwrap();
    net.init(1);
    net
}

/// Smaller than `EPS`: a bias step of 0.01 moves many ReLU and max-pool inputs across a kink.
const NET_EPS: f64 = 1e-3;

/// The mean cross-entropy of `[N, classes]` logits, in f64 (so a finite difference of it is
/// not drowned by the rounding of an f32 loss).
fn xent_f64(logits: &Tensor, labels: &[usize]) -> f64 {
    let classes = logits.shape()[1];
    let rows = logits.data().chunks(classes);
    let total: f64 = rows
        .zip(labels)
        .map(|(row, &label)| {
            let max = row.iter().fold(f64::MIN, |m, &v| m.max(v as f64));
            let lse = max + row.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
            lse - row[label] as f64
        })
        .sum();
    total / labels.len() as f64
}

#[test]
fn net_gradients_through_branches_and_merges() {
    let mut net = branching_net();
    let x = random(&[3, 2, 8, 8], 20);
    let labels = [0, 2, 1];
    let ctx = ForwardCtx { mode: Mode::Train, seed: 0, ..Default::default() };
    let loss_at = |net: &mut Net, x: &Tensor| -> f64 {
        let logits = net.forward(x, &ctx).unwrap().clone();
        xent_f64(&logits, &labels)
    };
    let logits = net.forward(&x, &ctx).unwrap().clone();
    let r = fovea::loss::softmax_cross_entropy(&logits, &labels).unwrap();
    net.zero_grads();
    net.backward("fc", &r.d_logits, &BackwardCtx::default()).unwrap();
    let dx = net.input_grad().clone();
    let grads: Vec<(String, Tensor)> = net.params().into_iter().map(|(n, p)| (n, p.grad.clone())).collect();
    let mut compared = Compared::default();
    for i in (0..x.len()).step_by(7) {
        let (mut up, mut down) = (x.clone(), x.clone());
        up.data_mut()[i] += NET_EPS as f32;
        down.data_mut()[i] -= NET_EPS as f32;
        let num = (loss_at(&mut net, &up) - loss_at(&mut net, &down)) / (2.0 * NET_EPS);
        compared.push(dx.data()[i], num);
    }
    compared.assert_close("net d input");
    for (name, g) in grads {
        let mut compared = Compared::default();
        for i in (0..g.len()).step_by((g.len() / 5).max(1)) {
            let set = |net: &mut Net, delta: f32| {
                for (n, p) in net.params_mut() {
                    if n == name {
                        p.value.data_mut()[i] += delta;
                    }
                }
            };
            set(&mut net, NET_EPS as f32);
            let up = loss_at(&mut net, &x);
            set(&mut net, -2.0 * NET_EPS as f32);
            let down = loss_at(&mut net, &x);
            set(&mut net, NET_EPS as f32);
            compared.push(g.data()[i], (up - down) / (2.0 * NET_EPS));
        }
        compared.assert_close(&format!("net d {name}"));
    }
}

/// The check itself: a right gradient passes; zero, halved, doubled, sign-flipped or one
/// wrong value in twenty fail; a true zero passes only as a zero.
#[test]
fn the_check_rejects_wrong_gradients() {
    let numeric: Vec<f64> = (0..20).map(|i| ((i * 7 % 11) as f64 - 5.0) * 0.01).collect();
    let with = |f: &dyn Fn(usize, f64) -> f64| Compared(numeric.iter().enumerate().map(|(i, &n)| (f(i, n), n)).collect());
    assert!(with(&|_, n| n * (1.0 + 1e-3)).relative_error() <= REL_TOL);
    for (what, f) in [
        ("zero", &(|_, _| 0.0) as &dyn Fn(usize, f64) -> f64),
        ("halved", &|_, n| n / 2.0),
        ("doubled", &|_, n| n * 2.0),
        ("sign", &|_, n| -n),
        ("one wrong", &|i, n| if i == 3 { n + 0.05 } else { n }),
    ] {
        let rel = with(f).relative_error();
        assert!(rel > REL_TOL, "{what}: relative error {rel}");
    }
    assert!(Compared(vec![(0.0, 3e-5); 10]).relative_error() <= REL_TOL, "a true zero");
    assert!(Compared(vec![(1e-2, 1e-6); 10]).relative_error() > REL_TOL, "a zero gradient computed as 0.01");
}
