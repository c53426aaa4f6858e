//! Fully connected layer: `out = input @ weight^T + bias`, PyTorch's layout.
//!
//! Every product is cut into one block per thread, each a single-threaded `gemm` (`gemm`'s own
//! threading of one product ran at a third of the speed here). The forward pass and the weight
//! gradient split the weight matrix's rows, so each thread packs only its share of W (the large
//! operand: 12.8 MB for the MNIST net's fc1); the input gradient splits the batch. Every value
//! is summed by one thread in a fixed order, so the same thread count gives the same bits.

use super::matmul::{matmul, Mat, Threads};
use super::Store;
use super::parallel::{chunk_ranges, split_lengths};
use rayon::prelude::*;

/// `out: [N, O]` overwritten; `input: [N, I]`; `weight: [O, I]`; `bias: [O]`; then `max(0, .)`
/// where `relu` (a ReLU fused into the layer, `activation::relu`).
///
/// Computed as `out^T [O, N] = W [O, I] @ X^T [I, N]` with W's rows split across the pool, then
/// transposed: each thread packs only its share of W (the large operand: 12.8 MB for the MNIST
/// net's fc1), where splitting by batch rows made every thread pack all of it. With fewer
/// output features than rows, W is the small operand and the batch's rows are split instead
/// (`linear_forward_by_rows`).
#[allow(clippy::too_many_arguments)]
pub fn linear_forward(out: &mut [f32], input: &[f32], weight: &[f32], bias: Option<&[f32]>, n: usize, i: usize, o: usize, relu: bool, scratch: &mut Vec<f32>) {
    if o < n {
        return linear_forward_by_rows(out, input, weight, bias, n, i, o, relu);
    }
    scratch.resize(o * n, 0.0);
    let ranges = chunk_ranges(o, rayon::current_num_threads());
    let parts = split_lengths(scratch, ranges.iter().map(|r| r.len() * n));
    parts.into_par_iter().zip(ranges).for_each(|(d, r)| {
        matmul(d, Mat::n(&weight[r.start * i..r.end * i]), Mat::t(input), r.len(), n, i, false, Threads::One);
    });
    // (The transpose in 8 x 8 register blocks and the bias in a parallel pass measured the
    // same in the MNIST net's step: 2.9-3.2 ms for fc1's forward pass either way.)
    for (row, out_row) in out.chunks_mut(o).enumerate().take(n) {
        for (col, v) in out_row.iter_mut().enumerate() {
            *v = scratch[col * n + row];
        }
        add_bias_then_relu(out_row, bias, relu);
    }
}

/// `row [O] += bias`, then `max(0, .)` where `relu`.
fn add_bias_then_relu(row: &mut [f32], bias: Option<&[f32]>, relu: bool) {
    if let Some(b) = bias {
        row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
    }
    if relu {
        row.iter_mut().for_each(|v| *v = super::activation::relu(*v));
    }
}

/// `linear_forward` where W is the smaller operand (fewer output features than rows: the MNIST
/// net's fc2, 1024 -> 10 on 128 rows): `out [N, O] = X [N, I] @ W^T [I, O]` with the batch's
/// rows split across the pool, straight into `out`. Each thread packs all of W, which is small
/// here; split by W's rows, each thread packed all of X (fc2's forward pass 0.50 ms).
#[allow(clippy::too_many_arguments)]
fn linear_forward_by_rows(out: &mut [f32], input: &[f32], weight: &[f32], bias: Option<&[f32]>, n: usize, i: usize, o: usize, relu: bool) {
    let ranges = chunk_ranges(n, rayon::current_num_threads());
    let parts = split_lengths(&mut out[..n * o], ranges.iter().map(|r| r.len() * o));
    parts.into_par_iter().zip(ranges).for_each(|(d, r)| {
        matmul(d, Mat::n(&input[r.start * i..r.end * i]), Mat::t(weight), r.len(), o, i, false, Threads::One);
        d.chunks_mut(o).for_each(|row| add_bias_then_relu(row, bias, relu));
    });
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
    (input_store, param_store): (Store, Store),
) {
    let threads = rayon::current_num_threads();
    if let Some(dx) = d_input {
        // dX [N, I] += dY [N, O] @ W [O, I], dX's rows split across the pool. (Splitting W's
        // columns instead, so that each thread packs half of W, measured 5-15% slower here.)
        let ranges = chunk_ranges(n, threads);
        let parts = split_lengths(dx, ranges.iter().map(|r| r.len() * i));
        parts.into_par_iter().zip(ranges).for_each(|(d, r)| {
            matmul(d, Mat::n(&d_out[r.start * o..r.end * o]), Mat::n(weight), r.len(), i, o, input_store == Store::Add, Threads::One);
        });
    }
    if let Some(dw) = d_weight {
        // dW [O, I] += dY^T [O, N] @ X [N, I], dW's rows split across the pool.
        let ranges = chunk_ranges(o, threads);
        let parts = split_lengths(dw, ranges.iter().map(|r| r.len() * i));
        parts.into_par_iter().zip(ranges).for_each(|(d, r)| {
            let dy_cols = Mat::t(&d_out[r.start..]).with_row_stride(o);
            matmul(d, dy_cols, Mat::n(input), r.len(), i, n, param_store == Store::Add, Threads::One);
        });
    }
    if let Some(db) = d_bias {
        if param_store == Store::Write {
            db.fill(0.0);
        }
        for row in d_out.chunks(o) {
            db.iter_mut().zip(row).for_each(|(d, g)| *d += g);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::matmul::matmul_ref;
    use crate::rng::Rng;

    fn close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len());
        for (k, (x, y)) in a.iter().zip(b).enumerate() {
            #[allow(clippy::neg_cmp_op_on_partial_ord)]
            let ok = (x - y).abs() <= 1e-4 * (1.0 + y.abs());
            assert!(ok, "{what}[{k}]: {x} vs reference {y}");
        }
    }

    /// Forward and both gradients against the plain product, for shapes that split unevenly
    /// over pools of 1, 2 and 3 threads (and a batch of one).
    #[test]
    fn linear_matches_the_reference_in_every_pool() {
        let mut rng = Rng::new(8);
        // Both splits: by W's rows (O >= N) and by the batch's (O < N: 300 -> 10 on 37 rows).
        for &(n, i, o) in &[(1, 7, 5), (5, 33, 17), (16, 300, 64), (3, 1, 2), (37, 300, 10)] {
            let x = rng.uniform_vec(n * i, -1.0, 1.0);
            let w = rng.uniform_vec(o * i, -1.0, 1.0);
            let b = rng.uniform_vec(o, -1.0, 1.0);
            let dy = rng.uniform_vec(n * o, -1.0, 1.0);
            let mut y_ref = vec![0.0; n * o];
            matmul_ref(&mut y_ref, Mat::n(&x), Mat::t(&w), n, o, i, false);
            y_ref.chunks_mut(o).for_each(|r| r.iter_mut().zip(&b).for_each(|(v, b)| *v += b));
            let mut dx_ref = vec![0.5; n * i];
            matmul_ref(&mut dx_ref, Mat::n(&dy), Mat::n(&w), n, i, o, true);
            let mut dw_ref = vec![0.25; o * i];
            matmul_ref(&mut dw_ref, Mat::t(&dy), Mat::n(&x), o, i, n, true);
            let db_ref: Vec<f32> = (0..o).map(|c| 1.0 + (0..n).map(|r| dy[r * o + c]).sum::<f32>()).collect();
            for threads in [1, 2, 3] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| {
                    let (mut y, mut scratch) = (vec![f32::NAN; n * o], Vec::new());
                    linear_forward(&mut y, &x, &w, Some(&b), n, i, o, false, &mut scratch);
                    close(&y, &y_ref, &format!("{n}x{i}->{o}, {threads} threads: output"));
                    // With the ReLU fused: the same values through `max(0, .)`, bit for bit.
                    let mut rectified = vec![f32::NAN; n * o];
                    linear_forward(&mut rectified, &x, &w, Some(&b), n, i, o, true, &mut scratch);
                    let want: Vec<f32> = y.iter().map(|&v| crate::kernels::activation::relu(v)).collect();
                    assert_eq!(rectified, want, "{n}x{i}->{o}, {threads} threads: output with the ReLU");
                    let mut unbiased = vec![f32::NAN; n * o];
                    linear_forward(&mut unbiased, &x, &w, None, n, i, o, false, &mut scratch);
                    let want: Vec<f32> = y_ref.iter().enumerate().map(|(k, v)| v - b[k % o]).collect();
                    close(&unbiased, &want, &format!("{n}x{i}->{o}, {threads} threads: output without a bias"));
                    let (mut dx, mut dw, mut db) = (vec![0.5; n * i], vec![0.25; o * i], vec![1.0; o]);
                    linear_backward(Some(&mut dx), Some(&mut dw), Some(&mut db), &dy, &x, &w, n, i, o, (Store::Add, Store::Add));
                    close(&dx, &dx_ref, &format!("{n}x{i}->{o}, {threads} threads: d_input"));
                    close(&dw, &dw_ref, &format!("{n}x{i}->{o}, {threads} threads: d_weight"));
                    close(&db, &db_ref, &format!("{n}x{i}->{o}, {threads} threads: d_bias"));
                    // Written instead of added: what the sums above hold beyond their start.
                    let (mut dx, mut dw, mut db) = (vec![f32::NAN; n * i], vec![f32::NAN; o * i], vec![f32::NAN; o]);
                    linear_backward(Some(&mut dx), Some(&mut dw), Some(&mut db), &dy, &x, &w, n, i, o, (Store::Write, Store::Write));
                    let dx_written: Vec<f32> = dx_ref.iter().map(|v| v - 0.5).collect();
                    close(&dx, &dx_written, &format!("{n}x{i}->{o}, {threads} threads: d_input written"));
                    let dw_written: Vec<f32> = dw_ref.iter().map(|v| v - 0.25).collect();
                    let db_written: Vec<f32> = db_ref.iter().map(|v| v - 1.0).collect();
                    close(&dw, &dw_written, &format!("{n}x{i}->{o}, {threads} threads: d_weight written"));
                    close(&db, &db_written, &format!("{n}x{i}->{o}, {threads} threads: d_bias written"));
                });
            }
        }
    }
}
