//! Instance normalisation (Ulyanov et al., 2016), as PyTorch's `nn.InstanceNorm2d(C,
//! affine=True)`: each image's channel is normalised over its own H x W cells with their mean
//! and biased variance, in training and evaluation alike (no running statistics), then scaled
//! by `weight` and shifted by `bias`. Johnson et al.'s style networks use it in place of batch
//! norm, so a picture is stylised the same whatever else is in the batch.

use super::{expect_inputs, expect_nchw, BackwardCtx, ForwardCtx, Layer, Mode, Param};
use crate::error::{Error, Result};
use crate::geometry::Region;
use crate::kernels::batchnorm::{affine_channels_then, batchnorm_train_backward, channel_stats, grad_sums};
use crate::kernels::Store;
use crate::tensor::Tensor;

pub struct InstanceNorm2d {
    channels: usize,
    eps: f32,
    /// gamma, `[C]`.
    weight: Param,
    /// beta, `[C]`.
    bias: Param,
    /// Of the last forward pass, per plane `n * C + c`: the mean and 1 / sqrt(var + eps).
    mean: Vec<f32>,
    invstd: Vec<f32>,
    /// A ReLU fused after the normalisation (`Layer::fuse_relu`).
    fused_relu: bool,
}

impl InstanceNorm2d {
    /// PyTorch's defaults: eps 1e-5, gamma 1, beta 0.
    pub fn new(channels: usize) -> Self {
        let mut weight = Param::zeros(&[channels]);
        weight.value.fill(1.0);
        InstanceNorm2d { channels, eps: 1e-5, weight, bias: Param::zeros(&[channels]), mean: Vec::new(), invstd: Vec::new(), fused_relu: false }
    }

    pub fn with_eps(mut self, eps: f32) -> Self {
        self.eps = eps;
        self
    }

    /// `[C]` repeated for each of `n` images: the planes' view of a per-channel vector.
    fn per_plane(v: &[f32], n: usize) -> Vec<f32> {
        v.iter().copied().cycle().take(v.len() * n).collect()
    }
}

impl Layer for InstanceNorm2d {
    fn kind(&self) -> &'static str {
        "InstanceNorm2d"
    }
    fn op(&self) -> super::Op<'_> {
        super::Op::InstanceNorm { eps: self.eps }
    }
    fn describe(&self) -> String {
        format!("{} eps {}", self.channels, self.eps)
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        expect_inputs(inputs.len(), 1)?;
        expect_nchw(inputs[0], Some(self.channels))?;
        Ok(inputs[0].to_vec())
    }
    fn forward(&mut self, inputs: &[&Tensor], out: &mut Tensor, ctx: &ForwardCtx) -> Result<()> {
        let x = inputs[0];
        let (n, c, h, w) = x.dims4("input")?;
        let plane = h * w;
        if plane < 2 && ctx.mode == Mode::Train {
            return Err(Error::shape(format!(
                "instance norm in training mode needs more than one value per channel, got input {:?} (1x1 maps)",
                x.shape()
            )));
        }
        // The batch-norm kernels over N * C "channels" of one image each.
        let stats = channel_stats(x.data(), 1, n * c, plane);
        self.mean = stats.iter().map(|s| s.0 as f32).collect();
        self.invstd = stats.iter().map(|s| 1.0 / (s.1 as f32 + self.eps).sqrt()).collect();
        let gamma = Self::per_plane(self.weight.value.data(), n);
        let beta = Self::per_plane(self.bias.value.data(), n);
        let a: Vec<f32> = gamma.iter().zip(&self.invstd).map(|(g, s)| g * s).collect();
        let b: Vec<f32> = beta.iter().zip(&self.mean).zip(&a).map(|((b, m), a)| b - m * a).collect();
        affine_channels_then(out.data_mut(), x.data(), &a, &b, n * c, plane, self.fused_relu);
        Ok(())
    }

    /// The backward pass reads the input and the statistics, never the output.
    fn fuse_relu(&mut self, on: bool) -> bool {
        self.fused_relu = on;
        on
    }
    fn backward(&mut self, inputs: &[&Tensor], out: &Tensor, d_out: &Tensor, d_inputs: &mut [Option<&mut Tensor>], ctx: &BackwardCtx) -> Result<()> {
        self.backward_stored(inputs, out, d_out, d_inputs, ctx, Store::Add)
    }
    fn backward_stored(&mut self, inputs: &[&Tensor], _out: &Tensor, d_out: &Tensor, d_inputs: &mut [Option<&mut Tensor>], ctx: &BackwardCtx, store: Store) -> Result<()> {
        let x = inputs[0];
        let (n, c, h, w) = x.dims4("input")?;
        let plane = h * w;
        let sums = grad_sums(d_out.data(), x.data(), &self.mean, &self.invstd, 1, n * c, plane);
        if ctx.param_grads {
            for (i, (s, sx)) in sums.iter().enumerate() {
                self.weight.grad.data_mut()[i % c] += *sx as f32;
                self.bias.grad.data_mut()[i % c] += *s as f32;
            }
        }
        if let Some(dx) = d_inputs[0].as_deref_mut() {
            let gamma = Self::per_plane(self.weight.value.data(), n);
            batchnorm_train_backward(dx.data_mut(), d_out.data(), x.data(), &self.mean, &self.invstd, &gamma, &sums, n * c, plane, plane, store);
        }
        Ok(())
    }
    fn params(&self) -> Vec<(&'static str, &Param)> {
        vec![("weight", &self.weight), ("bias", &self.bias)]
    }
    fn params_mut(&mut self) -> Vec<(&'static str, &mut Param)> {
        vec![("weight", &mut self.weight), ("bias", &mut self.bias)]
    }
    fn init(&mut self, _rng: &mut crate::rng::Rng) {
        self.weight.value.fill(1.0);
        self.bias.value.fill(0.0);
    }
    fn macs(&self, inputs: &[&[usize]]) -> u64 {
        inputs[0][1..].iter().product::<usize>() as u64
    }
    /// Every output cell depends on its whole plane (through the plane's statistics).
    fn input_region(&self, _i: usize, input: &[usize], _region: Region) -> Region {
        Region::full(input[2], input[3])
    }
}
