//! AVX2 + FMA: the tile's vector operations on 8-lane ymm registers, its six-row transposed
//! store, and the panel packing (8 x 8 register transposes) that both tiles' callers use.

#![cfg(target_arch = "x86_64")]

use super::simd::{self, tile_for_rows, Simd};
use super::Operands;
use std::arch::x86_64::*;

#[derive(Clone, Copy)]
pub(super) struct Avx2;

// SAFETY: only called from `run` and `pack_panels` below, whose callers checked the CPU.
unsafe impl Simd for Avx2 {
    type V = __m256;
    const LANES: usize = 8;
    #[inline(always)]
    unsafe fn zero() -> __m256 {
        _mm256_setzero_ps()
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        _mm256_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        _mm256_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn splat(p: *const f32) -> __m256 {
        _mm256_broadcast_ss(&*p)
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        _mm256_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m256, b: __m256, c: __m256) -> __m256 {
        _mm256_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn store_transposed<const R: usize, const NV: usize>(acc: &[[__m256; NV]; R], c: *mut f32, c_cs: usize, n: usize, accumulate: bool) {
        if R == 6 && NV == 2 {
            store_six(acc, c, c_cs, n, accumulate)
        } else {
            simd::store_transposed_plain::<Avx2, R, NV>(acc, c, c_cs, n, accumulate)
        }
    }
}

/// One tile of `rows <= 6` rows.
///
/// # Safety
/// AVX2 and FMA; the operands as `super::run` checked them.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn run<const GATHER: bool>(o: Operands, rows: usize) {
    const _: () = assert!(super::Kernel::AVX2.rows == 6);
    tile_for_rows!(rows, o, Avx2, 2, GATHER, 0; 1 2 3 4 5; 6)
}

/// One tile of `rows <= 6` output pixels along an output row, `STEP` apart (as `run`: AVX2's
/// 16 registers hold no more rows either way).
///
/// # Safety
/// As `run`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn run_along_a_row<const STEP: usize>(o: Operands, rows: usize) {
    const _: () = assert!(super::Kernel::AVX2.row_run == 6);
    tile_for_rows!(rows, o, Avx2, 2, false, STEP; 1 2 3 4 5; 6)
}

/// The transpose of an 8 x 8 block held as 8 row vectors.
#[inline(always)]
unsafe fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    let (t0, t1) = (_mm256_unpacklo_ps(r[0], r[1]), _mm256_unpackhi_ps(r[0], r[1]));
    let (t2, t3) = (_mm256_unpacklo_ps(r[2], r[3]), _mm256_unpackhi_ps(r[2], r[3]));
    let (t4, t5) = (_mm256_unpacklo_ps(r[4], r[5]), _mm256_unpackhi_ps(r[4], r[5]));
    let (t6, t7) = (_mm256_unpacklo_ps(r[6], r[7]), _mm256_unpackhi_ps(r[6], r[7]));
    let (s0, s1) = (_mm256_shuffle_ps::<0x44>(t0, t2), _mm256_shuffle_ps::<0xEE>(t0, t2));
    let (s2, s3) = (_mm256_shuffle_ps::<0x44>(t1, t3), _mm256_shuffle_ps::<0xEE>(t1, t3));
    let (s4, s5) = (_mm256_shuffle_ps::<0x44>(t4, t6), _mm256_shuffle_ps::<0xEE>(t4, t6));
    let (s6, s7) = (_mm256_shuffle_ps::<0x44>(t5, t7), _mm256_shuffle_ps::<0xEE>(t5, t7));
    [
        _mm256_permute2f128_ps::<0x20>(s0, s4),
        _mm256_permute2f128_ps::<0x20>(s1, s5),
        _mm256_permute2f128_ps::<0x20>(s2, s6),
        _mm256_permute2f128_ps::<0x20>(s3, s7),
        _mm256_permute2f128_ps::<0x31>(s0, s4),
        _mm256_permute2f128_ps::<0x31>(s1, s5),
        _mm256_permute2f128_ps::<0x31>(s2, s6),
        _mm256_permute2f128_ps::<0x31>(s3, s7),
    ]
}

/// `panels[(r / width) * cols * width + c * width + r % width] = src[r * src_stride + c]`, 8 x
/// 8 blocks transposed in registers (the last columns of a block of rows too, loaded and
/// stored under a mask: rows of 14 pixels left 6 of 14 to scalar copies), the last rows value
/// by value.
///
/// # Safety
/// AVX2; `width` a multiple of 8; `src` holds `(rows - 1) * src_stride + cols` values, `panels`
/// `ceil(rows / width) * cols * width`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn pack_panels(panels: *mut f32, src: *const f32, src_stride: usize, rows: usize, cols: usize, width: usize) {
    let (rows8, cols8) = (rows / 8 * 8, cols / 8 * 8);
    let at = |r: usize, c: usize| (r / width) * cols * width + c * width + r % width;
    let tail = cols - cols8;
    let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(tail as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for r0 in (0..rows8).step_by(8) {
        for c0 in (0..cols8).step_by(8) {
            let mut block = [_mm256_setzero_ps(); 8];
            for (i, v) in block.iter_mut().enumerate() {
                *v = _mm256_loadu_ps(src.add((r0 + i) * src_stride + c0));
            }
            for (j, v) in transpose8(block).iter().enumerate() {
                _mm256_storeu_ps(panels.add(at(r0, c0 + j)), *v);
            }
        }
        if tail > 0 {
            let mut block = [_mm256_setzero_ps(); 8];
            for (i, v) in block.iter_mut().enumerate() {
                *v = _mm256_maskload_ps(src.add((r0 + i) * src_stride + cols8), mask);
            }
            for (j, v) in transpose8(block).iter().enumerate().take(tail) {
                _mm256_storeu_ps(panels.add(at(r0, cols8 + j)), *v);
            }
        }
    }
    for r in rows8..rows {
        for c in 0..cols {
            *panels.add(at(r, c)) = *src.add(r * src_stride + c);
        }
    }
}

/// Stores six rows of C transposed with vector moves: each 8-column half of the 6 x 16 block
/// is transposed in registers (two zero rows make it 8 x 8), then every column's six values go
/// out as one 4-value and one 2-value store (a tile is mostly short: conv1's 784 tiles per
/// sample were bound by scalar stores).
///
/// # Safety
/// As `run`: C holds `5 + (n - 1) * c_cs + 1` values.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
unsafe fn store_six<const R: usize, const NV: usize>(acc: &[[__m256; NV]; R], c: *mut f32, c_cs: usize, n: usize, accumulate: bool) {
    let zero = _mm256_setzero_ps();
    for half in 0..NV {
        let row = |i: usize| if i < R { acc[i][half] } else { zero };
        // cols[j] holds rows 0..8 of column half * 8 + j.
        let cols = transpose8([row(0), row(1), row(2), row(3), row(4), row(5), zero, zero]);
        for (j, col) in cols.iter().enumerate() {
            let column = half * 8 + j;
            if column >= n {
                return;
            }
            let d = c.add(column * c_cs);
            let mut lo = _mm256_castps256_ps128(*col);
            let mut hi = _mm256_extractf128_ps::<1>(*col);
            if accumulate {
                lo = _mm_add_ps(lo, _mm_loadu_ps(d));
                hi = _mm_add_ps(hi, _mm_castpd_ps(_mm_load_sd(d.add(4) as *const f64)));
            }
            _mm_storeu_ps(d, lo);
            _mm_storel_pd(d.add(4) as *mut f64, _mm_castps_pd(hi));
        }
    }
}
