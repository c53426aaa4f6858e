//! Fully connected layer: `out = input @ weight^T + bias`, PyTorch's layout.
//!
//! The output and input-gradient products are cut into one block of result rows per thread,
//! each a single-threaded `gemm` (bench gemm here: one product over two threads reaches 80-93
//! GFLOP/s, one thread alone 55-64), and every value is still summed by one thread in a fixed
//! order.

use super::matmul::{matmul, Mat, Threads};
use super::parallel::{chunk_ranges, split_lengths};
use rayon::prelude::*;

/// `dst [m, n] (+)= a [m, k] @ b [k, n]` with `a` not transposed, rows of `dst` and `a` split
/// across the pool.
#[allow(clippy::too_many_arguments)]
fn matmul_by_rows(dst: &mut [f32], a: &[f32], b: Mat, m: usize, n: usize, k: usize, accumulate: bool) {
    let ranges = chunk_ranges(m, rayon::current_num_threads());
    if ranges.len() < 2 {
        return matmul(dst, Mat::n(a), b, m, n, k, accumulate, Threads::Pool);
    }
    let parts = split_lengths(dst, ranges.iter().map(|r| r.len() * n));
    parts.into_par_iter().zip(ranges).for_each(|(d, r)| {
        matmul(d, Mat::n(&a[r.start * k..r.end * k]), b, r.len(), n, k, accumulate, Threads::One);
    });
}

/// `out: [N, O]` overwritten; `input: [N, I]`; `weight: [O, I]`; `bias: [O]`.
pub fn linear_forward(out: &mut [f32], input: &[f32], weight: &[f32], bias: Option<&[f32]>, n: usize, i: usize, o: usize) {
    matmul_by_rows(out, input, Mat::t(weight), n, o, i, false);
    if let Some(b) = bias {
        for row in out.chunks_mut(o) {
            row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
        }
    }
}

/// Gradients accumulated (`+=`): `d_input: [N, I]`, `d_weight: [O, I]`, `d_bias: [O]`, from
/// `d_out: [N, O]`.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward(
    d_input: Option<&mut [f32]>,
    d_weight: Option<&mut [f32]>,
    d_bias: Option<&mut [f32]>,
    d_out: &[f32],
    input: &[f32],
    weight: &[f32],
    n: usize,
    i: usize,
    o: usize,
) {
    if let Some(dx) = d_input {
        // dX [N, I] += dY [N, O] @ W [O, I]
        matmul_by_rows(dx, d_out, Mat::n(weight), n, i, o, true);
    }
    if let Some(dw) = d_weight {
        // dW [O, I] += dY^T [O, N] @ X [N, I]: dY^T's rows are not contiguous, so this one
        // stays a single product over the pool.
        matmul(dw, Mat::t(d_out), Mat::n(input), o, i, n, true, Threads::Pool);
    }
    if let Some(db) = d_bias {
        for row in d_out.chunks(o) {
            db.iter_mut().zip(row).for_each(|(d, g)| *d += g);
        }
    }
}
