//! Lucid's diversity objective (Olah et al., "Feature Visualization", section "Diversity"):
//! a batch of images pushed apart by the cosine similarity of their Gram matrices at a layer,
//! `D = 1/K sum_i sum_{j != i} <G_i / |G_i|, G_j / |G_j|>`, `G_b = A_b A_b^T` over positions.
//! Subtracting it from the objective makes each image find another facet of the target.

use crate::error::{Error, Result};
use crate::kernels::matmul::{matmul, Mat, Threads};
use crate::tensor::Tensor;

/// `D` for the layer's activations `a` (`[K, C, h, w]`) and its gradient with respect to `a`.
pub fn diversity_and_gradient(a: &Tensor) -> Result<(f32, Tensor)> {
    let s = a.shape().to_vec();
    let [k, c, ..] = s[..] else {
        return Err(Error::shape(format!("diversity reads a batch of maps [K, C, H, W], not {s:?}")));
    };
    let p: usize = s[2..].iter().product();
    let per = c * p;
    // Unit Gram matrices and their norms.
    let mut unit = Vec::with_capacity(k);
    let mut norms = Vec::with_capacity(k);
    for b in 0..k {
        let f = &a.data()[b * per..(b + 1) * per];
        let mut g = vec![0.0; c * c];
        matmul(&mut g, Mat::n(f), Mat::t(f), c, c, p, false, Threads::Pool);
        let n = g.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt().max(1e-10);
        norms.push(n);
        unit.push(g.iter().map(|v| (*v as f64 / n) as f32).collect::<Vec<f32>>());
    }
    let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>();
    let mut d = 0.0;
    for i in 0..k {
        for j in 0..k {
            if i != j {
                d += dot(&unit[i], &unit[j]);
            }
        }
    }
    d /= k as f64;
    let mut grad = Tensor::zeros(&s);
    for i in 0..k {
        // dD/dGhat_i = 2/K sum_{j != i} Ghat_j (each pair appears twice in D).
        let mut v = vec![0.0f64; c * c];
        for j in (0..k).filter(|&j| j != i) {
            for (acc, g) in v.iter_mut().zip(&unit[j]) {
                *acc += 2.0 / k as f64 * *g as f64;
            }
        }
        // Through the normalisation: (v - <v, Ghat> Ghat) / |G|.
        let along = v.iter().zip(&unit[i]).map(|(a, b)| a * *b as f64).sum::<f64>();
        let gamma: Vec<f32> = v.iter().zip(&unit[i]).map(|(a, b)| ((a - along * *b as f64) / norms[i]) as f32).collect();
        // Through G = A A^T: dD/dA = (Gamma + Gamma^T) A.
        let sym: Vec<f32> = (0..c * c).map(|e| gamma[e] + gamma[(e % c) * c + e / c]).collect();
        let f = &a.data()[i * per..(i + 1) * per];
        matmul(&mut grad.data_mut()[i * per..(i + 1) * per], Mat::n(&sym), Mat::n(f), c, p, c, false, Threads::Pool);
    }
    Ok((d as f32, grad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gradient_matches_finite_differences_and_identical_images_score_highest() {
        let mut rng = crate::rng::Rng::new(12);
        let a = Tensor::from_vec(&[3, 4, 2, 3], rng.uniform_vec(72, -1.0, 1.0)).unwrap();
        let (_, g) = diversity_and_gradient(&a).unwrap();
        for i in [0, 9, 30, 55, 71] {
            let at = |d: f32| {
                let mut b = a.clone();
                b.data_mut()[i] += d;
                diversity_and_gradient(&b).unwrap().0 as f64
            };
            let numeric = (at(1e-3) - at(-1e-3)) / 2e-3;
            assert!((numeric - g.data()[i] as f64).abs() < 2e-3 * (1.0 + numeric.abs()), "at {i}: {numeric} vs {}", g.data()[i]);
        }
        // K copies of one image: every cosine is 1, D = K - 1.
        let one = rng.uniform_vec(24, -1.0, 1.0);
        let same = Tensor::from_vec(&[3, 4, 2, 3], [one.clone(), one.clone(), one].concat()).unwrap();
        assert!((diversity_and_gradient(&same).unwrap().0 - 2.0).abs() < 1e-5);
    }
}
