//! Layers that only move pixels: reflection padding and nearest-neighbour upsampling, over
//! `[planes][H][W]` (planes = N * C). Forward overwrites, backward accumulates (`+=`): each
//! output cell's gradient goes back to the one input cell it was copied from.

use rayon::prelude::*;

/// Where output index `o` of a reflection-padded axis reads: `o - before` reflected at both
/// edges without repeating the edge (PyTorch's `ReflectionPad2d`: `[a b c]` padded by 2 is
/// `[c b a b c b a]`). Needs `before, after < n`.
pub fn reflect_index(o: usize, before: usize, n: usize) -> usize {
    let i = o as isize - before as isize;
    let last = n as isize - 1;
    let i = if i < 0 { -i } else if i > last { 2 * last - i } else { i };
    i as usize
}

/// The source index of every output index along one axis.
fn reflect_map(n: usize, before: usize, after: usize) -> Vec<usize> {
    (0..n + before + after).map(|o| reflect_index(o, before, n)).collect()
}

/// `out: [planes][h + top + bottom][w + left + right]` from `x: [planes][h][w]`;
/// `pad = [top, bottom, left, right]`, each below the side it pads.
pub fn reflect_pad_forward(out: &mut [f32], x: &[f32], h: usize, w: usize, pad: [usize; 4]) {
    let (rows, cols) = (reflect_map(h, pad[0], pad[1]), reflect_map(w, pad[2], pad[3]));
    let plane_out = rows.len() * cols.len();
    out.par_chunks_mut(plane_out).zip(x.par_chunks(h * w)).for_each(|(o, x)| {
        for (orow, &iy) in o.chunks_exact_mut(cols.len()).zip(&rows) {
            let irow = &x[iy * w..(iy + 1) * w];
            orow.iter_mut().zip(&cols).for_each(|(v, &ix)| *v = irow[ix]);
        }
    });
}

/// `dx += ` the reflection padding's adjoint of `dy` (shapes as in [`reflect_pad_forward`]):
/// a cell mirrored into the border gets its own gradient plus its mirror images'.
pub fn reflect_pad_backward(dx: &mut [f32], dy: &[f32], h: usize, w: usize, pad: [usize; 4]) {
    let (rows, cols) = (reflect_map(h, pad[0], pad[1]), reflect_map(w, pad[2], pad[3]));
    let plane_out = rows.len() * cols.len();
    dx.par_chunks_mut(h * w).zip(dy.par_chunks(plane_out)).for_each(|(dx, dy)| {
        for (drow, &iy) in dy.chunks_exact(cols.len()).zip(&rows) {
            let irow = &mut dx[iy * w..(iy + 1) * w];
            drow.iter().zip(&cols).for_each(|(g, &ix)| irow[ix] += g);
        }
    });
}

/// `out: [planes][h s][w s]`, each input cell repeated in an `s x s` block (PyTorch's
/// `interpolate(mode="nearest", scale_factor=s)` for an integer `s`).
pub fn upsample_nearest_forward(out: &mut [f32], x: &[f32], h: usize, w: usize, s: usize) {
    out.par_chunks_mut(h * w * s * s).zip(x.par_chunks(h * w)).for_each(|(o, x)| {
        for (oy, orow) in o.chunks_exact_mut(w * s).enumerate() {
            let irow = &x[(oy / s) * w..(oy / s + 1) * w];
            for (block, &v) in orow.chunks_exact_mut(s).zip(irow) {
                block.fill(v);
            }
        }
    });
}

/// `dx += ` the sum of `dy` over each cell's `s x s` block.
pub fn upsample_nearest_backward(dx: &mut [f32], dy: &[f32], h: usize, w: usize, s: usize) {
    dx.par_chunks_mut(h * w).zip(dy.par_chunks(h * w * s * s)).for_each(|(dx, dy)| {
        for (oy, drow) in dy.chunks_exact(w * s).enumerate() {
            let irow = &mut dx[(oy / s) * w..(oy / s + 1) * w];
            for (d, block) in irow.iter_mut().zip(drow.chunks_exact(s)) {
                *d += block.iter().sum::<f32>();
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflection_repeats_no_edge() {
        // [a b c] padded by 2 on both sides: [c b a b c b a].
        let map: Vec<usize> = (0..7).map(|o| reflect_index(o, 2, 3)).collect();
        assert_eq!(map, [2, 1, 0, 1, 2, 1, 0]);
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2 x 3
        let mut out = vec![0.0; 4 * 5];
        reflect_pad_forward(&mut out, &x, 2, 3, [1, 1, 1, 1]);
        assert_eq!(out, [5., 4., 5., 6., 5., 2., 1., 2., 3., 2., 5., 4., 5., 6., 5., 2., 1., 2., 3., 2.]);
        let mut dx = vec![0.5; 6];
        reflect_pad_backward(&mut dx, &[1.0; 20], 2, 3, [1, 1, 1, 1]);
        // Each input cell's count of copies in the output (rows map to [1 0 1 0], columns to
        // [1 0 1 2 1]), on top of 0.5.
        assert_eq!(dx, [2.5, 6.5, 2.5, 2.5, 6.5, 2.5]);
    }

    #[test]
    fn upsampling_repeats_each_cell() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2 x 3
        let mut out = vec![0.0; 24];
        upsample_nearest_forward(&mut out, &x, 2, 3, 2);
        assert_eq!(&out[..12], &[1., 1., 2., 2., 3., 3., 1., 1., 2., 2., 3., 3.]);
        assert_eq!(&out[18..], &[4., 4., 5., 5., 6., 6.]);
        let dy: Vec<f32> = (0..24).map(|i| i as f32).collect();
        let mut dx = vec![1.0; 6];
        upsample_nearest_backward(&mut dx, &dy, 2, 3, 2);
        // Cell (0, 0) collects dy at (0,0), (0,1), (1,0), (1,1): 0 + 1 + 6 + 7.
        assert_eq!(dx[0], 1.0 + 14.0);
        assert_eq!(dx[5], 1.0 + (16 + 17 + 22 + 23) as f32);
    }
}
