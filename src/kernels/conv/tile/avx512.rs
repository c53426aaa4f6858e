//! AVX-512 F: the tile's vector operations on 16-lane zmm registers and its transposed store
//! (one masked gather and one masked store per column of C).

#![cfg(target_arch = "x86_64")]

use super::simd::{tile_for_rows, Simd};
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
    /// (stride 32 in the spill) and writes them with one masked store per 16 rows: 2 x 16
    /// gathers instead of 16 x 32 scalar moves.
    #[inline(always)]
    unsafe fn store_transposed<const R: usize, const NV: usize>(acc: &[[__m512; NV]; R], c: *mut f32, c_cs: usize, n: usize, accumulate: bool) {
        const W: usize = 32;
        let mut buf = [[0.0f32; W]; R];
        for (r, vs) in acc.iter().enumerate() {
            for (v, &x) in vs.iter().enumerate() {
                _mm512_storeu_ps(buf[r].as_mut_ptr().add(16 * v), x);
            }
        }
        let rows = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32(W as i32));
        // Sixteen rows per gather (the one-vector tile along a row has up to 24).
        for r0 in (0..R).step_by(16) {
            let mask: __mmask16 = ((1u32 << (R - r0).min(16)) - 1) as __mmask16;
            let base = buf[r0..].as_ptr() as *const f32;
            for j in 0..n {
                let column = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, rows, base.add(j) as _);
                let d = c.add(j * c_cs + r0);
                let v = if accumulate { _mm512_add_ps(column, _mm512_maskz_loadu_ps(mask, d)) } else { column };
                _mm512_mask_storeu_ps(d, mask, v);
            }
        }
    }
}

/// One tile of `rows <= 10` rows of `NV` vectors (`Kernel::AVX512.rows`: 20 accumulators, 2
/// vectors of B and the 10 broadcasts of A fit the 32 registers; 12 or 14 rows made the
/// compiler spill accumulators inside the loop, at half the speed: the rows' addresses take a
/// general register each).
///
/// # Safety
/// AVX-512 F, AVX2 and FMA; the operands as `super::run` checked them.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn run<const GATHER: bool, const NV: usize>(o: Operands, rows: usize) {
    const _: () = assert!(super::Kernel::AVX512.rows == 10 && super::Kernel::AVX512_16.rows == 10);
    tile_for_rows!(rows, o, Avx512, NV, GATHER, 0; 1 2 3 4 5 6 7 8 9; 10)
}

/// One tile of `rows <= 14` output pixels along an output row, `STEP` apart in the padded
/// sample (`super::run_along_a_row`): 28 accumulators, 2 vectors of B and a broadcast.
///
/// # Safety
/// As `run`.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn run_along_a_row<const STEP: usize>(o: Operands, rows: usize) {
    const _: () = assert!(super::Kernel::AVX512.row_run == 14);
    tile_for_rows!(rows, o, Avx512, 2, false, STEP; 1 2 3 4 5 6 7 8 9 10 11 12 13; 14)
}

/// The same for tiles of one vector (16 channels, `Kernel::AVX512_16`): `rows <= 24`, 24
/// accumulators, a vector of B and a broadcast.
///
/// # Safety
/// As `run`.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn run_along_a_row_16<const STEP: usize>(o: Operands, rows: usize) {
    const _: () = assert!(super::Kernel::AVX512_16.row_run == 24);
    tile_for_rows!(rows, o, Avx512, 1, false, STEP; 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23; 24)
}
