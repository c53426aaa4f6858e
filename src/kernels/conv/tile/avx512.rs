//! AVX-512 F: the tile's vector operations on 16-lane zmm registers and its transposed store
//! (one masked gather and one masked store per column of C).

#![cfg(target_arch = "x86_64")]

use super::simd::{self, Simd};
use super::Operands;
use std::arch::x86_64::*;

#[derive(Clone, Copy)]
pub(super) struct Avx512;

// SAFETY: only called from `run` below, whose caller checked the CPU.
unsafe impl Simd for Avx512 {
    type V = __m512;
    const LANES: usize = 16;
    #[inline(always)]
    unsafe fn zero() -> __m512 {
        _mm512_setzero_ps()
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        _mm512_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        _mm512_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn splat(p: *const f32) -> __m512 {
        _mm512_set1_ps(*p)
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        _mm512_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fmadd_ps(a, b, c)
    }
    /// Spills the block row by row (vector stores), then gathers each column's R values
    /// (stride 32 in the spill) and writes them with one masked store: 2 x 16 gathers instead
    /// of 16 x 32 scalar moves.
    #[inline(always)]
    unsafe fn store_transposed<const R: usize>(acc: &[[__m512; 2]; R], c: *mut f32, c_cs: usize, n: usize, accumulate: bool) {
        const W: usize = 32;
        let mut buf = [[0.0f32; W]; R];
        for (r, pair) in acc.iter().enumerate() {
            _mm512_storeu_ps(buf[r].as_mut_ptr(), pair[0]);
            _mm512_storeu_ps(buf[r].as_mut_ptr().add(16), pair[1]);
        }
        let mask: __mmask16 = ((1u32 << R) - 1) as __mmask16;
        let rows = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32(W as i32));
        let base = buf.as_ptr() as *const f32;
        for j in 0..n {
            let column = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, rows, base.add(j) as _);
            let d = c.add(j * c_cs);
            let v = if accumulate { _mm512_add_ps(column, _mm512_maskz_loadu_ps(mask, d)) } else { column };
            _mm512_mask_storeu_ps(d, mask, v);
        }
    }
}

/// One tile of `rows <= 10` rows (`Kernel::AVX512.rows`: 20 accumulators, 2 vectors of B and
/// the 10 broadcasts of A fit the 32 registers; 12 or 14 rows made the compiler spill
/// accumulators inside the loop, at half the speed).
///
/// # Safety
/// AVX-512 F, AVX2 and FMA; the operands as `super::run` checked them.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn run<const GATHER: bool>(o: Operands, rows: usize) {
    const _: () = assert!(super::Kernel::AVX512.rows == 10);
    match rows {
        1 => simd::tile::<Avx512, 1, GATHER, 0>(o),
        2 => simd::tile::<Avx512, 2, GATHER, 0>(o),
        3 => simd::tile::<Avx512, 3, GATHER, 0>(o),
        4 => simd::tile::<Avx512, 4, GATHER, 0>(o),
        5 => simd::tile::<Avx512, 5, GATHER, 0>(o),
        6 => simd::tile::<Avx512, 6, GATHER, 0>(o),
        7 => simd::tile::<Avx512, 7, GATHER, 0>(o),
        8 => simd::tile::<Avx512, 8, GATHER, 0>(o),
        9 => simd::tile::<Avx512, 9, GATHER, 0>(o),
        _ => simd::tile::<Avx512, 10, GATHER, 0>(o),
    }
}

/// One tile of `rows <= 14` output pixels along an output row, `STEP` apart in the padded
/// sample (`super::run_along_a_row`): 28 accumulators, 2 vectors of B and a broadcast.
///
/// # Safety
/// As `run`.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn run_along_a_row<const STEP: usize>(o: Operands, rows: usize) {
    const _: () = assert!(super::Kernel::AVX512.row_run == 14);
    match rows {
        1 => simd::tile::<Avx512, 1, false, STEP>(o),
        2 => simd::tile::<Avx512, 2, false, STEP>(o),
        3 => simd::tile::<Avx512, 3, false, STEP>(o),
        4 => simd::tile::<Avx512, 4, false, STEP>(o),
        5 => simd::tile::<Avx512, 5, false, STEP>(o),
        6 => simd::tile::<Avx512, 6, false, STEP>(o),
        7 => simd::tile::<Avx512, 7, false, STEP>(o),
        8 => simd::tile::<Avx512, 8, false, STEP>(o),
        9 => simd::tile::<Avx512, 9, false, STEP>(o),
        10 => simd::tile::<Avx512, 10, false, STEP>(o),
        11 => simd::tile::<Avx512, 11, false, STEP>(o),
        12 => simd::tile::<Avx512, 12, false, STEP>(o),
        13 => simd::tile::<Avx512, 13, false, STEP>(o),
        _ => simd::tile::<Avx512, 14, false, STEP>(o),
    }
}
