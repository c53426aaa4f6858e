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
    /// f32 lanes per vector; a tile is `NV` vectors wide (two, or one for AVX-512's tile of 16
    /// channels).
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
    /// Stores the `R x NV LANES` block held as row vectors transposed: column j's R values go
    /// to `c[j * c_cs ..][..R]`, for `j < n`; added to what is there when `accumulate`.
    unsafe fn store_transposed<const R: usize, const NV: usize>(acc: &[[Self::V; NV]; R], c: *mut f32, c_cs: usize, n: usize, accumulate: bool);
}

/// `match rows { 1 => tile::<S, 1, ..>(o), 2 => .., _ => tile::<S, MAX, ..>(o) }`: an ISA
/// file's dispatch of a run-time row count to the const-generic tiles, for the counts listed
/// and the last (the tile's most) for any other. `$nv`, `$gather`, `$step` as `tile`'s.
macro_rules! tile_for_rows {
    ($rows:expr, $o:expr, $simd:ty, $nv:tt, $gather:tt, $step:tt; $($r:literal)+; $max:literal) => {
        match $rows {
            $($r => $crate::kernels::conv::tile::simd::tile::<$simd, $r, $nv, $gather, $step>($o),)+
            _ => $crate::kernels::conv::tile::simd::tile::<$simd, $max, $nv, $gather, $step>($o),
        }
    };
}
pub(super) use tile_for_rows;

/// `C(r, j) (+)= sum_k A(r, k) B(k, j)` for `R` rows and `NV` vectors of columns: the module
/// comment of `tile/mod.rs`. B's row k is `b[NV LANES k..]` (packed panels) or, with
/// `GATHER`, `b[b_offsets[k]..]`.
///
/// # Safety
/// The CPU has `S`'s instructions; the operands hold every value the formula indexes for `R`
/// rows, `o.k` steps and `o.n` columns (`super::run` checks).
#[inline(always)]
pub(super) unsafe fn tile<S: Simd, const R: usize, const NV: usize, const GATHER: bool, const STEP: usize>(o: Operands) {
    let Operands { k, data, row_offsets, k_offsets, b, b_offsets, c, c_layout, n, accumulate, init } = o;
    let mut acc = [[S::zero(); NV]; R];
    if !init.is_null() {
        for row in acc.iter_mut() {
            for (v, a) in row.iter_mut().enumerate() {
                *a = S::load(init.add(v * S::LANES));
            }
        }
    }
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
        let mut bv = [S::zero(); NV];
        for (v, bv) in bv.iter_mut().enumerate() {
            *bv = S::load(row.add(v * S::LANES));
        }
        for r in 0..R {
            let a = if STEP > 0 { S::splat(rows[0].add(base + r * STEP)) } else { S::splat(rows[r].add(base)) };
            for v in 0..NV {
                acc[r][v] = S::fmadd(a, bv[v], acc[r][v]);
            }
        }
        bp = bp.add(NV * S::LANES);
    }
    match c_layout {
        CLayout::Transposed { column_stride } => S::store_transposed::<R, NV>(&acc, c, column_stride, n, accumulate),
        CLayout::Rows { row_stride } => store_rows::<S, R, NV>(&acc, c, row_stride, accumulate),
    }
}

/// Each row's `NV` vectors to `c[r * row_stride..][..NV * LANES]`.
#[inline(always)]
unsafe fn store_rows<S: Simd, const R: usize, const NV: usize>(acc: &[[S::V; NV]; R], c: *mut f32, row_stride: usize, accumulate: bool) {
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
pub(super) unsafe fn store_transposed_plain<S: Simd, const R: usize, const NV: usize>(acc: &[[S::V; NV]; R], c: *mut f32, c_cs: usize, n: usize, accumulate: bool) {
    let mut buf = [[0.0f32; 32]; R];
    debug_assert!(NV * S::LANES <= 32);
    for (r, vs) in acc.iter().enumerate() {
        for (v, &x) in vs.iter().enumerate() {
            S::store(buf[r].as_mut_ptr().add(v * S::LANES), x);
        }
    }
    for j in 0..n {
        let col = c.add(j * c_cs);
        for (r, line) in buf.iter().enumerate() {
            let d = col.add(r);
            *d = if accumulate { *d + line[j] } else { line[j] };
        }
    }
}
