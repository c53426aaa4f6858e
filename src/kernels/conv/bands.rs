//! A batch of one large image on a pool of threads: its output rows cut into one band per
//! thread, each band convolved as a sample of its own (the input rows its windows read, copied
//! out), then its rows put back. Splitting by blocks of output channels (the other way to share
//! one sample) leaves threads idle when a layer has fewer blocks than threads (a style
//! network's full-size layers: 3 to 32 channels) and runs Winograd's transforms on one thread;
//! bands keep every core busy. Every output value is computed exactly as in the whole sample:
//! the same taps in the same order, and bands start at rows that are multiples of 4 so that
//! Winograd's 2x2 and 4x4 blocks stay where they were.

use super::{narrow, tiled, winograd, ChunkScratch, ConvDims, Kernel};
use crate::geometry::{Axis, Geometry};
use crate::kernels::matmul::Threads;
use crate::kernels::parallel::chunk_ranges;
use rayon::prelude::*;
use std::ops::Range;

/// Output maps below this many cells keep the channel split (a band's copies would cost more
/// than the threads they wake).
const MIN_PLANE: usize = 48 * 48;

/// The bands of output rows for a problem of one sample on a pool of `threads` (`None`: do not
/// cut it).
pub(super) fn row_bands(d: &ConvDims, threads: Threads) -> Option<Vec<Range<usize>>> {
    let pool = rayon::current_num_threads();
    let (ho, wo) = d.geom.out_hw();
    if threads != Threads::Pool || d.n != 1 || pool < 2 || ho * wo < MIN_PLANE || ho < 4 * pool {
        return None;
    }
    let quads = ho.div_ceil(4);
    let bands: Vec<Range<usize>> = chunk_ranges(quads, pool).into_iter().map(|r| 4 * r.start..(4 * r.end).min(ho)).collect();
    // A band whose windows read padding alone (padding wider than the band) is not cut out.
    bands.iter().all(|r| !band(d, r.clone()).1.is_empty()).then_some(bands)
}

/// Output rows `rows` of `d` as a problem of their own, and the input rows they read.
pub(super) fn band(d: &ConvDims, rows: Range<usize>) -> (ConvDims, Range<usize>) {
    let a = d.geom.rows;
    // The first and one past the last row of the padded input the band's windows read, in the
    // input's own rows (negative: padding above).
    let first = (rows.start * a.stride) as isize - a.pad_lo as isize;
    let end = ((rows.end - 1) * a.stride + (a.kernel - 1) * a.dilation + 1) as isize - a.pad_lo as isize;
    let (lo, hi) = (first.clamp(0, a.input as isize), end.clamp(0, a.input as isize));
    let axis = Axis {
        input: (hi - lo) as usize,
        output: rows.len(),
        pad_lo: (lo - first) as usize,
        pad_hi: (end - hi).max(0) as usize,
        leftover: 0,
        ..a
    };
    (ConvDims { n: 1, geom: Geometry { rows: axis, cols: d.geom.cols }, ..*d }, lo as usize..hi as usize)
}

/// What computes each band, and the weights it reads.
pub(super) enum Route<'a> {
    /// The direct tile on its packed panels.
    Tile(Kernel, &'a tiled::ChannelPanels),
    /// Winograd's transforms on its transformed weights.
    Winograd(Kernel, &'a winograd::WinogradWeights),
    /// Pixels in the tile's lanes (`narrow.rs`) on the layer's own weights.
    Narrow(Kernel, &'a [f32], &'a narrow::NarrowWeights),
}

/// `y = conv(x, weights)` for one sample `x: [Cin, H, W]`, `y: [Cout, Ho, Wo]`, one band of
/// `bands` per scratch of `chunks`, each computed as `route` says; plus `bias` on the direct
/// tile, whose tiles start from it as in a batch (`tiled::forward_sample`); returns the bias
/// still to add (the other routes').
pub(super) fn forward<'b>(y: &mut [f32], x: &[f32], d: &ConvDims, bands: &[Range<usize>], chunks: &mut [ChunkScratch], route: Route, bias: Option<&'b [f32]>) -> Option<&'b [f32]> {
    let tile_bias = if let Route::Tile(..) = route { bias } else { None };
    let (h, w) = d.geom.in_hw();
    let (ho, wo) = d.geom.out_hw();
    // Each band's rows of every output channel: disjoint pieces of y, handed to its task.
    let mut pieces: Vec<Vec<&mut [f32]>> = bands.iter().map(|_| Vec::with_capacity(d.c_out)).collect();
    for yc in y.chunks_exact_mut(ho * wo) {
        let mut rest = yc;
        for (rows, band_pieces) in bands.iter().zip(&mut pieces) {
            let (piece, tail) = rest.split_at_mut(rows.len() * wo);
            band_pieces.push(piece);
            rest = tail;
        }
    }
    bands.par_iter().zip(chunks.par_iter_mut()).zip(pieces).for_each(|((rows, s), out)| {
        let (bd, input_rows) = band(d, rows.clone());
        // The copies live with the thread, not the layer: one pair per thread serves every
        // layer of a net (a layer's scratch would keep its own pair, gigabytes over a style
        // network on a large photo).
        BAND.with_borrow_mut(|(band_in, band_out)| {
            band_in.clear();
            for xc in x.chunks_exact(h * w) {
                band_in.extend_from_slice(&xc[input_rows.start * w..input_rows.end * w]);
            }
            band_out.resize(d.c_out * rows.len() * wo, 0.0);
            match route {
                Route::Winograd(k, t) => winograd::forward_sample(k, band_out, band_in, t, &bd, &mut s.winograd, false, Threads::One),
                Route::Tile(k, panels) => tiled::forward_sample(k, band_out, band_in, panels, tile_bias, &bd, &mut s.tiled, false, Threads::One),
                Route::Narrow(k, weight, w) => narrow::forward_sample(k, band_out, band_in, weight, w, &bd, &mut s.tiled, &mut s.narrow),
            }
            for (piece, values) in out.into_iter().zip(band_out.chunks_exact(rows.len() * wo)) {
                piece.copy_from_slice(values);
            }
        });
    });
    if tile_bias.is_some() { None } else { bias }
}

thread_local! {
    /// A band's input rows `[Cin, rows, W]` and output rows `[Cout, rows, Wo]`.
    static BAND: std::cell::RefCell<(Vec<f32>, Vec<f32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}
