//! ReLU forward and its three backward rules (plain, guided, deconvnet), and inverted dropout.

use super::Store;
use crate::rng::hash_uniform;
use rayon::prelude::*;

const CHUNK: usize = 1 << 14;

/// How gradients pass back through a ReLU. Visualization methods differ only here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReluRule {
    /// The true gradient: `dx = dy * [x > 0]`.
    #[default]
    Plain,
    /// Guided backpropagation (Springenberg et al.): `dx = dy * [x > 0] * [dy > 0]`.
    Guided,
    /// Zeiler and Fergus's deconvnet: `dx = max(dy, 0)`, whatever the forward input was.
    Deconvnet,
}

/// `max(x, 0)`, keeping a NaN: the one ReLU rule of the forward passes (the layer's, a
/// convolution's epilogue, a norm's fused pass).
#[inline(always)]
pub fn relu(x: f32) -> f32 {
    if x <= 0.0 { 0.0 } else { x }
}

/// `out = max(x, 0)`, elementwise; `out` is overwritten. A NaN stays NaN, as in PyTorch (a
/// NaN turned into 0 would hide broken weights behind confident predictions).
pub fn relu_forward(out: &mut [f32], x: &[f32]) {
    out.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(y, x)| {
        y.iter_mut().zip(x).for_each(|(y, &x)| *y = relu(x));
    });
}

/// `y = max(y, 0)` in place, on the calling thread (a convolution's epilogue, one sample at a
/// time while it is in cache); the same rule as `relu_forward`.
pub fn relu_in_place(y: &mut [f32]) {
    y.iter_mut().for_each(|v| *v = relu(*v));
}

/// `dx += rule(x, dy)` (or `=`, `store`), elementwise; `x` is the ReLU's forward input or its output (the ReLU
/// keeps every sign: `x <= 0` exactly where `max(x, 0) <= 0`, and a NaN stays a NaN). As
/// PyTorch's `threshold_backward`, the gradient is stopped where `x <= 0` only, so it passes a
/// NaN input and a NaN gradient passes wherever the rule lets gradients through.
pub fn relu_backward(dx: &mut [f32], dy: &[f32], x: &[f32], rule: ReluRule, store: Store) {
    // One loop per rule and store (chosen outside the loop, so each loop vectorises).
    fn each(dx: &mut [f32], dy: &[f32], x: &[f32], store: Store, f: impl Fn(f32, f32) -> f32 + Sync) {
        dx.par_chunks_mut(CHUNK).zip(dy.par_chunks(CHUNK)).zip(x.par_chunks(CHUNK)).for_each(|((dx, dy), x)| match store {
            Store::Add => dx.iter_mut().zip(dy).zip(x).for_each(|((d, &g), &x)| *d += f(x, g)),
            Store::Write => dx.iter_mut().zip(dy).zip(x).for_each(|((d, &g), &x)| *d = f(x, g)),
        });
    }
    match rule {
        ReluRule::Plain => each(dx, dy, x, store, |x, g| if x <= 0.0 { 0.0 } else { g }),
        ReluRule::Guided => each(dx, dy, x, store, |x, g| if x <= 0.0 || g <= 0.0 { 0.0 } else { g }),
        ReluRule::Deconvnet => each(dx, dy, x, store, |_, g| if g <= 0.0 { 0.0 } else { g }),
    }
}

/// Inverted dropout: each element is kept with probability `1 - p` and scaled by `1 / (1 - p)`.
/// Writes the scale of every element (0 or `1 / (1 - p)`) into `mask` and applies it. The mask
/// is a pure function of `(seed, first + index)`: `first` is the index of `x[0]` in the whole
/// batch when `x` is one rank's share of it.
pub fn dropout_forward(out: &mut [f32], mask: &mut [f32], x: &[f32], p: f32, seed: u64, first: u64) {
    out.par_chunks_mut(CHUNK).zip(mask.par_chunks_mut(CHUNK)).zip(x.par_chunks(CHUNK)).enumerate().for_each(
        |(c, ((y, m), x))| dropout_chunk(y, m, x, p, seed, first + (c * CHUNK) as u64),
    );
}

/// `dropout_forward` of elements `first ..`: compiled for AVX-512 DQ where the CPU has it (its
/// 64-bit multiplies vectorise the hash's four; the mnist-cnn step's dropout 0.69 ms at two
/// threads), else plain; the same bits either way.
fn dropout_chunk(y: &mut [f32], m: &mut [f32], x: &[f32], p: f32, seed: u64, first: u64) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512dq") && crate::kernels::isa::Isa::Avx512.supported() {
        // SAFETY: the CPU has AVX-512 F and DQ (checked above).
        return unsafe { dropout_chunk_avx512(y, m, x, p, seed, first) };
    }
    dropout_chunk_body(y, m, x, p, seed, first)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx2")]
fn dropout_chunk_avx512(y: &mut [f32], m: &mut [f32], x: &[f32], p: f32, seed: u64, first: u64) {
    dropout_chunk_body(y, m, x, p, seed, first)
}

#[inline(always)]
fn dropout_chunk_body(y: &mut [f32], m: &mut [f32], x: &[f32], p: f32, seed: u64, first: u64) {
    let keep = 1.0 / (1.0 - p);
    for (k, ((y, m), &x)) in y.iter_mut().zip(m.iter_mut()).zip(x).enumerate() {
        let u = hash_uniform(seed, first + k as u64);
        *m = if u < p { 0.0 } else { keep };
        *y = x * *m;
    }
}

/// `dx += dy * mask` (or `=`, `store`).
pub fn scale_backward(dx: &mut [f32], dy: &[f32], mask: &[f32], store: Store) {
    dx.par_chunks_mut(CHUNK).zip(dy.par_chunks(CHUNK)).zip(mask.par_chunks(CHUNK)).for_each(|((dx, dy), m)| match store {
        Store::Add => dx.iter_mut().zip(dy).zip(m).for_each(|((d, g), m)| *d += g * m),
        Store::Write => dx.iter_mut().zip(dy).zip(m).for_each(|((d, g), m)| *d = g * m),
    });
}

/// `dst += src` (or `=`, `store`), elementwise.
pub fn store_into(dst: &mut [f32], src: &[f32], store: Store) {
    match store {
        Store::Add => add_into(dst, src),
        Store::Write => dst.par_chunks_mut(CHUNK).zip(src.par_chunks(CHUNK)).for_each(|(d, s)| d.copy_from_slice(s)),
    }
}

/// `out = ((x0 + x1) + x2) + ...` elementwise, in the inputs' order, then `max(., 0)` where
/// `relu_after` (the rule of `relu_forward`): chunk by chunk across the pool, one pass over the
/// output instead of a copy and a pass per further input (a residual connection's sum and its
/// ReLU read and wrote seven streams of the activations; three now), the same bits.
pub fn sum_into(out: &mut [f32], inputs: &[&[f32]], relu_after: bool) {
    assert!(!inputs.is_empty() && inputs.iter().all(|x| x.len() == out.len()), "sum_into: {} inputs for {} values", inputs.len(), out.len());
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(i, o)| {
        let r = i * CHUNK..i * CHUNK + o.len();
        match inputs {
            [a] => o.copy_from_slice(&a[r.clone()]),
            [a, b, ..] => o.iter_mut().zip(&a[r.clone()]).zip(&b[r.clone()]).for_each(|((o, a), b)| *o = a + b),
            [] => unreachable!("checked above"),
        }
        for x in inputs.iter().skip(2) {
            o.iter_mut().zip(&x[r.clone()]).for_each(|(o, x)| *o += x);
        }
        if relu_after {
            o.iter_mut().for_each(|v| *v = relu(*v));
        }
    });
}

/// `dst += src`, elementwise.
pub fn add_into(dst: &mut [f32], src: &[f32]) {
    dst.par_chunks_mut(CHUNK).zip(src.par_chunks(CHUNK)).for_each(|(d, s)| {
        d.iter_mut().zip(s).for_each(|(d, s)| *d += s);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sum_into` is the copy, the additions in order and the ReLU, bit for bit: one to three
    /// inputs, lengths across chunk boundaries, a NaN kept through the ReLU.
    #[test]
    fn sum_into_adds_in_order_then_applies_the_relu() {
        let mut rng = crate::rng::Rng::new(12);
        for len in [0, 1, 17, CHUNK, CHUNK + 5, 3 * CHUNK + 1] {
            let inputs: Vec<Vec<f32>> = (0..3).map(|_| rng.uniform_vec(len, -1.0, 1.0)).collect();
            for k in 1..=3 {
                let mut ins: Vec<&[f32]> = inputs[..k].iter().map(|v| v.as_slice()).collect();
                let mut with_nan = inputs[0].clone();
                if len > 0 {
                    with_nan[len / 2] = f32::NAN;
                    ins[0] = &with_nan;
                }
                for relu_after in [false, true] {
                    let mut want = ins[0].to_vec();
                    for x in &ins[1..] {
                        add_into(&mut want, x);
                    }
                    if relu_after {
                        let plain = want.clone();
                        relu_forward(&mut want, &plain);
                    }
                    let mut got = vec![7.0; len];
                    sum_into(&mut got, &ins, relu_after);
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&got), bits(&want), "{k} inputs of {len}, relu {relu_after}");
                }
            }
        }
    }

    /// The AVX-512 DQ compile of the dropout loop draws the plain loop's masks, bit for bit.
    #[test]
    fn dropout_draws_the_same_masks_on_every_isa() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512dq") && crate::kernels::isa::Isa::Avx512.supported() {
            let n = 1000;
            let x: Vec<f32> = (0..n).map(|i| (i as f32 - 500.0) / 7.0).collect();
            for (p, seed, first) in [(0.5, 42, 0), (0.1, 7, 123_456_789_012), (0.9, u64::MAX, u64::MAX - 2000)] {
                let (mut y, mut m) = (vec![0.0; n], vec![0.0; n]);
                dropout_chunk_body(&mut y, &mut m, &x, p, seed, first);
                let (mut y2, mut m2) = (vec![f32::NAN; n], vec![f32::NAN; n]);
                // SAFETY: checked above.
                unsafe { dropout_chunk_avx512(&mut y2, &mut m2, &x, p, seed, first) };
                assert_eq!((m2, y2), (m, y), "p {p}, seed {seed}, first {first}");
            }
            return;
        }
        println!("dropout on AVX-512 DQ: skipped (this CPU lacks it)");
    }

    /// A share of a batch, given where it starts, draws exactly the masks of those elements in
    /// the whole batch (the distributed trainer relies on it).
    #[test]
    fn a_share_of_the_batch_draws_the_whole_batchs_masks() {
        let n = 2 * CHUNK + 77;
        let x: Vec<f32> = (0..n).map(|i| 1.0 + (i % 5) as f32).collect();
        let (mut y, mut mask) = (vec![0.0; n], vec![0.0; n]);
        dropout_forward(&mut y, &mut mask, &x, 0.5, 42, 0);
        let from = CHUNK + 300;
        let (mut ys, mut ms) = (vec![0.0; n - from], vec![0.0; n - from]);
        dropout_forward(&mut ys, &mut ms, &x[from..], 0.5, 42, from as u64);
        assert_eq!(ms, mask[from..]);
        assert_eq!(ys, y[from..]);
    }

    /// Inverted dropout against its definition: element i is dropped exactly when
    /// `hash_uniform(seed, i) < p`, kept ones are scaled by `1 / (1 - p)`, about `p` of a large
    /// tensor is dropped, and the backward pass adds `dy * mask`.
    #[test]
    fn dropout_is_its_definition() {
        let n = 3 * CHUNK + 123;
        let x: Vec<f32> = (0..n).map(|i| 1.0 + (i % 7) as f32).collect();
        for (p, seed) in [(0.5f32, 9u64), (0.2, 1234)] {
            let (mut y, mut mask) = (vec![f32::NAN; n], vec![f32::NAN; n]);
            dropout_forward(&mut y, &mut mask, &x, p, seed, 0);
            let keep = 1.0 / (1.0 - p);
            let mut dropped = 0;
            for i in 0..n {
                let want = if hash_uniform(seed, i as u64) < p { 0.0 } else { keep };
                assert_eq!(mask[i], want, "p {p}: mask[{i}]");
                assert_eq!(y[i], x[i] * want, "p {p}: y[{i}]");
                dropped += usize::from(want == 0.0);
            }
            let share = dropped as f32 / n as f32;
            assert!((share - p).abs() < 0.02, "p {p}: dropped {share}");
            let dy: Vec<f32> = (0..n).map(|i| (i % 5) as f32 - 2.0).collect();
            let mut dx = vec![0.5; n];
            scale_backward(&mut dx, &dy, &mask, Store::Add);
            for i in 0..n {
                assert_eq!(dx[i], 0.5 + dy[i] * mask[i], "p {p}: dx[{i}]");
            }
            let mut dx = vec![f32::NAN; n];
            scale_backward(&mut dx, &dy, &mask, Store::Write);
            for i in 0..n {
                assert_eq!(dx[i], dy[i] * mask[i], "p {p}: dx[{i}] written");
            }
        }
    }

    /// NaN and infinities go through as PyTorch passes them: `relu(NaN) = NaN`, the gradient
    /// stopped only where the input is `<= 0`.
    #[test]
    fn relu_keeps_nan_as_pytorch() {
        let x = [f32::NAN, -1.0, 0.0, 2.0, f32::INFINITY, f32::NEG_INFINITY];
        let mut y = [7.0; 6];
        relu_forward(&mut y, &x);
        assert!(y[0].is_nan());
        assert_eq!(&y[1..], &[0.0, 0.0, 2.0, f32::INFINITY, 0.0]);
        let dy = [1.0, 1.0, 1.0, f32::NAN, -1.0, 1.0];
        let cases = [
            (ReluRule::Plain, [1.0, 0.0, 0.0, f32::NAN, -1.0, 0.0]),
            (ReluRule::Guided, [1.0, 0.0, 0.0, f32::NAN, 0.0, 0.0]),
            (ReluRule::Deconvnet, [1.0, 1.0, 1.0, f32::NAN, 0.0, 1.0]),
        ];
        for (rule, want) in cases {
            // Added to zeros, and written over what the buffer held.
            for (store, start) in [(Store::Add, 0.0), (Store::Write, 5.0)] {
                let mut dx = [start; 6];
                relu_backward(&mut dx, &dy, &x, rule, store);
                for (i, (a, b)) in dx.iter().zip(&want).enumerate() {
                    assert!(a == b || (a.is_nan() && b.is_nan()), "{rule:?} {store:?}[{i}]: {a}, want {b}");
                }
            }
        }
    }
}
