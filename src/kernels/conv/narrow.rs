//! The forward pass of convolutions with few output channels (LeNet's 6, a style network's
//! last 3): the direct tile's lanes are output channels (32 on AVX-512, 16 on AVX2), most of
//! them empty here. This path turns the roles around, as Winograd does: a tile's rows are
//! output channels (the weights `[Cout, K]` read in place through offsets), its lanes are
//! `width` output pixels, and C is stored by rows, then copied into NCHW. B's row for tap t is
//! the strip's windows shifted by the tap's offset: where the strip is a stride-1 run along an
//! output row, that row is read straight from the zero-padded sample
//! (`tile::run_reading_b_rows`); otherwise the strip is copied out as a panel `[K][width]`
//! first (a strip of the column matrix, through the direct tile's offsets).
//!
//! Shapes per sample: `x: [Cin, H, W]`, `y: [Cout, Ho, Wo]`, `weight: [Cout, Cin, kh, kw]`.

use super::tile::{self, CLayout, Kernel, Offsets, Tile};
use super::tiled::ConvTileScratch;
use super::ConvDims;
use crate::kernels::aligned::AlignedVec;

/// Whether the path can run `d`: one group. It runs each sample on the calling thread (a batch
/// of one too: its few output channels are one block of the direct tile, which would not share
/// them either; a large image is cut into bands, `bands.rs`).
pub fn applies(d: &ConvDims) -> bool {
    d.groups == 1
}

/// At most this many output channels: `ConvPath::Auto` takes the path (the direct tile would
/// fill a quarter of its 32 lanes at most, or half of AVX2's 16).
pub const MAX_CHANNELS: usize = 8;

/// Whether `ConvPath::Auto` takes the path for `d`.
pub fn pays(d: &ConvDims) -> bool {
    applies(d) && d.c_out <= MAX_CHANNELS
}

/// How benchmarks name the path on `kernel`: `narrow-avx512`, `narrow-avx2`.
pub fn name(kernel: Kernel) -> &'static str {
    match kernel.isa {
        crate::kernels::isa::Isa::Avx512 => "narrow-avx512",
        _ => "narrow-avx2",
    }
}

/// The weights' offsets for the tile: row `co` at `co * K`, tap `t` at `t`.
#[derive(Default)]
pub struct NarrowWeights {
    rows: Offsets,
    reduction: Offsets,
    shape: (usize, usize),
}

impl NarrowWeights {
    /// Lists the offsets for `c_out` filters of `kdim` taps (again only when those change).
    pub fn prepare(&mut self, c_out: usize, kdim: usize) {
        if self.shape != (c_out, kdim) {
            self.rows.set((0..c_out).map(|co| co * kdim));
            self.reduction.set(0..kdim);
            self.shape = (c_out, kdim);
        }
    }
}

/// A strip's column panel `[K][width]` and the tile's rows `[rows][width]` before they are
/// copied into NCHW.
#[derive(Default)]
pub struct NarrowScratch {
    panel: AlignedVec,
    rows: AlignedVec,
}

/// `y = conv(x, weight)` for one sample, no bias, on the calling thread: `weight` is the
/// layer's own `[Cout, K]`, `w` its offsets (`NarrowWeights::prepare`). Where a row of output
/// pixels is a stride-1 run at least half a tile wide, the tile reads its windows in place
/// (B's row for tap t starts at the run's first window plus the tap's offset); elsewhere (strided
/// layers, narrow images) each strip of pixels is copied out as a panel first.
#[allow(clippy::too_many_arguments)]
pub fn forward_sample(kernel: Kernel, y: &mut [f32], x: &[f32], weight: &[f32], w: &NarrowWeights, d: &ConvDims, tiled: &mut ConvTileScratch, s: &mut NarrowScratch) {
    let width = kernel.width;
    let g = &d.geom;
    let (p, kdim, c_out) = (d.out_plane(), d.kdim(), d.c_out);
    assert!(d.groups == 1 && w.shape == (c_out, kdim) && weight.len() == c_out * kdim, "narrow: weights for {:?}, a {c_out}x{kdim} problem", w.shape);
    assert!(y.len() == c_out * p, "narrow: an output of {} values for {c_out}x{p}", y.len());
    tiled.prepare(x, d.c_in, g);
    s.rows.resize(kernel.rows * width, 0.0);
    let wo = g.cols.output;
    if g.cols.stride == 1 && 2 * wo >= width {
        let (data, pixels, taps) = (tiled.padded.data(), &tiled.pixels, &tiled.taps);
        for row in 0..g.rows.output {
            for x0 in (0..wo).step_by(width) {
                let px = row * wo + x0;
                let strip = Strip { first: px, n: width.min(wo - x0) };
                strip.run(kernel, y, p, weight, w, &data[pixels.get(px)..], Some(taps), &mut s.rows);
            }
        }
        return;
    }
    s.panel.resize(kdim * width, 0.0);
    for p0 in (0..p).step_by(width) {
        let strip = Strip { first: p0, n: width.min(p - p0) };
        strip.pack(s.panel.as_mut_slice(), tiled, g.cols.stride, wo, width);
        strip.run(kernel, y, p, weight, w, s.panel.as_slice(), None, &mut s.rows);
    }
}

/// Output pixels `first .. first + n` of a sample, in a tile's lanes.
struct Strip {
    first: usize,
    n: usize,
}

impl Strip {
    /// Copies the strip's windows into `panel: [K][width]`, in runs along output rows, each a
    /// strided read per tap. Lanes past `n` keep whatever the buffer held: each lane is a
    /// column of C of its own, and those are never stored.
    fn pack(&self, panel: &mut [f32], tiled: &ConvTileScratch, stride: usize, wo: usize, width: usize) {
        let (data, pixels, taps) = (tiled.padded.data(), &tiled.pixels, &tiled.taps);
        let mut px = self.first;
        while px < self.first + self.n {
            let run = (wo - px % wo).min(self.first + self.n - px);
            let (lane, start) = (px - self.first, pixels.get(px));
            for (t, row) in panel.chunks_exact_mut(width).enumerate() {
                let src = start + taps.get(t);
                let dst = &mut row[lane..lane + run];
                if stride == 1 {
                    dst.copy_from_slice(&data[src..src + run]);
                } else {
                    for (j, v) in dst.iter_mut().enumerate() {
                        *v = data[src + j * stride];
                    }
                }
            }
            px += run;
        }
    }

    /// The strip's outputs of every channel into `y: [Cout, p]`, from B: a packed panel
    /// `[K][width]` (`rows_at: None`), or the padded sample from the strip's first window on,
    /// B's row t at `rows_at[t]`. `c` holds one tile's rows before they are copied out.
    #[allow(clippy::too_many_arguments)]
    fn run(&self, kernel: Kernel, y: &mut [f32], p: usize, weight: &[f32], w: &NarrowWeights, b: &[f32], rows_at: Option<&Offsets>, c: &mut AlignedVec) {
        let (width, c_out) = (kernel.width, w.shape.0);
        for r0 in (0..c_out).step_by(kernel.rows) {
            let rows = kernel.rows.min(c_out - r0);
            let t = Tile {
                rows,
                k: w.shape.1,
                data: weight,
                row_offsets: w.rows.from(r0),
                k_offsets: w.reduction.from(0),
                b,
                c: c.as_mut_slice(),
                c_layout: CLayout::Rows { row_stride: width },
                n: width,
                accumulate: false,
            };
            match rows_at {
                Some(at) => tile::run_reading_b_rows(kernel, t, at.from(0)),
                None => tile::run(kernel, t),
            }
            for (r, values) in c.as_slice().chunks_exact(width).take(rows).enumerate() {
                y[(r0 + r) * p + self.first..][..self.n].copy_from_slice(&values[..self.n]);
            }
        }
    }
}

