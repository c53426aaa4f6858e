//! The tile's loop, written once over a vector type: `Simd` is what an instruction set must
//! provide (8 lanes for AVX2, 16 for AVX-512), `tile` the arithmetic both run.
//!
//! Every function here is `#[inline(always)]` and has no target features of its own: it is
//! compiled inside the ISA file's `#[target_feature]` entry point, where the intrinsics it
//! calls inline into plain vector instructions.

// Only the x86-64 ISA files use the loop.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

use super::{CLayout, Operands};

/// The vector operations of one instruction set.
///
/// # Safety
/// Implementations may only be called where the CPU has the instruction set.
pub(super) unsafe trait Simd {
    type V: Copy;
    /// f32 lanes per vector; a tile is two vectors wide.
    const LANES: usize;
    unsafe fn zero() -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    /// `*p` in every lane.
    unsafe fn splat(p: *const f32) -> Self::V;
    /// `a + b`.
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// `a * b + c`, fused.
    unsafe fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// Stores the `R x 2 LANES` block held as row vectors transposed: column j's R values go to
    /// `c[j * c_cs ..][..R]`, for `j < n`; added to what is there when `accumulate`.
    unsafe fn store_transposed<const R: usize>(acc: &[[Self::V; 2]; R], c: *mut f32, c_cs: usize, n: usize, accumulate: bool);
}

/// `C(r, j) (+)= sum_k A(r, k) B(k, j)` for `R` rows: the module comment of `tile/mod.rs`.
/// B's row k is `b[2 LANES k..]` (packed panels) or, with `GATHER`, `b[b_offsets[k]..]`.
///
/// # Safety
/// The CPU has `S`'s instructions; the operands hold every value the formula indexes for `R`
/// rows, `o.k` steps and `o.n` columns (`super::run` checks).
#[inline(always)]
pub(super) unsafe fn tile<S: Simd, const R: usize, const GATHER: bool, const STEP: usize>(o: Operands) {
    let Operands { k, data, row_offsets, k_offsets, b, b_offsets, c, c_layout, n, accumulate } = o;
    let mut acc = [[S::zero(); 2]; R];
    // With `STEP`, row r's values are `STEP * r` after row 0's: one pointer and constant
    // displacements instead of a register per row (`run_along_a_row`).
    let mut rows = [data; R];
    for (r, p) in rows.iter_mut().enumerate() {
        *p = if STEP > 0 { data.add(*row_offsets) } else { data.add(*row_offsets.add(r)) };
    }
    let mut bp = b;
    for kk in 0..k {
        let base = *k_offsets.add(kk);
        let row = if GATHER { b.add(*b_offsets.add(kk)) } else { bp };
        let b0 = S::load(row);
        let b1 = S::load(row.add(S::LANES));
        for r in 0..R {
            let a = if STEP > 0 { S::splat(rows[0].add(base + r * STEP)) } else { S::splat(rows[r].add(base)) };
            acc[r][0] = S::fmadd(a, b0, acc[r][0]);
            acc[r][1] = S::fmadd(a, b1, acc[r][1]);
        }
        bp = bp.add(2 * S::LANES);
    }
    match c_layout {
        CLayout::Transposed { column_stride } => S::store_transposed::<R>(&acc, c, column_stride, n, accumulate),
        CLayout::Rows { row_stride } => store_rows::<S, R>(&acc, c, row_stride, accumulate),
    }
}

/// Each row's two vectors to `c[r * row_stride..][..2 * LANES]`.
#[inline(always)]
unsafe fn store_rows<S: Simd, const R: usize>(acc: &[[S::V; 2]; R], c: *mut f32, row_stride: usize, accumulate: bool) {
    for (r, pair) in acc.iter().enumerate() {
        let row = c.add(r * row_stride);
        for (half, &v) in pair.iter().enumerate() {
            let d = row.add(half * S::LANES);
            S::store(d, if accumulate { S::add(v, S::load(d)) } else { v });
        }
    }
}

/// The plain transposed store through a stack copy, for any row count and width: used where
/// an ISA has no faster one for `R`.
#[inline(always)]
pub(super) unsafe fn store_transposed_plain<S: Simd, const R: usize>(acc: &[[S::V; 2]; R], c: *mut f32, c_cs: usize, n: usize, accumulate: bool) {
    let mut buf = [[0.0f32; 32]; R];
    debug_assert!(2 * S::LANES <= 32);
    for (r, pair) in acc.iter().enumerate() {
        S::store(buf[r].as_mut_ptr(), pair[0]);
        S::store(buf[r].as_mut_ptr().add(S::LANES), pair[1]);
    }
    for j in 0..n {
        let col = c.add(j * c_cs);
        for (r, line) in buf.iter().enumerate() {
            let d = col.add(r);
            *d = if accumulate { *d + line[j] } else { line[j] };
        }
    }
}
