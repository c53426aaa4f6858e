//! Layers: each owns its parameters and their gradients, names them as PyTorch does, and pairs
//! forward with backward in one file. A layer does not know its own name; the net attributes
//! errors to the node.

mod add;
mod affine;
mod batchnorm;
mod concat;
mod conv2d;
mod dropout;
mod flatten;
mod instance_norm;
mod linear;
mod lrn;
mod op;
mod pool;
pub(crate) use pool::pool_geometry;
mod reflection_pad;
mod relu;
mod softmax;
mod upsample;
#[cfg(test)]
mod tests;

pub use add::Add;
pub use affine::ChannelAffine;
pub use batchnorm::BatchNorm2d;
pub use concat::Concat;
pub use conv2d::{Conv2d, Conv2dConfig};
pub use dropout::Dropout;
pub use flatten::Flatten;
pub use instance_norm::InstanceNorm2d;
pub use linear::Linear;
pub use lrn::Lrn;
pub use op::Op;
pub use pool::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d};
pub use reflection_pad::ReflectionPad2d;
pub use relu::Relu;
pub use softmax::Softmax;
pub use upsample::UpsampleNearest2d;

use crate::error::{Error, Result};
use crate::geometry::{Geometry, Region};
use crate::kernels::conv::{PoolSink, PooledGrad};
use crate::kernels::{ReluRule, Store};
use crate::rng::Rng;
use crate::tensor::{fmt_shape, Tensor};

/// A trainable tensor and the gradient accumulated for it.
#[derive(Clone, Debug)]
pub struct Param {
    pub value: Tensor,
    pub grad: Tensor,
}

impl Param {
    pub fn zeros(shape: &[usize]) -> Self {
        Param { value: Tensor::zeros(shape), grad: Tensor::zeros(shape) }
    }
}

/// Training or evaluation: decides batch-norm statistics and whether dropout drops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    Train,
    #[default]
    Eval,
}

/// What a forward pass needs besides its inputs.
#[derive(Clone, Copy, Debug, Default)]
pub struct ForwardCtx {
    pub mode: Mode,
    /// Seed of this step's randomness (dropout masks); a layer mixes in its own position.
    pub seed: u64,
    /// Where this batch's first image stands in the step's whole batch: 0, unless the batch is
    /// one rank's share of a distributed step. Randomness drawn per image (dropout masks) is
    /// drawn for the image's place in the whole batch, so a share gets the masks the single
    /// process would give those images.
    pub first_image: usize,
    /// Whether the only pass to follow is a plain backward pass from the net's output (a
    /// training step): a value no such pass reads is then not kept where leaving it out saves
    /// a pass over memory (`Net::forward`: a fused ReLU's output that a max pool alone reads,
    /// the pool run and its gradient taken by the ReLU's producer). A backward pass that would
    /// read it fails and says so. Off: every value is kept.
    pub backward_from_output_only: bool,
}

/// What a backward pass needs besides its inputs.
#[derive(Clone, Copy, Debug)]
pub struct BackwardCtx {
    /// The ReLU rule: plain gradients, guided backprop or deconvnet.
    pub rule: ReluRule,
    /// Whether to accumulate parameter gradients (visualizations only want the image's).
    pub param_grads: bool,
    /// Whether to compute the gradient at the input image (training does not need it).
    pub input_grad: bool,
}

impl Default for BackwardCtx {
    fn default() -> Self {
        BackwardCtx { rule: ReluRule::Plain, param_grads: true, input_grad: true }
    }
}

/// One node's computation. Shapes include the batch dimension N.
pub trait Layer: Send {
    /// The kind, as the summary prints it: `Conv2d`, `MaxPool2d` ...
    fn kind(&self) -> &'static str;

    /// The settings in a few words: `32 5x5 s1 SAME`.
    fn describe(&self) -> String {
        String::new()
    }

    /// The window of a max pooling layer (so a model can swap it for average pooling, as
    /// Gatys et al. do); `None` for every other layer.
    fn max_pool_window(&self) -> Option<crate::geometry::Window2d> {
        None
    }

    /// What the layer computes, for exporters (ONNX); `Op::Opaque` when it cannot be described.
    fn op(&self) -> Op<'_> {
        Op::Opaque
    }

    /// How many inputs the layer takes: `Some(k)` exactly k, `None` two or more.
    fn arity(&self) -> Option<usize> {
        Some(1)
    }

    /// The output shape for these input shapes, or an error saying which does not fit.
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>>;

    /// Computes `out` (already shaped by `output_shape`) from `inputs`, and keeps whatever the
    /// backward pass needs beyond the inputs and output, which the net keeps.
    fn forward(&mut self, inputs: &[&Tensor], out: &mut Tensor, ctx: &ForwardCtx) -> Result<()>;

    /// Accumulates (`+=`) into each given `d_inputs[i]` the gradient with respect to input `i`,
    /// and into the parameters' gradients when `ctx.param_grads`. `out` and `d_out` have the
    /// output's shape; the forward pass ran last on these same inputs.
    fn backward(
        &mut self,
        inputs: &[&Tensor],
        out: &Tensor,
        d_out: &Tensor,
        d_inputs: &mut [Option<&mut Tensor>],
        ctx: &BackwardCtx,
    ) -> Result<()>;

    /// Asks the layer to apply a ReLU to its own output at the end of its forward pass (`on`)
    /// or to stop; returns whether it now does. The net asks this of a node whose only reader
    /// is a ReLU (`Net::fuse_activations`), which then takes the node's output over in place:
    /// a layer may say yes only if its backward pass never reads its own output.
    fn fuse_relu(&mut self, _on: bool) -> bool {
        false
    }

    /// The forward pass with a ReLU applied (`fuse_relu` is on) and then, sample by sample
    /// while each is in cache, the max pool that reads that ReLU's output alone, writing
    /// `pool`. Returns whether it did; where not (the default), the net runs the pool itself.
    fn forward_pooled(&mut self, _inputs: &[&Tensor], _out: &mut Tensor, _ctx: &ForwardCtx, _pool: PoolSink) -> Result<bool> {
        Ok(false)
    }

    /// For a max pool over `input` whose producer pools for it (`forward_pooled`): the pool's
    /// geometry and its argmax, sized for an output of `len` values; `None` for other layers.
    fn max_pool_target(&mut self, _input: &[usize], _len: usize) -> Result<Option<(Geometry, &mut [u32])>> {
        Ok(None)
    }

    /// Whether the layer can send its gradient straight through a plain ReLU before it
    /// (`backward_through_relu`): the net asks this of the only reader of a fused ReLU's output
    /// (`Net::fuse_activations`), and then skips that ReLU's own backward pass.
    fn passes_gradient_through_relu(&self) -> bool {
        false
    }

    /// The input gradient of `relu(z) -> this layer`, with respect to `z`, stored (`+=`, or
    /// `=`: `store`, as `backward_stored`) into `d_relu_input` (`[shape of the input]`): the
    /// plain rule, `dz = dy_input * [input > 0]`, in the layer's own backward pass. Only called
    /// where `passes_gradient_through_relu`.
    fn backward_through_relu(&mut self, _inputs: &[&Tensor], _out: &Tensor, _d_out: &Tensor, _d_relu_input: &mut Tensor, _store: Store) -> Result<()> {
        Err(crate::error::Error::Graph(format!("a {} does not pass gradients through a ReLU", self.kind())))
    }

    /// For a max pool that passes its gradient through a ReLU (`passes_gradient_through_relu`):
    /// what its backward pass would scatter, from its output `out` and that output's gradient
    /// `d_out`, for the ReLU's producer to take in its own backward pass (`backward_from_pool`)
    /// while the net skips the pool's. `None` for other layers.
    fn pooled_grad<'a>(&'a self, _out: &'a Tensor, _d_out: &'a Tensor) -> Option<PooledGrad<'a>> {
        None
    }

    /// Whether the layer's backward pass can take its output gradient as the max pool behind its
    /// fused ReLU hands it down (`backward_from_pool`).
    fn takes_pooled_grad(&self) -> bool {
        false
    }

    /// `backward_stored` with the output gradient `pooled` (`pooled_grad` of the max pool that
    /// alone reads this layer's output through its fused ReLU) instead of a gradient tensor,
    /// which the net then never forms. Only called where `takes_pooled_grad`.
    fn backward_from_pool(&mut self, _inputs: &[&Tensor], _pooled: PooledGrad, _d_inputs: &mut [Option<&mut Tensor>], _ctx: &BackwardCtx, _store: Store) -> Result<()> {
        Err(crate::error::Error::Graph(format!("a {} does not take a pool's gradient", self.kind())))
    }

    /// `backward`, with its input's gradient stored as `store` says: added to (`Store::Add`,
    /// as `backward`), or written over (`Store::Write`: the net passes it to a value's only
    /// reader, and then does not zero that gradient first). The default zeroes the gradient and
    /// adds; a layer that can write it outright (and so spare that pass over memory) overrides.
    fn backward_stored(
        &mut self,
        inputs: &[&Tensor],
        out: &Tensor,
        d_out: &Tensor,
        d_inputs: &mut [Option<&mut Tensor>],
        ctx: &BackwardCtx,
        store: Store,
    ) -> Result<()> {
        if store == Store::Write {
            d_inputs.iter_mut().flatten().for_each(|d| d.fill(0.0));
        }
        self.backward(inputs, out, d_out, d_inputs, ctx)
    }

    /// Asks the layer's backward pass to write (`=`) its parameters' gradients instead of adding
    /// to them (`on`), or to add again; returns whether it now writes. `Net::backward_fresh`
    /// asks, and zeroes the gradients of layers that say no: a large layer spares a pass that
    /// writes zeros and a read of them.
    fn write_param_grads(&mut self, _on: bool) -> bool {
        false
    }

    /// Trainable parameters under their PyTorch names (`weight`, `bias`).
    fn params(&self) -> Vec<(&'static str, &Param)> {
        Vec::new()
    }

    fn params_mut(&mut self) -> Vec<(&'static str, &mut Param)> {
        Vec::new()
    }

    /// State that is saved but not trained (`running_mean`, `running_var`).
    fn buffers(&self) -> Vec<(&'static str, &Tensor)> {
        Vec::new()
    }

    fn buffers_mut(&mut self) -> Vec<(&'static str, &mut Tensor)> {
        Vec::new()
    }

    /// Fresh parameters, as PyTorch initialises this layer.
    fn init(&mut self, _rng: &mut Rng) {}

    /// For layers whose training pass depends on the whole batch (batch norm): the ranks whose
    /// shares make up each batch, or `None` for a batch held whole.
    fn sync_batch_statistics(&mut self, _group: Option<std::sync::Arc<dyn crate::distributed::Collective>>) {}

    /// Multiply-adds of one forward pass for one image (batch dimension 1).
    fn macs(&self, _inputs: &[&[usize]]) -> u64 {
        0
    }

    /// Rows and columns of the input the layer never reads (a filter that does not tile).
    fn leftover(&self, _inputs: &[&[usize]]) -> (usize, usize) {
        (0, 0)
    }

    /// The cells of input `i` (shape `input`) that the output cells in `region` depend on.
    /// Elementwise layers keep the region; window layers widen it; layers that mix every cell
    /// (linear, global pooling) return the whole input.
    fn input_region(&self, _i: usize, input: &[usize], region: Region) -> Region {
        match input {
            [_, _, h, w] => region.intersect_full(*h, *w),
            _ => region,
        }
    }
}

/// `weight` and, when present, `bias`, under PyTorch's names (Conv2d, Linear).
pub(crate) fn weight_and_bias<'a>(weight: &'a Param, bias: &'a Option<Param>) -> Vec<(&'static str, &'a Param)> {
    let mut p = vec![("weight", weight)];
    if let Some(b) = bias {
        p.push(("bias", b));
    }
    p
}

pub(crate) fn weight_and_bias_mut<'a>(weight: &'a mut Param, bias: &'a mut Option<Param>) -> Vec<(&'static str, &'a mut Param)> {
    let mut p = vec![("weight", weight)];
    if let Some(b) = bias {
        p.push(("bias", b));
    }
    p
}

/// PyTorch's default for Conv2d and Linear: every value uniform in `±1 / sqrt(fan_in)`.
pub(crate) fn init_fan_in(params: Vec<(&'static str, &mut Param)>, fan_in: usize, rng: &mut Rng) {
    let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
    for (_, p) in params {
        p.value.data_mut().iter_mut().for_each(|v| *v = rng.uniform(-bound, bound));
    }
}

/// Fails unless `shape` has 4 dimensions and, when given, `channels` channels.
pub(crate) fn expect_nchw(shape: &[usize], channels: Option<usize>) -> Result<(usize, usize, usize, usize)> {
    let (n, c, h, w) = crate::tensor::dims4(shape, "input")?;
    if let Some(expected) = channels {
        if c != expected {
            return Err(Error::shape(format!(
                "input has shape {} with {c} channels, the layer needs {expected}",
                fmt_shape(shape)
            )));
        }
    }
    Ok((n, c, h, w))
}

/// Fails unless exactly `k` inputs are given.
pub(crate) fn expect_inputs(inputs: usize, k: usize) -> Result<()> {
    if inputs != k {
        return Err(Error::shape(format!("takes {k} input(s), {inputs} given")));
    }
    Ok(())
}
