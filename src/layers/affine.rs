//! A fixed per-channel affine map `y[c] = x[c] * scale[c] + shift[c]`, without parameters:
//! torchvision's GoogLeNet re-scales ImageNet-normalised input this way (`transform_input`).

use super::{expect_inputs, expect_nchw, BackwardCtx, ForwardCtx, Layer};
use crate::error::{Error, Result};
use crate::kernels::batchnorm::affine_channels;
use crate::tensor::Tensor;

pub struct ChannelAffine {
    scale: Vec<f32>,
    shift: Vec<f32>,
}

impl ChannelAffine {
    pub fn new(scale: Vec<f32>, shift: Vec<f32>) -> Result<Self> {
        if scale.len() != shift.len() || scale.is_empty() {
            return Err(Error::Invalid(format!("channel affine: {} scales and {} shifts", scale.len(), shift.len())));
        }
        Ok(ChannelAffine { scale, shift })
    }

    /// torchvision GoogLeNet's `transform_input`: from ImageNet normalisation to the
    /// `(x - 0.5) / 0.5` scaling its original weights were trained with.
    pub fn googlenet_transform_input() -> Self {
        let (mean, std) = ([0.485f32, 0.456, 0.406], [0.229f32, 0.224, 0.225]);
        ChannelAffine {
            scale: std.iter().map(|s| s / 0.5).collect(),
            shift: mean.iter().map(|m| (m - 0.5) / 0.5).collect(),
        }
    }
}

impl Layer for ChannelAffine {
    fn kind(&self) -> &'static str {
        "ChannelAffine"
    }
    fn op(&self) -> super::Op<'_> {
        super::Op::ChannelAffine { scale: &self.scale, shift: &self.shift }
    }
    fn describe(&self) -> String {
        format!("scale {:?} shift {:?}", self.scale, self.shift)
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        expect_inputs(inputs.len(), 1)?;
        expect_nchw(inputs[0], Some(self.scale.len()))?;
        Ok(inputs[0].to_vec())
    }
    fn forward(&mut self, inputs: &[&Tensor], out: &mut Tensor, _ctx: &ForwardCtx) -> Result<()> {
        let (_, c, h, w) = inputs[0].dims4("input")?;
        affine_channels(out.data_mut(), inputs[0].data(), &self.scale, &self.shift, c, h * w);
        Ok(())
    }
    fn backward(&mut self, inputs: &[&Tensor], _out: &Tensor, d_out: &Tensor, d_inputs: &mut [Option<&mut Tensor>], _ctx: &BackwardCtx) -> Result<()> {
        if let Some(dx) = d_inputs[0].as_deref_mut() {
            let (_, c, h, w) = inputs[0].dims4("input")?;
            let plane = h * w;
            for (i, (d, g)) in dx.data_mut().chunks_mut(plane).zip(d_out.data().chunks(plane)).enumerate() {
                let s = self.scale[i % c];
                d.iter_mut().zip(g).for_each(|(d, g)| *d += g * s);
            }
        }
        Ok(())
    }
}
