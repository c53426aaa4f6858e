//! The backward pass: gradients from one or more seeds back to every value and parameter they
//! depend on, sent straight through a fused ReLU where a max pool reads it, written outright
//! where a value's only reader can write it, accumulated otherwise.

use super::Net;
use crate::error::{Error, Result};
use crate::kernels::Store;
use crate::layers::BackwardCtx;
use crate::tensor::{fmt_shape, Tensor};

impl Net {
    /// Backpropagates `seed` (the gradient of some objective with respect to node `from`'s
    /// output, of that output's shape) through every node `from` depends on. Parameter
    /// gradients accumulate (`+=`, see `zero_grads`); the gradient at the input image and at
    /// every visited node is then available from `input_grad` and `grad`.
    pub fn backward(&mut self, from: &str, seed: &Tensor, ctx: &BackwardCtx) -> Result<()> {
        self.backward_seeds(&[(from, seed)], ctx)
    }

    /// Backpropagates several seed gradients at once, each at its node's output (the gradient of
    /// a sum of objectives at several layers, as style transfer's losses): one pass through
    /// every node the seeds depend on, from the deepest.
    pub fn backward_seeds(&mut self, seeds: &[(&str, &Tensor)], ctx: &BackwardCtx) -> Result<()> {
        self.backward_pass(seeds, ctx, false)
    }

    /// `zero_grads` and then `backward`, in fewer passes over memory: the parameter gradients
    /// are this pass's alone. Layers that can write their parameters' gradients outright
    /// (`Layer::write_param_grads`: fully connected layers, whose weights are most of a small
    /// net's) do so; the others' are zeroed first, as are those of layers the pass does not
    /// reach.
    pub fn backward_fresh(&mut self, from: &str, seed: &Tensor, ctx: &BackwardCtx) -> Result<()> {
        self.backward_pass(&[(from, seed)], ctx, true)
    }

    /// One backward pass from `seeds`; with `fresh`, parameter gradients start from zero.
    fn backward_pass(&mut self, seeds: &[(&str, &Tensor)], ctx: &BackwardCtx, fresh: bool) -> Result<()> {
        let mut at = Vec::with_capacity(seeds.len());
        for (from, seed) in seeds {
            let s = self.node_id(from)?;
            if self.values[s + 1].shape() != seed.shape() || self.values[0].is_empty() {
                return Err(Error::shape(format!(
                    "the seed gradient has shape {}, the output of {from} in the last forward pass has {}",
                    fmt_shape(seed.shape()),
                    fmt_shape(self.values[s + 1].shape())
                )));
            }
            at.push(s);
        }
        let Some(&deepest) = at.iter().max() else { return Ok(()) };
        // Which values the seeds reach: their nodes and everything those depend on.
        let mut needed = vec![false; self.values.len()];
        for &s in &at {
            needed[s + 1] = true;
        }
        for i in (0..=deepest).rev() {
            if needed[i + 1] {
                for &v in &self.nodes[i].inputs {
                    needed[v] = true;
                }
            }
        }
        needed[0] = needed[0] && ctx.input_grad;
        // Which values a backward pass reads before the ReLUs' gradients are skipped below.
        let reached = needed.clone();
        // Where a fused ReLU's only reader sends its gradient through it, the ReLU's own
        // gradient is neither computed nor kept.
        let through = self.gradients_through_relu(ctx, &at);
        for (i, u) in through.iter().enumerate() {
            if u.is_some() {
                let v = self.nodes[i].inputs[0];
                needed[v] = false;
                self.grads[v].set_shape(&[0]);
            }
        }
        // Where a max pool's gradient goes through a fused ReLU to a producer that takes it as
        // the pool hands it down (`Layer::backward_from_pool`), the producer's output gradient
        // is not formed either: per producer node, the pool node. Not where a seed starts at
        // the producer.
        let mut from_pool: Vec<Option<usize>> = vec![None; self.nodes.len()];
        let mut formed = vec![true; self.values.len()];
        for (q, u) in through.iter().enumerate() {
            // (A fused ReLU reads a node's output, never the net's input: `u > 0`.)
            let Some(u) = u.filter(|&u| u > 0) else { continue };
            let producer = u - 1;
            if needed[q + 1] && !at.contains(&producer) && self.nodes[producer].layer.takes_pooled_grad() {
                from_pool[producer] = Some(q);
                formed[u] = false;
                self.grads[u].set_shape(&[0]);
            }
        }
        self.check_unkept_unread(&reached, &from_pool)?;
        // A value with one reader of one input is not zeroed here: that reader stores its
        // gradient with `Store::Write` (`Layer::backward_stored`), through a fused ReLU too.
        // Not where a seed adds to a value before its readers do.
        let readers = self.readers();
        let mut written = vec![false; self.values.len()];
        let mut stores = vec![Store::Add; self.nodes.len()];
        for (i, node) in self.nodes.iter().enumerate().take(deepest + 1) {
            let [v] = node.inputs[..] else { continue };
            let target = through[i].unwrap_or(v);
            let only_writer = if through[i].is_some() { readers[target] == 1 } else { readers[v] == 1 };
            if needed[i + 1] && needed[target] && only_writer && !at.contains(&target.wrapping_sub(1)) {
                written[target] = true;
                stores[i] = Store::Write;
            }
        }
        for (v, need) in needed.iter().enumerate() {
            if *need && formed[v] {
                self.grads[v].set_shape(self.values[v].shape());
                if !written[v] {
                    self.grads[v].fill(0.0);
                }
            }
        }
        if fresh {
            for (i, node) in self.nodes.iter_mut().enumerate() {
                let writes = i <= deepest && needed[i + 1] && ctx.param_grads && node.layer.write_param_grads(true);
                if !writes {
                    node.layer.params_mut().into_iter().for_each(|(_, p)| p.grad.fill(0.0));
                }
            }
        }
        let result = self.backward_nodes(&at, seeds, &needed, &through, &from_pool, &stores, deepest, ctx);
        if fresh {
            for node in &mut self.nodes {
                node.layer.write_param_grads(false);
            }
        }
        result
    }

    /// The backward pass proper: the seeds added at their nodes, then every needed node from
    /// the deepest down (`needed`: per value; `through`: `gradients_through_relu`;
    /// `from_pool`: per node, the pool whose gradient it takes as handed down, a pool skipped
    /// then; `stores`: per node, how it stores its input's gradient).
    #[allow(clippy::too_many_arguments)]
    fn backward_nodes(&mut self, at: &[usize], seeds: &[(&str, &Tensor)], needed: &[bool], through: &[Option<usize>], from_pool: &[Option<usize>], stores: &[Store], deepest: usize, ctx: &BackwardCtx) -> Result<()> {
        // Each seed adds to what the nodes above it will send down (layers accumulate too).
        for (&s, (_, seed)) in at.iter().zip(seeds) {
            for (g, v) in self.grads[s + 1].data_mut().iter_mut().zip(seed.data()) {
                *g += v;
            }
        }

        // The pools whose producers take their gradients: skipped.
        let mut handed_down = vec![false; self.nodes.len()];
        from_pool.iter().flatten().for_each(|&q| handed_down[q] = true);
        for i in (0..=deepest).rev() {
            if !needed[i + 1] || handed_down[i] {
                continue;
            }
            let (nodes, pools) = self.nodes.split_at_mut(i + 1);
            let node = &mut nodes[i];
            let (lower, upper) = self.grads.split_at_mut(i + 1);
            let d_out = &upper[0];
            let ins: Vec<&Tensor> = node.inputs.iter().map(|&v| &self.values[v]).collect();
            let out = &self.values[i + 1];
            let start = self.timings.is_some().then(std::time::Instant::now);
            if let Some(q) = from_pool[i] {
                let (pool, at) = (&pools[q - i - 1], q + 1);
                let pooled = pool.layer.pooled_grad(&self.values[at], &upper[at - i - 1]);
                let pooled = pooled.ok_or_else(|| Error::Graph(format!("{} hands down no pooled gradient", pool.name)))?;
                let mut d_inputs = pick_mut(lower, &node.inputs, needed);
                node.layer.backward_from_pool(&ins, pooled, &mut d_inputs, ctx, stores[i]).map_err(|e| e.in_layer(&node.name))?;
            } else if let Some(u) = through[i] {
                node.layer.backward_through_relu(&ins, out, d_out, &mut lower[u], stores[i]).map_err(|e| e.in_layer(&node.name))?;
            } else {
                let mut d_inputs = pick_mut(lower, &node.inputs, needed);
                node.layer.backward_stored(&ins, out, d_out, &mut d_inputs, ctx, stores[i]).map_err(|e| e.in_layer(&node.name))?;
            }
            if let (Some(t), Some(start)) = (self.timings.as_mut(), start) {
                t[i][1] += start.elapsed().as_secs_f64();
            }
        }
        Ok(())
    }

    /// Fails where this pass would read a ReLU's output the last forward pass did not keep
    /// (`Net::unkept`): its pool's gradient is not handed down to the producer this time
    /// (`reached`: the values whose gradients the pass reaches; `from_pool`: per producer, the
    /// pool it takes its gradient from).
    fn check_unkept_unread(&self, reached: &[bool], from_pool: &[Option<usize>]) -> Result<()> {
        for (producer, q) in self.pool_reader.iter().enumerate() {
            let Some(q) = *q else { continue };
            let relu = self.nodes[q].inputs[0];
            if self.unkept.get(relu) == Some(&true) && reached[relu] && from_pool[producer] != Some(q) {
                return Err(Error::Graph(format!(
                    "{}: the forward pass did not keep its output (told that only a plain backward pass from the output follows, ForwardCtx::backward_from_output_only; the max pool {} hands its gradient to {}), and this backward pass reads it (another ReLU rule, or a seed at the ReLU): run the forward pass without that flag",
                    self.nodes[relu - 1].name, self.nodes[q].name, self.nodes[producer].name
                )));
            }
        }
        Ok(())
    }

    /// Per node: the value whose gradient the node's backward pass writes straight through the
    /// fused ReLU before it (`Layer::backward_through_relu`, a max pool: one scatter instead of
    /// the pool's and then the ReLU's pass over the whole activation), or `None`. Only for the
    /// plain rule (guided backprop and deconvnet gate the sum of a cell's gradients, which a
    /// pool with overlapping windows scatters in several parts) and where no seed starts at the
    /// ReLU (`seeds_at`: node ids).
    fn gradients_through_relu(&self, ctx: &BackwardCtx, seeds_at: &[usize]) -> Vec<Option<usize>> {
        let plain = ctx.rule == crate::kernels::ReluRule::Plain;
        let passes = |i: usize| {
            let relu = self.nodes[i].inputs[0] - 1;
            plain && !seeds_at.contains(&relu) && self.nodes[i].layer.passes_gradient_through_relu()
        };
        (0..self.nodes.len()).map(|i| self.behind_relu.get(i).copied().flatten().filter(|_| passes(i))).collect()
    }
}

/// Mutable references to the values `ids` of `slice` that are `needed`, in the order of `ids`.
fn pick_mut<'a>(slice: &'a mut [Tensor], ids: &[usize], needed: &[bool]) -> Vec<Option<&'a mut Tensor>> {
    let mut out: Vec<Option<&'a mut Tensor>> = ids.iter().map(|_| None).collect();
    for (v, t) in slice.iter_mut().enumerate() {
        if let Some(pos) = ids.iter().position(|&id| id == v) {
            if needed[v] {
                out[pos] = Some(t);
            }
        }
    }
    out
}
