//! Elementwise sum of two or more inputs of one shape (the residual connection of ResNet).

use super::{BackwardCtx, ForwardCtx, Layer};
use crate::error::{Error, Result};
use crate::kernels::activation::{add_into, sum_into};
use crate::tensor::{fmt_shape, Tensor};

#[derive(Default)]
pub struct Add {
    /// The ReLU after the sum applied here (`Layer::fuse_relu`; ResNet's blocks end so).
    fused_relu: bool,
}

/// The layer as a value, as when `Add` was a unit struct: `net.add("sum", Add, &[..])`.
#[allow(non_upper_case_globals)]
pub const Add: Add = Add { fused_relu: false };

impl Layer for Add {
    fn kind(&self) -> &'static str {
        "Add"
    }
    fn op(&self) -> super::Op<'_> {
        super::Op::Add
    }
    fn arity(&self) -> Option<usize> {
        None
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        if inputs.len() < 2 {
            return Err(Error::shape(format!("adds two or more inputs, {} given", inputs.len())));
        }
        for s in &inputs[1..] {
            if *s != inputs[0] {
                return Err(Error::shape(format!(
                    "inputs of shapes {} and {} cannot be added",
                    fmt_shape(inputs[0]),
                    fmt_shape(s)
                )));
            }
        }
        Ok(inputs[0].to_vec())
    }
    fn forward(&mut self, inputs: &[&Tensor], out: &mut Tensor, _ctx: &ForwardCtx) -> Result<()> {
        let inputs: Vec<&[f32]> = inputs.iter().map(|x| x.data()).collect();
        sum_into(out.data_mut(), &inputs, self.fused_relu);
        Ok(())
    }
    /// The backward pass never reads the output: the ReLU may be applied here.
    fn fuse_relu(&mut self, on: bool) -> bool {
        self.fused_relu = on;
        on
    }
    fn backward(&mut self, _inputs: &[&Tensor], _out: &Tensor, d_out: &Tensor, d_inputs: &mut [Option<&mut Tensor>], _ctx: &BackwardCtx) -> Result<()> {
        for dx in d_inputs.iter_mut().flatten() {
            add_into(dx.data_mut(), d_out.data());
        }
        Ok(())
    }
}
