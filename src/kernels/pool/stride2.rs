//! Max pooling at column stride 2 (ResNet's and GoogLeNet's 3x3 pools with padding 1,
//! AlexNet's without): the windows of a row of outputs read every other cell of each input
//! row, so each input row is first split by column parity into halves padded with -inf
//! (`Rows`, in L1), and every output of the row, edges included, then runs in one vector
//! loop per window cell over shifted runs of those halves. Compiled at the CPU's width. The
//! plane-wide split this replaced copied the whole plane, ran 8 outputs at a time as SSE and
//! left the edges to a scalar loop: ResNet-18's pool (8 x 64 planes of 112 x 112, 3x3 stride
//! 2, padding 1) took 9.6 ms of its step at two threads on Zen 4, 2.6-2.9 now.
//!
//! Same rules as the definition: each window's cells in row-major order, the first maximum
//! wins, a NaN always wins (the last one), padding never takes part. The row's best over each
//! input row, then the rows in order, gives the same winner: the last NaN if there is one,
//! else the first cell holding the maximum. A padding cell is -inf and never wins (a real -inf
//! does not replace the first real cell either: only a greater value or a NaN does), so each
//! output starts from -inf at its window's first real cell.

use super::{window, ColumnPlan};
use crate::geometry::Geometry;

/// Outputs a row of which the path takes (narrower rows keep the general loop).
const MIN_OUTPUTS: usize = 8;

/// The vector loops run over whole blocks of this many outputs (a zmm of values and one of
/// indices); the lanes past the row's end are computed and never stored.
const LANES: usize = 16;

/// Whether `planes` pools `g`: column stride 2, no dilation, rows of at least `MIN_OUTPUTS`.
pub(super) fn applies(g: &Geometry) -> bool {
    g.cols.stride == 2 && g.cols.dilation == 1 && g.cols.output >= MIN_OUTPUTS
}

/// Max pooling of whole planes at column stride 2 (`applies` holds): `out`, `arg: [P, Ho, Wo]`,
/// `x: [P, H, W]`, `plan` the windows' real columns.
pub(super) fn planes(out: &mut [f32], arg: &mut [u32], x: &[f32], g: &Geometry, plan: &ColumnPlan) {
    planes_on(crate::kernels::isa::Isa::active(), out, arg, x, g, plan)
}

crate::kernels::isa::compiled_per_isa! {
    /// `planes_body` compiled for `isa`.
    fn planes_on => planes_body(out: &mut [f32], arg: &mut [u32], x: &[f32], g: &Geometry, plan: &ColumnPlan)
}

#[inline(always)]
fn planes_body(out: &mut [f32], arg: &mut [u32], x: &[f32], g: &Geometry, plan: &ColumnPlan) {
    let (h, w) = g.in_hw();
    let (ho, wo) = g.out_hw();
    let mut rows = Rows::new(g, plan);
    for ((y, a), x) in out.chunks_mut(ho * wo).zip(arg.chunks_mut(ho * wo)).zip(x.chunks(h * w)) {
        rows.plane(y, a, x, g);
    }
}

/// One input row's halves and one output row's running maxima, laid out once per call and
/// reused row after row, plane after plane.
struct Rows {
    /// Outputs of a row rounded up to whole blocks of `LANES`.
    lanes: usize,
    /// Columns are shifted by this even count, so that the leftmost padding lands at 0 and
    /// each column keeps its parity.
    shift: usize,
    /// Output l's window starts at shifted column `2 l + base`.
    base: usize,
    /// Each half's length: every window's cells (the last lanes' too) and every cell of a row.
    stride: usize,
    /// `[even | odd]`: input column `c` at `halves[((c + shift) % 2) * stride + (c + shift) /
    /// 2]`, -inf where `c` is padding.
    halves: Vec<f32>,
    /// The first real column of each output's window.
    first_real: Vec<u32>,
    best: Vec<f32>,
    best_at: Vec<u32>,
}

impl Rows {
    #[inline(always)]
    fn new(g: &Geometry, plan: &ColumnPlan) -> Self {
        let w = g.cols.input;
        let lanes = g.cols.output.next_multiple_of(LANES);
        let shift = g.cols.pad_lo.next_multiple_of(2);
        let base = shift - g.cols.pad_lo;
        let stride = ((base + g.cols.span()) / 2 + lanes).max(shift / 2 + w.div_ceil(2));
        let mut first_real: Vec<u32> = plan.cols.iter().map(|&(lo, _)| lo as u32).collect();
        first_real.resize(lanes, 0);
        Rows { lanes, shift, base, stride, halves: vec![f32::NEG_INFINITY; 2 * stride], first_real, best: vec![0.0; lanes], best_at: vec![0; lanes] }
    }

    /// `y`, `a: [Ho, Wo]` from one plane `x: [H, W]`.
    #[inline(always)]
    fn plane(&mut self, y: &mut [f32], a: &mut [u32], x: &[f32], g: &Geometry) {
        let (h, w) = g.in_hw();
        let (ho, wo) = g.out_hw();
        assert!(x.len() >= h * w && y.len() >= ho * wo && a.len() >= ho * wo, "max pool: a plane of {}, outputs {} for {h}x{w} -> {ho}x{wo}", x.len(), y.len());
        let Rows { lanes, shift, base, stride, .. } = *self;
        for oy in 0..ho {
            let (y0, y1) = window(&g.rows, oy);
            self.best.fill(f32::NEG_INFINITY);
            for (at, &c) in self.best_at.iter_mut().zip(&self.first_real) {
                *at = (y0 * w) as u32 + c;
            }
            for iy in y0..y1 {
                split_row(&x[iy * w..(iy + 1) * w], shift, stride, &mut self.halves);
                for dx in 0..g.cols.span() {
                    let c = base + dx;
                    let run = &self.halves[(c % 2) * stride + c / 2..][..lanes];
                    // Output l's cell in this column is plane index `at + 2 l` (a padding
                    // cell's index is never taken: -inf never wins).
                    let at = ((iy * w + c) as u32).wrapping_sub(shift as u32);
                    for (l, ((best, best_at), &v)) in self.best.iter_mut().zip(self.best_at.iter_mut()).zip(run).enumerate() {
                        // Branch-free: which cell wins is data, not a pattern to predict.
                        let take = (v > *best) | v.is_nan();
                        *best = if take { v } else { *best };
                        *best_at = if take { at.wrapping_add(2 * l as u32) } else { *best_at };
                    }
                }
            }
            y[oy * wo..(oy + 1) * wo].copy_from_slice(&self.best[..wo]);
            a[oy * wo..(oy + 1) * wo].copy_from_slice(&self.best_at[..wo]);
        }
    }
}

/// `row`'s cells into the halves (`Rows::halves`), the padding's -inf left in place.
#[inline(always)]
fn split_row(row: &[f32], shift: usize, stride: usize, halves: &mut [f32]) {
    let (even, odd) = halves.split_at_mut(stride);
    // `shift` is even: cell c goes to `(c + shift) / 2` of its parity's half.
    let (even, odd) = (&mut even[shift / 2..], &mut odd[shift / 2..]);
    let pairs = row.chunks_exact(2);
    if let [last] = pairs.remainder() {
        even[row.len() / 2] = *last;
    }
    for ((e, o), pair) in even.iter_mut().zip(odd.iter_mut()).zip(pairs) {
        (*e, *o) = (pair[0], pair[1]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{Padding, Window2d};
    use crate::kernels::isa::Isa;
    use crate::kernels::pool::tests::max_pool_plane_ref;

    /// Every ISA's plane against the definition, bit for bit with the winners' indices: windows
    /// of 2 and 3 at stride 2 with padding 0, 1 and 2 (edges whose windows hold padding),
    /// widths odd and even, one block of lanes and several, a leftover column; cells from a
    /// small set (ties), NaNs (one in a padded edge window), a row of -inf (a window of -inf
    /// only keeps its first real cell) and infinities.
    #[test]
    fn every_isa_matches_the_definition() {
        let mut rng = crate::rng::Rng::new(12);
        for isa in Isa::testable("max pool at stride 2") {
            for (k, p) in [(3, 1), (3, 0), (2, 0), (2, 1), (3, 2)] {
                for (h, w) in [(9, 17), (12, 34), (7, 33), (5, 112), (6, 47)] {
                    let g = Window2d::square(k, 2, Padding::uniform(p)).resolve(h, w).unwrap();
                    if !applies(&g) {
                        continue;
                    }
                    let mut x: Vec<f32> = (0..h * w).map(|_| rng.below(5) as f32 - 2.0).collect();
                    for i in [0, w + 3, 2 * w + 4, 2 * w + 5, 3 * w - 1] {
                        x[i] = f32::NAN;
                    }
                    x[4 * w..5 * w].fill(f32::NEG_INFINITY);
                    x[3 * w + 6] = f32::INFINITY;
                    let (ho, wo) = g.out_hw();
                    let (mut y1, mut a1) = (vec![7.0; ho * wo], vec![7u32; ho * wo]);
                    let (mut y2, mut a2) = (y1.clone(), a1.clone());
                    planes_on(isa, &mut y1, &mut a1, &x, &g, &ColumnPlan::new(&g));
                    max_pool_plane_ref(&mut y2, &mut a2, &x, &g);
                    let case = format!("{}: {k}x{k} stride 2 pad {p} on {h}x{w}", isa.name());
                    assert_eq!(a1, a2, "{case}: the winners");
                    assert!(y1.iter().zip(&y2).all(|(a, b)| a.to_bits() == b.to_bits()), "{case}: the values");
                    assert!(y1.iter().any(|v| v.is_nan()) && y1.contains(&f32::INFINITY), "{case}");
                }
            }
        }
    }

    /// Calls over planes of different widths in turn (a ResNet and a GoogLeNet in one process),
    /// three planes a call: each call lays its halves' -inf padding out for its width, and each
    /// plane starts from the padding alone.
    #[test]
    fn every_width_after_another_and_every_plane_of_a_call() {
        let mut rng = crate::rng::Rng::new(3);
        for (h, w) in [(8, 112), (8, 20), (9, 57), (8, 20)] {
            let g = Window2d::square(3, 2, Padding::uniform(1)).resolve(h, w).unwrap();
            let x: Vec<f32> = (0..3 * h * w).map(|_| -1.0 - rng.below(3) as f32).collect();
            let (ho, wo) = g.out_hw();
            let (mut y1, mut a1) = (vec![0.0; 3 * ho * wo], vec![0u32; 3 * ho * wo]);
            let (mut y2, mut a2) = (y1.clone(), a1.clone());
            planes(&mut y1, &mut a1, &x, &g, &ColumnPlan::new(&g));
            for ((y, a), x) in y2.chunks_mut(ho * wo).zip(a2.chunks_mut(ho * wo)).zip(x.chunks(h * w)) {
                max_pool_plane_ref(y, a, x, &g);
            }
            max_pool_plane_ref(&mut y2, &mut a2, &x, &g);
            assert_eq!((y1, a1), (y2, a2), "{h}x{w}");
        }
    }
}
