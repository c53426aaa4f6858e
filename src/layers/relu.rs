//! ReLU. Its backward rule (plain, guided, deconvnet) comes from the backward pass, which is
//! how the visualizations differ.

use super::{expect_inputs, BackwardCtx, ForwardCtx, Layer};
use crate::error::Result;
use crate::kernels::activation::{relu_backward, relu_forward};
use crate::kernels::Store;
use crate::tensor::Tensor;

#[derive(Default)]
pub struct Relu;

impl Layer for Relu {
    fn kind(&self) -> &'static str {
        "ReLU"
    }
    fn op(&self) -> super::Op<'_> {
        super::Op::Relu
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        expect_inputs(inputs.len(), 1)?;
        Ok(inputs[0].to_vec())
    }
    fn forward(&mut self, inputs: &[&Tensor], out: &mut Tensor, _ctx: &ForwardCtx) -> Result<()> {
        relu_forward(out.data_mut(), inputs[0].data());
        Ok(())
    }
    fn backward(&mut self, inputs: &[&Tensor], out: &Tensor, d_out: &Tensor, d_inputs: &mut [Option<&mut Tensor>], ctx: &BackwardCtx) -> Result<()> {
        self.backward_stored(inputs, out, d_out, d_inputs, ctx, Store::Add)
    }
    fn backward_stored(&mut self, _inputs: &[&Tensor], out: &Tensor, d_out: &Tensor, d_inputs: &mut [Option<&mut Tensor>], ctx: &BackwardCtx, store: Store) -> Result<()> {
        if let Some(dx) = d_inputs[0].as_deref_mut() {
            // The output, not the input: the signs are the same, and a ReLU fused after a
            // convolution (`Net::fuse_activations`) holds its values in the output alone.
            relu_backward(dx.data_mut(), d_out.data(), out.data(), ctx.rule, store);
        }
        Ok(())
    }
}
