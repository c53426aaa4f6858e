//! Adam and AdamW as PyTorch's `torch.optim.Adam` / `AdamW` (betas 0.9, 0.999, eps 1e-8):
//! Adam adds `wd * p` to the gradient; AdamW decays the weight directly, `p *= 1 - lr * wd`.

use super::{export, import, slot, Optimizer};
use crate::error::Result;
use crate::layers::Param;
use crate::tensor::Tensor;
use rayon::prelude::*;
use std::collections::BTreeMap;

/// Values per parallel task.
const CHUNK: usize = 1 << 15;

pub struct Adam {
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    /// AdamW's decoupled weight decay.
    decoupled: bool,
    step: u64,
    exp_avg: BTreeMap<String, Vec<f32>>,
    exp_avg_sq: BTreeMap<String, Vec<f32>>,
}

impl Adam {
    pub fn new(weight_decay: f32, decoupled: bool) -> Self {
        Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay, decoupled, step: 0, exp_avg: BTreeMap::new(), exp_avg_sq: BTreeMap::new() }
    }
}

/// One step's constants.
struct Hyper {
    b1: f32,
    b2: f32,
    eps: f32,
    lr: f32,
    wd: f32,
    decoupled: bool,
    step_size: f32,
    c2_sqrt: f32,
}

/// Updates one chunk of parameters and their moments. Eight lanes at a time where the CPU has
/// AVX2 (the square root and the division dominate: 3x faster than SSE2's four lanes); the
/// same operations in the same order either way, so the same bits.
fn update(h: &Hyper, value: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { update_avx2(h, value, grad, m, v) };
    }
    update_plain(h, value, grad, m, v)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn update_avx2(h: &Hyper, value: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32]) {
    update_plain(h, value, grad, m, v)
}

#[inline(always)]
fn update_plain(h: &Hyper, value: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32]) {
    let &Hyper { b1, b2, eps, lr, wd, decoupled, step_size, c2_sqrt } = h;
    for (((w, &g), m), v) in value.iter_mut().zip(grad).zip(m.iter_mut()).zip(v.iter_mut()) {
        let g = if decoupled {
            *w *= 1.0 - lr * wd;
            g
        } else {
            g + wd * *w
        };
        *m = b1 * *m + (1.0 - b1) * g;
        *v = b2 * *v + (1.0 - b2) * g * g;
        *w -= step_size * *m / (v.sqrt() / c2_sqrt + eps);
    }
}

impl Optimizer for Adam {
    fn name(&self) -> &'static str {
        if self.decoupled {
            "adamw"
        } else {
            "adam"
        }
    }

    fn step(&mut self, params: &mut [(String, &mut Param)], lr: f32) {
        self.step += 1;
        let t = self.step as i32;
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 - b1.powi(t);
        let c2 = 1.0 - b2.powi(t);
        let step_size = lr / c1;
        let c2_sqrt = c2.sqrt();
        for (name, p) in params.iter_mut() {
            let n = p.value.len();
            let m = slot(&mut self.exp_avg, name, n);
            let v = slot(&mut self.exp_avg_sq, name, n);
            let (value, grad) = (p.value.data_mut(), p.grad.data());
            let h = Hyper { b1, b2, eps: self.eps, lr, wd: self.weight_decay, decoupled: self.decoupled, step_size, c2_sqrt };
            // Elementwise, so splitting across threads changes no bits.
            value
                .par_chunks_mut(CHUNK)
                .zip(grad.par_chunks(CHUNK))
                .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
                .for_each(|((value, grad), (m, v))| update(&h, value, grad, m, v));
        }
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let mut s = export("exp_avg", &self.exp_avg);
        s.extend(export("exp_avg_sq", &self.exp_avg_sq));
        // The step count, exact in f32 up to 2^24 steps; split in two for more.
        let lo = (self.step & 0xff_ffff) as f32;
        let hi = (self.step >> 24) as f32;
        s.push(("step".into(), Tensor::from_vec(&[2], vec![lo, hi]).unwrap_or_default()));
        s
    }

    fn load_state(&mut self, state: &BTreeMap<String, Tensor>) -> Result<()> {
        self.exp_avg = import("exp_avg", state);
        self.exp_avg_sq = import("exp_avg_sq", state);
        self.step = state.get("step").map_or(0, |t| {
            let d = t.data();
            d.first().copied().unwrap_or(0.0) as u64 + ((d.get(1).copied().unwrap_or(0.0) as u64) << 24)
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two steps computed by hand with PyTorch's formulas.
    #[test]
    fn adam_matches_the_formula() {
        let mut p = Param::zeros(&[1]);
        p.value.data_mut()[0] = 1.0;
        let mut opt = Adam::new(0.0, false);
        let mut w = 1.0f64;
        let (mut m, mut v) = (0.0f64, 0.0f64);
        for (t, g) in [(1, 0.5f64), (2, -0.25)] {
            p.grad.data_mut()[0] = g as f32;
            opt.step(&mut [("w".to_string(), &mut p)], 0.1);
            m = 0.9 * m + 0.1 * g;
            v = 0.999 * v + 0.001 * g * g;
            let (mh, vh) = (m / (1.0 - 0.9f64.powi(t)), v / (1.0 - 0.999f64.powi(t)));
            w -= 0.1 * mh / (vh.sqrt() + 1e-8);
            assert!((p.value.data()[0] as f64 - w).abs() < 1e-6, "step {t}: {} vs {w}", p.value.data()[0]);
        }
    }
}
