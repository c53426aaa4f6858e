//! Flatten `[N, C, H, W]` to `[N, C * H * W]` in NCHW order (PyTorch's `torch.flatten(x, 1)`).

use super::{expect_inputs, BackwardCtx, ForwardCtx, Layer};
use crate::error::{Error, Result};
use crate::geometry::Region;
use crate::kernels::activation::store_into;
use crate::kernels::Store;
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
    fn backward(&mut self, inputs: &[&Tensor], out: &Tensor, d_out: &Tensor, d_inputs: &mut [Option<&mut Tensor>], ctx: &BackwardCtx) -> Result<()> {
        self.backward_stored(inputs, out, d_out, d_inputs, ctx, Store::Add)
    }
    fn backward_stored(&mut self, _inputs: &[&Tensor], _out: &Tensor, d_out: &Tensor, d_inputs: &mut [Option<&mut Tensor>], _ctx: &BackwardCtx, store: Store) -> Result<()> {
        if let Some(dx) = d_inputs[0].as_deref_mut() {
            store_into(dx.data_mut(), d_out.data(), store);
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
