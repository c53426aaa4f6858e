use super::*;
use crate::rng::Rng;

/// The tiles this CPU runs; prints one line for each it cannot.
pub(crate) fn runnable_kernels(test: &str) -> Vec<Kernel> {
    [Kernel::AVX2, Kernel::AVX512, Kernel::AVX512_16]
        .into_iter()
        .filter(|k| {
            let ok = k.isa.supported();
            if !ok {
                println!("{test}: skipped {} (this CPU lacks {})", k.name(), k.isa.name());
            }
            ok
        })
        .collect()
}

fn plain_panels(src: &[f32], rows: usize, cols: usize, width: usize) -> Vec<f32> {
    let mut panels = vec![f32::NAN; rows.div_ceil(width) * cols * width];
    for r in 0..rows {
        for c in 0..cols {
            panels[(r / width) * cols * width + c * width + r % width] = src[r * cols + c];
        }
    }
    panels
}

#[test]
fn panels_hold_the_transpose() {
    let mut rng = Rng::new(2);
    // Widths of 8 lanes and more, and one panel of any width (a transpose into rows that far
    // apart: Winograd's outputs straight into NCHW planes of 196 pixels); rows next to each
    // other and further apart (an image row of every channel: 14 of a 196-pixel plane).
    let cases = [16, 32].iter().flat_map(|&w| [(64, 196), (6, 784), (19, 13), (8, 8), (1, 3), (40, 17), (72, 9)].map(|(r, c)| (r, c, w)));
    for (rows, cols, width) in cases.chain([(196, 32, 196), (49, 16, 49), (13, 9, 13), (7, 3, 10), (32, 14, 32), (20, 7, 32), (64, 56, 64)]) {
        for src_stride in [cols, cols + 5, 14 * cols] {
            let src = rng.uniform_vec((rows - 1) * src_stride + cols, -1.0, 1.0);
            let dense: Vec<f32> = (0..rows).flat_map(|r| src[r * src_stride..][..cols].to_vec()).collect();
            let want = plain_panels(&dense, rows, cols, width);
            for (which, pack) in [("fast", pack_panels_strided as fn(&mut [f32], &[f32], usize, usize, usize, usize)), ("plain", pack_panels_plain)] {
                let mut panels = vec![f32::NAN; rows.div_ceil(width) * cols * width];
                pack(&mut panels, &src, src_stride, rows, cols, width);
                for (i, (a, b)) in panels.iter().zip(&want).enumerate() {
                    assert!(a == b || (a.is_nan() && b.is_nan()), "{which}, width {width} {rows}x{cols} rows {src_stride} apart [{i}]: {a} vs {b}");
                }
            }
        }
    }
}

#[test]
fn tile_matches_the_definition_for_every_row_count_and_width() {
    let mut rng = Rng::new(9);
    for kernel in runnable_kernels("tile_matches_the_definition") {
        let w = kernel.width;
        for rows in 1..=kernel.rows {
            for &(k, n, acc) in &[(1, w, false), (9, 5, true), (50, w, true), (0, 3, false), (33, w - 3, false), (1100, w.min(17), true)] {
                let data = rng.uniform_vec(400, -1.0, 1.0);
                let mut row_offsets = Offsets::default();
                row_offsets.set((0..rows).map(|r| 3 * r + rng.below(4)));
                let mut k_offsets = Offsets::default();
                k_offsets.set((0..k).map(|kk| (kk * 7) % 300));
                let b = rng.uniform_vec(k * w, -1.0, 1.0);
                let c_cs = kernel.rows + 5;
                let start = rng.uniform_vec(rows + (w - 1) * c_cs + 1, -1.0, 1.0);
                let mut c = start.clone();
                let t = Tile { rows, k, data: &data, row_offsets: row_offsets.from(0), k_offsets: k_offsets.from(0), b: &b, c: &mut c, c_layout: CLayout::Transposed { column_stride: c_cs }, n, accumulate: acc };
                run(kernel, t);
                for (idx, (&got, &was)) in c.iter().zip(&start).enumerate() {
                    let (j, r) = (idx / c_cs, idx % c_cs);
                    if r >= rows || j >= n {
                        assert_eq!(got, was, "{}: C[{idx}] outside the tile was written", kernel.name());
                        continue;
                    }
                    let row = row_offsets.offsets[r];
                    let dot: f64 = (0..k).map(|kk| data[row + (kk * 7) % 300] as f64 * b[kk * w + j] as f64).sum();
                    let want = if acc { was as f64 + dot } else { dot };
                    let scale: f64 = 1.0 + (0..k).map(|kk| (data[row + (kk * 7) % 300] as f64 * b[kk * w + j] as f64).abs()).sum::<f64>();
                    assert!((got as f64 - want).abs() < 1e-5 * scale, "{} rows {rows} k {k} [{r},{j}]: {got} vs {want}", kernel.name());
                }
            }
        }
    }
}

/// `run_from` and `run_along_a_row_from`: each column starts from `init[j]` (a bias), C
/// overwritten, for every row count, the general tile and the one along a row, on every tile
/// this CPU has; within the definition's rounding (the sum starts from the bias, so its bits
/// are not those of the bias added after).
#[test]
fn a_tile_started_from_init_adds_it_to_every_row() {
    let mut rng = Rng::new(12);
    for kernel in runnable_kernels("a_tile_started_from_init") {
        let w = kernel.width;
        for (along, max_rows) in [(false, kernel.rows), (true, kernel.row_run)] {
            for rows in 1..=max_rows {
                for &(k, n) in &[(1, w), (25, w - 5), (0, 3), (77, w)] {
                    let data = rng.uniform_vec(600, -1.0, 1.0);
                    let mut row_offsets = Offsets::default();
                    row_offsets.set((0..rows).map(|r| if along { 2 * r } else { 3 * r + rng.below(4) }));
                    let mut k_offsets = Offsets::default();
                    k_offsets.set((0..k).map(|kk| (kk * 7) % 300 + 40));
                    let b = rng.uniform_vec(k * w, -1.0, 1.0);
                    let init = rng.uniform_vec(w, -5.0, 5.0);
                    let c_cs = max_rows + 3;
                    let start = vec![f32::NAN; rows + (w - 1) * c_cs + 1];
                    let mut c = start.clone();
                    let t = Tile { rows, k, data: &data, row_offsets: row_offsets.from(0), k_offsets: k_offsets.from(0), b: &b, c: &mut c, c_layout: CLayout::Transposed { column_stride: c_cs }, n, accumulate: false };
                    if along {
                        run_along_a_row_from(kernel, t, 2, &init);
                    } else {
                        run_from(kernel, t, &init);
                    }
                    for (idx, got) in c.iter().enumerate() {
                        let (j, r) = (idx / c_cs, idx % c_cs);
                        if r >= rows || j >= n {
                            assert!(got.is_nan(), "{}: C[{idx}] outside the tile was written", kernel.name());
                            continue;
                        }
                        let row = row_offsets.offsets[if along { 0 } else { r }] + if along { 2 * r } else { 0 };
                        let terms = (0..k).map(|kk| data[row + (kk * 7) % 300 + 40] as f64 * b[kk * w + j] as f64);
                        let (dot, size) = terms.fold((0.0, 0.0), |(s, m), t| (s + t, m + t.abs()));
                        let want = init[j] as f64 + dot;
                        assert!((*got as f64 - want).abs() < 1e-5 * (1.0 + size + init[j].abs() as f64), "{} along {along} rows {rows} k {k} [{r},{j}]: {got} vs {want}", kernel.name());
                    }
                }
            }
        }
    }
}

/// The row store: `C(r, j)` at `c[r * row_stride + j]`, nothing else written.
#[test]
fn row_store_matches_the_definition_for_every_row_count() {
    let mut rng = Rng::new(10);
    for kernel in runnable_kernels("row_store_matches_the_definition") {
        let w = kernel.width;
        for rows in 1..=kernel.rows {
            for &(k, acc) in &[(1, false), (64, true), (0, true), (130, false)] {
                let data = rng.uniform_vec(500, -1.0, 1.0);
                let mut row_offsets = Offsets::default();
                row_offsets.set((0..rows).map(|r| 37 * r + rng.below(3)));
                let mut k_offsets = Offsets::default();
                k_offsets.set(0..k);
                let b = rng.uniform_vec(k * w, -1.0, 1.0);
                let row_stride = w + 3;
                let start = rng.uniform_vec(rows * row_stride + 2, -1.0, 1.0);
                let mut c = start.clone();
                let layout = CLayout::Rows { row_stride };
                run(kernel, Tile { rows, k, data: &data, row_offsets: row_offsets.from(0), k_offsets: k_offsets.from(0), b: &b, c: &mut c, c_layout: layout, n: w, accumulate: acc });
                for (idx, (&got, &was)) in c.iter().zip(&start).enumerate() {
                    let (r, j) = (idx / row_stride, idx % row_stride);
                    if r >= rows || j >= w {
                        assert_eq!(got, was, "{}: C[{idx}] outside the tile was written", kernel.name());
                        continue;
                    }
                    let row = row_offsets.offsets[r];
                    let dot: f64 = (0..k).map(|kk| data[row + kk] as f64 * b[kk * w + j] as f64).sum();
                    let want = if acc { was as f64 + dot } else { dot };
                    assert!((got as f64 - want).abs() < 1e-5 * (1.0 + k as f64), "{} rows {rows} k {k} [{r},{j}]: {got} vs {want}", kernel.name());
                }
            }
        }
    }
}

#[test]
#[should_panic(expected = "a row store needs all")]
fn a_row_store_of_part_of_a_row_is_refused() {
    let Some(kernel) = runnable_kernels("a partial row store").pop() else { panic!("a row store needs all (skipped: no tile)") };
    let mut offsets = Offsets::default();
    offsets.set(0..4);
    let (data, b, mut c) = (vec![0.0; 8], vec![0.0; 4 * kernel.width], vec![0.0; 4 * kernel.width]);
    run(kernel, Tile { rows: 4, k: 4, data: &data, row_offsets: offsets.from(0), k_offsets: offsets.from(0), b: &b, c: &mut c, c_layout: CLayout::Rows { row_stride: kernel.width }, n: kernel.width - 1, accumulate: false });
}

#[test]
fn a_kernel_exists_for_every_isa_but_scalar() {
    assert_eq!(Kernel::for_isa(Isa::Scalar), None);
    for k in [Kernel::AVX2, Kernel::AVX512] {
        assert_eq!(Kernel::for_isa(k.isa), Some(k));
        assert_eq!(k.width % 8, 0);
    }
    assert_eq!(Kernel::best().map(|k| k.isa), Kernel::for_isa(Isa::active()).map(|k| k.isa));
}

/// The bounds checks that make the unsafe tile safe: an operand shorter than the tile reads
/// or writes is refused before any vector instruction runs.
fn short_operand(a_len: usize, b_len: usize, c_len: usize) {
    let kernel = runnable_kernels("short operands").pop().expect("a tile on this CPU");
    let mut offsets = Offsets::default();
    offsets.set(0..4);
    let (data, b, mut c) = (vec![0.0; a_len], vec![0.0; b_len], vec![0.0; c_len]);
    run(kernel, Tile { rows: 4, k: 4, data: &data, row_offsets: offsets.from(0), k_offsets: offsets.from(0), b: &b, c: &mut c, c_layout: CLayout::Transposed { column_stride: 4 }, n: 2, accumulate: false });
}

#[test]
fn full_operands_run() {
    let w = runnable_kernels("full operands").pop().map_or(16, |k| k.width);
    short_operand(7, 4 * w, 8);
}

#[test]
#[should_panic(expected = "tile: A has")]
fn a_short_a_is_refused() {
    short_operand(6, 4 * 32, 8);
}

#[test]
#[should_panic(expected = "tile: B has")]
fn a_short_b_is_refused() {
    short_operand(7, 3, 8);
}

#[test]
#[should_panic(expected = "tile: C has")]
fn a_short_c_is_refused() {
    short_operand(7, 4 * 32, 7);
}

/// Reading B's rows in place through offsets gives the bits of the same rows packed as a
/// panel, for every row count, on each tile this CPU has; a row reaching past B is refused.
#[test]
fn reading_b_rows_in_place_matches_the_packed_panel() {
    let mut rng = Rng::new(13);
    for kernel in runnable_kernels("reading B's rows in place") {
        let w = kernel.width;
        for rows in 1..=kernel.rows {
            let k = 37;
            let data = rng.uniform_vec(200, -1.0, 1.0);
            let mut row_offsets = Offsets::default();
            row_offsets.set((0..rows).map(|r| 5 * r));
            let mut k_offsets = Offsets::default();
            k_offsets.set(0..k);
            // B's rows at scattered, overlapping offsets into one buffer, and packed.
            let source = rng.uniform_vec(600, -1.0, 1.0);
            let mut b_rows = Offsets::default();
            b_rows.set((0..k).map(|kk| (kk * 13) % 500));
            let mut panel = vec![0.0; k * w];
            for (kk, row) in panel.chunks_exact_mut(w).enumerate() {
                row.copy_from_slice(&source[b_rows.get(kk)..][..w]);
            }
            let layout = CLayout::Rows { row_stride: w };
            let (mut packed, mut in_place) = (vec![0.0; rows * w], vec![0.0; rows * w]);
            run(kernel, Tile { rows, k, data: &data, row_offsets: row_offsets.from(0), k_offsets: k_offsets.from(0), b: &panel, c: &mut packed, c_layout: layout, n: w, accumulate: false });
            run_reading_b_rows(kernel, Tile { rows, k, data: &data, row_offsets: row_offsets.from(0), k_offsets: k_offsets.from(0), b: &source, c: &mut in_place, c_layout: layout, n: w, accumulate: false }, b_rows.from(0));
            assert_eq!(packed, in_place, "{} rows on {}", rows, kernel.name());
            assert!(packed.iter().all(|v| *v != 0.0));
        }
        let short = std::panic::catch_unwind(|| {
            let (data, mut c) = (vec![1.0; 8], vec![0.0; w]);
            let mut offs = Offsets::default();
            offs.set([0usize, 9].into_iter());
            let (mut one, mut two) = (Offsets::default(), Offsets::default());
            one.set([0usize].into_iter());
            two.set(0..2);
            // The second row starts 9 values in: 9 + w > w + 8.
            run_reading_b_rows(kernel, Tile { rows: 1, k: 2, data: &data, row_offsets: one.from(0), k_offsets: two.from(0), b: &vec![1.0; w + 8], c: &mut c, c_layout: CLayout::Rows { row_stride: w }, n: w, accumulate: false }, offs.from(0));
        });
        assert!(short.is_err(), "a B row past the end must be refused");
    }
}

/// Rows evenly spaced (`run_along_a_row`) give the bits of the general tile over the same
/// rows listed one by one, for every row count up to `row_run` (past the general tile's
/// `rows` on AVX-512), each step, partial widths and accumulation; a last row past A, a step
/// it has no tile for and too many rows are refused.
#[test]
fn rows_along_a_row_match_the_same_rows_listed() {
    let mut rng = Rng::new(14);
    for kernel in runnable_kernels("rows along a row") {
        let w = kernel.width;
        for step in ROW_STEPS {
            for rows in 1..=kernel.row_run {
                for &(k, n, acc) in &[(1, w, false), (40, w - 5, true), (300, w, false)] {
                    // Up to 24 rows 4 apart past the taps' 600 values.
                    let data = rng.uniform_vec(720, -1.0, 1.0);
                    let first = rng.below(20);
                    let (mut one, mut listed, mut k_offsets) = (Offsets::default(), Offsets::default(), Offsets::default());
                    one.set([first].into_iter());
                    listed.set((0..rows).map(|r| first + r * step));
                    k_offsets.set((0..k).map(|kk| (kk * 11) % 600));
                    let b = rng.uniform_vec(k * w, -1.0, 1.0);
                    let c_cs = kernel.row_run + 3;
                    let start = rng.uniform_vec(rows + (w - 1) * c_cs + 1, -1.0, 1.0);
                    let (mut along, mut general) = (start.clone(), start.clone());
                    let layout = CLayout::Transposed { column_stride: c_cs };
                    run_along_a_row(kernel, Tile { rows, k, data: &data, row_offsets: one.from(0), k_offsets: k_offsets.from(0), b: &b, c: &mut along, c_layout: layout, n, accumulate: acc }, step);
                    // The general tile over the same rows, at most `kernel.rows` at a time.
                    for r0 in (0..rows).step_by(kernel.rows) {
                        let r = kernel.rows.min(rows - r0);
                        run(kernel, Tile { rows: r, k, data: &data, row_offsets: listed.from(r0), k_offsets: k_offsets.from(0), b: &b, c: &mut general[r0..], c_layout: layout, n, accumulate: acc });
                    }
                    assert!(along.iter().zip(&general).all(|(a, g)| a.to_bits() == g.to_bits()), "{} step {step} rows {rows} k {k} n {n}", kernel.name());
                    assert!(along.iter().zip(&start).any(|(a, s)| a != s));
                }
            }
        }
        let refused = |rows: usize, step: usize, a_len: usize| {
            std::panic::catch_unwind(|| {
                let (data, b, mut c) = (vec![1.0; a_len], vec![1.0; 2 * w], vec![0.0; 64 * w]);
                let (mut one, mut two) = (Offsets::default(), Offsets::default());
                one.set([0usize].into_iter());
                two.set(0..2);
                run_along_a_row(kernel, Tile { rows, k: 2, data: &data, row_offsets: one.from(0), k_offsets: two.from(0), b: &b, c: &mut c, c_layout: CLayout::Transposed { column_stride: 64 }, n: w, accumulate: false }, step);
            })
            .is_err()
        };
        assert!(!refused(4, 2, 3 * 2 + 2), "{}: the last row's last value is in A", kernel.name());
        assert!(refused(4, 2, 3 * 2 + 1), "{}: a last row past A", kernel.name());
        assert!(refused(4, 3, 100), "{}: a step without a tile", kernel.name());
        assert!(refused(kernel.row_run + 1, 1, 100), "{}: more rows than the tile holds", kernel.name());
    }
}
