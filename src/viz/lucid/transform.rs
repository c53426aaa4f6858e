//! Transformation robustness (Lucid's `standard_transforms`: pad, jitter, random scale, random
//! rotation): before each step the image is seen through a random affine map - scaled,
//! rotated about its centre and shifted, grey where it samples outside - so that only features
//! that survive small changes of view grow. One bilinear resampling does all four, and its
//! exact adjoint carries the gradient back.

use crate::rng::Rng;
use crate::tensor::Tensor;

/// Output pixel `(y, x)` reads the input at `centre + R(-angle) (p - centre - shift) / scale`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine {
    pub scale: f32,
    /// Radians.
    pub angle: f32,
    pub dy: f32,
    pub dx: f32,
}

impl Affine {
    pub const IDENTITY: Affine = Affine { scale: 1.0, angle: 0.0, dy: 0.0, dx: 0.0 };

    /// Lucid's ranges: scale 0.9 to 1.1 (its eleven choices), rotation -10 to 10 degrees
    /// (zero more often, as Lucid's list weights it), a shift of up to `jitter` pixels.
    pub fn random(rng: &mut Rng, jitter: usize) -> Self {
        let scale = 1.0 + (rng.below(11) as f32 - 5.0) / 50.0;
        let degrees = [-10, -9, -8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 0, 0, 0, 0];
        let angle = degrees[rng.below(degrees.len())] as f32 * std::f32::consts::PI / 180.0;
        let j = jitter as isize;
        let shift = |r: &mut Rng| if j > 0 { (r.below(2 * jitter + 1) as isize - j) as f32 } else { 0.0 };
        Affine { scale, angle, dy: shift(rng), dx: shift(rng) }
    }

    /// Where output pixel `(y, x)` of an `h x w` image reads the input.
    fn source(&self, y: usize, x: usize, h: usize, w: usize) -> (f32, f32) {
        let (cy, cx) = ((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0);
        let (py, px) = (y as f32 - cy - self.dy, x as f32 - cx - self.dx);
        let (s, c) = (self.angle.sin(), self.angle.cos());
        ((c * py - s * px) / self.scale + cy, (s * py + c * px) / self.scale + cx)
    }
}

/// The four bilinear taps of a source point: `(index, weight)` for cells inside the image.
fn taps(sy: f32, sx: f32, h: usize, w: usize) -> [(Option<usize>, f32); 4] {
    let (y0, x0) = (sy.floor(), sx.floor());
    let (ty, tx) = (sy - y0, sx - x0);
    let at = |y: f32, x: f32| (y >= 0.0 && x >= 0.0 && (y as usize) < h && (x as usize) < w).then(|| y as usize * w + x as usize);
    [
        (at(y0, x0), (1.0 - ty) * (1.0 - tx)),
        (at(y0, x0 + 1.0), (1.0 - ty) * tx),
        (at(y0 + 1.0, x0), ty * (1.0 - tx)),
        (at(y0 + 1.0, x0 + 1.0), ty * tx),
    ]
}

/// `img` (`[1, C, H, W]`) seen through `a`; what falls outside the image reads `fill`.
pub fn sample(img: &Tensor, a: &Affine, fill: f32) -> Tensor {
    let s = img.shape().to_vec();
    let (h, w) = (s[2], s[3]);
    let mut out = Tensor::zeros(&s);
    for (src, dst) in img.data().chunks(h * w).zip(out.data_mut().chunks_mut(h * w)) {
        for y in 0..h {
            for x in 0..w {
                let (sy, sx) = a.source(y, x, h, w);
                dst[y * w + x] = taps(sy, sx, h, w).iter().map(|&(i, wt)| wt * i.map_or(fill, |i| src[i])).sum();
            }
        }
    }
    out
}

/// The adjoint of `sample` (without its constant fill): the gradient at the image from the
/// gradient at the transformed image.
pub fn sample_backward(d_out: &Tensor, a: &Affine) -> Tensor {
    let s = d_out.shape().to_vec();
    let (h, w) = (s[2], s[3]);
    let mut d_in = Tensor::zeros(&s);
    for (g, dst) in d_out.data().chunks(h * w).zip(d_in.data_mut().chunks_mut(h * w)) {
        for y in 0..h {
            for x in 0..w {
                let (sy, sx) = a.source(y, x, h, w);
                for (i, wt) in taps(sy, sx, h, w) {
                    if let Some(i) = i {
                        dst[i] += wt * g[y * w + x];
                    }
                }
            }
        }
    }
    d_in
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_changes_nothing_and_a_shift_moves_by_whole_pixels() {
        let mut rng = Rng::new(1);
        let x = Tensor::from_vec(&[1, 2, 5, 6], rng.uniform_vec(60, 0.0, 1.0)).unwrap();
        assert_eq!(sample(&x, &Affine::IDENTITY, 0.5).data(), x.data());
        let moved = sample(&x, &Affine { dy: 1.0, dx: 2.0, ..Affine::IDENTITY }, 0.5);
        assert!((moved.data()[3 * 6 + 4] - x.data()[2 * 6 + 2]).abs() < 1e-6);
        assert_eq!(moved.data()[0], 0.5, "grey where the image was moved away");
    }

    /// `<sample(x), y> = <x, sample_backward(y)>` with no fill: the backward pass is the
    /// exact adjoint, for scales, rotations and shifts.
    #[test]
    fn the_backward_pass_is_the_adjoint() {
        let mut rng = Rng::new(2);
        let x = Tensor::from_vec(&[1, 3, 9, 11], rng.uniform_vec(297, -1.0, 1.0)).unwrap();
        let y = Tensor::from_vec(&[1, 3, 9, 11], rng.uniform_vec(297, -1.0, 1.0)).unwrap();
        for _ in 0..10 {
            let a = Affine::random(&mut rng, 3);
            let lhs: f64 = sample(&x, &a, 0.0).data().iter().zip(y.data()).map(|(p, q)| *p as f64 * *q as f64).sum();
            let rhs: f64 = x.data().iter().zip(sample_backward(&y, &a).data()).map(|(p, q)| *p as f64 * *q as f64).sum();
            assert!((lhs - rhs).abs() < 1e-4 * (1.0 + lhs.abs()), "{a:?}: {lhs} vs {rhs}");
        }
    }
}
