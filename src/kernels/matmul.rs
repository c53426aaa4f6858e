//! Matrix products on the `gemm` crate (AVX-512 kernels chosen at run time). The one place
//! that calls into `gemm`, with the bounds checked before the unsafe call.

use gemm::Parallelism;

/// A row-major matrix operand, optionally read transposed.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    /// When true, `data` holds the `[cols, rows]` matrix and is read as its transpose.
    pub transposed: bool,
}

impl<'a> Mat<'a> {
    pub fn n(data: &'a [f32]) -> Self {
        Mat { data, transposed: false }
    }
    pub fn t(data: &'a [f32]) -> Self {
        Mat { data, transposed: true }
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
    assert!(a.data.len() >= m * k, "matmul: a has {} values, needs {}x{}", a.data.len(), m, k);
    assert!(b.data.len() >= k * n, "matmul: b has {} values, needs {}x{}", b.data.len(), k, n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    // (column stride, row stride) of each operand in elements.
    let (a_cs, a_rs) = if a.transposed { (m as isize, 1) } else { (1, k as isize) };
    let (b_cs, b_rs) = if b.transposed { (k as isize, 1) } else { (1, n as isize) };
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
                let av = if a.transposed { a.data[p * m + i] } else { a.data[i * k + p] };
                let bv = if b.transposed { b.data[j * k + p] } else { b.data[p * n + j] };
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

    #[test]
    fn matmul_matches_reference_in_every_layout() {
        let mut rng = Rng::new(7);
        for &(m, n, k) in &[(1, 1, 1), (3, 5, 7), (17, 33, 9), (64, 10, 300), (5, 1, 40)] {
            for &(ta, tb, acc) in &[(false, false, false), (true, false, true), (false, true, false), (true, true, true)] {
                let a = rng.uniform_vec(m * k, -1.0, 1.0);
                let b = rng.uniform_vec(k * n, -1.0, 1.0);
                let start = rng.uniform_vec(m * n, -1.0, 1.0);
                let (mut fast, mut slow) = (start.clone(), start);
                let (ma, mb) = (Mat { data: &a, transposed: ta }, Mat { data: &b, transposed: tb });
                matmul(&mut fast, ma, mb, m, n, k, acc, Threads::Pool);
                matmul_ref(&mut slow, ma, mb, m, n, k, acc);
                for (x, y) in fast.iter().zip(&slow) {
                    assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{m}x{n}x{k} {ta} {tb}: {x} vs {y}");
                }
            }
        }
    }
}
