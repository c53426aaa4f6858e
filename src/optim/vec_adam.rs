//! Adam over one plain vector (an image, a spectrum) rather than a net's named parameters:
//! the optimiser of style transfer and of Lucid's rendering. Same update as `Adam` without
//! weight decay (PyTorch's defaults: betas 0.9, 0.999, eps 1e-8).

pub struct VecAdam {
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl VecAdam {
    pub fn new(len: usize) -> Self {
        VecAdam { m: vec![0.0; len], v: vec![0.0; len], t: 0 }
    }

    /// One step down the gradient `g` of `x` at learning rate `lr` (to climb, pass `-lr`).
    pub fn step(&mut self, x: &mut [f32], g: &[f32], lr: f32) {
        let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        self.t += 1;
        let (c1, c2) = (1.0 - b1.powi(self.t), 1.0 - b2.powi(self.t));
        for (((xv, gv), mv), vv) in x.iter_mut().zip(g).zip(&mut self.m).zip(&mut self.v) {
            *mv = b1 * *mv + (1.0 - b1) * gv;
            *vv = b2 * *vv + (1.0 - b2) * gv * gv;
            *xv -= lr * (*mv / c1) / ((*vv / c2).sqrt() + eps);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Adam's first step moves every coordinate by the learning rate, against its gradient's
    /// sign, whatever the gradient's size.
    #[test]
    fn the_first_step_is_the_learning_rate_against_the_sign() {
        let mut x = vec![1.0, 1.0, 1.0];
        VecAdam::new(3).step(&mut x, &[1e-3, -50.0, 2.0], 0.1);
        for (v, want) in x.iter().zip([0.9, 1.1, 0.9]) {
            assert!((v - want).abs() < 1e-5, "{x:?}");
        }
    }
}
