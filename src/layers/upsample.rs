//! Nearest-neighbour upsampling by an integer factor, as PyTorch's
//! `interpolate(mode="nearest", scale_factor=s)`: each cell becomes an `s x s` block. Johnson
//! et al.'s style networks upsample this way before a convolution instead of a transposed
//! convolution, which leaves checkerboard artefacts (Odena et al., 2016).

use super::{expect_inputs, expect_nchw, BackwardCtx, ForwardCtx, Layer};
use crate::error::{Error, Result};
use crate::geometry::Region;
use crate::kernels::resample::{upsample_nearest_backward, upsample_nearest_forward};
use crate::tensor::Tensor;

pub struct UpsampleNearest2d {
    scale: usize,
}

impl UpsampleNearest2d {
    pub fn new(scale: usize) -> Result<Self> {
        if scale == 0 {
            return Err(Error::Invalid("an upsampling factor must be at least 1".into()));
        }
        Ok(UpsampleNearest2d { scale })
    }

    pub fn scale(&self) -> usize {
        self.scale
    }
}

impl Layer for UpsampleNearest2d {
    fn kind(&self) -> &'static str {
        "UpsampleNearest2d"
    }
    fn op(&self) -> super::Op<'_> {
        super::Op::UpsampleNearest { scale: self.scale }
    }
    fn describe(&self) -> String {
        format!("x{}", self.scale)
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        expect_inputs(inputs.len(), 1)?;
        let (n, c, h, w) = expect_nchw(inputs[0], None)?;
        Ok(vec![n, c, h * self.scale, w * self.scale])
    }
    fn forward(&mut self, inputs: &[&Tensor], out: &mut Tensor, _ctx: &ForwardCtx) -> Result<()> {
        let (_, _, h, w) = inputs[0].dims4("input")?;
        upsample_nearest_forward(out.data_mut(), inputs[0].data(), h, w, self.scale);
        Ok(())
    }
    fn backward(&mut self, inputs: &[&Tensor], _out: &Tensor, d_out: &Tensor, d_inputs: &mut [Option<&mut Tensor>], _ctx: &BackwardCtx) -> Result<()> {
        let (_, _, h, w) = inputs[0].dims4("input")?;
        if let Some(dx) = d_inputs[0].as_deref_mut() {
            upsample_nearest_backward(dx.data_mut(), d_out.data(), h, w, self.scale);
        }
        Ok(())
    }
    fn input_region(&self, _i: usize, input: &[usize], region: Region) -> Region {
        let s = self.scale;
        Region { y0: region.y0 / s, y1: region.y1 / s, x0: region.x0 / s, x1: region.x1 / s }.intersect_full(input[2], input[3])
    }
}
