//! Matrix products on the `gemm` crate (AVX-512 kernels chosen at run time). The one place
//! that calls into `gemm`, with the bounds checked before the unsafe call.

use gemm::Parallelism;

/// A row-major matrix operand, optionally read transposed.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    /// When true, `data` holds the `[cols, rows]` matrix and is read as its transpose.
    pub transposed: bool,
    /// Distance between the stored rows, when larger than their length (a block of columns of
    /// a wider matrix); `None` for a dense matrix.
    pub row_stride: Option<usize>,
}

impl<'a> Mat<'a> {
    pub fn n(data: &'a [f32]) -> Self {
        Mat { data, transposed: false, row_stride: None }
    }
    pub fn t(data: &'a [f32]) -> Self {
        Mat { data, transposed: true, row_stride: None }
    }
    /// Stored rows `row_stride` values apart (of which the operand uses the first few).
    pub fn with_row_stride(self, row_stride: usize) -> Self {
        Mat { row_stride: Some(row_stride), ..self }
    }

    /// (column stride, row stride) in elements of the `rows x cols` matrix this operand reads,
    /// after checking that `data` holds it.
    fn strides(&self, rows: usize, cols: usize, what: &str) -> (isize, isize) {
        // The stored matrix is `[rows, cols]`, or `[cols, rows]` when transposed.
        let (stored_rows, stored_cols) = if self.transposed { (cols, rows) } else { (rows, cols) };
        let ld = self.row_stride.unwrap_or(stored_cols);
        assert!(ld >= stored_cols, "matmul: {what}'s row stride {ld} is shorter than its {stored_cols} columns");
        let needed = if stored_rows == 0 || stored_cols == 0 { 0 } else { (stored_rows - 1) * ld + stored_cols };
        assert!(self.data.len() >= needed, "matmul: {what} has {} values, needs {needed} ({rows}x{cols})", self.data.len());
        if self.transposed {
            (ld as isize, 1)
        } else {
            (1, ld as isize)
        }
    }
}

/// How a product may use threads.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Threads {
    /// On the calling thread only (the caller already runs in parallel).
    One,
    /// Across the current rayon pool.
    Pool,
}

/// `dst[m, n] = (accumulate ? dst : 0) + a[m, k] @ b[k, n]`, all row-major and contiguous.
///
#[allow(clippy::too_many_arguments)]
/// Panics if a slice is shorter than its stated shape: callers pass buffers they sized
/// themselves, so that is a bug in fovea, not bad input.
pub fn matmul(dst: &mut [f32], a: Mat, b: Mat, m: usize, n: usize, k: usize, accumulate: bool, threads: Threads) {
    assert!(dst.len() >= m * n, "matmul: dst has {} values, needs {}x{}", dst.len(), m, n);
    // (column stride, row stride) of each operand in elements, its size checked.
    let (a_cs, a_rs) = a.strides(m, k, "a");
    let (b_cs, b_rs) = b.strides(k, n, "b");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    let parallelism = match threads {
        Threads::One => Parallelism::None,
        Threads::Pool => match rayon::current_num_threads() {
            0 | 1 => Parallelism::None,
            t => Parallelism::Rayon(t),
        },
    };
    // SAFETY: the asserts above bound every index gemm reads or writes: dst is m x n with row
    // stride n, a is m x k and b is k x n in the strides computed from their stated layouts.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a_cs,
            a_rs,
            b.data.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// The plain triple loop, the reference for `matmul`.
pub fn matmul_ref(dst: &mut [f32], a: Mat, b: Mat, m: usize, n: usize, k: usize, accumulate: bool) {
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f64;
            for p in 0..k {
                let av = if a.transposed { a.data[p * a.row_stride.unwrap_or(m) + i] } else { a.data[i * a.row_stride.unwrap_or(k) + p] };
                let bv = if b.transposed { b.data[j * b.row_stride.unwrap_or(k) + p] } else { b.data[p * b.row_stride.unwrap_or(n) + j] };
                s += av as f64 * bv as f64;
            }
            let d = &mut dst[i * n + j];
            *d = if accumulate { *d + s as f32 } else { s as f32 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Empty products: no reduction overwrites with zeros (or leaves an accumulating result
    /// alone); an empty result touches nothing; empty operands need no values.
    #[test]
    fn empty_products_follow_the_definition() {
        let mut dst = vec![7.0; 6];
        matmul(&mut dst, Mat::n(&[]), Mat::n(&[]), 2, 3, 0, true, Threads::One);
        assert_eq!(dst, vec![7.0; 6]);
        matmul(&mut dst, Mat::n(&[]), Mat::n(&[]), 2, 3, 0, false, Threads::One);
        assert_eq!(dst, vec![0.0; 6]);
        let mut dst = vec![7.0; 6];
        matmul(&mut dst, Mat::n(&[]), Mat::n(&[1.0; 12]), 0, 3, 4, false, Threads::One);
        matmul(&mut dst, Mat::t(&[1.0; 8]), Mat::t(&[]), 2, 0, 4, false, Threads::One);
        assert_eq!(dst, vec![7.0; 6]);
    }

    #[test]
    #[should_panic(expected = "matmul: b has 11 values, needs 12")]
    fn a_short_operand_is_refused() {
        matmul(&mut [0.0; 6], Mat::n(&[0.0; 8]), Mat::n(&[0.0; 11]), 2, 3, 4, false, Threads::One);
    }

    #[test]
    #[should_panic(expected = "needs 11")]
    fn a_short_strided_operand_is_refused() {
        // Rows 4 apart, 3 used: the last row ends at 2 * 4 + 3 = 11.
        matmul(&mut [0.0; 9], Mat::n(&[0.0; 10]).with_row_stride(4), Mat::n(&[0.0; 9]), 3, 3, 3, false, Threads::One);
    }

    #[test]
    fn matmul_matches_reference_in_every_layout() {
        let mut rng = Rng::new(7);
        for &(m, n, k) in &[(1, 1, 1), (3, 5, 7), (17, 33, 9), (64, 10, 300), (5, 1, 40)] {
            for &(ta, tb, acc) in &[(false, false, false), (true, false, true), (false, true, false), (true, true, true)] {
                let a = rng.uniform_vec(m * k, -1.0, 1.0);
                let b = rng.uniform_vec(k * n, -1.0, 1.0);
                let start = rng.uniform_vec(m * n, -1.0, 1.0);
                let (mut fast, mut slow) = (start.clone(), start);
                let (ma, mb) = (Mat { data: &a, transposed: ta, row_stride: None }, Mat { data: &b, transposed: tb, row_stride: None });
                matmul(&mut fast, ma, mb, m, n, k, acc, Threads::Pool);
                matmul_ref(&mut slow, ma, mb, m, n, k, acc);
                for (x, y) in fast.iter().zip(&slow) {
                    assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{m}x{n}x{k} {ta} {tb}: {x} vs {y}");
                }
                // The same operands as blocks of columns of wider stored matrices.
                let widen = |data: &[f32], rows: usize, cols: usize| -> Vec<f32> {
                    data.chunks(cols).take(rows).flat_map(|r| r.iter().copied().chain([f32::NAN; 3])).collect()
                };
                let (a_rows, a_cols) = if ta { (k, m) } else { (m, k) };
                let (b_rows, b_cols) = if tb { (n, k) } else { (k, n) };
                let (wa, wb) = (widen(&a, a_rows, a_cols), widen(&b, b_rows, b_cols));
                let mut strided = vec![0.0; m * n];
                let (sa, sb) = (Mat { data: &wa, transposed: ta, row_stride: Some(a_cols + 3) }, Mat { data: &wb, transposed: tb, row_stride: Some(b_cols + 3) });
                matmul(&mut strided, sa, sb, m, n, k, false, Threads::One);
                let mut plain = vec![0.0; m * n];
                matmul_ref(&mut plain, ma, mb, m, n, k, false);
                for (x, y) in strided.iter().zip(&plain) {
                    assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "strided {m}x{n}x{k} {ta} {tb}: {x} vs {y}");
                }
            }
        }
    }
}
