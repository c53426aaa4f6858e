//! Convolution on fovea's own register tile (`tile.rs`): one sample at a time, on the calling
//! thread, with every operand in L1 or L2.
//!
//! - Forward: `Y_g [og, P] = W_g [og, K] @ col_g [K, P]`. W is read in place; col is never
//!   built whole: each slice of at most `FORWARD_KC` of its rows is unfolded straight into
//!   16-pixel panels (`[P/16][kc][16]`, ~200 KB for the MNIST net's conv2) that stay in L2.
//! - Input gradient, stride 1: the forward pass of the "transposed" convolution, i.e. `dY`
//!   convolved with the flipped, channel-swapped weights and padding `k - 1 - p`. No col2im.
//! - Weight gradient: `dW_g^T [K, og] += col_g [K, P] @ dY_g^T [P, og]`, A = col rows read in
//!   place (unfolded `WEIGHT_KC` rows at a time), B = dY transposed into 16-channel panels once
//!   per sample. The caller turns the `[K, og]` sums into `[og, K]` once per batch.
//!
//! Shapes per sample: `x: [Cin, H, W]`, `y, dy: [Cout, Ho, Wo]`, `weight: [Cout, Cin/groups, kh, kw]`.

use super::conv2d::ConvDims;
use super::im2col::im2col_row;
use super::parallel::chunk_ranges;
use super::tile::{self, row_blocks, Offsets, Tile, A, B, WIDTH};
use super::unfold::{self, Padded, PanelRuns, SLACK};
use crate::geometry::{Axis, Geometry};

/// Steps of k per tile in the forward pass: the packed weights of one row block (512 x 6
/// values, 12 KB) stay in L1 while the tile sweeps the sample (measured best of 256/512/1024
/// on the MNIST net's conv2).
const FORWARD_KC: usize = 512;
/// Column-matrix rows unfolded at a time for the weight gradient (96 x 196 pixels = 75 KB).
const WEIGHT_KC: usize = 96;

/// Whether `run_forward`'s dimensions are ones the tile handles (any geometry does; the CPU
/// must have AVX2/FMA).
pub fn available() -> bool {
    tile::available()
}

/// Weights `[Cout, K]` repacked for the tile: per group and row block (`row_blocks(og)`),
/// `[K][rows]`, so one cache line feeds several steps of k. Packed once per call, shared by
/// every sample.
#[derive(Default)]
pub struct PackedWeights {
    data: Vec<f32>,
    kdim: usize,
    og: usize,
}

impl PackedWeights {
    /// Packs `weight: [Cout, Cin/groups, kh, kw]` of the convolution `d`.
    pub fn pack(&mut self, weight: &[f32], d: &ConvDims) {
        let og = d.c_out / d.groups;
        let kdim = weight.len() / d.c_out;
        self.data.resize(weight.len(), 0.0);
        (self.kdim, self.og) = (kdim, og);
        for grp in 0..d.groups {
            for rb in row_blocks(og) {
                let dst = &mut self.data[(grp * og + rb.start) * kdim..(grp * og + rb.end) * kdim];
                for (r, row) in rb.clone().enumerate() {
                    let src = &weight[(grp * og + row) * kdim..(grp * og + row + 1) * kdim];
                    for (k, v) in src.iter().enumerate() {
                        dst[k * rb.len() + r] = *v;
                    }
                }
            }
        }
    }

    /// Rows `rb` (a block of `row_blocks(og)`) of group `grp`, steps `ks` of k: `[ks][rows]`.
    fn block(&self, grp: usize, rb: &std::ops::Range<usize>, ks: &std::ops::Range<usize>) -> &[f32] {
        let start = (grp * self.og + rb.start) * self.kdim;
        &self.data[start + ks.start * rb.len()..start + ks.end * rb.len()]
    }
}

/// Scratch of `forward_sample`, grown as needed and kept between calls.
#[derive(Default)]
pub struct ForwardScratch {
    /// `[P/16][kc][16]`: the current slice of the column matrix, in 16-pixel panels.
    panels: Vec<f32>,
    /// `[P rounded up to 16]`: one column-matrix row (strided geometries only).
    line: Vec<f32>,
    padded: Padded,
    runs: PanelRuns,
    bases: Vec<usize>,
    offsets: Offsets,
}

/// `y (+)= conv(x, weight)` for one sample, no bias.
/// - `y`: `[Cout, Ho, Wo]`; `x`: `[Cin, H, W]`; `weight`: `[Cout, Cin/groups, kh, kw]` packed
pub fn forward_sample(y: &mut [f32], x: &[f32], weight: &PackedWeights, d: &ConvDims, s: &mut ForwardScratch, accumulate: bool) {
    let g = &d.geom;
    let (h, w) = g.in_hw();
    let p = g.rows.output * g.cols.output;
    let (cg, og) = (d.c_in / d.groups, d.c_out / d.groups);
    let kdim = cg * g.rows.kernel * g.cols.kernel;
    let blocks = p.div_ceil(WIDTH);
    let chunks = chunk_ranges(kdim, kdim.div_ceil(FORWARD_KC));
    let widest = chunks.iter().map(|r| r.len()).max().unwrap_or(0);
    s.panels.resize(blocks * widest * WIDTH + SLACK, 0.0);
    let contiguous = unfold::runs_contiguous(g);
    if contiguous && reads_in_place(g, og) {
        return forward_in_place(y, x, weight, d, s, accumulate);
    }
    for grp in 0..d.groups {
        let xg = &x[grp * cg * h * w..(grp + 1) * cg * h * w];
        let yg = &mut y[grp * og * p..(grp + 1) * og * p];
        if contiguous {
            s.padded.fill(xg, cg, g);
            if grp == 0 {
                s.runs.plan(&s.padded, g);
            }
        }
        for (ci, rows) in chunks.iter().enumerate() {
            let kc = rows.len();
            if contiguous {
                s.runs.pack(&mut s.panels, &s.padded, rows.clone(), g, &mut s.bases);
            } else {
                pack_strided(&mut s.panels, &mut s.line, xg, rows.clone(), g);
            }
            let panels = &s.panels;
            for rb in row_blocks(og) {
                let a = weight.block(grp, &rb, rows);
                for blk in 0..blocks {
                    let col0 = blk * WIDTH;
                    let b = &panels[blk * kc * WIDTH..(blk + 1) * kc * WIDTH];
                    tile::run(Tile {
                        rows: rb.len(),
                        k: kc,
                        a: A::Packed(a),
                        b: B::Packed(b),
                        c: &mut yg[rb.start * p + col0..],
                        c_rs: p,
                        n: WIDTH.min(p - col0),
                        accumulate: accumulate || ci > 0,
                    });
                }
            }
        }
    }
}

/// Whether reading B straight from the padded sample beats packing it into panels. In place,
/// each output row takes `ceil(Wo / 16)` tiles whose lanes past `Wo` are wasted; packing costs
/// about as much as `20 / og` of the products (measured on the MNIST net's conv2).
fn reads_in_place(g: &Geometry, og: usize) -> bool {
    let wo = g.cols.output;
    let wasted = wo.div_ceil(WIDTH) * WIDTH - wo;
    wasted * og < 20 * wo
}

/// `forward_sample` with B read in place: tile `(oy, ox0)`'s k-th row is the padded sample at
/// `row_base(k) + window(oy, ox0)`, 16 contiguous values (column stride 1).
fn forward_in_place(y: &mut [f32], x: &[f32], weight: &PackedWeights, d: &ConvDims, s: &mut ForwardScratch, accumulate: bool) {
    let g = &d.geom;
    let (h, w) = g.in_hw();
    let (ho, wo) = g.out_hw();
    let p = ho * wo;
    let (cg, og) = (d.c_in / d.groups, d.c_out / d.groups);
    let kdim = cg * g.rows.kernel * g.cols.kernel;
    let chunks = chunk_ranges(kdim, kdim.div_ceil(FORWARD_KC));
    for grp in 0..d.groups {
        let xg = &x[grp * cg * h * w..(grp + 1) * cg * h * w];
        let yg = &mut y[grp * og * p..(grp + 1) * og * p];
        s.padded.fill(xg, cg, g);
        let data = s.padded.data();
        for (ci, rows) in chunks.iter().enumerate() {
            s.offsets.set(rows.clone().map(|row| s.padded.row_base(row, g)));
            for rb in row_blocks(og) {
                let a = weight.block(grp, &rb, rows);
                for oy in 0..ho {
                    for ox0 in (0..wo).step_by(WIDTH) {
                        tile::run(Tile {
                            rows: rb.len(),
                            k: rows.len(),
                            a: A::Packed(a),
                            b: B::Rows { data: &data[s.padded.window(oy, ox0, g)..], offsets: &s.offsets },
                            c: &mut yg[rb.start * p + oy * wo + ox0..],
                            c_rs: p,
                            n: WIDTH.min(wo - ox0),
                            accumulate: accumulate || ci > 0,
                        });
                    }
                }
            }
        }
    }
}

/// `pack` for geometries whose windows are not contiguous runs (column stride > 1): each row
/// is unfolded into `line` by im2col, then cut into 16-pixel panels.
fn pack_strided(panels: &mut [f32], line: &mut Vec<f32>, x: &[f32], rows: std::ops::Range<usize>, g: &Geometry) {
    let p = g.rows.output * g.cols.output;
    let kc = rows.len();
    // Past P the line stays zero: those pixels only reach columns of C that are never stored.
    line.clear();
    line.resize(p.div_ceil(WIDTH) * WIDTH, 0.0);
    for (kk, row) in rows.enumerate() {
        im2col_row(line, x, row, g);
        for (blk, seg) in line.chunks_exact(WIDTH).enumerate() {
            let at = (blk * kc + kk) * WIDTH;
            panels[at..at + WIDTH].copy_from_slice(seg);
        }
    }
}

/// The problem whose forward pass is this convolution's input gradient, when there is one
/// worth running: stride 1, dilation 1, padding at most `k - 1` on every side, and at least 4
/// input channels per group (they are the transposed problem's tile rows; with 1-3 the tile
/// runs mostly empty and im2col + `gemm` + col2im is faster). Else `None`.
/// Its weights come from `flip_weights`.
pub fn transposed_dims(d: &ConvDims) -> Option<ConvDims> {
    if d.c_in / d.groups < 4 {
        return None;
    }
    let flip = |a: &Axis| -> Option<Axis> {
        if a.stride != 1 || a.dilation != 1 || a.pad_lo >= a.kernel || a.pad_hi >= a.kernel || a.leftover != 0 {
            return None;
        }
        Some(Axis {
            input: a.output,
            output: a.input,
            kernel: a.kernel,
            stride: 1,
            dilation: 1,
            pad_lo: a.kernel - 1 - a.pad_lo,
            pad_hi: a.kernel - 1 - a.pad_hi,
            leftover: 0,
        })
    };
    let geom = Geometry { rows: flip(&d.geom.rows)?, cols: flip(&d.geom.cols)? };
    Some(ConvDims { n: d.n, c_in: d.c_out, c_out: d.c_in, groups: d.groups, geom })
}

/// `flipped[g][ci][co][kh-1-i][kw-1-j] = weight[g][co][ci][i][j]`: the weights of
/// `transposed_dims(d)`, `[Cin, Cout/groups, kh, kw]`.
pub fn flip_weights(flipped: &mut Vec<f32>, weight: &[f32], d: &ConvDims) {
    let (kh, kw) = (d.geom.rows.kernel, d.geom.cols.kernel);
    let (cg, og, taps) = (d.c_in / d.groups, d.c_out / d.groups, kh * kw);
    flipped.resize(weight.len(), 0.0);
    for grp in 0..d.groups {
        for co in 0..og {
            for ci in 0..cg {
                let src = &weight[((grp * og + co) * cg + ci) * taps..][..taps];
                let dst = &mut flipped[((grp * cg + ci) * og + co) * taps..][..taps];
                for (t, v) in src.iter().enumerate() {
                    dst[taps - 1 - t] = *v;
                }
            }
        }
    }
}

/// Scratch of `weight_grad_sample`.
#[derive(Default)]
pub struct WeightGradScratch {
    /// `[og / 16][P][16]` per group, refilled per sample.
    dy_panels: Vec<f32>,
    /// `[WEIGHT_KC][P]` (+ `SLACK`): unfolded rows of the column matrix.
    cols: Vec<f32>,
    padded: Padded,
}

/// `dwt += col @ dY^T` for one sample: `dwt: [groups][K][og]` (the transposed weight gradient),
/// `dy: [Cout, Ho, Wo]`, `x: [Cin, H, W]`.
pub fn weight_grad_sample(dwt: &mut [f32], dy: &[f32], x: &[f32], d: &ConvDims, s: &mut WeightGradScratch) {
    let g = &d.geom;
    let (h, w) = g.in_hw();
    let p = g.rows.output * g.cols.output;
    let (cg, og) = (d.c_in / d.groups, d.c_out / d.groups);
    let kdim = cg * g.rows.kernel * g.cols.kernel;
    let cblocks = og.div_ceil(WIDTH);
    s.dy_panels.resize(cblocks * p * WIDTH, 0.0);
    let chunks = chunk_ranges(kdim, kdim.div_ceil(WEIGHT_KC));
    let widest = chunks.iter().map(|r| r.len()).max().unwrap_or(0);
    s.cols.resize(widest * p + SLACK, 0.0);
    let contiguous = unfold::runs_contiguous(g);
    for grp in 0..d.groups {
        let xg = &x[grp * cg * h * w..(grp + 1) * cg * h * w];
        let dyg = &dy[grp * og * p..(grp + 1) * og * p];
        let dwg = &mut dwt[grp * kdim * og..(grp + 1) * kdim * og];
        // dY_g [og, P] -> panels [og/16][P][16]; lanes past og keep stale values, which only
        // reach columns of C that are never stored.
        for (co, plane) in dyg.chunks_exact(p).enumerate() {
            let panel = &mut s.dy_panels[(co / WIDTH) * p * WIDTH..];
            for (px, v) in plane.iter().enumerate() {
                panel[px * WIDTH + co % WIDTH] = *v;
            }
        }
        if contiguous {
            s.padded.fill(xg, cg, g);
        }
        for rows in &chunks {
            for (kk, row) in rows.clone().enumerate() {
                if contiguous {
                    // Spills into the next row's slot (written next) or the slack.
                    unfold::unfold_row(&mut s.cols[kk * p..], &s.padded, row, g);
                } else {
                    im2col_row(&mut s.cols[kk * p..(kk + 1) * p], xg, row, g);
                }
            }
            for cb in 0..cblocks {
                let b = &s.dy_panels[cb * p * WIDTH..(cb + 1) * p * WIDTH];
                for rb in row_blocks(rows.len()) {
                    tile::run(Tile {
                        rows: rb.len(),
                        k: p,
                        a: A::Strided { data: &s.cols[rb.start * p..], rs: p, ks: 1 },
                        b: B::Packed(b),
                        c: &mut dwg[(rows.start + rb.start) * og + cb * WIDTH..],
                        c_rs: og,
                        n: WIDTH.min(og - cb * WIDTH),
                        accumulate: true,
                    });
                }
            }
        }
    }
}

/// `dw[g][co][k] += dwt[g][k][co]`.
pub fn add_transposed(dw: &mut [f32], dwt: &[f32], d: &ConvDims) {
    let og = d.c_out / d.groups;
    let kdim = dw.len() / d.c_out;
    for grp in 0..d.groups {
        let src = &dwt[grp * kdim * og..(grp + 1) * kdim * og];
        let dst = &mut dw[grp * og * kdim..(grp + 1) * og * kdim];
        for (k, line) in src.chunks_exact(og).enumerate() {
            for (co, v) in line.iter().enumerate() {
                dst[co * kdim + k] += v;
            }
        }
    }
}
