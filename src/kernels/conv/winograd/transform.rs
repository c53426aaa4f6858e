//! The three transforms of Winograd's F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for
//! Convolutional Neural Networks", 2016): a 2x2 block of outputs of a 3x3 filter from a 4x4
//! block of input, in 16 products instead of 36.
//!
//! `Y = A^T [ (G g G^T) . (B^T d B) ] A`, with
//!
//! ```text
//! B^T = | 1  0 -1  0 |     G = | 1    0    0  |     A^T = | 1  1  1  0 |
//!       | 0  1  1  0 |         | 1/2  1/2  1/2|           | 0  1 -1 -1 |
//!       | 0 -1  1  0 |         | 1/2 -1/2  1/2|
//!       | 0  1  0 -1 |         | 0    0    1  |
//! ```
//!
//! Index `xi = 4 a + b` names one of the 16 points. The input and output transforms run over a
//! row of tiles at a time, one tile per lane: the loops are plain Rust over contiguous slices,
//! compiled inside a `#[target_feature]` wrapper per instruction set (`input_row`,
//! `output_row`) so they vectorise at the tile's width.

use crate::kernels::isa::Isa;
use std::ops::{Add, Sub};

/// 16 tiles' values side by side: the row transforms run on these (whole vectors of tiles);
/// the transforms are generic so the tests also run them on plain `f32`, one tile at a time.
#[derive(Clone, Copy, Default)]
struct Lanes([f32; LANES]);
const LANES: usize = 16;

impl Lanes {
    // No `array::from_fn`, `try_into` or closures here: they are not inlined into the
    // `#[target_feature]` callers, and every call then copies its arrays through memory.
    #[inline(always)]
    #[allow(clippy::manual_memcpy)]
    fn load(s: &[f32]) -> Lanes {
        let s = &s[..LANES];
        let mut v = [0.0f32; LANES];
        for i in 0..LANES {
            v[i] = s[i];
        }
        Lanes(v)
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

/// `B^T d B` of one 4x4 block `d[row][column]`, as 16 values `xi = 4 a + b`.
#[inline(always)]
fn bt_d_b<T: Copy + Default + Add<Output = T> + Sub<Output = T>>(d: [[T; 4]; 4]) -> [T; 16] {
    let mut t = [[T::default(); 4]; 4];
    for c in 0..4 {
        t[0][c] = d[0][c] - d[2][c];
        t[1][c] = d[1][c] + d[2][c];
        t[2][c] = d[2][c] - d[1][c];
        t[3][c] = d[1][c] - d[3][c];
    }
    let mut v = [T::default(); 16];
    for a in 0..4 {
        v[4 * a] = t[a][0] - t[a][2];
        v[4 * a + 1] = t[a][1] + t[a][2];
        v[4 * a + 2] = t[a][2] - t[a][1];
        v[4 * a + 3] = t[a][1] - t[a][3];
    }
    v
}

/// `A^T m A` of 16 values `m[4 a + b]`: the 2x2 outputs `[row][column]`.
#[inline(always)]
fn at_m_a<T: Copy + Default + Add<Output = T> + Sub<Output = T>>(m: [T; 16]) -> [[T; 2]; 2] {
    let mut s = [[T::default(); 2]; 4];
    for a in 0..4 {
        s[a][0] = m[4 * a] + m[4 * a + 1] + m[4 * a + 2];
        s[a][1] = m[4 * a + 1] - m[4 * a + 2] - m[4 * a + 3];
    }
    [
        [s[0][0] + s[1][0] + s[2][0], s[0][1] + s[1][1] + s[2][1]],
        [s[1][0] - s[2][0] - s[3][0], s[1][1] - s[2][1] - s[3][1]],
    ]
}

/// G's rows.
const G: [[f32; 3]; 4] = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];

/// `G g G^T` as 16 linear combinations of the 9 taps: point `xi = 4 a + b` is
/// `sum_t coefficients[xi][t] g[t]`, `t = 3 i + j`, with coefficient `G[a][i] G[b][j]`.
pub fn weight_coefficients() -> [[f32; 9]; 16] {
    let mut c = [[0.0f32; 9]; 16];
    for a in 0..4 {
        for b in 0..4 {
            for i in 0..3 {
                for j in 0..3 {
                    c[4 * a + b][3 * i + j] = G[a][i] * G[b][j];
                }
            }
        }
    }
    c
}

/// `G g G^T` of a 3x3 filter `g[i][j]`, as 16 values `xi = 4 a + b`.
#[cfg(test)]
pub(super) fn g_g_gt(g: [[f32; 3]; 3]) -> [f32; 16] {
    let rows = |v: [f32; 3]| [v[0], 0.5 * (v[0] + v[1] + v[2]), 0.5 * (v[0] - v[1] + v[2]), v[2]];
    // G g: 4 rows of 3, column by column.
    let mut gg = [[0.0f32; 3]; 4];
    for j in 0..3 {
        let col = rows([g[0][j], g[1][j], g[2][j]]);
        for a in 0..4 {
            gg[a][j] = col[a];
        }
    }
    let mut u = [0.0f32; 16];
    for a in 0..4 {
        let r = rows(gg[a]);
        u[4 * a..4 * a + 4].copy_from_slice(&r);
    }
    u
}

/// One row of tiles of one channel, into lanes `lane..lane + len` of `v: [16][stride]`, in
/// whole vectors of 16 tiles: lanes up to `lane + round_up(len, 16)` are written, those past
/// `len` with values of no use (callers leave room, and write the next tiles after).
/// `even[i]` and `odd[i]` are padded row `i` of the tiles' four rows split by column parity
/// (`even[i][t] = row[2 t]`, `odd[i][t] = row[2 t + 1]`), from the row's first tile on, each
/// at least `round_up(len, 16) + 1` long: tile `l` reads columns `2 l .. 2 l + 4`.
#[inline(always)]
fn input_row_body(even: [&[f32]; 4], odd: [&[f32]; 4], v: &mut [f32], stride: usize, lane: usize, len: usize) {
    let whole = len.div_ceil(LANES) * LANES;
    assert!(v.len() >= 15 * stride + lane + whole, "input_row: {} values for lanes {lane}+{whole} of 16 x {stride}", v.len());
    assert!(even.iter().chain(&odd).all(|r| r.len() > whole), "input_row: rows shorter than {whole} + 1 tiles");
    for l in (0..whole).step_by(LANES) {
        let mut d = [[Lanes::default(); 4]; 4];
        for i in 0..4 {
            d[i] = [Lanes::load(&even[i][l..]), Lanes::load(&odd[i][l..]), Lanes::load(&even[i][l + 1..]), Lanes::load(&odd[i][l + 1..])];
        }
        for (xi, x) in bt_d_b(d).into_iter().enumerate() {
            let dst = &mut v[xi * stride + lane + l..][..LANES];
            for (d, v) in dst.iter_mut().zip(&x.0) {
                *d = *v;
            }
        }
    }
}

/// One output channel's row of tiles from `m`'s lanes `lane..lane + len` (`m[xi * stride + lane + l]`):
/// tile `l` gives `top[2 l..2 l + 2]` and `bottom[2 l..2 l + 2]` (`bottom` absent for the last
/// row of an odd height; the last tile's right column dropped when `top` is odd in length).
/// Added to what is there when `accumulate`. Reads whole vectors: `m` holds lanes up to
/// `lane + round_up(len, 16)` of every point.
#[inline(always)]
fn output_row_body(m: &[f32], stride: usize, lane: usize, len: usize, top: &mut [f32], bottom: Option<&mut [f32]>, accumulate: bool) {
    let whole = len.div_ceil(LANES) * LANES;
    assert!(m.len() >= 15 * stride + lane + whole, "output_row: {} values for lanes {lane}+{whole}", m.len());
    assert!(top.len() >= 2 * len - 1 && top.len() <= 2 * len, "output_row: a row of {} for {len} tiles", top.len());
    let width = top.len();
    let mut bottom = bottom;
    for l in (0..len).step_by(LANES) {
        let n = (len - l).min(LANES);
        let mut mm = [Lanes::default(); 16];
        for (xi, x) in mm.iter_mut().enumerate() {
            *x = Lanes::load(&m[xi * stride + lane + l..]);
        }
        let y = at_m_a(mm);
        // Columns 2 l .. of this stretch: 2 n, or one fewer at the end of an odd row.
        let cols = (width - 2 * l).min(2 * n);
        for (a, pair) in y.iter().enumerate() {
            let row = match (a, bottom.as_deref_mut()) {
                (0, _) => &mut *top,
                (_, Some(b)) => b,
                _ => continue,
            };
            // Interleave the two columns: row[2 (l + i) + b] = pair[b][i].
            let mut both = [0.0f32; 2 * LANES];
            for i in 0..LANES {
                both[2 * i] = pair[0].0[i];
                both[2 * i + 1] = pair[1].0[i];
            }
            let dst = &mut row[2 * l..2 * l + cols];
            if accumulate {
                for (d, x) in dst.iter_mut().zip(&both) {
                    *d += x;
                }
            } else {
                for (d, x) in dst.iter_mut().zip(&both) {
                    *d = *x;
                }
            }
        }
    }
}

/// `input_row_body` compiled for `isa`.
pub fn input_row(isa: Isa, even: [&[f32]; 4], odd: [&[f32]; 4], v: &mut [f32], stride: usize, lane: usize, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx2,fma")]
        fn wide(even: [&[f32]; 4], odd: [&[f32]; 4], v: &mut [f32], stride: usize, lane: usize, len: usize) {
            input_row_body(even, odd, v, stride, lane, len)
        }
        #[target_feature(enable = "avx2,fma")]
        fn narrow(even: [&[f32]; 4], odd: [&[f32]; 4], v: &mut [f32], stride: usize, lane: usize, len: usize) {
            input_row_body(even, odd, v, stride, lane, len)
        }
        // SAFETY: the CPU has the instruction set (checked by `supported`).
        match isa {
            Isa::Avx512 if isa.supported() => return unsafe { wide(even, odd, v, stride, lane, len) },
            Isa::Avx2 if isa.supported() => return unsafe { narrow(even, odd, v, stride, lane, len) },
            _ => {}
        }
    }
    input_row_body(even, odd, v, stride, lane, len)
}

/// `output_row_body` compiled for `isa`.
#[allow(clippy::too_many_arguments)]
pub fn output_row(isa: Isa, m: &[f32], stride: usize, lane: usize, len: usize, top: &mut [f32], bottom: Option<&mut [f32]>, accumulate: bool) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx2,fma")]
        fn wide(m: &[f32], stride: usize, lane: usize, len: usize, top: &mut [f32], bottom: Option<&mut [f32]>, accumulate: bool) {
            output_row_body(m, stride, lane, len, top, bottom, accumulate)
        }
        #[target_feature(enable = "avx2,fma")]
        fn narrow(m: &[f32], stride: usize, lane: usize, len: usize, top: &mut [f32], bottom: Option<&mut [f32]>, accumulate: bool) {
            output_row_body(m, stride, lane, len, top, bottom, accumulate)
        }
        // SAFETY: the CPU has the instruction set (checked by `supported`).
        match isa {
            Isa::Avx512 if isa.supported() => return unsafe { wide(m, stride, lane, len, top, bottom, accumulate) },
            Isa::Avx2 if isa.supported() => return unsafe { narrow(m, stride, lane, len, top, bottom, accumulate) },
            _ => {}
        }
    }
    output_row_body(m, stride, lane, len, top, bottom, accumulate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// The three transforms compose to the 3x3 correlation of the 4x4 block, for every point.
    #[test]
    fn transforms_compose_to_the_correlation() {
        let mut rng = Rng::new(21);
        for _ in 0..50 {
            let d: Vec<f32> = rng.uniform_vec(16, -2.0, 2.0);
            let g: Vec<f32> = rng.uniform_vec(9, -2.0, 2.0);
            let dd: [[f32; 4]; 4] = std::array::from_fn(|i| std::array::from_fn(|j| d[4 * i + j]));
            let gg: [[f32; 3]; 3] = std::array::from_fn(|i| std::array::from_fn(|j| g[3 * i + j]));
            let (v, u) = (bt_d_b(dd), g_g_gt(gg));
            let y = at_m_a(std::array::from_fn(|xi| v[xi] * u[xi]));
            for (oy, row) in y.iter().enumerate() {
                for (ox, got) in row.iter().enumerate() {
                    let want: f64 = (0..3).flat_map(|i| (0..3).map(move |j| (i, j))).map(|(i, j)| dd[oy + i][ox + j] as f64 * gg[i][j] as f64).sum();
                    assert!((*got as f64 - want).abs() < 1e-5 * (1.0 + want.abs()), "({oy}, {ox}): {got} vs {want}");
                }
            }
        }
    }

    /// The row transforms are the single-tile ones, lane by lane, on every ISA this CPU has
    /// (and write nothing outside their lanes and columns).
    #[test]
    fn row_transforms_are_the_tile_transforms_lane_by_lane() {
        let mut rng = Rng::new(22);
        for isa in Isa::ALL.into_iter().filter(|i| i.supported()) {
            for &(len, lane, stride, width) in &[(1usize, 0, 1, 1), (1, 0, 1, 2), (5, 3, 9, 10), (33, 0, 40, 65), (17, 15, 32, 34), (16, 0, 16, 32), (40, 4, 48, 79), (37, 2, 40, 74)] {
                let whole = len.div_ceil(LANES) * LANES;
                let even: Vec<Vec<f32>> = (0..4).map(|_| rng.uniform_vec(whole + 1, -1.0, 1.0)).collect();
                let odd: Vec<Vec<f32>> = (0..4).map(|_| rng.uniform_vec(whole + 1, -1.0, 1.0)).collect();
                let mut v = vec![7.0; 16 * stride + whole];
                input_row(isa, std::array::from_fn(|i| &even[i][..]), std::array::from_fn(|i| &odd[i][..]), &mut v, stride, lane, len);
                // Lanes past len up to a whole vector are the callers' slack; nothing else moves.
                let slack = |idx: usize| (lane + len..lane + whole).any(|s| (0..16).any(|xi| xi * stride + s == idx));
                for (idx, x) in v.iter().enumerate() {
                    let (xi, s) = (idx / stride, idx % stride);
                    if slack(idx) {
                        continue;
                    }
                    if xi >= 16 || s < lane || s >= lane + len {
                        assert_eq!(*x, 7.0, "{isa:?}: v[{idx}] outside the lanes written");
                        continue;
                    }
                    let l = s - lane;
                    let d = std::array::from_fn(|i| [even[i][l], odd[i][l], even[i][l + 1], odd[i][l + 1]]);
                    assert_eq!(*x, bt_d_b(d)[xi], "{isa:?}: input lane {l} point {xi}");
                }
                let m = rng.uniform_vec(16 * stride + whole, -1.0, 1.0);
                for accumulate in [false, true] {
                    let (top0, bottom0) = (rng.uniform_vec(width + 1, -1.0, 1.0), rng.uniform_vec(width + 1, -1.0, 1.0));
                    let (mut top, mut bottom) = (top0.clone(), bottom0.clone());
                    output_row(isa, &m, stride, lane, len, &mut top[..width], Some(&mut bottom[..width]), accumulate);
                    for c in 0..=width {
                        let l = c / 2;
                        if c == width {
                            assert_eq!((top[c], bottom[c]), (top0[c], bottom0[c]), "{isa:?}: column {c} past the row written");
                            continue;
                        }
                        let y = at_m_a(std::array::from_fn(|xi| m[xi * stride + lane + l]));
                        let base = |was: f32| if accumulate { was } else { 0.0 };
                        assert_eq!(top[c], base(top0[c]) + y[0][c % 2], "{isa:?}: top column {c}");
                        assert_eq!(bottom[c], base(bottom0[c]) + y[1][c % 2], "{isa:?}: bottom column {c}");
                    }
                }
            }
        }
    }
}
