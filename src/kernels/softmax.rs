//! Softmax and softmax cross-entropy over the rows of `[N, K]`, stable for large logits
//! (the maximum is subtracted before exponentiating).

/// `out[n, :] = softmax(logits[n, :])`; `out` overwritten.
pub fn softmax_rows(out: &mut [f32], logits: &[f32], k: usize) {
    for (y, x) in out.chunks_mut(k).zip(logits.chunks(k)) {
        let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut s = 0.0f32;
        for (y, &x) in y.iter_mut().zip(x) {
            *y = (x - m).exp();
            s += *y;
        }
        y.iter_mut().for_each(|v| *v /= s);
    }
}

/// Backward of softmax: `dx += y * (dy - sum(dy * y))` per row.
pub fn softmax_backward(dx: &mut [f32], dy: &[f32], y: &[f32], k: usize) {
    for ((dx, dy), y) in dx.chunks_mut(k).zip(dy.chunks(k)).zip(y.chunks(k)) {
        let dot: f32 = dy.iter().zip(y).map(|(a, b)| a * b).sum();
        for ((d, g), y) in dx.iter_mut().zip(dy).zip(y) {
            *d += y * (g - dot);
        }
    }
}

/// Mean cross-entropy of `logits: [N, K]` against `labels: [N]` (each below K). Writes the
/// softmax into `probs: [N, K]` and the gradient of the mean loss into `d_logits: [N, K]`
/// (overwritten); returns the loss.
pub fn softmax_cross_entropy(probs: &mut [f32], d_logits: &mut [f32], logits: &[f32], labels: &[usize], k: usize) -> f32 {
    let n = labels.len();
    let mut total = 0.0f64;
    for (r, &label) in labels.iter().enumerate() {
        let x = &logits[r * k..(r + 1) * k];
        let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = x.iter().map(|&v| ((v - m) as f64).exp()).sum();
        let log_sum = sum.ln() + m as f64;
        total += log_sum - x[label] as f64;
        for j in 0..k {
            let p = ((x[j] as f64) - log_sum).exp() as f32;
            probs[r * k + j] = p;
            d_logits[r * k + j] = (p - if j == label { 1.0 } else { 0.0 }) / n as f32;
        }
    }
    (total / n.max(1) as f64) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Softmax rows and their backward pass against the definitions in f64.
    #[test]
    fn softmax_and_its_gradient_are_their_definitions() {
        let mut rng = Rng::new(6);
        let k = 7;
        let mut x = rng.uniform_vec(3 * k, -4.0, 4.0);
        x[k] = 80.0; // large logits stay finite (the row's maximum is subtracted)
        let mut y = vec![f32::NAN; 3 * k];
        softmax_rows(&mut y, &x, k);
        let dy = rng.uniform_vec(3 * k, -1.0, 1.0);
        let mut dx = vec![0.5; 3 * k];
        softmax_backward(&mut dx, &dy, &y, k);
        for r in 0..3 {
            let row = &x[r * k..(r + 1) * k];
            let m = row.iter().fold(f64::MIN, |m, &v| m.max(v as f64));
            let e: Vec<f64> = row.iter().map(|&v| (v as f64 - m).exp()).collect();
            let sum: f64 = e.iter().sum();
            let p: Vec<f64> = e.iter().map(|v| v / sum).collect();
            let dot: f64 = (0..k).map(|j| dy[r * k + j] as f64 * p[j]).sum();
            for j in 0..k {
                assert!((y[r * k + j] as f64 - p[j]).abs() < 1e-6, "softmax [{r},{j}]");
                let want = 0.5 + p[j] * (dy[r * k + j] as f64 - dot);
                assert!((dx[r * k + j] as f64 - want).abs() < 1e-6, "backward [{r},{j}]: {} vs {want}", dx[r * k + j]);
            }
        }
    }
}
