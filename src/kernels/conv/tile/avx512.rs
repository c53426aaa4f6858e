//! AVX-512 F: the tile's vector operations on 16-lane zmm registers and its transposed store
//! (16 x 16 register transposes, one masked store per column of C).

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
    /// Spills the block, then transposes each 16-row block in registers and writes each
    /// column's values with one masked store (`store_columns`). The gathers this replaced
    /// (one per column, from the spill) are slow on Zen 4: they took 45% of a 25-tap forward
    /// tile there (shape a, one thread: 1.57 -> 1.13 ms; its weight gradient 1.14 -> 1.08).
    #[inline(always)]
    unsafe fn store_transposed<const R: usize, const NV: usize>(acc: &[[__m512; NV]; R], c: *mut f32, c_cs: usize, n: usize, accumulate: bool) {
        // Spilled, then transposed by a call of its own: with the transposes inlined into the
        // tile, the compiler kept one accumulator on the stack through the whole loop (shape
        // e's forward pass at half its speed).
        let mut buf = [[_mm512_setzero_ps(); NV]; R];
        for (r, vs) in acc.iter().enumerate() {
            for (v, &x) in vs.iter().enumerate() {
                _mm512_storeu_ps(buf[r].as_mut_ptr().add(v) as *mut f32, x);
            }
        }
        store_columns::<R, NV>(&buf, c, c_cs, n, accumulate)
    }
}

/// `store_transposed` from the spilled block: each 16-row block transposed in registers
/// (`transpose16`, per vector of 16 columns), each column written by one masked store.
///
/// # Safety
/// AVX-512 F; `c` holds every column `j < n` of `R` values `c_cs` apart.
#[target_feature(enable = "avx512f")]
#[inline(never)]
unsafe fn store_columns<const R: usize, const NV: usize>(buf: &[[__m512; NV]; R], c: *mut f32, c_cs: usize, n: usize, accumulate: bool) {
    for r0 in (0..R).step_by(16) {
        let rows = (R - r0).min(16);
        let mask: __mmask16 = ((1u32 << rows) - 1) as __mmask16;
        for v in 0..NV {
            let mut block = [_mm512_setzero_ps(); 16];
            for (i, row) in block.iter_mut().enumerate().take(rows) {
                *row = _mm512_loadu_ps(buf[r0 + i].as_ptr().add(v) as *const f32);
            }
            for (i, column) in transpose16(block).into_iter().enumerate() {
                let j = 16 * v + i;
                if j >= n {
                    break;
                }
                let d = c.add(j * c_cs + r0);
                let x = if accumulate { _mm512_add_ps(column, _mm512_maskz_loadu_ps(mask, d)) } else { column };
                _mm512_mask_storeu_ps(d, mask, x);
            }
        }
    }
}

/// The transpose of a 16 x 16 block held as 16 row vectors: vector i of the result is column i.
/// Four rounds of 16 shuffles: pairs of rows interleaved, then groups of four within each
/// 128-bit lane, then the lanes themselves twice.
#[inline(always)]
unsafe fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    let mut t = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // s[4i + e], lane l: rows 4i..4i+4 of column 4l + e.
    let mut s = [_mm512_setzero_ps(); 16];
    for i in 0..4 {
        s[4 * i] = _mm512_shuffle_ps::<0x44>(t[4 * i], t[4 * i + 2]);
        s[4 * i + 1] = _mm512_shuffle_ps::<0xEE>(t[4 * i], t[4 * i + 2]);
        s[4 * i + 2] = _mm512_shuffle_ps::<0x44>(t[4 * i + 1], t[4 * i + 3]);
        s[4 * i + 3] = _mm512_shuffle_ps::<0xEE>(t[4 * i + 1], t[4 * i + 3]);
    }
    let mut out = [_mm512_setzero_ps(); 16];
    for e in 0..4 {
        // Lanes 0 and 2 of rows 0..8 and of rows 8..16, then 1 and 3.
        let (lo_even, lo_odd) = (_mm512_shuffle_f32x4::<0x88>(s[e], s[4 + e]), _mm512_shuffle_f32x4::<0xDD>(s[e], s[4 + e]));
        let (hi_even, hi_odd) = (_mm512_shuffle_f32x4::<0x88>(s[8 + e], s[12 + e]), _mm512_shuffle_f32x4::<0xDD>(s[8 + e], s[12 + e]));
        out[e] = _mm512_shuffle_f32x4::<0x88>(lo_even, hi_even);
        out[8 + e] = _mm512_shuffle_f32x4::<0xDD>(lo_even, hi_even);
        out[4 + e] = _mm512_shuffle_f32x4::<0x88>(lo_odd, hi_odd);
        out[12 + e] = _mm512_shuffle_f32x4::<0xDD>(lo_odd, hi_odd);
    }
    out
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
