//! Whether a buffer holds only numbers: training checks gradients before each update, and the
//! Winograd convolution checks its operands (its transforms would spread a NaN or an infinity
//! to neighbouring outputs that the definition leaves finite).

/// Whether no value is NaN or infinite: `v * 0` is 0 for every finite value and NaN otherwise,
/// and a sum of those vectorises where `is_finite` in a short-circuiting loop does not.
/// Compiled at the CPU's width, in `LANES` independent sums: one vector of 8 sums was a chain
/// of dependent additions, 2 values a cycle, slower than the memory it reads (4% of a Winograd
/// convolution's time, which checks its input).
pub fn all_finite(v: &[f32]) -> bool {
    all_finite_on(crate::kernels::isa::Isa::active(), v)
}

const LANES: usize = 64;

#[inline(always)]
fn all_finite_body(v: &[f32]) -> bool {
    let mut acc = [0.0f32; LANES];
    let chunks = v.chunks_exact(LANES);
    let rest = chunks.remainder().iter().fold(0.0f32, |a, x| a + x * 0.0);
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x * 0.0;
        }
    }
    acc.iter().sum::<f32>() + rest == 0.0
}

crate::kernels::isa::compiled_per_isa! {
    /// `all_finite_body` compiled for `isa`.
    fn all_finite_on => all_finite_body(v: &[f32]) -> bool
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_any_nan_or_infinity_anywhere() {
        for isa in crate::kernels::isa::Isa::testable("all_finite") {
            for len in [0, 1, 7, 8, 9, 33, 64, 65, 130] {
                let v = vec![f32::MAX; len];
                assert!(all_finite_on(isa, &v), "{isa:?}: {len} finite values");
                for i in 0..len {
                    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                        let mut w = v.clone();
                        w[i] = bad;
                        assert!(!all_finite_on(isa, &w), "{isa:?}: {bad} at {i} of {len}");
                    }
                }
            }
        }
    }
}
