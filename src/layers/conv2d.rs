//! Conv2d: many filters slid over the input, with stride, padding (VALID, SAME, explicit),
//! dilation, groups and an optional bias. Weight `[out, in/groups, kh, kw]`, bias `[out]`.

use super::{expect_inputs, expect_nchw, init_fan_in, weight_and_bias, weight_and_bias_mut, BackwardCtx, ForwardCtx, Layer, Param};
use crate::error::{Error, Result};
use crate::geometry::{Geometry, Padding, Region, Window2d};
use crate::kernels::conv::{conv2d_backward_pooled, conv2d_backward_stored, conv2d_forward_with, ConvDims, ConvPath, ConvScratch, Epilogue, PoolSink, PooledGrad};
use crate::kernels::Store;
use crate::rng::Rng;
use crate::tensor::Tensor;

/// The settings of a convolution, as PyTorch's `nn.Conv2d` takes them (plus SAME/VALID).
#[derive(Clone, Copy, Debug)]
pub struct Conv2dConfig {
    pub in_channels: usize,
    /// Number of filters.
    pub out_channels: usize,
    /// `[kh, kw]`.
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: Padding,
    pub dilation: [usize; 2],
    /// Input and output channels split into this many independent groups.
    pub groups: usize,
    pub bias: bool,
}

impl Conv2dConfig {
    /// `out` square `k x k` filters over `in` channels, stride 1, no padding, with bias.
    pub fn new(in_channels: usize, out_channels: usize, k: usize) -> Self {
        Conv2dConfig {
            in_channels,
            out_channels,
            kernel: [k, k],
            stride: [1, 1],
            padding: Padding::Valid,
            dilation: [1, 1],
            groups: 1,
            bias: true,
        }
    }
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = [s, s];
        self
    }
    pub fn padding(mut self, p: Padding) -> Self {
        self.padding = p;
        self
    }
    /// PyTorch's `padding=p`.
    pub fn pad(self, p: usize) -> Self {
        self.padding(Padding::uniform(p))
    }
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = [d, d];
        self
    }
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
    pub fn bias(mut self, b: bool) -> Self {
        self.bias = b;
        self
    }
    fn window(&self) -> Window2d {
        Window2d { kernel: self.kernel, stride: self.stride, dilation: self.dilation, padding: self.padding, ceil_mode: false }
    }
}

pub struct Conv2d {
    cfg: Conv2dConfig,
    weight: Param,
    bias: Option<Param>,
    scratch: ConvScratch,
    /// A ReLU fused by the net, applied to each sample's output while it is in cache.
    fused_relu: bool,
    /// How the backward pass stores the parameters' gradients (`Layer::write_param_grads`).
    param_store: Store,
}

impl Conv2d {
    pub fn new(cfg: Conv2dConfig) -> Result<Self> {
        let Conv2dConfig { in_channels: ci, out_channels: co, groups: g, .. } = cfg;
        if g == 0 || ci == 0 || co == 0 || ci % g != 0 || co % g != 0 {
            return Err(Error::Invalid(format!(
                "conv: {ci} input and {co} output channels must be positive multiples of groups = {g}"
            )));
        }
        if cfg.kernel.contains(&0) || cfg.stride.contains(&0) || cfg.dilation.contains(&0) {
            return Err(Error::Invalid(format!(
                "conv: kernel {:?}, stride {:?} and dilation {:?} must be at least 1",
                cfg.kernel, cfg.stride, cfg.dilation
            )));
        }
        Ok(Conv2d {
            weight: Param::zeros(&[co, ci / g, cfg.kernel[0], cfg.kernel[1]]),
            bias: cfg.bias.then(|| Param::zeros(&[co])),
            cfg,
            scratch: ConvScratch::default(),
            fused_relu: false,
            param_store: Store::Add,
        })
    }

    pub fn config(&self) -> &Conv2dConfig {
        &self.cfg
    }

    /// The resolved geometry over an input shape `[N, C, H, W]`.
    pub fn geometry(&self, input: &[usize]) -> Result<Geometry> {
        let (_, _, h, w) = expect_nchw(input, Some(self.cfg.in_channels))?;
        self.cfg.window().resolve(h, w)
    }

    /// The forward pass on `inputs[0]` into `out`, then `epilogue`.
    fn forward_with(&mut self, inputs: &[&Tensor], out: &mut Tensor, epilogue: Epilogue) -> Result<()> {
        let d = self.dims(inputs[0].shape())?;
        let bias = self.bias.as_ref().map(|b| b.value.data());
        conv2d_forward_with(ConvPath::Auto, epilogue, out.data_mut(), inputs[0].data(), self.weight.value.data(), bias, &d, &mut self.scratch);
        Ok(())
    }

    fn dims(&self, input: &[usize]) -> Result<ConvDims> {
        let geom = self.geometry(input)?;
        Ok(ConvDims { n: input[0], c_in: self.cfg.in_channels, c_out: self.cfg.out_channels, groups: self.cfg.groups, geom })
    }
}

impl Layer for Conv2d {
    fn kind(&self) -> &'static str {
        "Conv2d"
    }
    fn op(&self) -> super::Op<'_> {
        super::Op::Conv { window: self.cfg.window(), groups: self.cfg.groups }
    }

    fn describe(&self) -> String {
        let g = if self.cfg.groups > 1 { format!(" groups {}", self.cfg.groups) } else { String::new() };
        format!("{} {}{g}{}", self.cfg.out_channels, self.cfg.window().describe(), if self.cfg.bias { "" } else { " no bias" })
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        expect_inputs(inputs.len(), 1)?;
        let g = self.geometry(inputs[0])?;
        Ok(vec![inputs[0][0], self.cfg.out_channels, g.rows.output, g.cols.output])
    }

    fn forward(&mut self, inputs: &[&Tensor], out: &mut Tensor, _ctx: &ForwardCtx) -> Result<()> {
        let epilogue = if self.fused_relu { Epilogue::Relu } else { Epilogue::None };
        self.forward_with(inputs, out, epilogue)
    }

    fn forward_pooled(&mut self, inputs: &[&Tensor], out: &mut Tensor, _ctx: &ForwardCtx, pool: PoolSink) -> Result<bool> {
        if !self.fused_relu {
            return Ok(false);
        }
        self.forward_with(inputs, out, Epilogue::ReluThenMaxPool(pool))?;
        Ok(true)
    }

    fn write_param_grads(&mut self, on: bool) -> bool {
        self.param_store = if on { Store::Write } else { Store::Add };
        true
    }

    /// The backward pass reads the input and the weights, never the output.
    fn fuse_relu(&mut self, on: bool) -> bool {
        self.fused_relu = on;
        on
    }

    fn backward(&mut self, inputs: &[&Tensor], out: &Tensor, d_out: &Tensor, d_inputs: &mut [Option<&mut Tensor>], ctx: &BackwardCtx) -> Result<()> {
        self.backward_stored(inputs, out, d_out, d_inputs, ctx, Store::Add)
    }
    fn backward_stored(&mut self, inputs: &[&Tensor], _out: &Tensor, d_out: &Tensor, d_inputs: &mut [Option<&mut Tensor>], ctx: &BackwardCtx, store: Store) -> Result<()> {
        let d = self.dims(inputs[0].shape())?;
        let d_input = d_inputs[0].as_deref_mut().map(|t| t.data_mut());
        let (d_weight, d_bias) = if ctx.param_grads {
            (Some(self.weight.grad.data_mut()), self.bias.as_mut().map(|b| b.grad.data_mut()))
        } else {
            (None, None)
        };
        conv2d_backward_stored(ConvPath::Auto, d_input, (store, self.param_store), d_weight, d_bias, d_out.data(), inputs[0].data(), self.weight.value.data(), &d, &mut self.scratch);
        Ok(())
    }

    /// With its ReLU fused: the pool behind it hands its gradient down.
    fn takes_pooled_grad(&self) -> bool {
        self.fused_relu
    }
    fn backward_from_pool(&mut self, inputs: &[&Tensor], pooled: PooledGrad, d_inputs: &mut [Option<&mut Tensor>], ctx: &BackwardCtx, store: Store) -> Result<()> {
        let d = self.dims(inputs[0].shape())?;
        let expected = d.n * d.c_out * pooled.out_plane;
        if pooled.d_out.len() != expected || pooled.argmax.len() != expected || pooled.out.len() != expected {
            return Err(Error::shape(format!("conv: the pool's gradient has {} values, its {} output channels need {expected}", pooled.d_out.len(), d.c_out)));
        }
        let d_input = d_inputs[0].as_deref_mut().map(|t| t.data_mut());
        let (d_weight, d_bias) = match ctx.param_grads {
            true => (Some(self.weight.grad.data_mut()), self.bias.as_mut().map(|b| b.grad.data_mut())),
            false => (None, None),
        };
        conv2d_backward_pooled(ConvPath::Auto, d_input, (store, self.param_store), d_weight, d_bias, pooled, inputs[0].data(), self.weight.value.data(), &d, &mut self.scratch);
        Ok(())
    }

    fn params(&self) -> Vec<(&'static str, &Param)> {
        weight_and_bias(&self.weight, &self.bias)
    }

    fn params_mut(&mut self) -> Vec<(&'static str, &mut Param)> {
        weight_and_bias_mut(&mut self.weight, &mut self.bias)
    }

    /// PyTorch's default: weight and bias uniform in `±1 / sqrt(fan_in)`.
    fn init(&mut self, rng: &mut Rng) {
        let fan_in = (self.cfg.in_channels / self.cfg.groups) * self.cfg.kernel[0] * self.cfg.kernel[1];
        init_fan_in(self.params_mut(), fan_in, rng);
    }

    fn macs(&self, inputs: &[&[usize]]) -> u64 {
        let mut shape = inputs[0].to_vec();
        shape[0] = 1;
        self.dims(&shape).map(|d| d.macs()).unwrap_or(0)
    }

    fn leftover(&self, inputs: &[&[usize]]) -> (usize, usize) {
        self.geometry(inputs[0]).map(|g| g.leftover()).unwrap_or((0, 0))
    }

    fn input_region(&self, _i: usize, input: &[usize], region: Region) -> Region {
        match self.geometry(input) {
            Ok(g) => region.through(&g),
            Err(_) => Region::full(input[2], input[3]),
        }
    }
}
