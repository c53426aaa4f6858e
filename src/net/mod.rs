//! A `Net` is a named directed acyclic graph of layers. Nodes are added after their inputs, so
//! insertion order is a topological order: forward runs it front to back, backward back to
//! front from any node. The net owns every activation and gradient buffer and reuses them
//! from one call to the next.

mod backward;
mod receptive;
mod spare;
mod state;
mod summary;

pub use summary::{lecture_shape, thousands, Summary, SummaryRow};

use crate::error::{Error, Result};
use crate::layers::{ForwardCtx, Layer, Param};
use crate::kernels::conv::PoolSink;
use crate::kernels::finite::all_finite;
use crate::rng::{mix64, Rng};
use crate::tensor::Tensor;

/// The name by which nodes refer to the net's input image.
pub const INPUT: &str = "input";

struct Node {
    name: String,
    layer: Box<dyn Layer>,
    /// Value ids of the inputs: 0 is the net's input, `i + 1` the output of node `i`.
    inputs: Vec<usize>,
}

pub struct Net {
    /// `[C, H, W]` of one input image, as the net was built for.
    input_shape: Vec<usize>,
    nodes: Vec<Node>,
    /// Value `0` is the input batch, value `i + 1` the output of node `i`.
    values: Vec<Tensor>,
    /// Gradients of the loss (or seed) with respect to each value, filled by `backward`.
    grads: Vec<Tensor>,
    /// When on, seconds spent per node in forward and backward passes (for `fovea bench`).
    timings: Option<Vec<[f64; 2]>>,
    /// Per node: a ReLU that takes its producer's output over in place, the producer having
    /// applied it (`fuse_activations`).
    fused: Vec<bool>,
    /// Per node that alone reads a fused ReLU's output: the value behind that ReLU (its
    /// producer's output), where its gradient can go straight through the ReLU
    /// (`Layer::backward_through_relu`).
    behind_relu: Vec<Option<usize>>,
    /// Per node: the max pool reading its fused ReLU's output alone, which the node computes
    /// sample by sample in its own forward pass where it can (`Layer::forward_pooled`).
    pool_reader: Vec<Option<usize>>,
    /// Per value: not kept by the last `forward` (its buffer holds no values to read): a fused
    /// ReLU's output that a max pool alone reads, where the ReLU's producer ran the pool and
    /// takes the pool's gradient as handed down (`Layer::takes_pooled_grad`), so that no
    /// backward pass from the output reads it.
    unkept: Vec<bool>,
    /// The buffers `forward_lean` used, kept for its next call (a `forward` drops them).
    spare: spare::SpareBuffers,
}

impl Net {
    /// An empty net for images of shape `[C, H, W]` (or any per-sample shape).
    pub fn new(input_shape: &[usize]) -> Self {
        Net {
            input_shape: input_shape.to_vec(),
            nodes: Vec::new(),
            values: vec![Tensor::default()],
            grads: vec![Tensor::default()],
            timings: None,
            fused: Vec::new(),
            behind_relu: Vec::new(),
            pool_reader: Vec::new(),
            unkept: Vec::new(),
            spare: spare::SpareBuffers::default(),
        }
    }

    /// Adds node `name` computing `layer` on the named inputs (`"input"` for the image).
    /// Checks at once that the shapes fit, so a misbuilt net fails here and names the layer.
    pub fn add(&mut self, name: &str, layer: impl Layer + 'static, inputs: &[&str]) -> Result<&mut Self> {
        self.fuse_activations(false);
        if name == INPUT || name.is_empty() || self.find(name).is_some() {
            return Err(Error::Graph(format!("node name {name:?} is empty, reserved or already taken")));
        }
        let mut ids = Vec::with_capacity(inputs.len());
        for input in inputs {
            let id = self.value_id(input).ok_or_else(|| {
                Error::Graph(format!("node {name}: no node named {input:?} to take input from"))
            })?;
            if ids.contains(&id) {
                return Err(Error::Graph(format!("node {name}: input {input:?} named twice")));
            }
            ids.push(id);
        }
        match layer.arity() {
            Some(k) if k != ids.len() => {
                return Err(Error::Graph(format!("node {name}: a {} takes {k} input(s), {} given", layer.kind(), ids.len())))
            }
            None if ids.len() < 2 => {
                return Err(Error::Graph(format!("node {name}: a {} takes two or more inputs", layer.kind())))
            }
            _ => {}
        }
        self.nodes.push(Node { name: name.to_string(), layer: Box::new(layer), inputs: ids });
        self.values.push(Tensor::default());
        self.grads.push(Tensor::default());
        let mut shape = vec![1];
        shape.extend_from_slice(&self.input_shape);
        if let Err(e) = self.shapes_for(&shape) {
            self.nodes.pop();
            self.values.pop();
            self.grads.pop();
            return Err(e);
        }
        Ok(self)
    }

    /// Adds node `name` taking the last node's output (or the input, for the first node).
    pub fn push(&mut self, name: &str, layer: impl Layer + 'static) -> Result<&mut Self> {
        let prev = self.nodes.last().map_or(INPUT.to_string(), |n| n.name.clone());
        self.add(name, layer, &[&prev])
    }

    /// Shape of one input image, `[C, H, W]`.
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// Node names in execution order.
    pub fn node_names(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|n| n.name.as_str())
    }

    /// The last node: the net's output.
    pub fn output_name(&self) -> &str {
        self.nodes.last().map_or(INPUT, |n| &n.name)
    }

    /// The layer of node `name`.
    pub fn layer(&self, name: &str) -> Option<&dyn Layer> {
        self.find(name).map(|i| self.nodes[i].layer.as_ref())
    }

    /// Names of the inputs of node `name`.
    pub fn node_inputs(&self, name: &str) -> Option<Vec<&str>> {
        let i = self.find(name)?;
        Some(self.nodes[i].inputs.iter().map(|&v| self.value_name(v)).collect())
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    fn value_id(&self, name: &str) -> Option<usize> {
        if name == INPUT {
            Some(0)
        } else {
            self.find(name).map(|i| i + 1)
        }
    }

    fn value_name(&self, v: usize) -> &str {
        if v == 0 {
            INPUT
        } else {
            &self.nodes[v - 1].name
        }
    }

    fn node_id(&self, name: &str) -> Result<usize> {
        self.find(name).ok_or_else(|| {
            let names: Vec<&str> = self.node_names().collect();
            Error::Graph(format!("no node named {name:?}; the nodes are {}", names.join(", ")))
        })
    }

    /// Swaps the layer of node `name` for `layer`, which must give the same output shape for
    /// the net's input (Gatys et al.'s average pools in place of VGG's max pools, say).
    pub fn replace_layer(&mut self, name: &str, layer: impl Layer + 'static) -> Result<()> {
        self.fuse_activations(false);
        let id = self.node_id(name)?;
        let mut input = vec![1];
        input.extend_from_slice(&self.input_shape);
        let before = self.shapes_for(&input)?;
        let old = std::mem::replace(&mut self.nodes[id].layer, Box::new(layer));
        match self.shapes_for(&input) {
            Ok(after) if after == before => Ok(()),
            other => {
                self.nodes[id].layer = old;
                Err(Error::Graph(format!("{name}: the new layer does not give the old one's shapes{}", other.err().map_or(String::new(), |e| format!(" ({e})")))))
            }
        }
    }

    /// The shape of every value (input first) for a full input shape such as `[N, C, H, W]`.
    pub fn shapes_for(&self, input: &[usize]) -> Result<Vec<Vec<usize>>> {
        let mut shapes = vec![input.to_vec()];
        for node in &self.nodes {
            let ins: Vec<&[usize]> = node.inputs.iter().map(|&v| shapes[v].as_slice()).collect();
            let out = node.layer.output_shape(&ins).map_err(|e| e.in_layer(&node.name))?;
            shapes.push(out);
        }
        Ok(shapes)
    }

    /// Fuses each ReLU into the node before it where that node's output has no other reader and
    /// its layer can apply the ReLU itself (`Layer::fuse_relu`: convolutions, the norms, fully
    /// connected layers). The layer then applies it while its output is in cache (a
    /// convolution sample by sample), and the ReLU node takes the layer's output over instead
    /// of reading it and writing a copy: one pass over those activations fewer, forward. For training and inference, where only the output and the
    /// gradients are read: a fused node's own output is not kept (`value` finds nothing there,
    /// `forward_to` refuses it); before a plain backward pass from the output
    /// (`ForwardCtx::backward_from_output_only`), neither is the ReLU's where a max pool alone
    /// reads it and the producer pools and takes the pool's gradient. Adding or replacing a
    /// node undoes it; `false` undoes it.
    pub fn fuse_activations(&mut self, on: bool) {
        for (j, fused) in self.fused.iter().enumerate() {
            if *fused {
                let producer = self.nodes[j].inputs[0] - 1;
                self.nodes[producer].layer.fuse_relu(false);
            }
        }
        self.fused = vec![false; self.nodes.len()];
        self.behind_relu = vec![None; self.nodes.len()];
        self.pool_reader = vec![None; self.nodes.len()];
        if !on {
            return;
        }
        let readers = self.readers();
        for j in 0..self.nodes.len() {
            let [v] = self.nodes[j].inputs[..] else { continue };
            if self.nodes[j].layer.kind() == "ReLU" && v > 0 && readers[v] == 1 && self.nodes[v - 1].layer.fuse_relu(true) {
                self.fused[j] = true;
            }
        }
        // The only reader of a fused ReLU's output sees through it to the producer's output.
        for q in 0..self.nodes.len() {
            let [v] = self.nodes[q].inputs[..] else { continue };
            if v > 0 && self.fused[v - 1] && readers[v] == 1 {
                let behind = self.nodes[v - 1].inputs[0];
                self.behind_relu[q] = Some(behind);
                if self.nodes[q].layer.max_pool_window().is_some() {
                    self.pool_reader[behind - 1] = Some(q);
                }
            }
        }
    }

    /// How many nodes read each value.
    fn readers(&self) -> Vec<usize> {
        let mut readers = vec![0usize; self.values.len()];
        for node in &self.nodes {
            for &v in &node.inputs {
                readers[v] += 1;
            }
        }
        readers
    }

    /// Whether value `v` is a fused node's output, which its ReLU took over.
    fn taken_over(&self, v: usize) -> bool {
        self.fused.iter().enumerate().any(|(j, &f)| f && self.nodes[j].inputs[0] == v)
    }

    /// Whether the last forward pass kept value `v` (neither taken over by a fused ReLU nor
    /// left unwritten, `unkept`).
    fn kept(&self, v: usize) -> bool {
        !self.taken_over(v) && !self.unkept.get(v).copied().unwrap_or(false)
    }

    /// Runs every node on `input` (`[N, ...input_shape]`) and returns the last node's output.
    pub fn forward(&mut self, input: &Tensor, ctx: &ForwardCtx) -> Result<&Tensor> {
        let last = self.nodes.len();
        self.run_nodes(input, ctx, last)?;
        Ok(self.values.last().unwrap_or(&self.values[0]))
    }

    /// Runs the nodes up to and including `node` (all it depends on: insertion order is a
    /// topological order) and returns its output. The input may have any size those nodes
    /// take (a photo for DeepDream), not only the net's input shape; later nodes keep stale
    /// values until the next full `forward`.
    pub fn forward_to(&mut self, input: &Tensor, ctx: &ForwardCtx, node: &str) -> Result<&Tensor> {
        let s = self.node_id(node)?;
        if self.taken_over(s + 1) {
            return Err(Error::Graph(format!("{node}: its output is not kept while activations are fused (Net::fuse_activations)")));
        }
        self.run_nodes(input, ctx, s + 1)?;
        Ok(&self.values[s + 1])
    }

    /// Runs every node on `input` for the output alone, holding only the values some node still
    /// needs: a value's buffer goes back to a pool once its last reader has run, and later
    /// outputs are cut from the pool. A style network on a 1-megapixel photo holds ~1 GB
    /// instead of the ~5 GB of a full `forward` (which keeps every value for a backward pass),
    /// and reused pages are not faulted in and zeroed again. A max pool that alone reads a fused
    /// ReLU is run by the ReLU's producer, which keeps the pooled output alone
    /// (`PoolSink::argmax`). Afterwards the net holds no values: no backward pass can follow,
    /// `value` finds nothing; the next `forward` starts afresh (the buffers are kept for the
    /// next `forward_lean` only).
    pub fn forward_lean(&mut self, input: &Tensor, ctx: &ForwardCtx) -> Result<Tensor> {
        let count = self.nodes.len();
        let shapes = self.shapes_for(input.shape())?;
        // The last node reading each value; the output is read by the caller.
        let mut last_reader = vec![usize::MAX; count + 1];
        for (i, node) in self.nodes.iter().enumerate() {
            for &v in &node.inputs {
                last_reader[v] = i;
            }
        }
        let mut pool = std::mem::take(&mut self.spare);
        for v in &mut self.values {
            pool.give_back(v);
        }
        let mut v0 = pool.lend(input.shape());
        v0.data_mut().copy_from_slice(input.data());
        self.values[0] = v0;
        // Pools their producer ran already (`pool_reader`).
        let mut pooled = vec![false; count];
        for i in 0..count {
            if self.fused.get(i) == Some(&true) {
                // The producer applied this ReLU, and this node is its output's only reader.
                let v = self.nodes[i].inputs[0];
                self.values[i + 1] = std::mem::take(&mut self.values[v]);
                continue;
            }
            if !pooled[i] {
                // The net's output leaves with the caller: it gets a buffer of its own, so that
                // the pool keeps every buffer for the next call.
                let lend = |pool: &mut spare::SpareBuffers, v: usize| if v == count { Tensor::zeros(&shapes[v]) } else { pool.lend(&shapes[v]) };
                self.values[i + 1] = lend(&mut pool, i + 1);
                let (before, after) = self.values.split_at_mut(i + 1);
                let (out, later) = after.split_at_mut(1);
                let ins: Vec<&Tensor> = self.nodes[i].inputs.iter().map(|&v| &before[v]).collect();
                let ctx = node_ctx(ctx, i);
                let mut done = false;
                let pool_reader = self.pool_reader.get(i).copied().flatten();
                if let Some((q, window)) = pool_reader.and_then(|q| Some((q, self.nodes[q].layer.max_pool_window()?))) {
                    // The producer pools for node q, keeping the pooled output alone: its own
                    // output (the buffer `out` holds) stays in cache where it can.
                    let pool_node = &self.nodes[q];
                    let geometry = crate::layers::pool_geometry(&window, &shapes[pool_node.inputs[0]]).map_err(|e| e.in_layer(&pool_node.name))?;
                    let mut pooled_out = lend(&mut pool, q + 1);
                    let sink = PoolSink { geometry: &geometry, out: pooled_out.data_mut(), argmax: None, keep_conv_out: false };
                    let node = &mut self.nodes[i];
                    done = node.layer.forward_pooled(&ins, &mut out[0], &ctx, sink).map_err(|e| e.in_layer(&node.name))?;
                    match done {
                        true => later[q - i - 1] = pooled_out,
                        false => pool.give_back(&mut pooled_out),
                    }
                    pooled[q] = done;
                }
                if !done {
                    let node = &mut self.nodes[i];
                    node.layer.forward(&ins, &mut out[0], &ctx).map_err(|e| e.in_layer(&node.name))?;
                }
            }
            let node = &self.nodes[i];
            for &v in &node.inputs {
                if last_reader[v] == i {
                    pool.give_back(&mut self.values[v]);
                }
            }
        }
        self.spare = pool;
        Ok(std::mem::take(&mut self.values[count]))
    }

    /// Runs nodes `0..count` on `input`.
    fn run_nodes(&mut self, input: &Tensor, ctx: &ForwardCtx, count: usize) -> Result<()> {
        self.spare = spare::SpareBuffers::default();
        let mut shapes = vec![input.shape().to_vec()];
        for node in &self.nodes[..count] {
            let ins: Vec<&[usize]> = node.inputs.iter().map(|&v| shapes[v].as_slice()).collect();
            let out = node.layer.output_shape(&ins).map_err(|e| e.in_layer(&node.name))?;
            shapes.push(out);
        }
        let v0 = &mut self.values[0];
        v0.set_shape(input.shape());
        v0.data_mut().copy_from_slice(input.data());
        // Pools their producer ran already (`pool_reader`).
        let mut pooled = vec![false; count];
        self.unkept = vec![false; self.values.len()];
        for i in 0..count {
            if self.fused.get(i) == Some(&true) {
                // The producer applied this ReLU: take its output over (the producer's slot
                // gets this node's last buffer, which its next forward pass overwrites; shaped
                // as the value, since the backward pass sizes gradients by it).
                let v = self.nodes[i].inputs[0];
                self.values.swap(v, i + 1);
                self.values[v].set_shape(&shapes[v]);
                continue;
            }
            if pooled[i] {
                continue;
            }
            let (before, after) = self.values.split_at_mut(i + 1);
            let (out, later) = after.split_at_mut(1);
            let out = &mut out[0];
            out.set_shape(&shapes[i + 1]);
            let ins: Vec<&Tensor> = self.nodes[i].inputs.iter().map(|&v| &before[v]).collect();
            let start = self.timings.is_some().then(std::time::Instant::now);
            let ctx = node_ctx(ctx, i);
            let pool = self.pool_reader.get(i).copied().flatten().filter(|&q| q < count);
            let mut done = false;
            if let Some(q) = pool {
                // The pool's output is value q + 1: `later[q - i - 1]`.
                let (left, right) = self.nodes.split_at_mut(q);
                let (node, pool_node) = (&mut left[i], &mut right[0]);
                let pooled_out = &mut later[q - i - 1];
                pooled_out.set_shape(&shapes[q + 1]);
                let pool_input = &shapes[pool_node.inputs[0]];
                // Before a plain backward pass from the output, a producer that takes the pool's
                // gradient as handed down never reads its output again (nor does the pool):
                // that output need not leave the cache.
                let keep_conv_out = !(ctx.backward_from_output_only && node.layer.takes_pooled_grad());
                if let Some((geometry, argmax)) = pool_node.layer.max_pool_target(pool_input, pooled_out.len()).map_err(|e| e.in_layer(&pool_node.name))? {
                    let sink = PoolSink { geometry: &geometry, out: pooled_out.data_mut(), argmax: Some(argmax), keep_conv_out };
                    done = node.layer.forward_pooled(&ins, out, &ctx, sink).map_err(|e| e.in_layer(&node.name))?;
                }
                pooled[q] = done;
                // The ReLU's output, which takes the producer's over.
                self.unkept[pool_node.inputs[0]] = done && !keep_conv_out;
            }
            if !done {
                let node = &mut self.nodes[i];
                node.layer.forward(&ins, out, &ctx).map_err(|e| e.in_layer(&node.name))?;
            }
            if let (Some(t), Some(start)) = (self.timings.as_mut(), start) {
                t[i][0] += start.elapsed().as_secs_f64();
            }
        }
        Ok(())
    }

    /// Starts (or restarts) timing every node's forward and backward passes.
    pub fn start_timing(&mut self) {
        self.timings = Some(vec![[0.0; 2]; self.nodes.len()]);
    }

    /// Seconds spent per node since `start_timing`: `(name, forward, backward)`.
    pub fn timings(&self) -> Vec<(&str, f64, f64)> {
        match &self.timings {
            Some(t) => self.nodes.iter().zip(t).map(|(n, t)| (n.name.as_str(), t[0], t[1])).collect(),
            None => Vec::new(),
        }
    }

    /// The output of the last forward pass.
    pub fn output(&self) -> &Tensor {
        self.values.last().unwrap_or(&self.values[0])
    }

    /// The output of node `name` in the last forward pass (`None` for a node whose output a
    /// fused ReLU took over, `fuse_activations`).
    pub fn value(&self, name: &str) -> Option<&Tensor> {
        self.value_id(name).filter(|&v| self.kept(v)).map(|v| &self.values[v])
    }

    /// The gradient at node `name`'s output from the last backward pass (empty when the pass
    /// did not reach it).
    pub fn grad(&self, name: &str) -> Option<&Tensor> {
        self.value_id(name).map(|v| &self.grads[v])
    }

    /// The first value of the last forward pass, in execution order (`input` first), that
    /// holds a NaN or an infinity: where a non-finite number first appeared.
    pub fn first_nonfinite_value(&self) -> Option<&str> {
        std::iter::once(INPUT)
            .chain(self.node_names())
            .zip(&self.values)
            .enumerate()
            .find(|&(v, (_, value))| self.kept(v) && !all_finite(value.data()))
            .map(|(_, (name, _))| name)
    }

    /// Whether every parameter gradient is finite (a vectorised, threaded scan).
    pub fn grads_finite(&self) -> bool {
        use rayon::prelude::*;
        self.params().par_iter().all(|(_, p)| p.grad.data().par_chunks(1 << 16).all(all_finite))
    }

    /// The parameter whose gradient first went non-finite in the last backward pass (the
    /// backward pass runs from the output, so the last such parameter in node order).
    pub fn first_nonfinite_grad(&self) -> Option<String> {
        self.params().into_iter().rev().find(|(_, p)| !all_finite(p.grad.data())).map(|(n, _)| n)
    }

    /// The gradient at the input image from the last backward pass.
    pub fn input_grad(&self) -> &Tensor {
        &self.grads[0]
    }

    /// Every parameter under its PyTorch name (`conv1.weight`), in node order.
    pub fn params(&self) -> Vec<(String, &Param)> {
        self.nodes
            .iter()
            .flat_map(|n| n.layer.params().into_iter().map(move |(p, t)| (format!("{}.{p}", n.name), t)))
            .collect()
    }

    pub fn params_mut(&mut self) -> Vec<(String, &mut Param)> {
        self.nodes
            .iter_mut()
            .flat_map(|n| {
                let name = n.name.clone();
                n.layer.params_mut().into_iter().map(move |(p, t)| (format!("{name}.{p}"), t))
            })
            .collect()
    }

    /// Total number of trainable values.
    pub fn param_count(&self) -> usize {
        self.params().iter().map(|(_, p)| p.value.len()).sum()
    }

    /// Sets every parameter gradient to zero.
    pub fn zero_grads(&mut self) {
        for (_, p) in self.params_mut() {
            p.grad.fill(0.0);
        }
    }

    /// Makes every layer that computes statistics of the batch (batch norm) compute them over
    /// all of `group`'s shares of it, or over its own input again with `None`.
    pub fn sync_batch_statistics(&mut self, group: Option<std::sync::Arc<dyn crate::distributed::Collective>>) {
        for n in &mut self.nodes {
            n.layer.sync_batch_statistics(group.clone());
        }
    }

    /// Initialises every layer as PyTorch would, from one seeded generator, in node order.
    pub fn init(&mut self, seed: u64) {
        let mut rng = Rng::new(seed);
        for n in &mut self.nodes {
            n.layer.init(&mut rng);
        }
    }
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nodes: Vec<String> = self.nodes.iter().map(|n| format!("{}: {}", n.name, n.layer.kind())).collect();
        f.debug_struct("Net").field("input", &self.input_shape).field("nodes", &nodes).finish()
    }
}

/// The context node `i` runs in: each node draws its own randomness, the step's seed mixed
/// with the node's position (the same in `forward` and `forward_lean`).
fn node_ctx(ctx: &ForwardCtx, i: usize) -> ForwardCtx {
    ForwardCtx { seed: mix64(ctx.seed ^ mix64(i as u64 + 1)), ..*ctx }
}
