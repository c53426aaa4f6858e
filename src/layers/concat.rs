//! Concatenation along channels of `[N, C_i, H, W]` inputs (the Inception module's merge).

use super::{BackwardCtx, ForwardCtx, Layer};
use crate::error::{Error, Result};
use crate::geometry::Region;
use crate::tensor::{dims4, fmt_shape, Tensor};

#[derive(Default)]
pub struct Concat;

impl Layer for Concat {
    fn kind(&self) -> &'static str {
        "Concat"
    }
    fn op(&self) -> super::Op<'_> {
        super::Op::Concat
    }
    fn arity(&self) -> Option<usize> {
        None
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        if inputs.len() < 2 {
            return Err(Error::shape(format!("concatenates two or more inputs, {} given", inputs.len())));
        }
        let (n, _, h, w) = dims4(inputs[0], "input 0")?;
        let mut c = 0;
        for (i, s) in inputs.iter().enumerate() {
            let (ni, ci, hi, wi) = dims4(s, &format!("input {i}"))?;
            if (ni, hi, wi) != (n, h, w) {
                return Err(Error::shape(format!(
                    "input {i} has shape {}, input 0 has {}: only channels may differ",
                    fmt_shape(s),
                    fmt_shape(inputs[0])
                )));
            }
            c += ci;
        }
        Ok(vec![n, c, h, w])
    }
    fn forward(&mut self, inputs: &[&Tensor], out: &mut Tensor, _ctx: &ForwardCtx) -> Result<()> {
        let (n, c_out, h, w) = out.dims4("output")?;
        let plane = h * w;
        let y = out.data_mut();
        let mut c0 = 0;
        for x in inputs {
            let c = x.shape()[1];
            for i in 0..n {
                let src = &x.data()[i * c * plane..(i + 1) * c * plane];
                y[(i * c_out + c0) * plane..(i * c_out + c0 + c) * plane].copy_from_slice(src);
            }
            c0 += c;
        }
        Ok(())
    }
    fn backward(&mut self, inputs: &[&Tensor], out: &Tensor, d_out: &Tensor, d_inputs: &mut [Option<&mut Tensor>], _ctx: &BackwardCtx) -> Result<()> {
        let (n, c_out, h, w) = out.dims4("output")?;
        let plane = h * w;
        let mut c0 = 0;
        for (x, dx) in inputs.iter().zip(d_inputs.iter_mut()) {
            let c = x.shape()[1];
            if let Some(dx) = dx.as_deref_mut() {
                for i in 0..n {
                    let src = &d_out.data()[(i * c_out + c0) * plane..(i * c_out + c0 + c) * plane];
                    let dst = &mut dx.data_mut()[i * c * plane..(i + 1) * c * plane];
                    dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                }
            }
            c0 += c;
        }
        Ok(())
    }
    fn input_region(&self, _i: usize, _input: &[usize], region: Region) -> Region {
        region
    }
}
