//! Stochastic gradient descent as PyTorch's `torch.optim.SGD`:
//! `g = grad + wd * p; buf = momentum * buf + g (buf = g on the first step);
//! g = nesterov ? g + momentum * buf : buf; p -= lr * g`.

use super::{export, import, slot, Optimizer};
use crate::error::Result;
use crate::layers::Param;
use crate::tensor::Tensor;
use std::collections::BTreeMap;

pub struct Sgd {
    momentum: f32,
    nesterov: bool,
    weight_decay: f32,
    momentum_buffer: BTreeMap<String, Vec<f32>>,
}

impl Sgd {
    pub fn new(momentum: f32, nesterov: bool, weight_decay: f32) -> Self {
        Sgd { momentum, nesterov, weight_decay, momentum_buffer: BTreeMap::new() }
    }
}

impl Optimizer for Sgd {
    fn name(&self) -> &'static str {
        "sgd"
    }

    fn step(&mut self, params: &mut [(String, &mut Param)], lr: f32) {
        for (name, p) in params.iter_mut() {
            let fresh = !self.momentum_buffer.contains_key(name.as_str());
            let buf = if self.momentum != 0.0 { Some(slot(&mut self.momentum_buffer, name, p.value.len())) } else { None };
            let (value, grad) = (p.value.data_mut(), p.grad.data());
            match buf {
                None => {
                    for (w, &g) in value.iter_mut().zip(grad) {
                        *w -= lr * (g + self.weight_decay * *w);
                    }
                }
                Some(buf) => {
                    for ((w, &g), b) in value.iter_mut().zip(grad).zip(buf.iter_mut()) {
                        let g = g + self.weight_decay * *w;
                        *b = if fresh { g } else { self.momentum * *b + g };
                        let d = if self.nesterov { g + self.momentum * *b } else { *b };
                        *w -= lr * d;
                    }
                }
            }
        }
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        export("momentum_buffer", &self.momentum_buffer)
    }

    fn load_state(&mut self, state: &BTreeMap<String, Tensor>) -> Result<()> {
        self.momentum_buffer = import("momentum_buffer", state);
        Ok(())
    }
}
