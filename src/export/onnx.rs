//! A net as a standard ONNX model: one ONNX node per fovea node (two for a channel affine),
//! named as fovea names it, the weights as initializers under their PyTorch names, the input
//! `input` (`[N, C, H, W]` float, normalised as fovea normalises) and the output `logits`.
//!
//! Windows are written with explicit pads resolved for the net's input size, so TensorFlow's
//! SAME, PyTorch's `ceil_mode` and filters that leave cells over all become plain `pads` (the
//! end pad is cut to the cells the last window reads, or extended to them in ceil mode: padding
//! never wins a max and never counts in an average, so the result is fovea's exactly). Only the
//! nodes the output depends on are written (GoogLeNet's auxiliary heads are left out).

use super::proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use crate::error::{Error, Result};
use crate::geometry::Window2d;
use crate::layers::{Layer, Op};
use crate::net::{Net, INPUT};
use crate::tensor::{fmt_shape, Tensor};
use prost::Message;
use std::collections::{HashMap, HashSet};

/// The name of a classifier's output (`OnnxOptions::output`'s default).
pub const OUTPUT: &str = "logits";

/// The opsets fovea writes; every operator it uses has the same meaning across them.
pub const OPSETS: std::ops::RangeInclusive<i64> = 13..=22;

/// The batch dimension of the input and output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Batch {
    /// Symbolic (`N`): any batch size.
    Dynamic,
    Fixed(usize),
}

#[derive(Clone, Debug)]
pub struct OnnxOptions {
    pub batch: Batch,
    pub opset: i64,
    /// Fold each batch norm into the convolution before it (when that convolution feeds
    /// nothing else) instead of writing a `BatchNormalization` node.
    pub fold_batchnorm: bool,
    /// The graph output's name: `logits` for a classifier, `image` for a style network.
    pub output: &'static str,
}

impl Default for OnnxOptions {
    fn default() -> Self {
        OnnxOptions { batch: Batch::Dynamic, opset: 17, fold_batchnorm: false, output: OUTPUT }
    }
}

/// The graph's name and the key/value pairs stored in the model's `metadata_props`.
#[derive(Clone, Debug, Default)]
pub struct ModelInfo {
    pub name: String,
    pub metadata: Vec<(String, String)>,
}

/// The ONNX IR version that goes with an opset (the oldest that knows it, so older runtimes
/// read the file).
fn ir_version(opset: i64) -> i64 {
    match opset {
        ..=14 => 7,
        15..=18 => 8,
        19..=20 => 9,
        _ => 10,
    }
}

/// The serialized ONNX model of `net` (its weights as they are now).
pub fn to_onnx(net: &Net, info: &ModelInfo, opts: &OnnxOptions) -> Result<Vec<u8>> {
    Ok(to_model(net, info, opts)?.encode_to_vec())
}

/// The ONNX model of `net`, as prost messages.
pub fn to_model(net: &Net, info: &ModelInfo, opts: &OnnxOptions) -> Result<ModelProto> {
    if !OPSETS.contains(&opts.opset) {
        return Err(Error::Invalid(format!(
            "opset {} is not one fovea writes: choose {} to {}",
            opts.opset,
            OPSETS.start(),
            OPSETS.end()
        )));
    }
    if opts.batch == Batch::Fixed(0) {
        return Err(Error::Invalid("a fixed batch must hold at least one image".into()));
    }
    let graph = Graph::build(net, opts)?.into_proto(net, info, opts)?;
    Ok(ModelProto {
        ir_version: Some(ir_version(opts.opset)),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(opts.opset) }],
        producer_name: Some("fovea".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        doc_string: Some(format!("{} exported by fovea", info.name)),
        graph: Some(graph),
        metadata_props: info.metadata.iter().map(|(k, v)| entry(k, v)).collect(),
        ..Default::default()
    })
}

fn entry(key: &str, value: &str) -> StringStringEntryProto {
    StringStringEntryProto { key: Some(key.into()), value: Some(value.into()) }
}

/// The graph being written: ONNX nodes and initializers so far, and for each fovea value the
/// name of the ONNX tensor that holds it (a dropped dropout or a folded batch norm holds the
/// tensor of the node before it).
struct Graph<'n> {
    net: &'n Net,
    /// The graph output's name.
    output: &'static str,
    /// The shape of each value for a batch of one.
    shapes: HashMap<&'n str, Vec<usize>>,
    tensor_of: HashMap<&'n str, String>,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

impl<'n> Graph<'n> {
    fn build(net: &'n Net, opts: &OnnxOptions) -> Result<Self> {
        let mut input = vec![1];
        input.extend_from_slice(net.input_shape());
        let shapes = net.shapes_for(&input)?;
        let names: Vec<&str> = std::iter::once(INPUT).chain(net.node_names()).collect();
        if let Some(clash) = names.iter().find(|n| **n == opts.output && **n != net.output_name()) {
            return Err(Error::Graph(format!("node {clash}: the name is the exported output's; rename the node")));
        }
        let mut g = Graph {
            net,
            output: opts.output,
            shapes: names.iter().copied().zip(shapes).collect(),
            tensor_of: HashMap::from([(INPUT, INPUT.to_string())]),
            nodes: Vec::new(),
            initializers: Vec::new(),
        };
        let needed = needed_nodes(net);
        let consumers = consumers(net, &needed);
        let mut folded: HashSet<&str> = HashSet::new();
        for name in net.node_names().filter(|n| needed.contains(n)) {
            if folded.contains(name) {
                continue;
            }
            let layer = net.layer(name).expect("a node of the net");
            // A convolution whose only reader is a batch norm takes the norm in.
            let fold_into = match (opts.fold_batchnorm, layer.op(), consumers.get(name).map(Vec::as_slice)) {
                (true, Op::Conv { .. }, Some(&[next])) if matches!(net.layer(next).map(|l| l.op()), Some(Op::BatchNorm { .. })) => Some(next),
                _ => None,
            };
            match fold_into {
                Some(bn) => {
                    g.conv(name, layer, Some(bn))?;
                    g.tensor_of.insert(bn, g.tensor_of[name].clone());
                    folded.insert(bn);
                }
                None => g.node(name, layer)?,
            }
        }
        Ok(g)
    }

    fn into_proto(self, net: &Net, info: &ModelInfo, opts: &OnnxOptions) -> Result<GraphProto> {
        let output = net.output_name();
        if self.tensor_of.get(output).map(String::as_str) != Some(self.output) {
            return Err(Error::Graph(format!("node {output}: the net's output was not written as {}", self.output)));
        }
        let value_info = |name: &str, shape: &[usize]| ValueInfoProto {
            name: Some(name.into()),
            r#type: Some(float_type(shape, opts.batch)),
            ..Default::default()
        };
        Ok(GraphProto {
            name: Some(info.name.clone()),
            input: vec![value_info(INPUT, &self.shapes[INPUT])],
            output: vec![value_info(self.output, &self.shapes[output])],
            node: self.nodes,
            initializer: self.initializers,
            ..Default::default()
        })
    }

    /// The ONNX tensor name for fovea node `name`'s output.
    fn out_name(&self, name: &str) -> String {
        if name == self.net.output_name() { self.output.to_string() } else { name.to_string() }
    }

    fn inputs_of(&self, name: &str) -> Vec<String> {
        self.net.node_inputs(name).unwrap_or_default().into_iter().map(|i| self.tensor_of[i].clone()).collect()
    }

    fn shape_of(&self, name: &str) -> &[usize] {
        &self.shapes[name]
    }

    /// Writes fovea node `name`.
    fn node(&mut self, name: &'n str, layer: &dyn Layer) -> Result<()> {
        let inputs = self.inputs_of(name);
        let out = self.out_name(name);
        let x = inputs.first().cloned().unwrap_or_default();
        let in_shape = self.net.node_inputs(name).and_then(|i| i.first().map(|i| self.shape_of(i).to_vec())).unwrap_or_default();
        match layer.op() {
            Op::Conv { .. } => return self.conv(name, layer, None),
            Op::Linear => {
                let mut ins = vec![x, self.param(name, layer, "weight")?];
                if let Some(b) = self.optional_param(name, layer, "bias") {
                    ins.push(b);
                }
                self.emit("Gemm", name, ins, &out, vec![int("transB", 1)]);
            }
            Op::Relu => self.emit("Relu", name, vec![x], &out, vec![]),
            Op::MaxPool(w) => {
                let attrs = window_attrs(name, &w, &in_shape, false)?;
                self.emit("MaxPool", name, vec![x], &out, attrs);
            }
            Op::AvgPool(w) => {
                let mut attrs = window_attrs(name, &w, &in_shape, false)?;
                attrs.push(int("count_include_pad", 0));
                self.emit("AveragePool", name, vec![x], &out, attrs);
            }
            Op::AdaptiveAvgPool { output: [oh, ow] } => {
                let (h, w) = (in_shape[2], in_shape[3]);
                if oh == 1 && ow == 1 {
                    self.emit("GlobalAveragePool", name, vec![x], &out, vec![]);
                } else if h % oh == 0 && w % ow == 0 {
                    // Equal bins: an ordinary average pooling (the identity when sizes match).
                    let (kh, kw) = ((h / oh) as i64, (w / ow) as i64);
                    self.emit("AveragePool", name, vec![x], &out, vec![ints("kernel_shape", &[kh, kw]), ints("strides", &[kh, kw])]);
                } else {
                    // Bins of different sizes: the pooling is linear and separable, so it is
                    // two products with constant bin matrices, Y = Ph X Pw^T (exact).
                    let ph = self.constant(&format!("{name}.rows"), &[oh, h], &bin_matrix(h, oh, false));
                    let pw = self.constant(&format!("{name}.cols"), &[w, ow], &bin_matrix(w, ow, true));
                    let rows = format!("{name}.pool_rows");
                    self.emit("MatMul", &rows, vec![ph, x], &rows, vec![]);
                    self.emit("MatMul", name, vec![rows, pw], &out, vec![]);
                }
            }
            Op::BatchNorm { eps } => {
                let ins = ["weight", "bias", "running_mean", "running_var"].iter().map(|k| self.param(name, layer, k)).collect::<Result<Vec<_>>>()?;
                self.emit("BatchNormalization", name, [vec![x], ins].concat(), &out, vec![float("epsilon", eps)]);
            }
            Op::Lrn { size, alpha, beta, k } => {
                if size % 2 == 0 {
                    return Err(Error::Graph(format!(
                        "node {name}: LRN over an even number of channels ({size}) centres its window differently in ONNX \
                         (one more channel after than before); only odd sizes can be exported"
                    )));
                }
                let attrs = vec![int("size", size as i64), float("alpha", alpha), float("beta", beta), float("bias", k)];
                self.emit("LRN", name, vec![x], &out, attrs);
            }
            Op::ChannelAffine { scale, shift } => {
                let dims = [scale.len(), 1, 1];
                let s = self.constant(&format!("{name}.scale"), &dims, scale);
                let t = self.constant(&format!("{name}.shift"), &dims, shift);
                let scaled = format!("{name}.mul");
                self.emit("Mul", &scaled, vec![x, s], &scaled, vec![]);
                self.emit("Add", name, vec![scaled, t], &out, vec![]);
            }
            Op::Concat => self.emit("Concat", name, inputs, &out, vec![int("axis", 1)]),
            Op::Add => {
                let op = if inputs.len() == 2 { "Add" } else { "Sum" };
                self.emit(op, name, inputs, &out, vec![]);
            }
            Op::Flatten => self.emit("Flatten", name, vec![x], &out, vec![int("axis", 1)]),
            Op::Softmax => self.emit("Softmax", name, vec![x], &out, vec![int("axis", -1)]),
            Op::Dropout => {
                // The identity at inference: readers take the input's tensor directly.
                if out == self.output {
                    self.emit("Identity", name, vec![x], &out, vec![]);
                } else {
                    self.tensor_of.insert(name, x);
                    return Ok(());
                }
            }
            Op::InstanceNorm { eps } => {
                let ins = ["weight", "bias"].iter().map(|k| self.param(name, layer, k)).collect::<Result<Vec<_>>>()?;
                self.emit("InstanceNormalization", name, [vec![x], ins].concat(), &out, vec![float("epsilon", eps)]);
            }
            Op::ReflectPad { pad: [top, bottom, left, right] } => {
                // `pads` as an input (opset 11 on): every axis's start, then every axis's end.
                let pads = [0, 0, top, left, 0, 0, bottom, right].map(|p| p as i64);
                let pads = self.int64_constant(&format!("{name}.pads"), &pads);
                self.emit("Pad", name, vec![x, pads], &out, vec![string("mode", "reflect")]);
            }
            Op::UpsampleNearest { scale } => {
                // Output cell (y, x) reads input cell (floor(y / s), floor(x / s)): ONNX's
                // `asymmetric` coordinates with `floor` rounding. The region of interest is
                // unused (left empty).
                let s = scale as f32;
                let scales = self.constant(&format!("{name}.scales"), &[4], &[1.0, 1.0, s, s]);
                let attrs = vec![string("mode", "nearest"), string("coordinate_transformation_mode", "asymmetric"), string("nearest_mode", "floor")];
                self.emit("Resize", name, vec![x, String::new(), scales], &out, attrs);
            }
            Op::Opaque => {
                return Err(Error::Graph(format!("node {name}: a {} layer has no ONNX equivalent in fovea's exporter", layer.kind())));
            }
        }
        self.tensor_of.insert(name, out);
        Ok(())
    }

    /// Writes convolution `name`, with batch norm `bn` folded into its weights when given (the
    /// output then takes the batch norm's name).
    fn conv(&mut self, name: &'n str, layer: &dyn Layer, bn: Option<&'n str>) -> Result<()> {
        let Op::Conv { window, groups } = layer.op() else { unreachable!("conv() is called for convolutions") };
        let inputs = self.inputs_of(name);
        let in_shape = self.shape_of(self.net.node_inputs(name).unwrap_or_default()[0]).to_vec();
        let mut attrs = window_attrs(name, &window, &in_shape, true)?;
        attrs.push(int("group", groups as i64));
        let weight = tensor(name, layer, "weight")?;
        let bias = tensor(name, layer, "bias").ok();
        let (out, ins) = match bn {
            None => {
                let mut ins = vec![inputs[0].clone(), self.constant(&format!("{name}.weight"), weight.shape(), weight.data())];
                if let Some(b) = bias {
                    ins.push(self.constant(&format!("{name}.bias"), b.shape(), b.data()));
                }
                (self.out_name(name), ins)
            }
            Some(bn) => {
                let norm = self.net.layer(bn).expect("a node of the net");
                let Op::BatchNorm { eps } = norm.op() else { unreachable!("folding takes batch norms only") };
                let [gamma, beta, mean, var] = ["weight", "bias", "running_mean", "running_var"].map(|k| tensor(bn, norm, k));
                let (w, b) = fold_batchnorm(weight, bias, gamma?, beta?, mean?, var?, eps);
                let ins = vec![
                    inputs[0].clone(),
                    self.constant(&format!("{name}.weight"), weight.shape(), &w),
                    self.constant(&format!("{name}.bias"), &[b.len()], &b),
                ];
                (self.out_name(bn), ins)
            }
        };
        self.emit("Conv", name, ins, &out, attrs);
        self.tensor_of.insert(name, out);
        Ok(())
    }

    /// Adds layer `node`'s parameter or buffer `key` as an initializer `node.key`.
    fn param(&mut self, node: &str, layer: &dyn Layer, key: &str) -> Result<String> {
        let t = tensor(node, layer, key)?;
        Ok(self.constant(&format!("{node}.{key}"), t.shape(), t.data()))
    }

    fn optional_param(&mut self, node: &str, layer: &dyn Layer, key: &str) -> Option<String> {
        self.param(node, layer, key).ok()
    }

    /// Adds a 1-d int64 initializer and returns its name.
    fn int64_constant(&mut self, name: &str, data: &[i64]) -> String {
        self.initializers.push(TensorProto {
            name: Some(name.into()),
            dims: vec![data.len() as i64],
            data_type: Some(DataType::Int64 as i32),
            raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
            ..Default::default()
        });
        name.to_string()
    }

    /// Adds a float initializer and returns its name.
    fn constant(&mut self, name: &str, dims: &[usize], data: &[f32]) -> String {
        self.initializers.push(float_tensor(name, dims, data));
        name.to_string()
    }

    fn emit(&mut self, op: &str, name: &str, inputs: Vec<String>, output: &str, attribute: Vec<AttributeProto>) {
        self.nodes.push(NodeProto {
            name: Some(name.into()),
            op_type: Some(op.into()),
            input: inputs,
            output: vec![output.into()],
            attribute,
            ..Default::default()
        });
    }
}

/// A named float tensor of shape `dims`, little-endian in `raw_data` (initializers, and the
/// test data of `fovea export --test-data`).
pub fn float_tensor(name: &str, dims: &[usize], data: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: Some(DataType::Float as i32),
        raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

/// The nodes the net's output depends on.
fn needed_nodes(net: &Net) -> HashSet<&str> {
    let mut needed = HashSet::new();
    let mut stack = vec![net.output_name()];
    while let Some(n) = stack.pop() {
        if n != INPUT && needed.insert(n) {
            stack.extend(net.node_inputs(n).unwrap_or_default());
        }
    }
    needed
}

/// For each value, the needed nodes that read it.
fn consumers<'n>(net: &'n Net, needed: &HashSet<&'n str>) -> HashMap<&'n str, Vec<&'n str>> {
    let mut readers: HashMap<&str, Vec<&str>> = HashMap::new();
    for name in net.node_names().filter(|n| needed.contains(n)) {
        for input in net.node_inputs(name).unwrap_or_default() {
            readers.entry(input).or_default().push(name);
        }
    }
    readers
}

/// Parameter or buffer `key` of `layer` (node `node`).
fn tensor<'l>(node: &str, layer: &'l dyn Layer, key: &str) -> Result<&'l Tensor> {
    layer
        .params()
        .into_iter()
        .map(|(k, p)| (k, &p.value))
        .chain(layer.buffers())
        .find(|(k, _)| *k == key)
        .map(|(_, t)| t)
        .ok_or_else(|| Error::Graph(format!("node {node}: a {} without {key}", layer.kind())))
}

/// `kernel_shape`, `strides`, explicit `pads` (and `dilations` when `dilated`) of window `w`
/// over an input of shape `[N, C, H, W]`. The end pads are those the windows actually read.
fn window_attrs(node: &str, w: &Window2d, input: &[usize], dilated: bool) -> Result<Vec<AttributeProto>> {
    let [_, _, h, wd] = *input else {
        return Err(Error::Graph(format!("node {node}: a window over an input of shape {}", fmt_shape(input))));
    };
    let g = w.resolve(h, wd).map_err(|e| e.in_layer(node))?;
    let end_pad = |a: &crate::geometry::Axis| {
        let covered = (a.output - 1) * a.stride + a.span();
        covered.saturating_sub(a.input + a.pad_lo) as i64
    };
    let mut attrs = vec![
        ints("kernel_shape", &[w.kernel[0] as i64, w.kernel[1] as i64]),
        ints("strides", &[w.stride[0] as i64, w.stride[1] as i64]),
        ints("pads", &[g.rows.pad_lo as i64, g.cols.pad_lo as i64, end_pad(&g.rows), end_pad(&g.cols)]),
    ];
    if dilated {
        attrs.push(ints("dilations", &[w.dilation[0] as i64, w.dilation[1] as i64]));
    }
    Ok(attrs)
}

/// A batch norm folded into the convolution before it: per output channel `o`, with
/// `s = gamma / sqrt(var + eps)`, `W'[o] = W[o] s` and `b' = (b - mean) s + beta`.
fn fold_batchnorm(weight: &Tensor, bias: Option<&Tensor>, gamma: &Tensor, beta: &Tensor, mean: &Tensor, var: &Tensor, eps: f32) -> (Vec<f32>, Vec<f32>) {
    let out = weight.shape()[0];
    let per = weight.len() / out.max(1);
    let scale: Vec<f64> = (0..out).map(|o| gamma.data()[o] as f64 / (var.data()[o] as f64 + eps as f64).sqrt()).collect();
    let w = weight.data().iter().enumerate().map(|(i, &v)| (v as f64 * scale[i / per]) as f32).collect();
    let b = (0..out)
        .map(|o| {
            let b = bias.map_or(0.0, |b| b.data()[o] as f64);
            ((b - mean.data()[o] as f64) * scale[o] + beta.data()[o] as f64) as f32
        })
        .collect();
    (w, b)
}

/// PyTorch's adaptive average bins from `n` cells to `out` as a matrix: `[out, n]` with
/// `1 / bin length` over each bin, or its transpose `[n, out]`.
fn bin_matrix(n: usize, out: usize, transposed: bool) -> Vec<f32> {
    let mut m = vec![0.0; n * out];
    for i in 0..out {
        let (lo, hi) = crate::kernels::pool::adaptive_bin(i, n, out);
        for j in lo..hi {
            m[if transposed { j * out + i } else { i * n + j }] = 1.0 / (hi - lo) as f32;
        }
    }
    m
}

/// A float tensor type of `shape` (batch of one) with the batch dimension as asked.
fn float_type(shape: &[usize], batch: Batch) -> TypeProto {
    use tensor_shape_proto::{dimension::Value, Dimension};
    let dim = |v: Value| Dimension { value: Some(v), ..Default::default() };
    let first = match batch {
        Batch::Dynamic => dim(Value::DimParam("N".into())),
        Batch::Fixed(n) => dim(Value::DimValue(n as i64)),
    };
    let dims = std::iter::once(first).chain(shape[1..].iter().map(|&d| dim(Value::DimValue(d as i64)))).collect();
    TypeProto {
        value: Some(type_proto::Value::TensorType(type_proto::Tensor {
            elem_type: Some(DataType::Float as i32),
            shape: Some(TensorShapeProto { dim: dims }),
        })),
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: Some(name.into()), r#type: Some(AttributeType::Int as i32), i: Some(v), ..Default::default() }
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto { name: Some(name.into()), r#type: Some(AttributeType::Ints as i32), ints: v.to_vec(), ..Default::default() }
}

fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto { name: Some(name.into()), r#type: Some(AttributeType::Float as i32), f: Some(v), ..Default::default() }
}

fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto { name: Some(name.into()), r#type: Some(AttributeType::String as i32), s: Some(v.as_bytes().to_vec()), ..Default::default() }
}
