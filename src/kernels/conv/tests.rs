//! Every path against the definition (`reference.rs`), in thread pools of 1, 2 and 3.

use super::tile::tests::runnable_kernels;
use super::*;
use crate::geometry::{Padding, Window2d};
use crate::kernels::isa::Isa;
use crate::rng::Rng;

/// `|fast - reference| <= 1e-4 (1 + |reference|)` everywhere (NaN fails).
fn close(a: &[f32], b: &[f32], what: &str) {
    close_within_ulps(a, b, None, what)
}

/// Winograd's rounding error in float epsilons of the output's sum of absolute terms
/// (`Case::y_size`), for transform `t`. Its transforms add and subtract the terms in large
/// combinations (F(2x2, 5x5)'s B^T holds 4s and 5s), so an output that is a small difference
/// of large terms keeps an error of the terms' size, as any summation does; a few float
/// epsilons of it: 4 for the 2x2 transforms; 16 for F(4x4, 3x3), whose `A^T` holds 8s and
/// 1/8s (a numerical model, random operands, 64 channels: 1.2 units on average and 4.2 at
/// most, against F(2x2, 3x3)'s 0.2 and 0.5).
pub(super) fn winograd_ulps(t: winograd::Transform) -> f32 {
    if t.m == 4 { 16.0 } else { 4.0 }
}

/// `winograd_ulps` of the transform Winograd runs `d` with (`None`: a problem it does not
/// take), times `f32::EPSILON`.
fn winograd_units(d: Option<ConvDims>) -> f32 {
    let t = match d.map(|d| winograd::Layout::of(&d)) {
        Some(winograd::Layout::Channels(t)) => t,
        _ => winograd::Transform::F2X3,
    };
    winograd_ulps(t) * f32::EPSILON
}

/// The same for Winograd's weight gradient (`winograd/weight_grad.rs`), whose sums of
/// products run over every block of every sample in the transform's domain, where values are
/// larger than the result: F(2x2, 5x5) measured 2.4-12 units on random operands (1-16 samples
/// of 32 -> 64 channels on 14x14, the fewer samples the more), F(2x2, 3x3) under 2.
const WINOGRAD_WEIGHT_GRAD_ULPS: f32 = 16.0 * f32::EPSILON;

/// As `close`, plus `units x size[i]` where `size` is given.
fn close_within_ulps(a: &[f32], b: &[f32], size: Option<(&[f32], f32)>, what: &str) {
    let (size, units) = (size.map(|(s, _)| s), size.map_or(0.0, |(_, u)| u));
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let slack = size.map_or(0.0, |s| units * s[i]);
        #[allow(clippy::neg_cmp_op_on_partial_ord)]
        let ok = (x - y).abs() <= 1e-4 * (1.0 + y.abs()) + slack;
        assert!(ok, "{what}[{i}]: fast {x} vs reference {y} (terms of size {})", size.map_or(0.0, |s| s[i]));
    }
}

/// `gemm`, and each tile this CPU has, direct, under Winograd and with pixels in its lanes (one
/// printed line for each tile it lacks).
fn paths(test: &str) -> Vec<ConvPath> {
    let mut p = vec![ConvPath::Gemm];
    for k in runnable_kernels(test) {
        p.extend([ConvPath::Tile(k), ConvPath::Winograd(k), ConvPath::Narrow(k)]);
    }
    p
}

pub(super) fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a thread pool").install(f)
}

/// Every case on every path, in pools of 1, 2 and 3 threads.
fn check_all(cases: &[Case], paths: &[ConvPath]) {
    for threads in [1, 2, 3] {
        in_pool(threads, || {
            for (i, case) in cases.iter().enumerate() {
                for &path in paths {
                    case.check(path, &format!("{threads} threads, case {i}"));
                }
            }
        });
    }
}

/// One convolution's data and the reference's results.
struct Case {
    d: ConvDims,
    x: Vec<f32>,
    wt: Vec<f32>,
    b: Vec<f32>,
    dy: Vec<f32>,
    y: Vec<f32>,
    /// Gradients accumulated onto the non-zero starting values below.
    dx: Vec<f32>,
    dw: Vec<f32>,
    db: Vec<f32>,
    /// The sums of absolute terms of `y`, `dx` and `dw` (the same definitions on |x|, |w|,
    /// |dy|): the scale of a summation's rounding error.
    y_size: Vec<f32>,
    dx_size: Vec<f32>,
    dw_size: Vec<f32>,
}

const DX0: f32 = 0.5;
const DW0: f32 = 0.25;
const DB0: f32 = 1.0;

impl Case {
    fn new(d: ConvDims, rng: &mut Rng) -> Case {
        let (h, w) = d.geom.in_hw();
        let (ho, wo) = d.geom.out_hw();
        let (kh, kw) = (d.geom.rows.kernel, d.geom.cols.kernel);
        let x = rng.uniform_vec(d.n * d.c_in * h * w, -1.0, 1.0);
        let wt = rng.uniform_vec(d.c_out * (d.c_in / d.groups) * kh * kw, -1.0, 1.0);
        let b = rng.uniform_vec(d.c_out, -1.0, 1.0);
        let mut y = vec![0.0; d.n * d.c_out * ho * wo];
        conv2d_forward_ref(&mut y, &x, &wt, Some(&b), &d);
        let dy = rng.uniform_vec(y.len(), -1.0, 1.0);
        // Start from non-zero gradients: the kernels must accumulate.
        let (mut dx, mut dw, mut db) = (vec![DX0; x.len()], vec![DW0; wt.len()], vec![DB0; d.c_out]);
        conv2d_backward_ref(&mut dx, &mut dw, &mut db, &dy, &x, &wt, &d);
        let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<f32>>();
        let mut y_size = vec![0.0; y.len()];
        conv2d_forward_ref(&mut y_size, &abs(&x), &abs(&wt), None, &d);
        let (mut dx_size, mut dw_size, mut db_unused) = (vec![0.0; x.len()], vec![0.0; wt.len()], vec![0.0; d.c_out]);
        conv2d_backward_ref(&mut dx_size, &mut dw_size, &mut db_unused, &abs(&dy), &abs(&x), &abs(&wt), &d);
        Case { d, x, wt, b, dy, y, dx, dw, db, y_size, dx_size, dw_size }
    }

    /// Forward, all gradients together, and the weight gradient alone (as a first layer asks).
    fn check(&self, path: ConvPath, what: &str) {
        let Case { d, x, wt, b, dy, .. } = self;
        let mut scratch = ConvScratch::default();
        // Winograd computes the forward pass and input gradient where it applies.
        let winograd = matches!(path, ConvPath::Winograd(_) | ConvPath::Auto);
        let (y_units, dx_units) = (winograd_units(Some(*d)), winograd_units(tiled::transposed_dims(d)));
        let (y_size, dx_size) = (winograd.then_some((&self.y_size[..], y_units)), winograd.then_some((&self.dx_size[..], dx_units)));
        let dw_size = winograd.then_some((&self.dw_size[..], WINOGRAD_WEIGHT_GRAD_ULPS));
        let close_dw = |got: &[f32], want: &[f32], what: &str| close_within_ulps(got, want, dw_size, what);
        let mut y = vec![f32::NAN; self.y.len()];
        conv2d_forward_via(path, &mut y, x, wt, Some(b), d, &mut scratch);
        close_within_ulps(&y, &self.y, y_size, &format!("{what} {path:?} forward {d:?}"));
        let (mut dx, mut dw, mut db) = (vec![DX0; x.len()], vec![DW0; wt.len()], vec![DB0; d.c_out]);
        conv2d_backward_via(path, Some(&mut dx), Some(&mut dw), Some(&mut db), dy, x, wt, d, &mut scratch);
        close_within_ulps(&dx, &self.dx, dx_size, &format!("{what} {path:?} d_input {d:?}"));
        close_dw(&dw, &self.dw, &format!("{what} {path:?} d_weight {d:?}"));
        close(&db, &self.db, &format!("{what} {path:?} d_bias"));
        let mut dw_only = vec![DW0; wt.len()];
        conv2d_backward_via(path, None, Some(&mut dw_only), None, dy, x, wt, d, &mut scratch);
        close_dw(&dw_only, &self.dw, &format!("{what} {path:?} d_weight alone {d:?}"));
        let mut dx_only = vec![DX0; x.len()];
        conv2d_backward_via(path, Some(&mut dx_only), None, None, dy, x, wt, d, &mut scratch);
        close_within_ulps(&dx_only, &self.dx, dx_size, &format!("{what} {path:?} d_input alone {d:?}"));
        // Written over buffers of NaN instead of added to DX0, DW0 and DB0: each gradient
        // alone and all three together.
        let written = |reference: &[f32], start: f32| -> Vec<f32> { reference.iter().map(|v| v - start).collect() };
        let (dx_w, dw_w, db_w) = (written(&self.dx, DX0), written(&self.dw, DW0), written(&self.db, DB0));
        let write = (Store::Write, Store::Write);
        let (mut dx, mut dw, mut db) = (vec![f32::NAN; x.len()], vec![f32::NAN; wt.len()], vec![f32::NAN; d.c_out]);
        conv2d_backward_stored(path, Some(&mut dx), write, Some(&mut dw), Some(&mut db), dy, x, wt, d, &mut scratch);
        close_within_ulps(&dx, &dx_w, dx_size, &format!("{what} {path:?} d_input written {d:?}"));
        close_dw(&dw, &dw_w, &format!("{what} {path:?} d_weight written {d:?}"));
        close(&db, &db_w, &format!("{what} {path:?} d_bias written"));
        let (mut dx, mut dw) = (vec![f32::NAN; x.len()], vec![f32::NAN; wt.len()]);
        conv2d_backward_stored(path, Some(&mut dx), write, None, None, dy, x, wt, d, &mut scratch);
        close_within_ulps(&dx, &dx_w, dx_size, &format!("{what} {path:?} d_input written alone {d:?}"));
        conv2d_backward_stored(path, None, write, Some(&mut dw), None, dy, x, wt, d, &mut scratch);
        close_dw(&dw, &dw_w, &format!("{what} {path:?} d_weight written alone {d:?}"));
    }
}

/// A sample's output (with a bias, which the direct tile's tiles start from) and input
/// gradient do not depend on the batch around it: alone (its channels split across the pool)
/// or in a batch (samples split, or the whole batch at once), the same bits.
#[test]
fn a_sample_gets_the_same_bits_alone_and_in_a_batch() {
    // The direct tile (5x5), Winograd both ways (3x3, 24 and 40 channels), and weights 25
    // times a padded sample, whose batch runs at once (`batched.rs`, 7x7).
    for (k, c_in, c_out) in [(5, 8, 72), (3, 24, 40), (7, 8, 128)] {
        same_bits_alone_and_in_a_batch(k, c_in, c_out);
    }
}

fn same_bits_alone_and_in_a_batch(k: usize, c_in: usize, c_out: usize) {
    let window = Window2d::square(k, 1, Padding::uniform(k / 2));
    let geom = window.resolve(9, 11).unwrap();
    let mut rng = Rng::new(4);
    let n = 3;
    let d = ConvDims { n, c_in, c_out, groups: 1, geom };
    if k == 3 && Isa::active() != Isa::Scalar {
        assert!(ConvPath::Auto.forward_name(&d).starts_with("winograd"), "{d:?} runs on Winograd");
    }
    assert_eq!(batched::takes_forward(&d), k == 7, "{d:?}");
    let (in_len, out_len) = (c_in * 99, c_out * 99);
    let x = rng.uniform_vec(n * in_len, -1.0, 1.0);
    let wt = rng.uniform_vec(c_out * c_in * k * k, -1.0, 1.0);
    let dy = rng.uniform_vec(n * out_len, -1.0, 1.0);
    let b = rng.uniform_vec(c_out, -1.0, 1.0);
    for threads in [2, 3] {
        in_pool(threads, || {
            let mut scratch = ConvScratch::default();
            let (mut y, mut dx) = (vec![0.0; n * out_len], vec![0.0; n * in_len]);
            conv2d_forward(&mut y, &x, &wt, Some(&b), &d, &mut scratch);
            conv2d_backward(Some(&mut dx), None, None, &dy, &x, &wt, &d, &mut scratch);
            let one = ConvDims { n: 1, ..d };
            for s in 0..n {
                let (mut y1, mut dx1) = (vec![0.0; out_len], vec![0.0; in_len]);
                conv2d_forward(&mut y1, &x[s * in_len..(s + 1) * in_len], &wt, Some(&b), &one, &mut scratch);
                conv2d_backward(Some(&mut dx1), None, None, &dy[s * out_len..(s + 1) * out_len], &x[s * in_len..(s + 1) * in_len], &wt, &one, &mut scratch);
                assert_eq!(y1, y[s * out_len..(s + 1) * out_len], "{threads} threads, sample {s}: output");
                assert_eq!(dx1, dx[s * in_len..(s + 1) * in_len], "{threads} threads, sample {s}: input gradient");
            }
        })
    }
}

/// A large sample alone on a pool is cut into bands of output rows (`bands.rs`): the same bits
/// as in a batch, on the direct tile and under Winograd, with strides, dilation, uneven
/// padding, odd row counts, few output channels, and a NaN (which sends the whole sample to the
/// direct tile, as in a batch).
#[test]
fn a_sample_cut_into_bands_gets_the_same_bits_as_in_a_batch() {
    // (Cin, Cout, kernel, stride, dilation, padding, input H x W)
    type Band = (usize, usize, [usize; 2], [usize; 2], [usize; 2], Padding, [usize; 2]);
    let cases: [Band; 6] = [
        // Johnson et al.'s last layer: 32 -> 3 channels, 9x9, padding 4.
        (32, 3, [9, 9], [1, 1], [1, 1], Padding::uniform(4), [61, 53]),
        // Winograd's 3x3, an odd number of rows.
        (24, 40, [3, 3], [1, 1], [1, 1], Padding::uniform(1), [57, 64]),
        (16, 16, [3, 3], [1, 1], [1, 1], Padding::explicit([0, 2, 1, 0]), [60, 50]),
        // ResNet's first layer; a strided 5x5 with uneven padding; a dilated 3x3.
        (3, 64, [7, 7], [2, 2], [1, 1], Padding::uniform(3), [112, 100]),
        (8, 24, [5, 5], [2, 3], [1, 1], Padding::explicit([2, 1, 0, 2]), [130, 150]),
        (8, 20, [3, 3], [1, 1], [2, 2], Padding::Same, [55, 52]),
    ];
    let mut rng = Rng::new(21);
    for (c_in, c_out, kernel, stride, dilation, padding, [h, w]) in cases {
        let window = Window2d { kernel, stride, dilation, padding, ceil_mode: false };
        let geom = window.resolve(h, w).unwrap();
        let d = ConvDims { n: 2, c_in, c_out, groups: 1, geom };
        let one = ConvDims { n: 1, ..d };
        let (in_len, out_len) = (c_in * d.in_plane(), c_out * d.out_plane());
        let mut x = rng.uniform_vec(2 * in_len, -1.0, 1.0);
        let wt = rng.uniform_vec(c_out * c_in * kernel[0] * kernel[1], -1.0, 1.0);
        let b = rng.uniform_vec(c_out, -1.0, 1.0);
        for nan in [false, true] {
            if nan {
                x[in_len / 2 + 7] = f32::NAN;
            }
            let mut want = vec![0.0; out_len];
            conv2d_forward_ref(&mut want, &x[..in_len], &wt, Some(&b), &one);
            for path in paths("a_sample_cut_into_bands_gets_the_same_bits_as_in_a_batch") {
                let mut batch = vec![0.0; 2 * out_len];
                in_pool(2, || conv2d_forward_via(path, &mut batch, &x, &wt, Some(&b), &d, &mut ConvScratch::default()));
                for threads in [2, 3] {
                    let mut alone = vec![0.0; out_len];
                    in_pool(threads, || {
                        assert!(bands::row_bands(&one, Threads::Pool).is_some(), "{one:?} is cut into bands");
                        conv2d_forward_via(path, &mut alone, &x[..in_len], &wt, Some(&b), &one, &mut ConvScratch::default())
                    });
                    let what = format!("{path:?} {threads} threads, NaN {nan}, {one:?}");
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert!(bits(&alone) == bits(&batch[..out_len]), "{what}: other bits than in a batch");
                    if !nan {
                        close(&alone, &want, &what);
                    } else {
                        let pattern = |v: &[f32]| v.iter().map(|f| f.is_nan()).collect::<Vec<_>>();
                        assert!(pattern(&alone) == pattern(&want), "{what}: NaN where the definition has none, or none where it has");
                    }
                }
            }
        }
    }
}

/// Small random geometries: every stride, dilation, padding and group count, 1-3 channels
/// per group.
#[test]
fn every_path_matches_the_reference_on_small_random_shapes() {
    let mut rng = Rng::new(11);
    let mut cases = Vec::new();
    while cases.len() < 60 {
        let groups = [1, 1, 2, 3][rng.below(4)];
        let c_in = groups * (1 + rng.below(3));
        let c_out = groups * (1 + rng.below(3));
        let k = [1, 2, 3, 5][rng.below(4)];
        let kw = if rng.below(4) == 0 { 1 + rng.below(3) } else { k };
        let stride = [1 + rng.below(3), 1 + rng.below(3)];
        let dilation = if rng.below(4) == 0 { [2, 1 + rng.below(2)] } else { [1, 1] };
        let padding = match rng.below(3) {
            0 => Padding::Valid,
            1 => Padding::Same,
            _ => Padding::explicit([rng.below(3), rng.below(3), rng.below(3), rng.below(3)]),
        };
        let window = Window2d { kernel: [k, kw], stride, dilation, padding, ceil_mode: false };
        let (h, w) = (k * 2 + 2 + rng.below(8), kw * 2 + 2 + rng.below(8));
        let Ok(geom) = window.resolve(h, w) else { continue };
        cases.push(Case::new(ConvDims { n: 1 + rng.below(5), c_in, c_out, groups, geom }, &mut rng));
    }
    let paths = paths("small random shapes");
    check_all(&cases, &paths);
}

/// The sizes that exercise a tile's blocking: 1, 2 and partial blocks of 16 and 32 channels
/// (on both sides, so the transposed input gradient has them too), reductions shorter and
/// longer than 2,048 taps, batch 1 (channel blocks shared across the pool) and batch 5 (more
/// samples than threads), stride, dilation and groups.
#[test]
fn every_path_matches_the_reference_across_channel_blocks_and_long_reductions() {
    let mut rng = Rng::new(21);
    // (n, c_in, c_out, groups, kernel, stride, dilation, padding, h, w)
    type Shape = (usize, usize, usize, usize, usize, usize, usize, usize, usize, usize);
    let shapes: &[Shape] = &[
        (1, 16, 16, 1, 3, 1, 1, 1, 7, 9),
        (5, 17, 33, 1, 3, 1, 1, 1, 6, 5),
        (1, 40, 72, 1, 3, 1, 1, 1, 8, 7),
        (3, 72, 40, 1, 3, 1, 1, 0, 7, 8),
        (2, 96, 20, 1, 5, 1, 1, 2, 6, 6),  // 2,400 taps: the forward reduction is cut
        (1, 96, 70, 1, 5, 1, 1, 2, 5, 5),  // 2,400 taps, batch 1
        (4, 24, 40, 1, 3, 2, 1, 1, 9, 9),  // strided: input gradient on gemm
        (2, 32, 48, 1, 3, 1, 2, 2, 9, 8),  // dilated
        (2, 64, 64, 2, 3, 1, 1, 1, 6, 6),  // 2 groups of 32
        (3, 96, 66, 3, 1, 1, 1, 0, 5, 4),  // pointwise, 3 groups
        (2, 4, 100, 1, 2, 1, 1, 1, 6, 6),  // 4 input channels: the smallest tiled input gradient
        (5, 3, 31, 1, 5, 1, 1, 2, 10, 10), // conv1-like: input gradient on gemm
        (4, 1, 6, 1, 5, 1, 1, 2, 28, 28),  // LeNet's conv1: pixels in the lanes, rows read in place
        (2, 3, 7, 1, 5, 1, 1, 2, 11, 40),  // rows of 40 pixels: a whole strip and a tail
        (2, 2, 3, 1, 3, 1, 2, 2, 9, 33),   // dilated, rows read in place
        (2, 4, 5, 1, 3, 2, 1, 1, 12, 40),  // strided: the strips copied out
        (1, 1, 2, 1, 1, 1, 1, 0, 1, 1),
    ];
    let cases: Vec<Case> = shapes
        .iter()
        .map(|&(n, c_in, c_out, groups, k, s, dil, p, h, w)| {
            let window = Window2d { kernel: [k, k], stride: [s, s], dilation: [dil, dil], padding: Padding::uniform(p), ceil_mode: false };
            Case::new(ConvDims { n, c_in, c_out, groups, geom: window.resolve(h, w).unwrap() }, &mut rng)
        })
        .collect();
    // Padding as wide as the filter on one side only: its transposed problem would need a
    // negative padding there, so the input gradient must leave the tile.
    let lopsided = Window2d { padding: Padding::explicit([1, 0, 0, 1]), ..Window2d::square(1, 1, Padding::Valid) };
    let mut cases = cases;
    cases.push(Case::new(ConvDims { n: 2, c_in: 8, c_out: 20, groups: 1, geom: lopsided.resolve(5, 6).unwrap() }, &mut rng));
    let mut paths = paths("channel blocks");
    paths.push(ConvPath::Auto);
    check_all(&cases, &paths);
}

/// Layers whose weights outweigh a sample run the whole batch at once (`batched.rs`): held
/// to the reference through the forward pass, the input gradient (transposed, or on `gemm`
/// when strided) and the weight gradient, across channel blocks, cut reductions, and pools
/// that split the blocks unevenly; each shape is checked to take the path it is here for.
#[test]
fn the_whole_batch_path_matches_the_reference() {
    let mut rng = Rng::new(33);
    // (n, c_in, c_out, kernel, stride, padding, h, w, forward here, weight gradient here)
    type Shape = (usize, usize, usize, usize, usize, usize, usize, usize, bool, bool);
    let shapes: &[Shape] = &[
        (3, 64, 80, 3, 1, 1, 3, 3, true, true),   // 3 blocks of 32 (or 5 of 16), both gradients here
        (2, 256, 40, 3, 1, 1, 2, 2, true, true),  // 2,304 taps: the forward reduction is cut
        (4, 40, 70, 3, 1, 1, 5, 4, false, true),  // the weight gradient alone
        (5, 64, 48, 3, 2, 1, 5, 5, false, true),  // strided: input gradient on gemm
        (2, 96, 33, 5, 1, 2, 2, 3, true, true),   // 5x5, odd channel counts
    ];
    let cases: Vec<Case> = shapes
        .iter()
        .map(|&(n, c_in, c_out, k, s, p, h, w, fwd, wgrad)| {
            let geom = Window2d::square(k, s, Padding::uniform(p)).resolve(h, w).unwrap();
            let d = ConvDims { n, c_in, c_out, groups: 1, geom };
            assert_eq!((batched::takes_forward(&d), batched::takes_weight_grad(&d)), (fwd, wgrad), "{d:?}");
            Case::new(d, &mut rng)
        })
        .collect();
    let mut paths: Vec<ConvPath> = runnable_kernels("the whole batch").into_iter().map(ConvPath::Tile).collect();
    paths.push(ConvPath::Auto);
    check_all(&cases, &paths);
}

/// The weight gradient of small maps in groups of samples (`weight_grad_group`): more samples
/// per thread than a group holds, and a last group cut short, held to the reference on every
/// path and pool; each shape is checked to be grouped, and a large map not to be.
#[test]
fn weight_gradients_in_groups_of_samples_match_the_reference() {
    let mut rng = Rng::new(35);
    // (n, c_in, c_out, kernel, padding, h, w): groups of 8, 8, 4 and 2 samples.
    let shapes: &[(usize, usize, usize, usize, usize, usize, usize)] = &[(21, 6, 16, 5, 0, 14, 14), (19, 5, 40, 3, 1, 6, 6), (11, 8, 33, 5, 2, 14, 14), (7, 3, 20, 3, 1, 20, 19)];
    let cases: Vec<Case> = shapes
        .iter()
        .map(|&(n, c_in, c_out, k, p, h, w)| {
            let d = ConvDims { n, c_in, c_out, groups: 1, geom: Window2d::square(k, 1, Padding::uniform(p)).resolve(h, w).unwrap() };
            assert!(weight_grad_group(&d) > 1 && n > 2 * weight_grad_group(&d) && n % weight_grad_group(&d) != 0, "{d:?}");
            Case::new(d, &mut rng)
        })
        .collect();
    let large = ConvDims { n: 4, c_in: 1, c_out: 32, groups: 1, geom: Window2d::square(5, 1, Padding::uniform(2)).resolve(28, 28).unwrap() };
    assert_eq!(weight_grad_group(&large), 1, "28x28 maps go sample by sample");
    let mut paths = paths("weight gradients in groups");
    paths.push(ConvPath::Auto);
    check_all(&cases, &paths);
}

/// `Auto` runs what `FOVEA_ISA` and the CPU allow, and names it.
#[test]
fn auto_takes_the_widest_allowed_tile() {
    let geom = Window2d::square(3, 1, Padding::uniform(1)).resolve(16, 16).unwrap();
    let wide = ConvDims { n: 2, c_in: 32, c_out: 64, groups: 1, geom };
    let narrow = ConvDims { c_out: 16, ..wide };
    let strided = ConvDims { geom: Window2d::square(3, 2, Padding::uniform(1)).resolve(8, 8).unwrap(), ..wide };
    let want = match Isa::active() {
        Isa::Scalar => "gemm",
        Isa::Avx2 => "tiled-avx2",
        Isa::Avx512 => "tiled-avx512",
    };
    let wino = |tile: &str| tile.replace("tiled", "winograd");
    assert_eq!(ConvPath::Auto.forward_name(&strided), want);
    assert_eq!(ConvPath::Auto.forward_name(&wide), wino(want));
    assert_eq!(ConvPath::Auto.forward_name(&ConvDims { c_in: 15, ..wide }), want, "too few channels for Winograd");
    // At most 16 channels: AVX-512's tile of one vector, AVX2's tile where that is the widest.
    assert_eq!(ConvPath::Auto.forward_name(&narrow), wino(want));
    assert_eq!(ConvPath::Tiled.forward_name(&wide), want, "Tiled is the direct tile");
    let small = ConvDims { geom: Window2d::square(3, 1, Padding::uniform(1)).resolve(8, 8).unwrap(), ..wide };
    assert_eq!(ConvPath::Auto.forward_name(&small), want, "16 blocks of 2x2: too few for Winograd");
    // A forced path runs wherever the CPU has its tile, whatever FOVEA_ISA says.
    assert_eq!(ConvPath::Winograd(Kernel::AVX2).forward_name(&small), if Isa::Avx2.supported() { "winograd-avx2" } else { "gemm" });
    let pointwise = ConvDims { geom: Window2d::square(1, 1, Padding::Valid).resolve(8, 8).unwrap(), ..wide };
    assert_eq!(ConvPath::Auto.forward_name(&pointwise), "gemm");
    assert_eq!(ConvPath::Gemm.forward_name(&wide), "gemm");
}

/// A NaN in the input reaches exactly the outputs and weight gradients it feeds, and a NaN in
/// dY exactly the input and bias gradients it feeds, on every path (as PyTorch: nothing turns
/// a NaN into a number). (A NaN in dY also reaches, on the fast paths, weight gradients of taps
/// that read zero padding: 0 x NaN; the definition skips those products.)
#[test]
fn every_path_propagates_nan_as_the_definition() {
    let mut rng = Rng::new(31);
    let nan_mask = |v: &[f32]| v.iter().map(|x| x.is_nan()).collect::<Vec<bool>>();
    // (24, 20, 3, 1, 1) takes Winograd both ways, (16, 8, ..) for the forward pass only.
    for &(c_in, c_out, k, stride, pad) in &[(8, 40, 3, 1, 1), (16, 33, 5, 1, 2), (4, 20, 3, 2, 1), (3, 10, 5, 1, 2), (24, 20, 3, 1, 1), (16, 8, 3, 1, 1)] {
        let geom = Window2d::square(k, stride, Padding::uniform(pad)).resolve(9, 10).unwrap();
        let d = ConvDims { n: 2, c_in, c_out, groups: 1, geom };
        let case = Case::new(d, &mut rng);
        let mut x = case.x.clone();
        x[case.x.len() / 2 + 3] = f32::NAN;
        let mut dy = case.dy.clone();
        dy[case.y.len() / 3] = f32::NAN;
        let mut y_ref = vec![0.0; case.y.len()];
        conv2d_forward_ref(&mut y_ref, &x, &case.wt, Some(&case.b), &d);
        let (mut dx_ref, mut dw_ref, mut db_ref) = (vec![0.0; x.len()], vec![0.0; case.wt.len()], vec![0.0; c_out]);
        conv2d_backward_ref(&mut dx_ref, &mut dw_ref, &mut db_ref, &dy, &case.x, &case.wt, &d);
        let mut dw_x_ref = vec![0.0; case.wt.len()];
        conv2d_backward_ref(&mut vec![0.0; x.len()], &mut dw_x_ref, &mut vec![0.0; c_out], &case.dy, &x, &case.wt, &d);
        assert!(y_ref.iter().any(|v| v.is_nan()) && dx_ref.iter().any(|v| v.is_nan()) && dw_x_ref.iter().any(|v| v.is_nan()));
        for path in paths("NaN propagation") {
            let mut scratch = ConvScratch::default();
            let mut y = vec![0.0; case.y.len()];
            conv2d_forward_via(path, &mut y, &x, &case.wt, Some(&case.b), &d, &mut scratch);
            assert_eq!(nan_mask(&y), nan_mask(&y_ref), "{path:?} {d:?}: NaN outputs");
            let (mut dx, mut db) = (vec![0.0; x.len()], vec![0.0; c_out]);
            conv2d_backward_via(path, Some(&mut dx), None, Some(&mut db), &dy, &case.x, &case.wt, &d, &mut scratch);
            assert_eq!(nan_mask(&dx), nan_mask(&dx_ref), "{path:?} {d:?}: NaN input gradients");
            assert_eq!(nan_mask(&db), nan_mask(&db_ref), "{path:?} {d:?}: NaN bias gradients");
            let mut dw = vec![0.0; case.wt.len()];
            conv2d_backward_via(path, None, Some(&mut dw), None, &case.dy, &x, &case.wt, &d, &mut scratch);
            assert_eq!(nan_mask(&dw), nan_mask(&dw_x_ref), "{path:?} {d:?}: NaN weight gradients");
        }
    }
}

/// Winograd's geometries, 3x3 and 5x5, each layout and transform (`Layout::of`: F(2x2, 3x3)
/// by blocks, by channels, F(4x4, 3x3) and F(2x2, 5x5) by channels): images of odd and even
/// sides (a last block partly outside), one output pixel, padding 0, 1, 2, 4 and lopsided (its
/// transposed problem's too), images of several strips, channels at and above the threshold,
/// batch 1 (products shared across the pool) and batch 5; both directions, in pools of 1, 2
/// and 3 threads.
#[test]
fn winograd_matches_the_reference_on_its_geometries() {
    use winograd::{Layout, Transform};
    let mut rng = Rng::new(41);
    let (blocks, f2x3, f4x3, f2x5) = (Layout::Blocks, Layout::Channels(Transform::F2X3), Layout::Channels(Transform::F4X3), Layout::Channels(Transform::F2X5));
    // (n, c_in, c_out, filter side, padding [top, bottom, left, right], h, w, layout)
    type Shape = (usize, usize, usize, usize, [usize; 4], usize, usize, Layout);
    let shapes: &[Shape] = &[
        (2, 16, 16, 3, [1, 1, 1, 1], 8, 8, blocks),
        (5, 17, 20, 3, [1, 1, 1, 1], 7, 9, blocks),
        (1, 16, 33, 3, [0, 0, 0, 0], 3, 3, blocks),   // one output pixel
        (1, 20, 16, 3, [0, 0, 0, 0], 4, 3, blocks),   // 2 x 1 outputs
        (2, 24, 18, 3, [2, 2, 2, 2], 5, 6, blocks),   // the transposed problem has no padding
        (3, 16, 24, 3, [0, 2, 1, 0], 6, 7, blocks),   // lopsided
        (1, 40, 16, 3, [1, 1, 1, 1], 45, 3, blocks),  // a narrow, tall image: segments of one tile
        (1, 16, 16, 3, [1, 1, 1, 1], 176, 170, blocks), // V by channels past 4 MB; several strips
        (2, 136, 128, 3, [1, 1, 1, 1], 7, 9, f2x3),   // U too large for blocks, 6 blocks of 4x4
        (2, 64, 64, 3, [1, 1, 1, 1], 20, 22, f4x3),   // 4x4 blocks: the last column half outside
        (1, 64, 70, 3, [1, 1, 1, 1], 19, 21, f4x3),   // 3 of 4 rows and 1 of 4 columns in, batch 1
        (2, 24, 18, 3, [2, 2, 2, 2], 19, 18, f4x3),   // the transposed problem has no padding
        (3, 16, 24, 3, [0, 2, 1, 0], 23, 26, f4x3),   // lopsided
        (2, 16, 16, 5, [2, 2, 2, 2], 8, 8, f2x5),
        (3, 32, 64, 5, [2, 2, 2, 2], 14, 14, f2x5), // the MNIST net's conv2: 49 tiles, two strips
        (1, 64, 32, 5, [2, 2, 2, 2], 14, 13, f2x5), // its input gradient's direction, batch 1
        (1, 16, 20, 5, [0, 0, 0, 0], 5, 5, f2x5),   // one output pixel
        (2, 20, 16, 5, [4, 4, 4, 4], 5, 6, f2x5),   // the transposed problem has no padding
        (3, 16, 24, 5, [0, 3, 1, 2], 7, 8, f2x5),   // lopsided
        (1, 40, 16, 5, [2, 2, 2, 2], 45, 5, f2x5),  // a narrow, tall image
    ];
    let cases: Vec<Case> = shapes
        .iter()
        .map(|&(n, c_in, c_out, k, pad, h, w, layout)| {
            let window = Window2d { padding: Padding::explicit(pad), ..Window2d::square(k, 1, Padding::Valid) };
            let d = ConvDims { n, c_in, c_out, groups: 1, geom: window.resolve(h, w).unwrap() };
            assert!(winograd::applies(&d), "{d:?}");
            assert_eq!(Layout::of(&d), layout, "{d:?}");
            Case::new(d, &mut rng)
        })
        .collect();
    let paths: Vec<ConvPath> = runnable_kernels("winograd geometries").into_iter().map(ConvPath::Winograd).collect();
    check_all(&cases, &paths);
}

/// Weights or a sample holding a NaN or an infinity leave Winograd for the direct tile (and
/// finite ones do not), 3x3 and 5x5: an infinity in a sample reaches exactly the outputs whose
/// windows hold it (the transforms would spread it over the whole block as inf - inf = NaN).
#[test]
fn winograd_leaves_non_finite_operands_to_the_direct_tile() {
    let mut rng = Rng::new(42);
    for r in [3, 5] {
        let geom = Window2d::square(r, 1, Padding::uniform(r / 2)).resolve(8, 8).unwrap();
        let d = ConvDims { n: 2, c_in: 16, c_out: 16, groups: 1, geom };
        non_finite_operands_leave_winograd(&Case::new(d, &mut rng), r);
    }
}

fn non_finite_operands_leave_winograd(case: &Case, r: usize) {
    let d = case.d;
    for k in runnable_kernels("winograd and non-finite operands") {
        let mut x = case.x.clone();
        x[64 + 8 * 3 + 3] = f32::INFINITY; // sample 0, channel 1, (3, 3)
        let mut y_ref = vec![0.0; case.y.len()];
        conv2d_forward_ref(&mut y_ref, &x, &case.wt, None, &d);
        let mut y = vec![0.0; case.y.len()];
        conv2d_forward_via(ConvPath::Winograd(k), &mut y, &x, &case.wt, None, &d, &mut ConvScratch::default());
        let finite = |v: &[f32]| v.iter().map(|x| x.is_finite()).collect::<Vec<_>>();
        assert_eq!(finite(&y), finite(&y_ref), "{k:?}: an infinite input");
        assert!(y_ref.iter().filter(|v| !v.is_finite()).count() >= r * r * 16);
        // An infinite weight: as the direct tile (which, unlike the definition, also
        // multiplies it by the zero padding: inf x 0 = NaN at the borders).
        let mut wt = case.wt.clone();
        wt[5] = f32::NEG_INFINITY;
        let mut y_direct = vec![0.0; case.y.len()];
        conv2d_forward_via(ConvPath::Tile(k), &mut y_direct, &case.x, &wt, None, &d, &mut ConvScratch::default());
        conv2d_forward_via(ConvPath::Winograd(k), &mut y, &case.x, &wt, None, &d, &mut ConvScratch::default());
        assert_eq!(y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), y_direct.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "{k:?}: an infinite weight");
        // Finite operands do go through Winograd: its transforms round otherwise than the
        // direct tile, so the two cannot agree to the bit everywhere (a path that quietly fell
        // back to the direct tile would).
        conv2d_forward_via(ConvPath::Tile(k), &mut y_direct, &case.x, &case.wt, None, &d, &mut ConvScratch::default());
        conv2d_forward_via(ConvPath::Winograd(k), &mut y, &case.x, &case.wt, None, &d, &mut ConvScratch::default());
        let differing = y.iter().zip(&y_direct).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        assert!(differing > y.len() / 10, "{k:?}: Winograd gave the direct tile's bits at {} of {} outputs", y.len() - differing, y.len());
        non_finite_operands_leave_winograds_weight_grad(case, k, r);
    }
}

/// The weight gradient likewise (`winograd/weight_grad.rs`): an infinite input in a corner
/// reaches the `(r/2 + 1)^2` taps of its channel whose windows hold it (the transforms would
/// spread it over every tap), an infinite output gradient as on the direct tile, and finite
/// operands do go through Winograd.
fn non_finite_operands_leave_winograds_weight_grad(case: &Case, k: Kernel, r: usize) {
    let d = case.d;
    let finite = |v: &[f32]| v.iter().map(|x| x.is_finite()).collect::<Vec<_>>();
    let weight_grad = |path: ConvPath, x: &[f32], dy: &[f32]| {
        let mut dw = vec![0.0; case.wt.len()];
        conv2d_backward_via(path, None, Some(&mut dw), None, dy, x, &case.wt, &d, &mut ConvScratch::default());
        dw
    };
    let mut x = case.x.clone();
    x[d.in_plane()] = f32::INFINITY; // sample 0, channel 1, (0, 0)
    let (mut dx, mut dw_ref, mut db) = (vec![0.0; x.len()], vec![0.0; case.wt.len()], vec![0.0; d.c_out]);
    conv2d_backward_ref(&mut dx, &mut dw_ref, &mut db, &case.dy, &x, &case.wt, &d);
    let dw = weight_grad(ConvPath::Winograd(k), &x, &case.dy);
    assert_eq!(finite(&dw), finite(&dw_ref), "{k:?}: the weight gradient of an infinite input");
    assert_eq!(dw_ref.iter().filter(|v| !v.is_finite()).count(), d.c_out * (r / 2 + 1) * (r / 2 + 1));
    let mut dy = case.dy.clone();
    dy[d.out_plane() + 3] = f32::NEG_INFINITY; // sample 0, channel 1, (0, 3)
    let (dw, dw_direct) = (weight_grad(ConvPath::Winograd(k), &case.x, &dy), weight_grad(ConvPath::Tile(k), &case.x, &dy));
    assert_eq!(finite(&dw), finite(&dw_direct), "{k:?}: the weight gradient of an infinite output gradient");
    assert!(dw_direct.iter().any(|v| !v.is_finite()));
    let (dw, dw_direct) = (weight_grad(ConvPath::Winograd(k), &case.x, &case.dy), weight_grad(ConvPath::Tile(k), &case.x, &case.dy));
    let differing = dw.iter().zip(&dw_direct).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
    assert!(differing > dw.len() / 10, "{k:?}: Winograd's weight gradient gave the direct tile's bits at {} of {}", dw.len() - differing, dw.len());
}

/// Multiply-adds of the lecture's AlexNet conv1 (227x227x3, 96 filters 11x11 stride 4: 55x55
/// outputs) and of a grouped convolution, by hand.
#[test]
fn macs_count_every_multiply_add() {
    let geom = Window2d::square(11, 4, Padding::Valid).resolve(227, 227).unwrap();
    let d = ConvDims { n: 2, c_in: 3, c_out: 96, groups: 1, geom };
    assert_eq!(d.macs(), 2 * 96 * 55 * 55 * 3 * 11 * 11);
    let geom = Window2d::square(3, 1, Padding::uniform(1)).resolve(7, 5).unwrap();
    let grouped = ConvDims { n: 3, c_in: 8, c_out: 6, groups: 2, geom };
    assert_eq!(grouped.macs(), 3 * 6 * 7 * 5 * 4 * 3 * 3);
}

/// The ReLU epilogue gives the bits of the forward pass followed by a ReLU, and the pooled
/// forward pass those of a max pool after it (with its argmax, or the pooled output alone), on
/// every route a forward pass takes: samples
/// split (direct tile, Winograd, gemm, few channels), the whole batch at once, and one large
/// image cut into bands.
/// `(n, c_in, c_out, kernel, padding, h, w)`: a square-filter, stride-1 problem with random
/// input `[n, c_in, h, w]`, weights and bias in [-1, 1].
type Shape = (usize, usize, usize, usize, usize, usize, usize);

fn random_problem(rng: &mut Rng, (n, c_in, c_out, k, p, h, w): Shape) -> (ConvDims, Vec<f32>, Vec<f32>, Vec<f32>) {
    let geom = Window2d::square(k, 1, Padding::uniform(p)).resolve(h, w).unwrap();
    let x = rng.uniform_vec(n * c_in * h * w, -1.0, 1.0);
    let wt = rng.uniform_vec(c_out * c_in * k * k, -1.0, 1.0);
    let b = rng.uniform_vec(c_out, -1.0, 1.0);
    (ConvDims { n, c_in, c_out, groups: 1, geom }, x, wt, b)
}

#[test]
fn the_relu_and_pool_epilogues_are_the_forward_pass_then_a_relu_and_a_pool() {
    let mut rng = Rng::new(51);
    let shapes: &[Shape] = &[
        (3, 8, 20, 5, 2, 9, 10),   // direct tile, samples split
        (3, 24, 32, 3, 1, 12, 12), // Winograd
        (2, 256, 40, 3, 1, 2, 2),  // the whole batch at once
        (1, 4, 8, 3, 1, 64, 60),   // bands of rows
        (2, 16, 24, 1, 0, 6, 6),   // pointwise: gemm
    ];
    let mut paths = paths("the relu epilogue");
    paths.push(ConvPath::Auto);
    for threads in [1, 2] {
        in_pool(threads, || {
            for &shape in shapes {
                let (d, x, wt, b) = random_problem(&mut rng, shape);
                let (n, c_in, c_out) = (d.n, d.c_in, d.c_out);
                if c_in == 256 {
                    assert!(batched::takes_forward(&d), "{d:?} runs as a whole batch");
                }
                if n == 1 && threads > 1 {
                    assert!(bands::row_bands(&d, Threads::Pool).is_some(), "{d:?} runs in bands");
                }
                let (ho, wo) = d.geom.out_hw();
                for &path in &paths {
                    let mut scratch = ConvScratch::default();
                    let mut want = vec![f32::NAN; n * c_out * ho * wo];
                    conv2d_forward_via(path, &mut want, &x, &wt, Some(&b), &d, &mut scratch);
                    crate::kernels::activation::relu_in_place(&mut want);
                    let mut got = vec![f32::NAN; want.len()];
                    conv2d_forward_with(path, Epilogue::Relu, &mut got, &x, &wt, Some(&b), &d, &mut scratch);
                    assert!(want.contains(&0.0) && want.iter().any(|&v| v > 0.0));
                    assert_eq!(got, want, "{threads} threads, {path:?}, {d:?}");
                    // Pooled as it goes (2x2, and 3x3 at stride 2: overlapping windows): the
                    // max pool's own output and argmax over the ReLU's, and the ReLU's kept.
                    for window in [Window2d::square(2, 2, Padding::Valid), Window2d::square(3, 2, Padding::Valid)] {
                        let Ok(pg) = window.resolve(ho, wo) else { continue };
                        let (pho, pwo) = pg.out_hw();
                        let len = n * c_out * pho * pwo;
                        let (mut pool_want, mut arg_want) = (vec![f32::NAN; len], vec![u32::MAX; len]);
                        crate::kernels::pool::max_pool_forward(&mut pool_want, &mut arg_want, &want, &pg);
                        let (mut pooled, mut argmax) = (vec![f32::NAN; len], vec![u32::MAX; len]);
                        let mut kept = vec![f32::NAN; want.len()];
                        let sink = PoolSink { geometry: &pg, out: &mut pooled, argmax: Some(&mut argmax), keep_conv_out: true };
                        conv2d_forward_with(path, Epilogue::ReluThenMaxPool(sink), &mut kept, &x, &wt, Some(&b), &d, &mut scratch);
                        assert_eq!(kept, want, "{threads} threads, {path:?}, {d:?}: the ReLU's output");
                        assert_eq!(pooled, pool_want, "{threads} threads, {path:?}, {d:?}, pooled {window:?}");
                        assert_eq!(argmax, arg_want, "{threads} threads, {path:?}, {d:?}, argmax of {window:?}");
                        // The convolution's output not wanted, with the argmax (training, the
                        // pool's gradient handed down) or without (inference): the same pooled
                        // values and argmax, and where the batch is split by samples the call's
                        // output is never written.
                        for with_argmax in [true, false] {
                            let (mut alone, mut arg_alone) = (vec![f32::NAN; len], vec![u32::MAX; len]);
                            let mut untouched = vec![f32::NAN; want.len()];
                            let argmax = with_argmax.then_some(&mut arg_alone[..]);
                            let sink = PoolSink { geometry: &pg, out: &mut alone, argmax, keep_conv_out: false };
                            conv2d_forward_with(path, Epilogue::ReluThenMaxPool(sink), &mut untouched, &x, &wt, Some(&b), &d, &mut scratch);
                            let at = format!("{threads} threads, {path:?}, {d:?}, {window:?}, argmax {with_argmax}");
                            assert_eq!(alone, pool_want, "{at}: pooled alone");
                            if with_argmax {
                                assert_eq!(arg_alone, arg_want, "{at}: argmax");
                            }
                            let by_samples = n > 1 && !batched::takes_forward(&d);
                            if by_samples {
                                assert!(untouched.iter().all(|v| v.is_nan()), "{at}: the output was written");
                            }
                        }
                    }
                }
            }
        })
    }
}

/// The backward pass from the gradient a max pool hands down (its gradient, argmax and output:
/// `conv2d_backward_pooled`) gives the bits of the pass from the gradient the pool's own gated
/// scatter writes (`max_pool_backward_gated`), on every path, with the input gradient wanted or
/// not, added or written: sample by sample, weight gradients in groups of samples (small maps),
/// Winograd's input gradient, the whole batch at once, and `gemm`'s gradients (few channels);
/// 2x2 windows and overlapping 3x3 ones at stride 2 (a cell can be two windows' argmax).
#[test]
fn the_backward_pass_from_a_pools_gradient_is_the_pass_from_its_scatter() {
    let mut rng = Rng::new(53);
    let shapes: &[Shape] = &[
        (3, 8, 20, 5, 2, 9, 10),   // weight gradients in groups of samples
        (2, 8, 16, 3, 1, 30, 30),  // sample by sample (900 pixels)
        (3, 24, 32, 3, 1, 12, 12), // Winograd's input gradient
        (2, 256, 40, 3, 1, 4, 4),  // the whole batch at once
        (3, 2, 5, 3, 1, 8, 8),     // few channels: gemm's gradients
    ];
    let mut paths = paths("the pooled backward pass");
    paths.push(ConvPath::Auto);
    let mut gated = 0;
    for threads in [1, 2] {
        in_pool(threads, || {
            for &shape in shapes {
                let (d, x, wt, b) = random_problem(&mut rng, shape);
                let (n, c_out) = (d.n, d.c_out);
                if d.c_in == 256 {
                    assert!(batched::takes_weight_grad(&d), "{d:?}: the weight gradient runs on the whole batch");
                }
                let (ho, wo) = d.geom.out_hw();
                let mut scratch = ConvScratch::default();
                for window in [Window2d::square(2, 2, Padding::Valid), Window2d::square(3, 2, Padding::Valid)] {
                    let Ok(pg) = window.resolve(ho, wo) else { continue };
                    let (pho, pwo) = pg.out_hw();
                    let len = n * c_out * pho * pwo;
                    let (mut pooled, mut argmax, mut kept) = (vec![0.0; len], vec![0u32; len], vec![0.0; n * c_out * ho * wo]);
                    let sink = PoolSink { geometry: &pg, out: &mut pooled, argmax: Some(&mut argmax), keep_conv_out: true };
                    conv2d_forward_with(ConvPath::Auto, Epilogue::ReluThenMaxPool(sink), &mut kept, &x, &wt, Some(&b), &d, &mut scratch);
                    gated += pooled.iter().filter(|&&v| v <= 0.0).count();
                    let d_pooled = rng.uniform_vec(len, -1.0, 1.0);
                    let mut dy = vec![0.0; kept.len()];
                    crate::kernels::pool::max_pool_backward_gated(&mut dy, &d_pooled, &argmax, &pooled, ho * wo, pho * pwo, Store::Add);
                    let handed = PooledGrad { d_out: &d_pooled, argmax: &argmax, out: &pooled, out_plane: pho * pwo };
                    for &path in &paths {
                        for (with_dx, store) in [(true, Store::Add), (true, Store::Write), (false, Store::Add)] {
                            let at = format!("{threads} threads, {path:?}, {d:?}, {window:?}, input gradient {with_dx}, {store:?}");
                            let fresh = || (vec![0.5f32; x.len()], vec![0.25f32; wt.len()], vec![1.0f32; c_out]);
                            let ((mut dx, mut dw, mut db), (mut dx2, mut dw2, mut db2)) = (fresh(), fresh());
                            conv2d_backward_stored(path, with_dx.then_some(&mut dx[..]), (store, store), Some(&mut dw), Some(&mut db), &dy, &x, &wt, &d, &mut scratch);
                            conv2d_backward_pooled(path, with_dx.then_some(&mut dx2[..]), (store, store), Some(&mut dw2), Some(&mut db2), handed, &x, &wt, &d, &mut scratch);
                            assert!(dw.iter().any(|&v| v != 0.25), "{at}: a weight gradient of nothing proves nothing");
                            assert_eq!(dx2, dx, "{at}: input gradient");
                            assert_eq!(dw2, dw, "{at}: weight gradient");
                            assert_eq!(db2, db, "{at}: bias gradient");
                        }
                    }
                }
            }
        })
    }
    assert!(gated > 0, "no pooled value at or below zero: the ReLU's gate went untested");
}
