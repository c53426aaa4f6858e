//! Fully connected layer: `out = input @ weight^T + bias`, PyTorch's layout.

use super::matmul::{matmul, Mat, Threads};

/// `out: [N, O]` overwritten; `input: [N, I]`; `weight: [O, I]`; `bias: [O]`.
pub fn linear_forward(out: &mut [f32], input: &[f32], weight: &[f32], bias: Option<&[f32]>, n: usize, i: usize, o: usize) {
    matmul(out, Mat::n(input), Mat::t(weight), n, o, i, false, Threads::Pool);
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
        matmul(dx, Mat::n(d_out), Mat::n(weight), n, i, o, true, Threads::Pool);
    }
    if let Some(dw) = d_weight {
        // dW [O, I] += dY^T [O, N] @ X [N, I]
        matmul(dw, Mat::t(d_out), Mat::n(input), o, i, n, true, Threads::Pool);
    }
    if let Some(db) = d_bias {
        for row in d_out.chunks(o) {
            db.iter_mut().zip(row).for_each(|(d, g)| *d += g);
        }
    }
}
