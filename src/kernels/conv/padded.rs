//! A sample zero-padded once, so that every tap of every convolution window is a plain read at
//! `tap offset + window offset` (the tiled convolution's addressing, `conv_tiled.rs`).

use crate::geometry::Geometry;

/// Values past the padded samples, zero: the widest tile's two vectors.
pub const SLACK: usize = 32;

/// A buffer for padded copies of samples whose zeros (the padding, the slack) are written
/// once for a run of fills of one geometry: each fill writes the same places and never
/// reaches them (ResNet-18's 56x56 layers zeroed 0.9 MB a sample for Winograd before). The
/// geometry is whatever numbers decide where the fills write.
#[derive(Default)]
pub struct ZeroedOnce<const K: usize> {
    data: Vec<f32>,
    geometry: Option<[usize; K]>,
}

impl<const K: usize> ZeroedOnce<K> {
    /// The buffer of `len` values for `geometry`: all zeros where the last call's geometry or
    /// length differ, else as the last fill left it.
    pub fn for_geometry(&mut self, geometry: [usize; K], len: usize) -> &mut [f32] {
        if self.geometry != Some(geometry) || self.data.len() != len {
            self.data.clear();
            self.data.resize(len, 0.0);
            self.geometry = Some(geometry);
        }
        &mut self.data
    }

    pub fn data(&self) -> &[f32] {
        &self.data
    }
}

/// A sample `[C, H, W]` zero-padded by a geometry's padding: `[C, Hp, Wp]`; or several, one
/// after the other: `[N, C, Hp, Wp]`.
#[derive(Default)]
pub struct Padded {
    /// Zeroed for `(N * C, H, W, top, bottom, left, right)`.
    data: ZeroedOnce<7>,
    hp: usize,
    wp: usize,
}

impl Padded {
    /// Fills from `x: [C, H, W]`.
    pub fn fill(&mut self, x: &[f32], channels: usize, g: &Geometry) {
        self.fill_samples(x, 1, channels, g)
    }

    /// Fills from `x: [N, C, H, W]` (`samples = N`): sample `i` starts at `i * sample_len()`.
    /// The zeros are written once for a run of fills of one geometry (`ZeroedOnce`).
    pub fn fill_samples(&mut self, x: &[f32], samples: usize, channels: usize, g: &Geometry) {
        let (h, w) = g.in_hw();
        self.hp = g.rows.pad_lo + h + g.rows.pad_hi;
        self.wp = g.cols.pad_lo + w + g.cols.pad_hi;
        let geometry = [samples * channels, h, w, g.rows.pad_lo, g.rows.pad_hi, g.cols.pad_lo, g.cols.pad_hi];
        // Zeros past the last sample: a tile reading a row of output pixels in place reads a
        // whole vector pair from the last window on (`narrow.rs`).
        let data = self.data.for_geometry(geometry, samples * channels * self.hp * self.wp + SLACK);
        for c in 0..samples * channels {
            let plane = &x[c * h * w..(c + 1) * h * w];
            for (y, src) in plane.chunks_exact(w).enumerate() {
                let at = (c * self.hp + y + g.rows.pad_lo) * self.wp + g.cols.pad_lo;
                data[at..at + w].copy_from_slice(src);
            }
        }
    }

    /// `[C, Hp, Wp]` (or `[N, C, Hp, Wp]`), then `SLACK` zeros.
    pub fn data(&self) -> &[f32] {
        self.data.data()
    }

    /// Values of one padded sample of `channels` channels.
    pub fn sample_len(&self, channels: usize) -> usize {
        channels * self.hp * self.wp
    }

    /// Offset of tap `row = (c * kh + i) * kw + j` (a row of the column matrix) for window (0, 0).
    pub fn tap(&self, row: usize, g: &Geometry) -> usize {
        let (kh, kw) = (g.rows.kernel, g.cols.kernel);
        let (c, i, j) = (row / (kh * kw), row / kw % kh, row % kw);
        (c * self.hp + i * g.rows.dilation) * self.wp + j * g.cols.dilation
    }

    /// Offset of output pixel `px = oy * Wo + ox`'s window, added to a tap's offset.
    pub fn window(&self, px: usize, g: &Geometry) -> usize {
        let (oy, ox) = (px / g.cols.output, px % g.cols.output);
        oy * g.rows.stride * self.wp + ox * g.cols.stride
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{Padding, Window2d};
    use crate::kernels::conv::im2col::im2col;
    use crate::rng::Rng;

    /// `tap + window` reads exactly the column matrix, for any stride, dilation and padding.
    #[test]
    fn offsets_read_the_column_matrix() {
        let mut rng = Rng::new(3);
        let mut padded = Padded::default();
        for case in 0..60 {
            let window = Window2d {
                kernel: [1 + rng.below(5), 1 + rng.below(4)],
                stride: [1 + rng.below(3), 1 + rng.below(3)],
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
            // One buffer for every case (filled for other geometries before), and filled with
            // other values of this geometry first: what is not written must read as zero.
            padded.fill(&rng.uniform_vec(c * h * w, 2.0, 3.0), c, &g);
            padded.fill(&x, c, &g);
            for row in 0..kdim {
                for px in 0..p {
                    let got = padded.data()[padded.tap(row, &g) + padded.window(px, &g)];
                    assert_eq!(got, col[row * p + px], "case {case} row {row} pixel {px}");
                }
            }
        }
    }
}
