//! Batch normalisation over the channels of `[N, C, H, W]` (ResNet, VGG-BN), as PyTorch's
//! `nn.BatchNorm2d`: training mode normalises with the batch's biased variance and updates the
//! running statistics (`running_var` with the unbiased variance); evaluation mode uses them.

use super::{expect_inputs, expect_nchw, BackwardCtx, ForwardCtx, Layer, Mode, Param};
use crate::error::{Error, Result};
use crate::distributed::Collective;
use crate::kernels::batchnorm::{affine_channels_then, batchnorm_train_backward, channel_square_deviations, channel_stats, channel_sums, grad_sums};
use crate::kernels::Store;
use crate::tensor::Tensor;
use std::sync::Arc;

pub struct BatchNorm2d {
    channels: usize,
    eps: f32,
    momentum: f32,
    /// gamma, `[C]`.
    weight: Param,
    /// beta, `[C]`.
    bias: Param,
    running_mean: Tensor,
    running_var: Tensor,
    /// Of the last forward pass: its mode, the mean and 1/sqrt(var + eps) it normalised with.
    last_mode: Mode,
    mean: Vec<f32>,
    invstd: Vec<f32>,
    /// Values per channel the last training pass normalised over (all ranks' when synced).
    count: usize,
    /// A ReLU fused after the normalisation (`Layer::fuse_relu`).
    fused_relu: bool,
    /// The ranks whose shares make up the batch, when training is distributed: the statistics
    /// are then the whole batch's (synchronised batch norm), so the run is the single
    /// process's run.
    group: Option<Arc<dyn Collective>>,
}

impl BatchNorm2d {
    /// PyTorch's defaults: eps 1e-5, momentum 0.1, gamma 1, beta 0, running mean 0, var 1.
    pub fn new(channels: usize) -> Self {
        let mut weight = Param::zeros(&[channels]);
        weight.value.fill(1.0);
        BatchNorm2d {
            channels,
            eps: 1e-5,
            momentum: 0.1,
            weight,
            bias: Param::zeros(&[channels]),
            running_mean: Tensor::zeros(&[channels]),
            running_var: Tensor::full(&[channels], 1.0),
            last_mode: Mode::Eval,
            mean: Vec::new(),
            invstd: Vec::new(),
            count: 0,
            group: None,
            fused_relu: false,
        }
    }

    pub fn with_eps(mut self, eps: f32) -> Self {
        self.eps = eps;
        self
    }

    pub fn with_momentum(mut self, momentum: f32) -> Self {
        self.momentum = momentum;
        self
    }
}

impl BatchNorm2d {
    /// Per-channel (mean, biased variance) of the batch, and the values per channel they are
    /// over: of `x` alone, or of every rank's share when synced (sums first, then the squared
    /// deviations from the whole batch's mean, as one process computes them).
    fn batch_stats(&self, x: &[f32], n: usize, c: usize, plane: usize) -> Result<(Vec<(f64, f64)>, usize)> {
        let Some(group) = &self.group else {
            return Ok((channel_stats(x, n, c, plane), n * plane));
        };
        let mut sums = channel_sums(x, n, c, plane);
        sums.push((n * plane) as f64);
        group.sum_f64("the batch norm sums", &mut sums)?;
        let m = sums.pop().unwrap_or(0.0);
        let mean: Vec<f64> = sums.iter().map(|s| s / m.max(1.0)).collect();
        let mut sq = channel_square_deviations(x, n, c, plane, &mean);
        group.sum_f64("the batch norm variances", &mut sq)?;
        Ok((mean.into_iter().zip(sq).map(|(mean, sq)| (mean, sq / m.max(1.0))).collect(), m as usize))
    }

    /// The whole batch's `(sum dy, sum dy * xhat)` per channel from this rank's.
    fn batch_grad_sums(&self, local: &[(f64, f64)]) -> Result<Vec<(f64, f64)>> {
        let Some(group) = &self.group else {
            return Ok(local.to_vec());
        };
        let mut flat: Vec<f64> = local.iter().flat_map(|&(s, sx)| [s, sx]).collect();
        group.sum_f64("the batch norm gradient sums", &mut flat)?;
        Ok(flat.chunks_exact(2).map(|p| (p[0], p[1])).collect())
    }
}

impl Layer for BatchNorm2d {
    fn kind(&self) -> &'static str {
        "BatchNorm2d"
    }
    fn op(&self) -> super::Op<'_> {
        super::Op::BatchNorm { eps: self.eps }
    }
    fn describe(&self) -> String {
        format!("{} eps {} momentum {}", self.channels, self.eps, self.momentum)
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
        self.last_mode = ctx.mode;
        match ctx.mode {
            Mode::Train => {
                let (stats, m) = self.batch_stats(x.data(), n, c, plane)?;
                if m < 2 {
                    return Err(Error::shape(format!(
                        "batch norm in training mode needs more than one value per channel, got input {:?}",
                        x.shape()
                    )));
                }
                self.count = m;
                self.mean = stats.iter().map(|s| s.0 as f32).collect();
                self.invstd = stats.iter().map(|s| 1.0 / (s.1 as f32 + self.eps).sqrt()).collect();
                let mom = self.momentum;
                let unbias = m as f64 / (m - 1) as f64;
                for (ch, (mean, var)) in stats.iter().enumerate() {
                    let rm = &mut self.running_mean.data_mut()[ch];
                    *rm = (1.0 - mom) * *rm + mom * *mean as f32;
                    let rv = &mut self.running_var.data_mut()[ch];
                    *rv = (1.0 - mom) * *rv + mom * (var * unbias) as f32;
                }
            }
            Mode::Eval => {
                self.mean = self.running_mean.data().to_vec();
                self.invstd = self.running_var.data().iter().map(|v| 1.0 / (v + self.eps).sqrt()).collect();
            }
        }
        // y = gamma * (x - mean) * invstd + beta = x * a + b
        let g = self.weight.value.data();
        let be = self.bias.value.data();
        let a: Vec<f32> = (0..c).map(|i| g[i] * self.invstd[i]).collect();
        let b: Vec<f32> = (0..c).map(|i| be[i] - self.mean[i] * a[i]).collect();
        affine_channels_then(out.data_mut(), x.data(), &a, &b, c, plane, self.fused_relu);
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
        let sums = grad_sums(d_out.data(), x.data(), &self.mean, &self.invstd, n, c, plane);
        if ctx.param_grads {
            for (ch, (s, sx)) in sums.iter().enumerate() {
                self.weight.grad.data_mut()[ch] += *sx as f32;
                self.bias.grad.data_mut()[ch] += *s as f32;
            }
        }
        if let Some(dx) = d_inputs[0].as_deref_mut() {
            let gamma = self.weight.value.data();
            match self.last_mode {
                Mode::Train => {
                    // The parameters' gradients take this rank's sums (the trainer adds the
                    // ranks' gradients); the input's gradient needs the whole batch's.
                    let sums = self.batch_grad_sums(&sums)?;
                    batchnorm_train_backward(dx.data_mut(), d_out.data(), x.data(), &self.mean, &self.invstd, gamma, &sums, c, plane, self.count, store)
                }
                Mode::Eval => {
                    // The statistics are constants: dx = dy * gamma * invstd.
                    let a: Vec<f32> = (0..c).map(|i| gamma[i] * self.invstd[i]).collect();
                    let dxd = dx.data_mut();
                    for (i, (d, g)) in dxd.chunks_mut(plane).zip(d_out.data().chunks(plane)).enumerate() {
                        let s = a[i % c];
                        match store {
                            Store::Add => d.iter_mut().zip(g).for_each(|(d, g)| *d += g * s),
                            Store::Write => d.iter_mut().zip(g).for_each(|(d, g)| *d = g * s),
                        }
                    }
                }
            }
        }
        Ok(())
    }
    fn sync_batch_statistics(&mut self, group: Option<Arc<dyn Collective>>) {
        self.group = group;
    }
    fn params(&self) -> Vec<(&'static str, &Param)> {
        vec![("weight", &self.weight), ("bias", &self.bias)]
    }
    fn params_mut(&mut self) -> Vec<(&'static str, &mut Param)> {
        vec![("weight", &mut self.weight), ("bias", &mut self.bias)]
    }
    fn buffers(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("running_mean", &self.running_mean), ("running_var", &self.running_var)]
    }
    fn buffers_mut(&mut self) -> Vec<(&'static str, &mut Tensor)> {
        vec![("running_mean", &mut self.running_mean), ("running_var", &mut self.running_var)]
    }
    fn init(&mut self, _rng: &mut crate::rng::Rng) {
        self.weight.value.fill(1.0);
        self.bias.value.fill(0.0);
        self.running_mean.fill(0.0);
        self.running_var.fill(1.0);
    }
    fn macs(&self, inputs: &[&[usize]]) -> u64 {
        inputs[0][1..].iter().product::<usize>() as u64
    }
}
