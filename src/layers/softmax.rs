//! Softmax over the last dimension of `[N, K]`, for predicted probabilities. Training uses the
//! fused, stable `loss::softmax_cross_entropy` on the logits instead.

use super::{expect_inputs, BackwardCtx, ForwardCtx, Layer};
use crate::error::{Error, Result};
use crate::kernels::softmax::{softmax_backward, softmax_rows};
use crate::tensor::{fmt_shape, Tensor};

#[derive(Default)]
pub struct Softmax;

fn classes(shape: &[usize]) -> Result<usize> {
    match *shape {
        [_, k] if k > 0 => Ok(k),
        _ => Err(Error::shape(format!("input has shape {}, softmax needs [N, K]", fmt_shape(shape)))),
    }
}

impl Layer for Softmax {
    fn kind(&self) -> &'static str {
        "Softmax"
    }
    fn op(&self) -> super::Op<'_> {
        super::Op::Softmax
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        expect_inputs(inputs.len(), 1)?;
        classes(inputs[0])?;
        Ok(inputs[0].to_vec())
    }
    fn forward(&mut self, inputs: &[&Tensor], out: &mut Tensor, _ctx: &ForwardCtx) -> Result<()> {
        let k = classes(inputs[0].shape())?;
        softmax_rows(out.data_mut(), inputs[0].data(), k);
        Ok(())
    }
    fn backward(&mut self, _inputs: &[&Tensor], out: &Tensor, d_out: &Tensor, d_inputs: &mut [Option<&mut Tensor>], _ctx: &BackwardCtx) -> Result<()> {
        let k = classes(out.shape())?;
        if let Some(dx) = d_inputs[0].as_deref_mut() {
            softmax_backward(dx.data_mut(), d_out.data(), out.data(), k);
        }
        Ok(())
    }
}
