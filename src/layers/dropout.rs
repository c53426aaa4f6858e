//! Inverted dropout: in training, each value is zeroed with probability `p` and the rest scaled
//! by `1 / (1 - p)`; in evaluation, the identity. Masks come from the step's seed.

use super::{expect_inputs, BackwardCtx, ForwardCtx, Layer, Mode};
use crate::error::{Error, Result};
use crate::kernels::activation::{dropout_forward, scale_backward, store_into};
use crate::kernels::Store;
use crate::tensor::Tensor;

pub struct Dropout {
    p: f32,
    /// Per-element scale of the last training forward pass (0 or 1 / (1 - p)).
    mask: Vec<f32>,
    last_mode: Mode,
}

impl Dropout {
    pub fn new(p: f32) -> Result<Self> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::Invalid(format!("dropout probability {p} must be in [0, 1)")));
        }
        Ok(Dropout { p, mask: Vec::new(), last_mode: Mode::Eval })
    }
}

impl Layer for Dropout {
    fn kind(&self) -> &'static str {
        "Dropout"
    }
    fn op(&self) -> super::Op<'_> {
        super::Op::Dropout
    }
    fn describe(&self) -> String {
        format!("p {}", self.p)
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        expect_inputs(inputs.len(), 1)?;
        Ok(inputs[0].to_vec())
    }
    fn forward(&mut self, inputs: &[&Tensor], out: &mut Tensor, ctx: &ForwardCtx) -> Result<()> {
        self.last_mode = ctx.mode;
        match ctx.mode {
            Mode::Train if self.p > 0.0 => {
                self.mask.resize(out.len(), 0.0);
                // Element indices count from the whole batch's start (see `first_image`).
                let per_image = out.len() / out.shape().first().copied().unwrap_or(1).max(1);
                let first = (ctx.first_image * per_image) as u64;
                dropout_forward(out.data_mut(), &mut self.mask, inputs[0].data(), self.p, ctx.seed, first);
            }
            _ => {
                self.last_mode = Mode::Eval;
                out.data_mut().copy_from_slice(inputs[0].data());
            }
        }
        Ok(())
    }
    fn backward(&mut self, inputs: &[&Tensor], out: &Tensor, d_out: &Tensor, d_inputs: &mut [Option<&mut Tensor>], ctx: &BackwardCtx) -> Result<()> {
        self.backward_stored(inputs, out, d_out, d_inputs, ctx, Store::Add)
    }
    fn backward_stored(&mut self, _inputs: &[&Tensor], _out: &Tensor, d_out: &Tensor, d_inputs: &mut [Option<&mut Tensor>], _ctx: &BackwardCtx, store: Store) -> Result<()> {
        if let Some(dx) = d_inputs[0].as_deref_mut() {
            match self.last_mode {
                Mode::Train => scale_backward(dx.data_mut(), d_out.data(), &self.mask, store),
                Mode::Eval => store_into(dx.data_mut(), d_out.data(), store),
            }
        }
        Ok(())
    }
}
