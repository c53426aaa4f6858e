//! Flatten `[N, C, H, W]` to `[N, C * H * W]` in NCHW order (PyTorch's `torch.flatten(x, 1)`).

use super::{expect_inputs, BackwardCtx, ForwardCtx, Layer};
use crate::error::{Error, Result};
use crate::geometry::Region;
use crate::kernels::activation::add_into;
use crate::tensor::Tensor;

#[derive(Default)]
pub struct Flatten;

impl Layer for Flatten {
    fn kind(&self) -> &'static str {
        "Flatten"
    }
    fn op(&self) -> super::Op<'_> {
        super::Op::Flatten
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        expect_inputs(inputs.len(), 1)?;
        match inputs[0].split_first() {
            Some((&n, rest)) => Ok(vec![n, rest.iter().product()]),
            None => Err(Error::shape("cannot flatten a scalar")),
        }
    }
    fn forward(&mut self, inputs: &[&Tensor], out: &mut Tensor, _ctx: &ForwardCtx) -> Result<()> {
        out.data_mut().copy_from_slice(inputs[0].data());
        Ok(())
    }
    fn backward(&mut self, _inputs: &[&Tensor], _out: &Tensor, d_out: &Tensor, d_inputs: &mut [Option<&mut Tensor>], _ctx: &BackwardCtx) -> Result<()> {
        if let Some(dx) = d_inputs[0].as_deref_mut() {
            add_into(dx.data_mut(), d_out.data());
        }
        Ok(())
    }
    fn input_region(&self, _i: usize, input: &[usize], _region: Region) -> Region {
        match input {
            [_, _, h, w] => Region::full(*h, *w),
            _ => Region::full(1, *input.last().unwrap_or(&1)),
        }
    }
}
