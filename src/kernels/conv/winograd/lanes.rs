//! The transforms' vector: 16 tiles' (or channels') values side by side, as plain Rust that
//! vectorises at the width of the `#[target_feature]` function it is compiled in; and the
//! stores plain Rust does not compile well, two vectors interleaved and the first few values of
//! one (`Stores`), written per instruction set.

use std::ops::{Add, Mul, Sub};

/// Values per lane vector.
pub(super) const LANES: usize = 16;

/// 16 tiles' values side by side: the row transforms run on these (whole vectors of tiles);
/// the transforms are generic so the tests also run them on plain `f32`, one tile at a time.
#[derive(Clone, Copy, Default)]
pub(super) struct Lanes(pub(super) [f32; LANES]);

impl Lanes {
    // No `array::from_fn` or `try_into` here: they are not inlined into the
    // `#[target_feature]` callers, and every call then copies its arrays through memory.
    #[inline(always)]
    #[allow(clippy::manual_memcpy)]
    pub(super) fn load(s: &[f32]) -> Lanes {
        let s = &s[..LANES];
        let mut v = [0.0f32; LANES];
        for i in 0..LANES {
            v[i] = s[i];
        }
        Lanes(v)
    }

    #[inline(always)]
    #[allow(clippy::manual_memcpy)]
    pub(super) fn store(self, d: &mut [f32]) {
        let d = &mut d[..LANES];
        for i in 0..LANES {
            d[i] = self.0[i];
        }
    }
}

impl Add for Lanes {
    type Output = Lanes;
    #[inline(always)]
    fn add(mut self, o: Lanes) -> Lanes {
        for i in 0..LANES {
            self.0[i] += o.0[i];
        }
        self
    }
}

impl Sub for Lanes {
    type Output = Lanes;
    #[inline(always)]
    fn sub(mut self, o: Lanes) -> Lanes {
        for i in 0..LANES {
            self.0[i] -= o.0[i];
        }
        self
    }
}

impl Mul<f32> for Lanes {
    type Output = Lanes;
    #[inline(always)]
    fn mul(mut self, c: f32) -> Lanes {
        for i in 0..LANES {
            self.0[i] *= c;
        }
        self
    }
}

/// The stores written per instruction set.
///
/// `zip`: `row[2 i] (+)= even[i]`, `row[2 i + 1] (+)= odd[i]` for every index below
/// `row.len()` (at most `2 LANES`): the two columns of a row of 2x2 output blocks back into the
/// image's row. As a plain loop LLVM took the two vectors through the stack and `memcpy`, a
/// store-forwarding stall per vector that was half of the output transform's time.
///
/// `first`: `d[i] = v[i]` for `i < n` (`n < LANES`; a strip's last vector of tiles where the
/// next channel's lanes follow): a plain loop became a call to `memcpy`, 4% of a 56x56 layer.
///
/// # Safety
/// Both may only be called where the CPU has the implementation's instruction set.
pub(super) unsafe trait Stores {
    unsafe fn zip(even: Lanes, odd: Lanes, row: &mut [f32], accumulate: bool);
    unsafe fn first(v: Lanes, n: usize, d: &mut [f32]);
}

/// Any CPU: value by value.
pub(super) struct PlainStores;

// SAFETY: plain Rust.
unsafe impl Stores for PlainStores {
    #[inline(always)]
    unsafe fn zip(even: Lanes, odd: Lanes, row: &mut [f32], accumulate: bool) {
        assert!(row.len() <= 2 * LANES, "zip: a row of {} for two vectors", row.len());
        for (i, d) in row.iter_mut().enumerate() {
            let x = if i % 2 == 0 { even.0[i / 2] } else { odd.0[i / 2] };
            *d = if accumulate { *d + x } else { x };
        }
    }
    #[inline(always)]
    unsafe fn first(v: Lanes, n: usize, d: &mut [f32]) {
        d[..n].copy_from_slice(&v.0[..n]);
    }
}

/// AVX-512: masked stores; `zip` by two two-source permutes, then one store per 16 values.
#[cfg(target_arch = "x86_64")]
pub(super) struct Avx512Stores;

// SAFETY: AVX-512 F intrinsics only, on values inside `row` (masked past its end).
#[cfg(target_arch = "x86_64")]
unsafe impl Stores for Avx512Stores {
    #[inline(always)]
    unsafe fn first(v: Lanes, n: usize, d: &mut [f32]) {
        use std::arch::x86_64::*;
        assert!(n <= LANES && n <= d.len(), "first: {n} values into {}", d.len());
        _mm512_mask_storeu_ps(d.as_mut_ptr(), ((1u32 << n) - 1) as __mmask16, _mm512_loadu_ps(v.0.as_ptr()));
    }
    #[inline(always)]
    unsafe fn zip(even: Lanes, odd: Lanes, row: &mut [f32], accumulate: bool) {
        use std::arch::x86_64::*;
        assert!(row.len() <= 2 * LANES, "zip: a row of {} for two vectors", row.len());
        let (e, o) = (_mm512_loadu_ps(even.0.as_ptr()), _mm512_loadu_ps(odd.0.as_ptr()));
        // Index 16 + i is the second source's (odd's) lane i.
        let first = _mm512_permutex2var_ps(e, _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23), o);
        let second = _mm512_permutex2var_ps(e, _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31), o);
        for (h, v) in [first, second].into_iter().enumerate() {
            let count = row.len().saturating_sub(h * LANES).min(LANES);
            if count == 0 {
                return;
            }
            let mask: __mmask16 = if count == LANES { !0 } else { (1 << count) - 1 };
            let p = row.as_mut_ptr().add(h * LANES);
            let v = if accumulate { _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, p)) } else { v };
            _mm512_mask_storeu_ps(p, mask, v);
        }
    }
}

/// AVX2: masked stores; `zip` per half of 8 lanes by unpacking and swapping 128-bit halves into
/// two rows of 8, the last, shorter one through a mask.
#[cfg(target_arch = "x86_64")]
pub(super) struct Avx2Stores;

// SAFETY: AVX2 intrinsics only, on values inside `row` (masked past its end).
#[cfg(target_arch = "x86_64")]
unsafe impl Stores for Avx2Stores {
    #[inline(always)]
    unsafe fn first(v: Lanes, n: usize, d: &mut [f32]) {
        use std::arch::x86_64::*;
        assert!(n <= LANES && n <= d.len(), "first: {n} values into {}", d.len());
        let index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        for h in 0..2 {
            let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32 - 8 * h as i32), index);
            _mm256_maskstore_ps(d.as_mut_ptr().add(8 * h), mask, _mm256_loadu_ps(v.0.as_ptr().add(8 * h)));
        }
    }
    #[inline(always)]
    unsafe fn zip(even: Lanes, odd: Lanes, row: &mut [f32], accumulate: bool) {
        use std::arch::x86_64::*;
        assert!(row.len() <= 2 * LANES, "zip: a row of {} for two vectors", row.len());
        for h in 0..2 {
            let (e, o) = (_mm256_loadu_ps(even.0.as_ptr().add(8 * h)), _mm256_loadu_ps(odd.0.as_ptr().add(8 * h)));
            // [e0 o0 e1 o1 | e4 o4 e5 o5] and [e2 o2 e3 o3 | e6 o6 e7 o7].
            let (low, high) = (_mm256_unpacklo_ps(e, o), _mm256_unpackhi_ps(e, o));
            let rows = [_mm256_permute2f128_ps::<0x20>(low, high), _mm256_permute2f128_ps::<0x31>(low, high)];
            for (q, v) in rows.into_iter().enumerate() {
                let at = 16 * h + 8 * q;
                let count = row.len().saturating_sub(at).min(8);
                if count == 0 {
                    return;
                }
                let p = row.as_mut_ptr().add(at);
                if count == 8 {
                    let v = if accumulate { _mm256_add_ps(v, _mm256_loadu_ps(p)) } else { v };
                    _mm256_storeu_ps(p, v);
                } else {
                    let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(count as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
                    let v = if accumulate { _mm256_add_ps(v, _mm256_maskload_ps(p, mask)) } else { v };
                    _mm256_maskstore_ps(p, mask, v);
                }
            }
        }
    }
}
