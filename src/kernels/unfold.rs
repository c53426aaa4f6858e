//! Unfolding a sample into rows of its column matrix (im2col) fast, for the tiled convolution:
//! the sample is zero-padded once, so every tap of every window is a plain read, and a window
//! row of pixels is a contiguous run when the column stride is 1.
//!
//! Runs are copied 16 values at a time whatever their length, so a short run spills past its
//! end: buffers carry `SLACK` extra values and later runs overwrite the spill (see each
//! function for why the spill never survives where it matters).

use crate::geometry::Geometry;

/// Values every destination and the padded input carry past their end for over-long copies.
pub const SLACK: usize = 16;

/// A sample zero-padded by the geometry's padding: `[C, Hp, Wp]` plus `SLACK`.
#[derive(Default)]
pub struct Padded {
    data: Vec<f32>,
    hp: usize,
    wp: usize,
}

impl Padded {
    /// Fills from `x: [C, H, W]`.
    pub fn fill(&mut self, x: &[f32], channels: usize, g: &Geometry) {
        let (h, w) = g.in_hw();
        self.hp = g.rows.pad_lo + h + g.rows.pad_hi;
        self.wp = g.cols.pad_lo + w + g.cols.pad_hi;
        let len = channels * self.hp * self.wp + SLACK;
        self.data.clear();
        self.data.resize(len, 0.0);
        for c in 0..channels {
            let plane = &x[c * h * w..(c + 1) * h * w];
            for (y, src) in plane.chunks_exact(w).enumerate() {
                let at = (c * self.hp + y + g.rows.pad_lo) * self.wp + g.cols.pad_lo;
                self.data[at..at + w].copy_from_slice(src);
            }
        }
    }

    /// `[C, Hp, Wp]` plus `SLACK`.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Offset of column-matrix row `row = (c * kh + i) * kw + j`'s first window (0, 0).
    pub fn row_base(&self, row: usize, g: &Geometry) -> usize {
        let (kh, kw) = (g.rows.kernel, g.cols.kernel);
        let (c, i, j) = (row / (kh * kw), row / kw % kh, row % kw);
        (c * self.hp + i * g.rows.dilation) * self.wp + j * g.cols.dilation
    }

    /// Offset of window `(oy, ox)` relative to a row base.
    pub fn window(&self, oy: usize, ox: usize, g: &Geometry) -> usize {
        oy * g.rows.stride * self.wp + ox * g.cols.stride
    }
}

/// Copies `len` values from `src` to `dst` in 16-value strides (spilling up to 15 past `len`).
fn copy_run(dst: &mut [f32], src: &[f32], len: usize) {
    let mut at = 0;
    while at < len {
        dst[at..at + 16].copy_from_slice(&src[at..at + 16]);
        at += 16;
    }
}

/// Whether `Padded` rows are contiguous runs: column stride 1.
pub fn runs_contiguous(g: &Geometry) -> bool {
    g.cols.stride == 1
}

/// One row of the column matrix: `line[oy * Wo + ox]` for all windows. `line` has `Ho * Wo +
/// SLACK` values; the spill of one output row lands where the next is written after it.
/// Requires `runs_contiguous(g)`.
pub fn unfold_row(line: &mut [f32], x: &Padded, row: usize, g: &Geometry) {
    let (ho, wo) = g.out_hw();
    let base = x.row_base(row, g);
    for oy in 0..ho {
        let src = &x.data[base + x.window(oy, 0, g)..];
        copy_run(&mut line[oy * wo..], src, wo);
    }
}

/// Where the pixels of each 16-pixel panel come from: runs `(first pixel in panel, offset of
/// its window, length)`, at most one per output row the panel touches.
#[derive(Default)]
pub struct PanelRuns {
    runs: Vec<(usize, usize, usize)>,
    /// `runs[starts[b]..starts[b + 1]]` belong to panel `b`.
    starts: Vec<usize>,
}

impl PanelRuns {
    /// For the `ceil(Ho * Wo / 16)` panels of `g`'s output.
    pub fn plan(&mut self, x: &Padded, g: &Geometry) {
        let (ho, wo) = g.out_hw();
        let p = ho * wo;
        self.runs.clear();
        self.starts.clear();
        for first in (0..p).step_by(16) {
            self.starts.push(self.runs.len());
            let mut px = first;
            while px < (first + 16).min(p) {
                let (oy, ox) = (px / wo, px % wo);
                let len = (wo - ox).min(first + 16 - px);
                self.runs.push((px - first, x.window(oy, ox, g), len));
                px += len;
            }
        }
        self.starts.push(self.runs.len());
    }

    pub fn panels(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    /// Writes rows `rows` of the column matrix into `panels: [panels()][rows.len()][16]` (+
    /// `SLACK`). Panels are filled in order, row by row, and runs within a row left to right,
    /// so each spill lands in a slot written after it (or in the slack). Lanes of the last
    /// panel past `Ho * Wo` hold leftovers: they feed only output columns never stored.
    pub fn pack(&self, panels: &mut [f32], x: &Padded, rows: std::ops::Range<usize>, g: &Geometry, bases: &mut Vec<usize>) {
        let kc = rows.len();
        bases.clear();
        bases.extend(rows.map(|row| x.row_base(row, g)));
        for b in 0..self.panels() {
            let runs = &self.runs[self.starts[b]..self.starts[b + 1]];
            for (kk, &base) in bases.iter().enumerate() {
                let slot = (b * kc + kk) * 16;
                for &(at, window, len) in runs {
                    copy_run(&mut panels[slot + at..], &x.data[base + window..], len);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{Padding, Window2d};
    use crate::kernels::im2col::im2col;
    use crate::rng::Rng;

    #[test]
    fn rows_and_panels_equal_im2col() {
        let mut rng = Rng::new(3);
        for case in 0..60 {
            let k = 1 + rng.below(5);
            let window = Window2d {
                kernel: [k, 1 + rng.below(4)],
                stride: [1 + rng.below(2), 1],
                dilation: [1 + rng.below(2), 1 + rng.below(2)],
                padding: Padding::explicit([rng.below(3), rng.below(3), rng.below(3), rng.below(3)]),
                ceil_mode: false,
            };
            let (h, w) = (6 + rng.below(20), 6 + rng.below(30));
            let Ok(g) = window.resolve(h, w) else { continue };
            let c = 1 + rng.below(3);
            let x = rng.uniform_vec(c * h * w, -1.0, 1.0);
            let (ho, wo) = g.out_hw();
            let (p, kdim) = (ho * wo, c * g.rows.kernel * g.cols.kernel);
            let mut col = vec![0.0; kdim * p];
            im2col(&mut col, &x, c, &g);
            let mut padded = Padded::default();
            padded.fill(&x, c, &g);
            let mut line = vec![f32::NAN; p + SLACK];
            for row in 0..kdim {
                unfold_row(&mut line, &padded, row, &g);
                assert_eq!(&line[..p], &col[row * p..(row + 1) * p], "case {case} row {row}");
            }
            let mut runs = PanelRuns::default();
            runs.plan(&padded, &g);
            let rows = 1..kdim;
            let mut panels = vec![f32::NAN; runs.panels() * rows.len() * 16 + SLACK];
            runs.pack(&mut panels, &padded, rows.clone(), &g, &mut Vec::new());
            for (kk, row) in rows.clone().enumerate() {
                for px in 0..p {
                    let got = panels[((px / 16) * rows.len() + kk) * 16 + px % 16];
                    assert_eq!(got, col[row * p + px], "case {case} panel row {row} pixel {px}");
                }
            }
        }
    }
}
