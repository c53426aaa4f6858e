//! L-BFGS (Nocedal's two-loop recursion over the last few steps) with a backtracking line
//! search (Armijo's condition), for minimising a function of one vector whose gradient is
//! known: the image of Gatys et al.'s style transfer, as their paper does.

use crate::error::Result;
use std::collections::VecDeque;

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

/// Minimises `f` (value and gradient at a point) from `x` for `steps` iterations, remembering
/// `history` past steps; `each_step(step, value)` is called with the value after each
/// iteration. Stops early when no step along the search direction lowers the value.
pub fn minimize(
    x: &mut [f32],
    steps: usize,
    history: usize,
    mut f: impl FnMut(&[f32]) -> Result<(f64, Vec<f32>)>,
    mut each_step: impl FnMut(usize, f64),
) -> Result<f64> {
    let (mut value, mut grad) = f(x)?;
    let (mut s_hist, mut y_hist, mut rho): (VecDeque<Vec<f32>>, VecDeque<Vec<f32>>, VecDeque<f64>) = (VecDeque::new(), VecDeque::new(), VecDeque::new());
    for step in 1..=steps {
        // The direction: minus the inverse-Hessian estimate times the gradient.
        let mut q: Vec<f64> = grad.iter().map(|&g| g as f64).collect();
        let mut alpha = vec![0.0; s_hist.len()];
        for i in (0..s_hist.len()).rev() {
            alpha[i] = rho[i] * s_hist[i].iter().zip(&q).map(|(s, q)| *s as f64 * q).sum::<f64>();
            for (qv, yv) in q.iter_mut().zip(&y_hist[i]) {
                *qv -= alpha[i] * *yv as f64;
            }
        }
        let gamma = match (s_hist.back(), y_hist.back()) {
            (Some(s), Some(y)) => dot(s, y) / dot(y, y).max(1e-30),
            _ => 1.0 / grad.iter().map(|g| g.abs() as f64).sum::<f64>().max(1e-30),
        };
        for v in q.iter_mut() {
            *v *= gamma;
        }
        for i in 0..s_hist.len() {
            let beta = rho[i] * y_hist[i].iter().zip(&q).map(|(y, q)| *y as f64 * q).sum::<f64>();
            for (qv, sv) in q.iter_mut().zip(&s_hist[i]) {
                *qv += (alpha[i] - beta) * *sv as f64;
            }
        }
        let mut d: Vec<f32> = q.iter().map(|v| -v as f32).collect();
        let mut slope = dot(&grad, &d);
        if slope >= 0.0 {
            // Not a descent direction (curvature lost to rounding): start over from the gradient.
            s_hist.clear();
            y_hist.clear();
            rho.clear();
            let scale = 1.0 / grad.iter().map(|g| g.abs() as f64).sum::<f64>().max(1e-30);
            d = grad.iter().map(|g| (-*g as f64 * scale) as f32).collect();
            slope = dot(&grad, &d);
        }
        // Backtracking until the value falls enough (Armijo, c = 1e-4).
        let mut t = 1.0f32;
        let mut accepted = None;
        for _ in 0..30 {
            let trial: Vec<f32> = x.iter().zip(&d).map(|(xv, dv)| xv + t * dv).collect();
            let (v, g) = f(&trial)?;
            if v.is_finite() && v <= value + 1e-4 * t as f64 * slope {
                accepted = Some((trial, v, g));
                break;
            }
            t *= 0.5;
        }
        let Some((trial, v, g)) = accepted else {
            each_step(step, value);
            break;
        };
        let s: Vec<f32> = trial.iter().zip(x.iter()).map(|(a, b)| a - b).collect();
        let y: Vec<f32> = g.iter().zip(&grad).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-10 {
            if s_hist.len() == history.max(1) {
                s_hist.pop_front();
                y_hist.pop_front();
                rho.pop_front();
            }
            s_hist.push_back(s);
            y_hist.push_back(y);
            rho.push_back(1.0 / sy);
        }
        x.copy_from_slice(&trial);
        (value, grad) = (v, g);
        each_step(step, value);
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rosenbrock's valley, the classic test of a quasi-Newton method: from (-1.2, 1) to the
    /// minimum at (1, 1).
    #[test]
    fn finds_the_bottom_of_rosenbrocks_valley() {
        let mut x = vec![-1.2f32, 1.0];
        let rosen = |p: &[f32]| {
            let (a, b) = (p[0] as f64, p[1] as f64);
            let v = (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2);
            let g = vec![(-2.0 * (1.0 - a) - 400.0 * a * (b - a * a)) as f32, (200.0 * (b - a * a)) as f32];
            Ok((v, g))
        };
        let mut values = Vec::new();
        let v = minimize(&mut x, 100, 10, rosen, |_, v| values.push(v)).unwrap();
        assert!(v < 1e-6 && (x[0] - 1.0).abs() < 1e-2 && (x[1] - 1.0).abs() < 1e-2, "{x:?}, {v}");
        assert!(values.windows(2).all(|w| w[1] <= w[0]), "every accepted step lowers the value");
    }

    /// A quadratic of 50 variables with condition number 1,000: gradient descent needs
    /// thousands of steps, L-BFGS a few dozen.
    #[test]
    fn solves_an_ill_conditioned_quadratic() {
        let scales: Vec<f64> = (0..50).map(|i| 1.0 + 999.0 * i as f64 / 49.0).collect();
        let mut x = vec![1.0f32; 50];
        let quad = |p: &[f32]| {
            let v = p.iter().zip(&scales).map(|(x, s)| 0.5 * s * (*x as f64).powi(2)).sum();
            Ok((v, p.iter().zip(&scales).map(|(x, s)| (s * *x as f64) as f32).collect()))
        };
        let v = minimize(&mut x, 60, 10, quad, |_, _| {}).unwrap();
        assert!(v < 1e-4, "from 12,500 to {v}");
    }
}
