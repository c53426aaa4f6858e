//! Local response normalisation across channels (AlexNet's NORM1/NORM2), PyTorch's
//! `nn.LocalResponseNorm(size, alpha, beta, k)`: alpha is divided by size.

use super::{expect_inputs, expect_nchw, BackwardCtx, ForwardCtx, Layer};
use crate::error::{Error, Result};
use crate::kernels::lrn::{lrn_backward, lrn_forward, LrnParams};
use crate::tensor::Tensor;

pub struct Lrn {
    params: LrnParams,
    /// `k + alpha / size * sum x^2` of the last forward pass, `[N, C, H, W]`.
    scale: Vec<f32>,
}

impl Lrn {
    pub fn new(size: usize, alpha: f32, beta: f32, k: f32) -> Result<Self> {
        if size == 0 {
            return Err(Error::Invalid("LRN size must be at least 1".into()));
        }
        Ok(Lrn { params: LrnParams { size, alpha, beta, k }, scale: Vec::new() })
    }

    /// AlexNet's: size 5, alpha 1e-4, beta 0.75, k 2.
    pub fn alexnet() -> Self {
        Lrn { params: LrnParams { size: 5, alpha: 1e-4, beta: 0.75, k: 2.0 }, scale: Vec::new() }
    }
}

impl Layer for Lrn {
    fn kind(&self) -> &'static str {
        "LRN"
    }
    fn op(&self) -> super::Op<'_> {
        super::Op::Lrn { size: self.params.size, alpha: self.params.alpha, beta: self.params.beta, k: self.params.k }
    }
    fn describe(&self) -> String {
        let p = &self.params;
        format!("size {} alpha {} beta {} k {}", p.size, p.alpha, p.beta, p.k)
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        expect_inputs(inputs.len(), 1)?;
        expect_nchw(inputs[0], None)?;
        Ok(inputs[0].to_vec())
    }
    fn forward(&mut self, inputs: &[&Tensor], out: &mut Tensor, _ctx: &ForwardCtx) -> Result<()> {
        let (_, c, h, w) = inputs[0].dims4("input")?;
        self.scale.resize(out.len(), 0.0);
        lrn_forward(out.data_mut(), &mut self.scale, inputs[0].data(), c, h * w, &self.params);
        Ok(())
    }
    fn backward(&mut self, inputs: &[&Tensor], out: &Tensor, d_out: &Tensor, d_inputs: &mut [Option<&mut Tensor>], _ctx: &BackwardCtx) -> Result<()> {
        if let Some(dx) = d_inputs[0].as_deref_mut() {
            let (_, c, h, w) = inputs[0].dims4("input")?;
            lrn_backward(dx.data_mut(), d_out.data(), inputs[0].data(), out.data(), &self.scale, c, h * w, &self.params);
        }
        Ok(())
    }
}
