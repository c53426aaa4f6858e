//! Runs every PyTorch-computed case in `tests/data/golden/` (or in `$FOVEA_GOLDEN_DIR`) through
//! fovea's layers and net, and compares outputs and gradients; convolution cases also run on
//! every kernel path the CPU has; every case runs in thread pools of 1, 2 and 3. One line per case; any mismatch,
//! unknown op or empty directory fails the test. The schema is `tests/data/golden/SCHEMA.md`.

use fovea::io::safetensors::{read, TensorFile};
use fovea::kernels::conv::{conv2d_backward_via, conv2d_forward_via, ConvDims, ConvPath, ConvScratch, Kernel};
use fovea::layers::{AvgPool2d, BatchNorm2d, Conv2d, Conv2dConfig, InstanceNorm2d, Linear, Lrn, MaxPool2d, ReflectionPad2d, UpsampleNearest2d};
use fovea::loss::softmax_cross_entropy;
use fovea::{models, BackwardCtx, ForwardCtx, Layer, Mode, Padding, Param, ReluRule, Tensor, Window2d};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// `|a - b| <= tol + tol * |b|`, as SCHEMA.md suggests.
const TOL: f32 = 1e-4;
/// Whole networks accumulate more rounding.
const NET_TOL: f32 = 1e-3;
/// Winograd's weight gradient (`kernels/conv/winograd/weight_grad.rs`) may round this many
/// float epsilons of each weight's sum of absolute terms on top of `TOL`: its products sum over
/// every block of every sample in the transform's domain, where values are larger than the
/// result. A weight that is a small difference of large terms (0.1 of terms summing to ~275 in
/// `k_conv_1600_taps`) then lies 1.3e-4 from PyTorch's, 1.2 times `TOL` (measured 2.4-12 units
/// on random operands; PyTorch's own direct sums round at about one).
const WINOGRAD_WEIGHT_GRAD_ULPS: f32 = 16.0 * f32::EPSILON;

struct Case {
    path: PathBuf,
    file: TensorFile,
    params: Value,
    /// Mismatches found so far.
    errors: Vec<String>,
}

impl Case {
    fn t(&self, name: &str) -> Result<&Tensor, String> {
        self.file.floats.get(name).ok_or_else(|| format!("the case has no tensor {name:?}"))
    }

    fn labels(&self) -> Result<Vec<usize>, String> {
        let (_, v) = self.file.ints.get("labels").ok_or("the case has no int tensor \"labels\"")?;
        Ok(v.iter().map(|&l| l as usize).collect())
    }

    fn check(&mut self, what: &str, got: &Tensor, want_name: &str, tol: f32) -> Result<(), String> {
        self.check_within(what, got, want_name, tol, None)
    }

    /// `check`, allowing `units x size[i]` more where `size` is given.
    fn check_within(&mut self, what: &str, got: &Tensor, want_name: &str, tol: f32, size: Option<(&[f32], f32)>) -> Result<(), String> {
        let want = self.t(want_name)?.clone();
        if got.shape() != want.shape() {
            self.errors.push(format!("{what}: shape {:?}, PyTorch {:?}", got.shape(), want.shape()));
            return Ok(());
        }
        let mut worst: Option<(usize, f32, f32)> = None;
        let mut bad = 0;
        for (i, (&a, &b)) in got.data().iter().zip(want.data()).enumerate() {
            let slack = size.map_or(0.0, |(s, units)| units * s[i]);
            // Negated so that a NaN counts as a mismatch.
            #[allow(clippy::neg_cmp_op_on_partial_ord)]
            if !((a - b).abs() <= tol + tol * b.abs() + slack) {
                bad += 1;
                if worst.is_none_or(|(_, wa, wb)| (a - b).abs() > (wa - wb).abs()) {
                    worst = Some((i, a, b));
                }
            }
        }
        if let Some((i, a, b)) = worst {
            self.errors.push(format!("{what}: {bad} of {} values differ, worst at [{i}]: fovea {a}, PyTorch {b}", got.len()));
        }
        Ok(())
    }
}

impl Case {
    /// `check` with the tolerance scaled to the largest reference value (maps whose values are
    /// all far below 1, where an absolute floor would let a blank map pass).
    fn check_scaled(&mut self, what: &str, got: &Tensor, want_name: &str) -> Result<(), String> {
        let scale = self.t(want_name)?.data().iter().fold(0.0f32, |m, v| m.max(v.abs()));
        if scale == 0.0 {
            return Err(format!("{want_name} is all zero: nothing to compare"));
        }
        let (mut g, w) = (got.clone(), self.t(want_name)?.clone());
        g.data_mut().iter_mut().for_each(|v| *v /= scale);
        let name = format!("{want_name} (scaled)");
        let mut scaled = w.clone();
        scaled.data_mut().iter_mut().for_each(|v| *v /= scale);
        self.file.floats.insert(name.clone(), scaled);
        self.check(what, &g, &name, NET_TOL)
    }
}

fn usize_pair(v: &Value, key: &str) -> Result<[usize; 2], String> {
    let a = v[key].as_array().ok_or(format!("params.{key} is not a list"))?;
    match a.as_slice() {
        [x, y] => Ok([x.as_u64().ok_or("not an integer")? as usize, y.as_u64().ok_or("not an integer")? as usize]),
        _ => Err(format!("params.{key} does not have two entries")),
    }
}

fn padding(v: &Value) -> Result<Padding, String> {
    match &v["padding"] {
        Value::String(s) if s == "valid" => Ok(Padding::Valid),
        Value::String(s) if s == "same" => Ok(Padding::Same),
        Value::Array(a) if a.len() == 4 => {
            let p: Vec<usize> = a.iter().map(|x| x.as_u64().unwrap_or(0) as usize).collect();
            Ok(Padding::explicit([p[0], p[1], p[2], p[3]]))
        }
        other => Err(format!("params.padding {other} is not \"valid\", \"same\" or [t, b, l, r]")),
    }
}

fn check_resolved(case: &mut Case, window: &Window2d, input: &Tensor) -> Result<(), String> {
    if case.params.get("resolved_padding").is_none() {
        return Ok(());
    }
    let want: Vec<usize> = case.params["resolved_padding"]
        .as_array()
        .ok_or("resolved_padding is not a list")?
        .iter()
        .map(|x| x.as_u64().unwrap_or(0) as usize)
        .collect();
    let (_, _, h, w) = input.dims4("input").map_err(|e| e.to_string())?;
    let g = window.resolve(h, w).map_err(|e| e.to_string())?;
    if g.padding().to_vec() != want {
        case.errors.push(format!("resolved padding {:?}, PyTorch {:?}", g.padding(), want));
    }
    Ok(())
}

/// Forward, then backward from `grad_output`; returns (output, grad_input).
fn run_layer(layer: &mut dyn Layer, input: &Tensor, grad_output: &Tensor, mode: Mode) -> Result<(Tensor, Tensor), String> {
    let shape = layer.output_shape(&[input.shape()]).map_err(|e| e.to_string())?;
    let mut out = Tensor::zeros(&shape);
    layer.forward(&[input], &mut out, &ForwardCtx { mode, seed: 0, ..Default::default() }).map_err(|e| e.to_string())?;
    let mut d_input = Tensor::zeros(input.shape());
    layer
        .backward(&[input], &out, grad_output, &mut [Some(&mut d_input)], &BackwardCtx::default())
        .map_err(|e| e.to_string())?;
    Ok((out, d_input))
}

fn set_param(layer: &mut dyn Layer, name: &str, value: &Tensor) -> Result<(), String> {
    let mut params = layer.params_mut();
    let p = params.iter_mut().find(|(n, _)| *n == name).ok_or(format!("layer has no parameter {name}"))?;
    if p.1.value.shape() != value.shape() {
        return Err(format!("{name}: case has shape {:?}, layer {:?}", value.shape(), p.1.value.shape()));
    }
    p.1.value = value.clone();
    Ok(())
}

fn grad_of(layer: &dyn Layer, name: &str) -> Tensor {
    layer.params().into_iter().find(|(n, _)| *n == name).map(|(_, p)| p.grad.clone()).unwrap_or_default()
}

fn conv2d(case: &mut Case) -> Result<(), String> {
    let p = case.params.clone();
    let (input, weight) = (case.t("input")?.clone(), case.t("weight")?.clone());
    let bias = p["bias"].as_bool().unwrap_or(false);
    let cfg = Conv2dConfig {
        in_channels: input.shape()[1],
        out_channels: weight.shape()[0],
        kernel: [weight.shape()[2], weight.shape()[3]],
        stride: usize_pair(&p, "stride")?,
        padding: padding(&p)?,
        dilation: usize_pair(&p, "dilation")?,
        groups: p["groups"].as_u64().unwrap_or(1) as usize,
        bias,
    };
    let window = Window2d { kernel: cfg.kernel, stride: cfg.stride, dilation: cfg.dilation, padding: cfg.padding, ceil_mode: false };
    check_resolved(case, &window, &input)?;
    let mut conv = Conv2d::new(cfg).map_err(|e| e.to_string())?;
    set_param(&mut conv, "weight", &weight)?;
    if bias {
        set_param(&mut conv, "bias", case.t("bias")?)?;
    }
    let grad_output = case.t("grad_output")?.clone();
    let (out, d_input) = run_layer(&mut conv, &input, &grad_output, Mode::Train)?;
    let (n, _, h, w) = input.dims4("input").map_err(|e| e.to_string())?;
    let d = ConvDims { n, c_in: cfg.in_channels, c_out: cfg.out_channels, groups: cfg.groups, geom: window.resolve(h, w).map_err(|e| e.to_string())? };
    // Each weight's sum of absolute terms, for the paths that take Winograd's weight gradient:
    // the layer's where `Auto` takes it, the `Winograd` paths where it applies.
    let abs = |t: &Tensor| t.data().iter().map(|v| v.abs()).collect::<Vec<f32>>();
    let mut dw_size = vec![0.0; weight.len()];
    conv2d_backward_via(ConvPath::Gemm, None, Some(&mut dw_size), None, &abs(&grad_output), &abs(&input), weight.data(), &d, &mut ConvScratch::default());
    let winograd_slack = |on: bool| on.then_some((&dw_size[..], WINOGRAD_WEIGHT_GRAD_ULPS));
    let layer_takes_winograd = Kernel::best().is_some() && fovea::kernels::conv::winograd::pays_for_weight_grad(&d);
    case.check("output", &out, "output", TOL)?;
    case.check("grad_input", &d_input, "grad_input", TOL)?;
    case.check_within("grad_weight", &grad_of(&conv, "weight"), "grad_weight", TOL, winograd_slack(layer_takes_winograd))?;
    if bias {
        case.check("grad_bias", &grad_of(&conv, "bias"), "grad_bias", TOL)?;
    }
    // The layer ran the path training takes; the kernels run every path this CPU has, in
    // pools of 1, 2 and 3 threads (batches split by sample, a batch of one by channel block).
    let bias_values = if bias { Some(case.t("bias")?.data().to_vec()) } else { None };
    for path in kernel_paths() {
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(|e| e.to_string())?;
            let mut scratch = ConvScratch::default();
            let mut y = Tensor::zeros(out.shape());
            let (mut dx, mut dw, mut db) = (Tensor::zeros(input.shape()), Tensor::zeros(weight.shape()), Tensor::zeros(&[cfg.out_channels]));
            pool.install(|| {
                conv2d_forward_via(path, y.data_mut(), input.data(), weight.data(), bias_values.as_deref(), &d, &mut scratch);
                conv2d_backward_via(path, Some(dx.data_mut()), Some(dw.data_mut()), Some(db.data_mut()), grad_output.data(), input.data(), weight.data(), &d, &mut scratch);
            });
            let at = format!("{} on {threads} threads", path.forward_name(&d));
            case.check(&format!("output, {at}"), &y, "output", TOL)?;
            case.check(&format!("grad_input, {at}"), &dx, "grad_input", TOL)?;
            let winograd = matches!(path, ConvPath::Winograd(_)) && fovea::kernels::conv::winograd::applies(&d);
            case.check_within(&format!("grad_weight, {at}"), &dw, "grad_weight", TOL, winograd_slack(winograd))?;
            if bias {
                case.check(&format!("grad_bias, {at}"), &db, "grad_bias", TOL)?;
            }
        }
    }
    Ok(())
}

/// `gemm` and every tile this CPU runs, direct and under Winograd (3x3 stride-1 cases of 16
/// channels or more: `k_conv_40_to_72`) (one printed line for each tile it lacks).
fn kernel_paths() -> Vec<ConvPath> {
    let mut paths = vec![ConvPath::Gemm];
    for kernel in [Kernel::AVX2, Kernel::AVX512] {
        if kernel.isa.supported() {
            paths.extend([ConvPath::Tile(kernel), ConvPath::Winograd(kernel)]);
        } else {
            println!("golden conv cases: skipped {} (this CPU lacks {})", kernel.name(), kernel.isa.name());
        }
    }
    paths
}

fn pool(case: &mut Case, max: bool) -> Result<(), String> {
    let p = case.params.clone();
    let window = Window2d {
        kernel: usize_pair(&p, "kernel")?,
        stride: usize_pair(&p, "stride")?,
        dilation: [1, 1],
        padding: padding(&p)?,
        ceil_mode: p["ceil_mode"].as_bool().unwrap_or(false),
    };
    if p["count_include_pad"].as_bool() == Some(true) {
        return Err("count_include_pad = true: fovea averages over real cells only".into());
    }
    let input = case.t("input")?.clone();
    check_resolved(case, &window, &input)?;
    let mut layer: Box<dyn Layer> = if max {
        Box::new(MaxPool2d::new(window).map_err(|e| e.to_string())?)
    } else {
        Box::new(AvgPool2d::new(window).map_err(|e| e.to_string())?)
    };
    let (out, d_input) = run_layer(layer.as_mut(), &input, &case.t("grad_output")?.clone(), Mode::Train)?;
    case.check("output", &out, "output", TOL)?;
    case.check("grad_input", &d_input, "grad_input", TOL)
}

fn linear(case: &mut Case) -> Result<(), String> {
    let (input, weight) = (case.t("input")?.clone(), case.t("weight")?.clone());
    let mut fc = Linear::new(weight.shape()[1], weight.shape()[0]);
    set_param(&mut fc, "weight", &weight)?;
    set_param(&mut fc, "bias", case.t("bias")?)?;
    let (out, d_input) = run_layer(&mut fc, &input, &case.t("grad_output")?.clone(), Mode::Train)?;
    case.check("output", &out, "output", TOL)?;
    case.check("grad_input", &d_input, "grad_input", TOL)?;
    case.check("grad_weight", &grad_of(&fc, "weight"), "grad_weight", TOL)?;
    case.check("grad_bias", &grad_of(&fc, "bias"), "grad_bias", TOL)
}

fn xent(case: &mut Case) -> Result<(), String> {
    let r = softmax_cross_entropy(case.t("logits")?, &case.labels()?).map_err(|e| e.to_string())?;
    case.check("loss", &Tensor::from_vec(&[1], vec![r.loss]).unwrap(), "loss", TOL)?;
    case.check("softmax", &r.probs, "softmax", TOL)?;
    case.check("grad_logits", &r.d_logits, "grad_logits", TOL)
}

fn lrn(case: &mut Case) -> Result<(), String> {
    let p = case.params.clone();
    let f = |k: &str| p[k].as_f64().ok_or(format!("params.{k} is not a number"));
    let mut layer = Lrn::new(f("size")? as usize, f("alpha")? as f32, f("beta")? as f32, f("k")? as f32).map_err(|e| e.to_string())?;
    let (out, d_input) = run_layer(&mut layer, &case.t("input")?.clone(), &case.t("grad_output")?.clone(), Mode::Train)?;
    case.check("output", &out, "output", TOL)?;
    case.check("grad_input", &d_input, "grad_input", TOL)
}

fn batch_norm(case: &mut Case) -> Result<(), String> {
    let p = case.params.clone();
    let eps = p["eps"].as_f64().ok_or("params.eps is not a number")? as f32;
    let momentum = p["momentum"].as_f64().ok_or("params.momentum is not a number")? as f32;
    let input = case.t("input")?.clone();
    let make = |case: &Case| -> Result<BatchNorm2d, String> {
        let mut bn = BatchNorm2d::new(input.shape()[1]).with_eps(eps).with_momentum(momentum);
        set_param(&mut bn, "weight", case.t("gamma")?)?;
        set_param(&mut bn, "bias", case.t("beta")?)?;
        for (name, t) in bn.buffers_mut() {
            *t = case.t(&format!("{name}_before"))?.clone();
        }
        Ok(bn)
    };
    let mut bn = make(case)?;
    let (out, d_input) = run_layer(&mut bn, &input, &case.t("grad_output")?.clone(), Mode::Train)?;
    case.check("output", &out, "output", TOL)?;
    case.check("grad_input", &d_input, "grad_input", TOL)?;
    case.check("grad_gamma", &grad_of(&bn, "weight"), "grad_gamma", TOL)?;
    case.check("grad_beta", &grad_of(&bn, "bias"), "grad_beta", TOL)?;
    let buffers: Vec<(String, Tensor)> = bn.buffers().into_iter().map(|(n, t)| (n.to_string(), t.clone())).collect();
    for (name, t) in buffers {
        case.check(&format!("{name} after"), &t, &format!("{name}_after"), TOL)?;
    }
    let mut bn = make(case)?;
    let (out, _) = run_layer(&mut bn, &input, &Tensor::zeros(input.shape()), Mode::Eval)?;
    case.check("output_eval", &out, "output_eval", TOL)
}

fn instance_norm(case: &mut Case) -> Result<(), String> {
    let eps = case.params["eps"].as_f64().ok_or("params.eps is not a number")? as f32;
    let input = case.t("input")?.clone();
    // Training and evaluation normalise alike (no running statistics).
    for mode in [Mode::Train, Mode::Eval] {
        let mut layer = InstanceNorm2d::new(input.shape()[1]).with_eps(eps);
        set_param(&mut layer, "weight", case.t("weight")?)?;
        set_param(&mut layer, "bias", case.t("bias")?)?;
        let (out, d_input) = run_layer(&mut layer, &input, &case.t("grad_output")?.clone(), mode)?;
        case.check(&format!("output ({mode:?})"), &out, "output", TOL)?;
        case.check(&format!("grad_input ({mode:?})"), &d_input, "grad_input", TOL)?;
        case.check("grad_weight", &grad_of(&layer, "weight"), "grad_weight", TOL)?;
        case.check("grad_bias", &grad_of(&layer, "bias"), "grad_bias", TOL)?;
    }
    Ok(())
}

/// A layer without parameters: output and input gradient.
fn plain_layer(case: &mut Case, layer: &mut dyn Layer) -> Result<(), String> {
    let (out, d_input) = run_layer(layer, &case.t("input")?.clone(), &case.t("grad_output")?.clone(), Mode::Train)?;
    case.check("output", &out, "output", TOL)?;
    case.check("grad_input", &d_input, "grad_input", TOL)
}

fn reflection_pad(case: &mut Case) -> Result<(), String> {
    let pad: Vec<usize> = case.params["padding"].as_array().ok_or("params.padding is not a list")?.iter().filter_map(|v| v.as_u64().map(|v| v as usize)).collect();
    let pad: [usize; 4] = pad.try_into().map_err(|_| "params.padding is not [top, bottom, left, right]")?;
    plain_layer(case, &mut ReflectionPad2d::new(pad))
}

fn upsample(case: &mut Case) -> Result<(), String> {
    let scale = case.params["scale"].as_u64().ok_or("params.scale is not a whole number")? as usize;
    plain_layer(case, &mut UpsampleNearest2d::new(scale).map_err(|e| e.to_string())?)
}

/// Johnson et al.'s network (pytorch/examples' names) at the case's width: output, input
/// gradient and every parameter's gradient.
fn transformer_net(case: &mut Case) -> Result<(), String> {
    let width = case.params["width"].as_u64().ok_or("params.width is not a whole number")? as usize;
    let input = case.t("input")?.clone();
    let s = input.shape();
    let mut net = models::transformer_net(width, [s[1], s[2], s[3]]).map_err(|e| e.to_string())?;
    let names: Vec<String> = net.params().into_iter().map(|(n, _)| n).collect();
    for name in &names {
        let value = case.t(name)?.clone();
        let mut params = net.params_mut();
        let p = &mut params.iter_mut().find(|(n, _)| n == name).expect("a parameter of the net").1;
        if p.value.shape() != value.shape() {
            return Err(format!("{name}: case has shape {:?}, fovea {:?}", value.shape(), p.value.shape()));
        }
        p.value = value;
    }
    // Every parameter of PyTorch's network has its fovea namesake.
    let reserved = ["input", "output", "grad_output", "grad_input"];
    let extra: Vec<&String> = case.file.floats.keys().filter(|k| !k.starts_with("grad.") && !reserved.contains(&k.as_str()) && !names.contains(k)).collect();
    if !extra.is_empty() {
        return Err(format!("PyTorch's network has parameters fovea's lacks: {extra:?}"));
    }
    let out = net.forward(&input, &ForwardCtx { mode: Mode::Train, seed: 0, ..Default::default() }).map_err(|e| e.to_string())?.clone();
    case.check("output", &out, "output", NET_TOL)?;
    let last = net.output_name().to_string();
    net.backward(&last, &case.t("grad_output")?.clone(), &BackwardCtx::default()).map_err(|e| e.to_string())?;
    case.check("grad_input", &net.input_grad().clone(), "grad_input", NET_TOL)?;
    let grads: Vec<(String, Tensor)> = net.params().into_iter().map(|(n, p)| (n, p.grad.clone())).collect();
    let largest = |t: &Tensor| t.data().iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let mut overall = 0.0f32;
    for (name, _) in &grads {
        overall = overall.max(largest(case.t(&format!("grad.{name}"))?));
    }
    for (name, g) in grads {
        let key = format!("grad.{name}");
        if largest(case.t(&key)?) > 1e-6 * overall {
            case.check_scaled(&key, &g, &key)?;
        } else {
            // A convolution's bias before instance norm: the norm takes the mean away, so the
            // gradient is zero up to rounding; it must stay so next to the net's gradients.
            let worst = largest(&g);
            if worst > NET_TOL * overall {
                case.errors.push(format!("{key}: should be zero, fovea has {worst:e} against gradients up to {overall:e}"));
            }
        }
    }
    Ok(())
}

/// The net named by a case's `architecture` text, with the case's parameters loaded.
fn case_net(case: &Case, logits_name: &str) -> Result<fovea::Net, String> {
    let arch = case.params["architecture"].as_str().unwrap_or("");
    if !arch.starts_with("LeNet-5") {
        return Err(format!("unknown architecture {arch:?}"));
    }
    let classes = *case.t(logits_name)?.shape().last().unwrap_or(&10);
    let mut net = models::lenet5(classes).map_err(|e| e.to_string())?;
    let state = net
        .state()
        .into_iter()
        .map(|(name, _)| case.t(&name).map(|t| (name.clone(), t.clone())))
        .collect::<Result<_, _>>()?;
    net.load_state(&state).map_err(|e| e.to_string())?;
    Ok(net)
}

fn net(case: &mut Case) -> Result<(), String> {
    let mut net = case_net(case, "logits")?;
    let logits = net.forward(case.t("input")?, &ForwardCtx { mode: Mode::Train, seed: 0, ..Default::default() }).map_err(|e| e.to_string())?.clone();
    case.check("logits", &logits, "logits", NET_TOL)?;
    let r = softmax_cross_entropy(&logits, &case.labels()?).map_err(|e| e.to_string())?;
    case.check("loss", &Tensor::from_vec(&[1], vec![r.loss]).unwrap(), "loss", NET_TOL)?;
    net.backward(net.output_name().to_string().as_str(), &r.d_logits, &BackwardCtx::default()).map_err(|e| e.to_string())?;
    case.check("grad_input", &net.input_grad().clone(), "grad_input", NET_TOL)?;
    let grads: Vec<(String, Tensor)> = net.params().into_iter().map(|(n, p)| (n, p.grad.clone())).collect();
    for (name, g) in grads {
        case.check(&format!("grad.{name}"), &g, &format!("grad.{name}"), NET_TOL)?;
    }
    Ok(())
}

fn viz(case: &mut Case) -> Result<(), String> {
    let mut net = case_net(case, "logits")?;
    let input = case.t("input")?.clone();
    let logits = net.forward(&input, &ForwardCtx::default()).map_err(|e| e.to_string())?.clone();
    case.check("logits", &logits, "logits", NET_TOL)?;
    let class = case.params["class"].as_u64().ok_or("params.class is not an integer")? as usize;
    let neuron = case.params["neuron"].clone();
    let layer = neuron["layer"].as_str().ok_or("params.neuron.layer is not a string")?.to_string();
    let at = |k: &str| neuron[k].as_u64().map(|v| v as usize).ok_or(format!("params.neuron.{k} is not an integer"));
    let (c, y, x) = (at("channel")?, at("y")?, at("x")?);
    for (rule_name, rule) in [("vanilla", ReluRule::Plain), ("guided", ReluRule::Guided), ("deconvnet", ReluRule::Deconvnet)] {
        let ctx = BackwardCtx { rule, param_grads: false, input_grad: true };
        let mut seed = Tensor::zeros(logits.shape());
        seed.data_mut()[class] = 1.0;
        let out = net.output_name().to_string();
        net.backward(&out, &seed, &ctx).map_err(|e| e.to_string())?;
        case.check(&format!("{rule_name}.class"), &net.input_grad().clone(), &format!("{rule_name}.class"), NET_TOL)?;

        let shape = net.value(&layer).ok_or(format!("LeNet-5 has no node {layer}"))?.shape().to_vec();
        // A map neuron is (channel, y, x); a fully connected one is its channel alone.
        let index = match *shape.as_slice() {
            [_, _, h, w] => (c * h + y) * w + x,
            _ => c,
        };
        let mut seed = Tensor::zeros(&shape);
        seed.data_mut()[index] = 1.0;
        net.backward(&layer, &seed, &ctx).map_err(|e| e.to_string())?;
        case.check(&format!("{rule_name}.neuron"), &net.input_grad().clone(), &format!("{rule_name}.neuron"), NET_TOL)?;
    }
    Ok(())
}

/// A few steps of an optimizer on fixed gradients, against `torch.optim`.
fn optimizer(case: &mut Case) -> Result<(), String> {
    let p = case.params.clone();
    let kind = p["kind"].as_str().ok_or("params.kind is not a string")?;
    let num = |k: &str| p[k].as_f64().ok_or(format!("params.{k} is not a number"));
    let steps = p["steps"].as_u64().ok_or("params.steps is not an integer")? as usize;
    let mut opt = fovea::optim::build(kind, num("momentum")? as f32, p["nesterov"].as_bool().unwrap_or(false), num("weight_decay")? as f32).map_err(|e| e.to_string())?;
    let start = case.t("param")?.clone();
    let mut param = Param { value: start.clone(), grad: Tensor::zeros(start.shape()) };
    for t in 0..steps {
        param.grad = case.t(&format!("grad.{t}"))?.clone();
        opt.step(&mut [("w".to_string(), &mut param)], num("lr")? as f32);
        let value = param.value.clone();
        case.check(&format!("{kind} step {}", t + 1), &value, &format!("param.{}", t + 1), TOL)?;
    }
    Ok(())
}

/// Grad-CAM at each listed layer and occlusion sensitivity on LeNet-5, against a PyTorch
/// script's maps (`scripts/golden_extra.py`).
fn cam(case: &mut Case) -> Result<(), String> {
    let mut net = case_net(case, "fc3.bias")?;
    let input = case.t("input")?.clone();
    let class = case.params["class"].as_u64().ok_or("params.class is not an integer")? as usize;
    let layers: Vec<String> = case.params["layers"].as_array().ok_or("params.layers is not a list")?.iter().filter_map(|l| l.as_str().map(String::from)).collect();
    let (h, w) = (input.shape()[2], input.shape()[3]);
    for layer in layers {
        let map = fovea::viz::cam::grad_cam(&mut net, &input, class, &layer).map_err(|e| e.to_string())?;
        let got = Tensor::from_vec(&[h, w], map).map_err(|e| e.to_string())?;
        case.check_scaled(&format!("gradcam at {layer}"), &got, &format!("gradcam.{layer}"))?;
    }
    let o = &case.params["occlusion"];
    let at = |k: &str| o[k].as_f64().ok_or(format!("params.occlusion.{k} is not a number"));
    let norm = fovea::data::Normalize { mean: vec![at("mean")? as f32], std: vec![at("std")? as f32] };
    let map = fovea::viz::cam::occlusion(&mut net, &input, class, at("size")? as usize, at("stride")? as usize, &norm).map_err(|e| e.to_string())?;
    let got = Tensor::from_vec(&[h, w], map).map_err(|e| e.to_string())?;
    case.check_scaled("occlusion", &got, "occlusion")
}

fn run_case(path: &Path) -> Result<Case, String> {
    let file = read(path).map_err(|e| e.to_string())?;
    let op = file.metadata.get("op").cloned().ok_or("no \"op\" in the metadata")?;
    let params: Value = serde_json::from_str(file.metadata.get("params").map_or("{}", |s| s.as_str()))
        .map_err(|e| format!("params is not JSON: {e}"))?;
    let mut case = Case { path: path.to_path_buf(), file, params, errors: Vec::new() };
    match op.as_str() {
        "conv2d" => conv2d(&mut case)?,
        "max_pool2d" => pool(&mut case, true)?,
        "avg_pool2d" => pool(&mut case, false)?,
        "linear" => linear(&mut case)?,
        "softmax_cross_entropy" => xent(&mut case)?,
        "lrn" => lrn(&mut case)?,
        "batch_norm" => batch_norm(&mut case)?,
        "instance_norm" => instance_norm(&mut case)?,
        "reflection_pad2d" => reflection_pad(&mut case)?,
        "upsample_nearest2d" => upsample(&mut case)?,
        "transformer_net" => transformer_net(&mut case)?,
        "net" => net(&mut case)?,
        "viz" => viz(&mut case)?,
        "optimizer" => optimizer(&mut case)?,
        "cam" => cam(&mut case)?,
        other => return Err(format!("unknown op {other:?}")),
    }
    Ok(case)
}

#[test]
fn golden_cases() {
    let dir = std::env::var_os("FOVEA_GOLDEN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read the golden directory {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.safetensors cases in {}", dir.display());
    let mut failed = Vec::new();
    // Every case in thread pools of 1, 2 and 3: the kernels split their work by the pool's size
    // (batches by sample, a batch of one by channel block, products by rows).
    for threads in [1, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a thread pool");
        for path in &files {
            let name = format!("{} ({threads} thread{})", path.file_stem().unwrap_or_default().to_string_lossy(), if threads > 1 { "s" } else { "" });
            match pool.install(|| run_case(path)) {
                Ok(case) if case.errors.is_empty() => println!("golden {name} ok"),
                Ok(case) => {
                    println!("golden {name} FAILED ({})", case.path.display());
                    for e in &case.errors {
                        println!("    {e}");
                    }
                    failed.push(name);
                }
                Err(e) => {
                    println!("golden {name} FAILED: {e}");
                    failed.push(name);
                }
            }
        }
    }
    let runs = 3 * files.len();
    println!("{} of {runs} golden case runs passed (tolerance {TOL} abs + rel per value, {NET_TOL} for whole nets)", runs - failed.len());
    assert!(failed.is_empty(), "golden cases failed: {}", failed.join(", "));
}
