//! The layers' own rules, in the fast test selection (the slower suites reach them through
//! whole nets): answers to the mutants `cargo mutants` found missed in `src/layers` (see
//! docs/TESTING.md).

use super::*;
use crate::geometry::Window2d;
use crate::rng::Rng;

fn tensor(shape: &[usize], rng: &mut Rng) -> Tensor {
    Tensor::from_vec(shape, rng.uniform_vec(shape.iter().product(), -1.0, 1.0)).unwrap()
}

fn train() -> ForwardCtx {
    ForwardCtx { mode: Mode::Train, seed: 0, ..Default::default() }
}

fn eval() -> ForwardCtx {
    ForwardCtx { mode: Mode::Eval, seed: 0, ..Default::default() }
}

/// The parameter or buffer `name` of a layer, by its PyTorch name.
fn param(layer: &dyn Layer, name: &str) -> Tensor {
    let p = layer.params().into_iter().find(|(n, _)| *n == name).map(|(_, p)| p.value.clone());
    p.or_else(|| layer.buffers().into_iter().find(|(n, _)| *n == name).map(|(_, t)| t.clone())).expect(name)
}

fn set(layer: &mut dyn Layer, name: &str, values: &[f32]) {
    if let Some((_, p)) = layer.params_mut().into_iter().find(|(n, _)| *n == name) {
        p.value.data_mut().copy_from_slice(values);
        return;
    }
    let (_, t) = layer.buffers_mut().into_iter().find(|(n, _)| *n == name).expect(name);
    t.data_mut().copy_from_slice(values);
}

fn close(got: f32, want: f64, what: &str) {
    assert!((got as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()), "{what}: {got} vs {want}");
}

/// `y[c] = x[c] * scale[c] + shift[c]` and `dx += dy * scale[c]`, over two samples (the channel
/// of plane i is i % C).
#[test]
fn channel_affine_is_its_definition() {
    let mut rng = Rng::new(1);
    let (scale, shift) = (vec![2.0, -0.5, 3.0], vec![0.25, 1.0, -2.0]);
    let mut layer = ChannelAffine::new(scale.clone(), shift.clone()).unwrap();
    let shape = [2, 3, 2, 5];
    assert_eq!(layer.output_shape(&[&shape]).unwrap(), shape.to_vec());
    assert!(layer.output_shape(&[&[2, 4, 2, 5]]).is_err(), "4 channels for 3 scales");
    assert!(layer.output_shape(&[&shape, &shape]).is_err(), "two inputs");
    assert!(ChannelAffine::new(vec![1.0], vec![]).is_err());
    let x = tensor(&shape, &mut rng);
    let mut y = Tensor::zeros(&shape);
    layer.forward(&[&x], &mut y, &eval()).unwrap();
    let dy = tensor(&shape, &mut rng);
    let mut dx = Tensor::full(&shape, 0.5);
    layer.backward(&[&x], &y, &dy, &mut [Some(&mut dx)], &BackwardCtx::default()).unwrap();
    for i in 0..x.len() {
        let c = i / 10 % 3;
        close(y.data()[i], x.data()[i] as f64 * scale[c] as f64 + shift[c] as f64, &format!("y[{i}]"));
        close(dx.data()[i], 0.5 + dy.data()[i] as f64 * scale[c] as f64, &format!("dx[{i}]"));
    }
    assert_eq!(layer.kind(), "ChannelAffine");
    assert!(layer.describe().contains("scale [2.0, -0.5, 3.0]"), "{}", layer.describe());
}

/// torchvision's GoogLeNet `_transform_input`: `x[:, c] * (std[c] / 0.5) + (mean[c] - 0.5) / 0.5`.
#[test]
fn googlenet_transform_input_is_torchvisions() {
    let mut layer = ChannelAffine::googlenet_transform_input();
    let x = Tensor::from_vec(&[1, 3, 1, 2], vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0]).unwrap();
    let mut y = Tensor::zeros(&[1, 3, 1, 2]);
    layer.forward(&[&x], &mut y, &eval()).unwrap();
    let (mean, std) = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]);
    for c in 0..3 {
        let shift = (mean[c] - 0.5) / 0.5;
        close(y.data()[2 * c], shift, &format!("channel {c} at 0"));
        close(y.data()[2 * c + 1], std[c] / 0.5 + shift, &format!("channel {c} at 1"));
    }
}

/// Batch norm in both modes against its definition in f64, with an eps large enough (0.5) that
/// a sign slip in `var + eps` shows, running statistics with PyTorch's unbiased variance, and
/// the input gradient of both modes.
#[test]
fn batch_norm_is_its_definition_with_a_large_eps() {
    let mut rng = Rng::new(2);
    let (n, c, plane) = (3, 2, 4);
    let shape = [n, c, 2, 2];
    let (eps, mom) = (0.5f64, 0.3f64);
    let mut bn = BatchNorm2d::new(c).with_eps(eps as f32).with_momentum(mom as f32);
    set(&mut bn, "weight", &[1.5, -0.7]);
    set(&mut bn, "bias", &[0.2, 0.9]);
    // Eval mode reads these (train mode then updates them).
    set(&mut bn, "running_mean", &[0.3, -0.2]);
    set(&mut bn, "running_var", &[0.8, 1.7]);
    let x = tensor(&shape, &mut rng);
    let dy = tensor(&shape, &mut rng);
    let at = |s: usize, ch: usize, p: usize| (s * c + ch) * plane + p;
    for mode in [Mode::Train, Mode::Eval] {
        let mut y = Tensor::zeros(&shape);
        let (rm0, rv0) = (param(&bn, "running_mean"), param(&bn, "running_var"));
        let (rm0, rv0) = (rm0.data(), rv0.data());
        let (weight, bias) = (param(&bn, "weight"), param(&bn, "bias"));
        bn.forward(&[&x], &mut y, &ForwardCtx { mode, seed: 0, ..Default::default() }).unwrap();
        let mut dx = Tensor::full(&shape, 0.25);
        bn.backward(&[&x], &y, &dy, &mut [Some(&mut dx)], &BackwardCtx::default()).unwrap();
        for ch in 0..c {
            let vals: Vec<f64> = (0..n).flat_map(|s| (0..plane).map(move |p| (s, p))).map(|(s, p)| x.data()[at(s, ch, p)] as f64).collect();
            let m = vals.len() as f64;
            let mean = vals.iter().sum::<f64>() / m;
            let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / m;
            let (mu, sigma2) = if mode == Mode::Train { (mean, var) } else { (rm0[ch] as f64, rv0[ch] as f64) };
            let invstd = 1.0 / (sigma2 + eps).sqrt();
            let (gamma, beta) = (weight.data()[ch] as f64, bias.data()[ch] as f64);
            let dys: Vec<f64> = (0..n).flat_map(|s| (0..plane).map(move |p| (s, p))).map(|(s, p)| dy.data()[at(s, ch, p)] as f64).collect();
            let (sum_dy, sum_dy_xhat) = dys.iter().zip(&vals).fold((0.0, 0.0), |(a, b), (g, v)| (a + g, b + g * (v - mu) * invstd));
            for (k, (v, g)) in vals.iter().zip(&dys).enumerate() {
                let (s, p) = (k / plane, k % plane);
                let xhat = (v - mu) * invstd;
                close(y.data()[at(s, ch, p)], gamma * xhat + beta, &format!("{mode:?} y ch {ch} [{k}]"));
                let want_dx = match mode {
                    Mode::Train => gamma * invstd / m * (m * g - sum_dy - xhat * sum_dy_xhat),
                    Mode::Eval => g * gamma * invstd,
                };
                close(dx.data()[at(s, ch, p)], 0.25 + want_dx, &format!("{mode:?} dx ch {ch} [{k}]"));
            }
            if mode == Mode::Train {
                close(param(&bn, "running_mean").data()[ch], (1.0 - mom) * rm0[ch] as f64 + mom * mean, "running mean");
                close(param(&bn, "running_var").data()[ch], (1.0 - mom) * rv0[ch] as f64 + mom * var * m / (m - 1.0), "running var");
            }
        }
    }
}

/// Training mode needs two values per channel: one is refused by name, two are enough.
#[test]
fn batch_norm_trains_on_two_values_per_channel_and_no_fewer() {
    let mut bn = BatchNorm2d::new(2);
    let two = Tensor::from_vec(&[2, 2, 1, 1], vec![1.0, 2.0, 3.0, 5.0]).unwrap();
    let mut y = Tensor::zeros(&[2, 2, 1, 1]);
    bn.forward(&[&two], &mut y, &train()).unwrap();
    close(y.data()[0], -1.0 / (1.0f64 + 1e-5).sqrt(), "x = 1 of (1, 3)");
    let one = Tensor::from_vec(&[1, 2, 1, 1], vec![1.0, 2.0]).unwrap();
    let mut y1 = Tensor::zeros(&[1, 2, 1, 1]);
    let err = bn.forward(&[&one], &mut y1, &train()).unwrap_err().to_string();
    assert!(err.contains("more than one value per channel"), "{err}");
}

/// `init` restores PyTorch's fresh state; MACs are one per value.
#[test]
fn batch_norm_init_and_macs() {
    let mut bn = BatchNorm2d::new(3);
    let names = ["weight", "bias", "running_mean", "running_var"];
    for name in names {
        set(&mut bn, name, &[4.0; 3]);
    }
    bn.init(&mut Rng::new(0));
    for (name, want) in names.into_iter().zip([1.0, 0.0, 0.0, 1.0]) {
        assert_eq!(param(&bn, name).data(), &[want; 3], "{name} after init");
    }
    assert_eq!(bn.macs(&[&[1, 3, 4, 5]]), 60);
    assert_eq!(bn.kind(), "BatchNorm2d");
    assert_eq!(bn.describe(), "3 eps 0.00001 momentum 0.1");
}

/// Concat takes two or more inputs (any number), equal but for channels.
#[test]
fn concat_takes_two_or_more_inputs() {
    let c = Concat;
    assert!(c.output_shape(&[&[1, 2, 3, 3]]).is_err());
    assert_eq!(c.output_shape(&[&[1, 2, 3, 3], &[1, 5, 3, 3]]).unwrap(), vec![1, 7, 3, 3]);
    assert_eq!(c.output_shape(&[&[1, 2, 3, 3], &[1, 5, 3, 3], &[1, 1, 3, 3]]).unwrap(), vec![1, 8, 3, 3]);
    assert!(c.output_shape(&[&[1, 2, 3, 3], &[1, 5, 3, 4]]).is_err());
    assert_eq!(c.kind(), "Concat");
    assert_eq!(Add.kind(), "Add");
}

/// What summaries and error messages call each layer: its kind and its settings in a few words.
#[test]
fn every_layer_names_its_kind_and_settings() {
    let conv = Conv2d::new(Conv2dConfig::new(6, 4, 3).stride(2).groups(2).bias(false)).unwrap();
    let rows: Vec<(Box<dyn Layer>, &str, &str)> = vec![
        (Box::new(Conv2d::new(Conv2dConfig::new(1, 32, 5).padding(crate::geometry::Padding::Same)).unwrap()), "Conv2d", "32 5x5 s1 SAME"),
        (Box::new(conv), "Conv2d", "4 3x3 s2 VALID groups 2 no bias"),
        (Box::new(Dropout::new(0.25).unwrap()), "Dropout", "p 0.25"),
        (Box::new(Flatten), "Flatten", ""),
        (Box::new(Linear::new(3136, 1024)), "Linear", "3136 -> 1024"),
        (Box::new(Lrn::alexnet()), "LRN", "size 5 alpha 0.0001 beta 0.75 k 2"),
        (Box::new(MaxPool2d::square(3, 2)), "MaxPool2d", "3x3 s2 VALID"),
        (Box::new(AvgPool2d::square(2, 2)), "AvgPool2d", "2x2 s2 VALID"),
        (Box::new(AdaptiveAvgPool2d::new(6, 6).unwrap()), "AdaptiveAvgPool2d", "to 6x6"),
        (Box::new(Relu), "ReLU", ""),
        (Box::new(Softmax), "Softmax", ""),
    ];
    let wrong: Vec<String> = rows
        .iter()
        .filter(|(layer, kind, describe)| (layer.kind(), layer.describe().as_str()) != (*kind, *describe))
        .map(|(layer, kind, describe)| format!("{:?} {:?}, not {kind:?} {describe:?}", layer.kind(), layer.describe()))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// The lecture's rule for pooling: `(N - F) % S` rows and columns a window leaves over; windows
/// without dilation, of at least one cell and stride one.
#[test]
fn pooling_windows_are_checked_and_report_their_leftovers() {
    let input: &[usize] = &[1, 2, 8, 7];
    let max = MaxPool2d::square(3, 2);
    let avg = AvgPool2d::square(3, 2);
    // Rows: (8 - 3) % 2 = 1; columns: (7 - 3) % 2 = 0.
    assert_eq!(max.leftover(&[input]), (1, 0));
    assert_eq!(avg.leftover(&[input]), (1, 0));
    assert_eq!(MaxPool2d::square(2, 2).leftover(&[&[1, 1, 5, 6]]), (1, 0));
    // And the other way round: rows (7 - 3) % 2 = 0, columns (8 - 3) % 2 = 1.
    assert_eq!(max.leftover(&[&[1, 2, 7, 8]]), (0, 1));
    assert_eq!(avg.leftover(&[&[1, 2, 7, 8]]), (0, 1));
    let window = |k: [usize; 2], s: [usize; 2], d: [usize; 2]| Window2d { kernel: k, stride: s, dilation: d, ..*max.window() };
    for (k, s, d) in [([0, 2], [1, 1], [1, 1]), ([2, 2], [1, 0], [1, 1]), ([2, 2], [2, 2], [2, 1])] {
        assert!(MaxPool2d::new(window(k, s, d)).is_err(), "max pool kernel {k:?} stride {s:?} dilation {d:?}");
        assert!(AvgPool2d::new(window(k, s, d)).is_err(), "avg pool kernel {k:?} stride {s:?} dilation {d:?}");
    }
    assert!(MaxPool2d::new(window([2, 3], [1, 2], [1, 1])).is_ok());
    // Style transfer swaps max pools for average pools through this.
    assert_eq!(max.max_pool_window(), Some(*max.window()));
    assert_eq!(avg.max_pool_window(), None);
}

/// Receptive fields through adaptive pooling (PyTorch's bins: `floor(i N / n)` to
/// `ceil((i + 1) N / n)`) and through flattening (every cell of the map).
#[test]
fn adaptive_pooling_and_flatten_pass_receptive_fields_back() {
    let pool = AdaptiveAvgPool2d::new(3, 2).unwrap();
    // Rows 7 -> 3 bins [0, 3), [2, 5), [4, 7); columns 5 -> 2 bins [0, 3), [2, 5).
    let r = pool.input_region(0, &[1, 4, 7, 5], Region { y0: 1, y1: 1, x0: 1, x1: 1 });
    assert_eq!(r, Region { y0: 2, y1: 4, x0: 2, x1: 4 });
    let r = pool.input_region(0, &[1, 4, 7, 5], Region { y0: 0, y1: 2, x0: 0, x1: 0 });
    assert_eq!(r, Region { y0: 0, y1: 6, x0: 0, x1: 2 });
    assert_eq!(Flatten.input_region(0, &[1, 3, 5, 6], Region::cell(0, 7)), Region::full(5, 6));
}

/// PyTorch's initialisation: uniform in `±1 / sqrt(fan_in)`, fan_in counting the input
/// channels of one group and the kernel's cells (2,880 and 400 draws reach close to the bound).
#[test]
fn conv_and_linear_initialise_as_pytorch() {
    let mut rng = Rng::new(7);
    let mut conv = Conv2d::new(Conv2dConfig { kernel: [3, 5], ..Conv2dConfig::new(6, 64, 3).groups(2) }).unwrap();
    let mut linear = Linear::new(50, 8);
    conv.init(&mut rng);
    linear.init(&mut rng);
    for (layer, fan_in) in [(&conv as &dyn Layer, 3.0 * 15.0), (&linear as &dyn Layer, 50.0)] {
        let bound = 1.0 / (fan_in as f32).sqrt();
        for name in ["weight", "bias"] {
            let t = param(layer, name);
            let top = t.data().iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let want_near = if name == "weight" { 0.95 } else { 0.5 };
            assert!(top <= bound && top >= want_near * bound, "{} {name}: largest |value| {top}, bound {bound}", layer.kind());
        }
    }
    assert_eq!(linear.macs(&[&[1, 50]]), 400);
}

#[test]
fn linear_refuses_another_feature_count() {
    let linear = Linear::new(6, 3);
    assert_eq!(linear.output_shape(&[&[2, 6]]).unwrap(), vec![2, 3]);
    assert!(linear.output_shape(&[&[2, 7]]).is_err());
    assert!(linear.output_shape(&[&[2, 6, 1]]).is_err());
}

/// Softmax over each row of `[N, K]`, against its definition.
#[test]
fn softmax_is_its_definition() {
    let mut rng = Rng::new(3);
    let x = tensor(&[2, 5], &mut rng);
    let mut layer = Softmax;
    assert_eq!(layer.output_shape(&[&[2, 5]]).unwrap(), vec![2, 5]);
    assert!(layer.output_shape(&[&[2, 0]]).is_err());
    let mut y = Tensor::zeros(&[2, 5]);
    layer.forward(&[&x], &mut y, &eval()).unwrap();
    for (row, out) in x.data().chunks(5).zip(y.data().chunks(5)) {
        let total: f64 = row.iter().map(|&v| (v as f64).exp()).sum();
        for (&v, &p) in row.iter().zip(out) {
            close(p, (v as f64).exp() / total, "softmax");
        }
    }
}
