//! Fully connected layer: `y = x @ W^T + b`, weight `[out, in]`, bias `[out]` (PyTorch's layout).

use super::{expect_inputs, init_fan_in, weight_and_bias, weight_and_bias_mut, BackwardCtx, ForwardCtx, Layer, Param};
use crate::error::{Error, Result};
use crate::geometry::Region;
use crate::kernels::linear::{linear_backward, linear_forward};
use crate::kernels::Store;
use crate::rng::Rng;
use crate::tensor::{fmt_shape, Tensor};

pub struct Linear {
    in_features: usize,
    out_features: usize,
    weight: Param,
    bias: Option<Param>,
    /// The forward pass's transposed result `[out, N]`, kept between steps.
    scratch: Vec<f32>,
    /// How the backward pass stores the parameter gradients (`Layer::write_param_grads`).
    param_store: Store,
    /// A ReLU fused into the forward pass (`Layer::fuse_relu`): applied where the result is
    /// transposed and the bias added.
    fused_relu: bool,
}

impl Linear {
    pub fn new(in_features: usize, out_features: usize) -> Self {
        Linear {
            in_features,
            out_features,
            weight: Param::zeros(&[out_features, in_features]),
            bias: Some(Param::zeros(&[out_features])),
            scratch: Vec::new(),
            param_store: Store::Add,
            fused_relu: false,
        }
    }

    pub fn without_bias(mut self) -> Self {
        self.bias = None;
        self
    }

    fn rows(&self, input: &[usize]) -> Result<usize> {
        match *input {
            [n, i] if i == self.in_features => Ok(n),
            _ => Err(Error::shape(format!(
                "input has shape {}, the layer needs [N, {}]{}",
                fmt_shape(input),
                self.in_features,
                if input.len() > 2 { " (flatten it first)" } else { "" }
            ))),
        }
    }
}

impl Layer for Linear {
    fn kind(&self) -> &'static str {
        "Linear"
    }
    fn op(&self) -> super::Op<'_> {
        super::Op::Linear
    }
    fn describe(&self) -> String {
        format!("{} -> {}", self.in_features, self.out_features)
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        expect_inputs(inputs.len(), 1)?;
        Ok(vec![self.rows(inputs[0])?, self.out_features])
    }
    fn forward(&mut self, inputs: &[&Tensor], out: &mut Tensor, _ctx: &ForwardCtx) -> Result<()> {
        let n = self.rows(inputs[0].shape())?;
        let bias = self.bias.as_ref().map(|b| b.value.data());
        linear_forward(out.data_mut(), inputs[0].data(), self.weight.value.data(), bias, n, self.in_features, self.out_features, self.fused_relu, &mut self.scratch);
        Ok(())
    }
    /// The backward pass reads the input and the weights, never the output: the ReLU's node
    /// takes the output over.
    fn fuse_relu(&mut self, on: bool) -> bool {
        self.fused_relu = on;
        on
    }
    fn backward(&mut self, inputs: &[&Tensor], out: &Tensor, d_out: &Tensor, d_inputs: &mut [Option<&mut Tensor>], ctx: &BackwardCtx) -> Result<()> {
        self.backward_stored(inputs, out, d_out, d_inputs, ctx, Store::Add)
    }
    fn backward_stored(&mut self, inputs: &[&Tensor], _out: &Tensor, d_out: &Tensor, d_inputs: &mut [Option<&mut Tensor>], ctx: &BackwardCtx, store: Store) -> Result<()> {
        let n = self.rows(inputs[0].shape())?;
        let d_input = d_inputs[0].as_deref_mut().map(|t| t.data_mut());
        let (d_weight, d_bias) = if ctx.param_grads {
            (Some(self.weight.grad.data_mut()), self.bias.as_mut().map(|b| b.grad.data_mut()))
        } else {
            (None, None)
        };
        let stores = (store, self.param_store);
        linear_backward(d_input, d_weight, d_bias, d_out.data(), inputs[0].data(), self.weight.value.data(), n, self.in_features, self.out_features, stores);
        Ok(())
    }
    fn write_param_grads(&mut self, on: bool) -> bool {
        self.param_store = if on { Store::Write } else { Store::Add };
        true
    }
    fn params(&self) -> Vec<(&'static str, &Param)> {
        weight_and_bias(&self.weight, &self.bias)
    }
    fn params_mut(&mut self) -> Vec<(&'static str, &mut Param)> {
        weight_and_bias_mut(&mut self.weight, &mut self.bias)
    }
    /// PyTorch's default: uniform in `±1 / sqrt(in_features)`.
    fn init(&mut self, rng: &mut Rng) {
        let fan_in = self.in_features;
        init_fan_in(self.params_mut(), fan_in, rng);
    }
    fn macs(&self, _inputs: &[&[usize]]) -> u64 {
        (self.in_features * self.out_features) as u64
    }
    fn input_region(&self, _i: usize, input: &[usize], _region: Region) -> Region {
        Region::full(1, *input.last().unwrap_or(&1))
    }
}
