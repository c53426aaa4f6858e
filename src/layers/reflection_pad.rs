//! Reflection padding, as PyTorch's `nn.ReflectionPad2d`: the border mirrors the image without
//! repeating its edge, so a convolution after it sees no dark frame (Johnson et al.'s style
//! networks pad this way; zero padding leaves visible borders in stylised pictures).

use super::{expect_inputs, expect_nchw, BackwardCtx, ForwardCtx, Layer};
use crate::error::{Error, Result};
use crate::geometry::Region;
use crate::kernels::resample::{reflect_index, reflect_pad_backward, reflect_pad_forward};
use crate::tensor::{fmt_shape, Tensor};

pub struct ReflectionPad2d {
    /// `[top, bottom, left, right]`.
    pad: [usize; 4],
}

impl ReflectionPad2d {
    /// `[top, bottom, left, right]` cells.
    pub fn new(pad: [usize; 4]) -> Self {
        ReflectionPad2d { pad }
    }

    pub fn uniform(p: usize) -> Self {
        ReflectionPad2d { pad: [p; 4] }
    }

    pub fn padding(&self) -> [usize; 4] {
        self.pad
    }
}

impl Layer for ReflectionPad2d {
    fn kind(&self) -> &'static str {
        "ReflectionPad2d"
    }
    fn op(&self) -> super::Op<'_> {
        super::Op::ReflectPad { pad: self.pad }
    }
    fn describe(&self) -> String {
        let [t, b, l, r] = self.pad;
        if self.pad.iter().all(|&p| p == t) {
            format!("{t}")
        } else {
            format!("top {t} bottom {b} left {l} right {r}")
        }
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        expect_inputs(inputs.len(), 1)?;
        let (n, c, h, w) = expect_nchw(inputs[0], None)?;
        let [t, b, l, r] = self.pad;
        // A reflection cannot reach further than the far edge.
        if t.max(b) >= h || l.max(r) >= w {
            return Err(Error::shape(format!(
                "input {} is too small to reflect {} cells: each padding must be below the side it pads ({}x{})",
                fmt_shape(inputs[0]), t.max(b).max(l).max(r), h, w
            )));
        }
        Ok(vec![n, c, h + t + b, w + l + r])
    }
    fn forward(&mut self, inputs: &[&Tensor], out: &mut Tensor, _ctx: &ForwardCtx) -> Result<()> {
        let (_, _, h, w) = inputs[0].dims4("input")?;
        reflect_pad_forward(out.data_mut(), inputs[0].data(), h, w, self.pad);
        Ok(())
    }
    fn backward(&mut self, inputs: &[&Tensor], _out: &Tensor, d_out: &Tensor, d_inputs: &mut [Option<&mut Tensor>], _ctx: &BackwardCtx) -> Result<()> {
        let (_, _, h, w) = inputs[0].dims4("input")?;
        if let Some(dx) = d_inputs[0].as_deref_mut() {
            reflect_pad_backward(dx.data_mut(), d_out.data(), h, w, self.pad);
        }
        Ok(())
    }
    fn input_region(&self, _i: usize, input: &[usize], region: Region) -> Region {
        let (h, w) = (input[2], input[3]);
        let span = |lo: usize, hi: usize, before: usize, n: usize| {
            let src = (lo..=hi).map(|o| reflect_index(o, before, n));
            (src.clone().min().unwrap_or(0), src.max().unwrap_or(0))
        };
        let (y0, y1) = span(region.y0, region.y1, self.pad[0], h);
        let (x0, x1) = span(region.x0, region.x1, self.pad[2], w);
        Region { y0, y1, x0, x1 }
    }
}
