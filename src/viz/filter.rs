//! Convolution as image filtering (the lecture's Sobel slide): classic kernels run through the
//! same `Conv2d` layer the networks use, SAME padding so the output keeps the input's size.

use crate::error::{Error, Result};
use crate::geometry::Padding;
use crate::layers::{Conv2d, Conv2dConfig, ForwardCtx, Layer};
use crate::tensor::Tensor;
use image::RgbImage;

/// A classic image kernel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kernel {
    /// Gradient magnitude `sqrt(gx^2 + gy^2)` of the two Sobel kernels.
    Sobel,
    SobelX,
    SobelY,
    Laplacian,
    Gaussian(f32),
    Box(usize),
}

impl Kernel {
    /// Parses `sobel`, `sobel-x`, `sobel-y`, `laplacian`, `gaussian:SIGMA` or `box:K`.
    pub fn parse(s: &str) -> Result<Kernel> {
        let bad = || Error::Invalid(format!("unknown kernel {s:?}: use sobel, sobel-x, sobel-y, laplacian, gaussian:SIGMA or box:K"));
        Ok(match s.split_once(':') {
            None => match s {
                "sobel" => Kernel::Sobel,
                "sobel-x" => Kernel::SobelX,
                "sobel-y" => Kernel::SobelY,
                "laplacian" => Kernel::Laplacian,
                _ => return Err(bad()),
            },
            Some(("gaussian", v)) => Kernel::Gaussian(v.parse::<f32>().ok().filter(|s| s.is_finite() && *s > 0.0).ok_or_else(|| {
                Error::Invalid(format!("gaussian:{v}: the blur's sigma must be a number above 0 (gaussian:1.5)"))
            })?),
            Some(("box", v)) => Kernel::Box(v.parse::<usize>().ok().filter(|k| *k > 0).ok_or_else(|| {
                Error::Invalid(format!("box:{v}: the box's size must be a whole number above 0 (box:5)"))
            })?),
            _ => return Err(bad()),
        })
    }

    /// The kernels as `(k, [filters][k * k])`: two for Sobel's magnitude, one otherwise.
    fn weights(&self) -> (usize, Vec<Vec<f32>>) {
        let sx = vec![-1.0, 0.0, 1.0, -2.0, 0.0, 2.0, -1.0, 0.0, 1.0];
        let sy = vec![-1.0, -2.0, -1.0, 0.0, 0.0, 0.0, 1.0, 2.0, 1.0];
        match *self {
            Kernel::Sobel => (3, vec![sx, sy]),
            Kernel::SobelX => (3, vec![sx]),
            Kernel::SobelY => (3, vec![sy]),
            Kernel::Laplacian => (3, vec![vec![0.0, 1.0, 0.0, 1.0, -4.0, 1.0, 0.0, 1.0, 0.0]]),
            Kernel::Gaussian(sigma) => {
                let r = (3.0 * sigma).ceil() as isize;
                let k = (2 * r + 1) as usize;
                let g: Vec<f32> = (-r..=r).map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp()).collect();
                let total: f32 = g.iter().sum::<f32>().powi(2);
                (k, vec![(0..k * k).map(|i| g[i / k] * g[i % k] / total).collect()])
            }
            Kernel::Box(k) => (k, vec![vec![1.0 / (k * k) as f32; k * k]]),
        }
    }

    /// Smoothing kernels keep colour; edge kernels work on brightness.
    fn keeps_colour(&self) -> bool {
        matches!(self, Kernel::Gaussian(_) | Kernel::Box(_))
    }
}

/// Filters `img` with `kernel`: colour images stay colour under smoothing kernels (one filter
/// per channel, a grouped convolution); edge kernels see brightness and give a grey picture
/// (magnitudes from black, signed responses around mid-grey).
pub fn filter_image(img: &image::DynamicImage, kernel: Kernel) -> Result<RgbImage> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (k, filters) = kernel.weights();
    let channels = if kernel.keeps_colour() { 3 } else { 1 };
    let planes: Vec<f32> = if channels == 3 {
        let rgb = img.to_rgb8();
        (0..3).flat_map(|c| rgb.pixels().map(move |p| p.0[c] as f32 / 255.0).collect::<Vec<_>>()).collect()
    } else {
        img.to_luma8().pixels().map(|p| p.0[0] as f32 / 255.0).collect()
    };
    let x = Tensor::from_vec(&[1, channels, h, w], planes)?;
    // Depthwise for colour (groups = 3, one copy of the kernel per channel), or one conv with
    // one output channel per kernel.
    let out_channels = if channels == 3 { 3 } else { filters.len() };
    let cfg = Conv2dConfig::new(channels, out_channels, k).padding(Padding::Same).groups(if channels == 3 { 3 } else { 1 }).bias(false);
    let mut conv = Conv2d::new(cfg)?;
    for (_, p) in conv.params_mut() {
        let v = p.value.data_mut();
        for (o, chunk) in v.chunks_mut(k * k).enumerate() {
            chunk.copy_from_slice(&filters[if channels == 3 { 0 } else { o }]);
        }
    }
    let shape = conv.output_shape(&[x.shape()])?;
    let mut y = Tensor::zeros(&shape);
    conv.forward(&[&x], &mut y, &ForwardCtx::default())?;
    let plane = h * w;
    let d = y.data();
    Ok(match kernel {
        Kernel::Sobel => {
            let mag: Vec<f32> = (0..plane).map(|i| (d[i] * d[i] + d[plane + i] * d[plane + i]).sqrt()).collect();
            // Saturate at the 99.5th percentile, so a few strong edges do not darken the rest.
            let top = super::render::percentile(&mag, 99.5, false).max(1e-6);
            let clipped: Vec<f32> = mag.iter().map(|v| v.min(top)).collect();
            super::render::range_tile(&clipped, h, w)
        }
        Kernel::SobelX | Kernel::SobelY | Kernel::Laplacian => super::render::signed_tile(d, 1, h, w),
        _ => RgbImage::from_fn(w as u32, h as u32, |xx, yy| {
            let i = yy as usize * w + xx as usize;
            image::Rgb(std::array::from_fn(|c| (d[c * plane + i].clamp(0.0, 1.0) * 255.0).round() as u8))
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sobel_finds_a_vertical_edge_and_smoothing_keeps_the_size() {
        // Dark left half, bright right half.
        let img = image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(12, 9, |x, _| image::Luma([if x < 6 { 0 } else { 200 }])));
        let e = filter_image(&img, Kernel::Sobel).unwrap();
        assert_eq!((e.width(), e.height()), (12, 9));
        let row: Vec<u8> = (0..12).map(|x| e.get_pixel(x, 4).0[0]).collect();
        // The edge lights up; flat regions stay black (the last column meets the zero padding).
        assert!(row[5].max(row[6]) > 200, "{row:?}");
        assert_eq!((row[2], row[9]), (0, 0), "{row:?}");
        // sobel-y sees no horizontal edge: all mid-grey.
        let ey = filter_image(&img, Kernel::SobelY).unwrap();
        assert!(ey.pixels().skip(12).take(12 * 7).all(|p| p.0[0] == 128 || p.0[0] == 127));
        // A box blur keeps colour and size.
        let colour = image::DynamicImage::ImageRgb8(RgbImage::from_pixel(10, 7, image::Rgb([200, 100, 50])));
        let b = filter_image(&colour, Kernel::Box(3)).unwrap();
        assert_eq!(b.get_pixel(5, 3).0, [200, 100, 50]);
        assert!(Kernel::parse("gaussian:0").is_err() && Kernel::parse("sharpen").is_err());
        assert_eq!(Kernel::parse("box:5").unwrap(), Kernel::Box(5));
    }
}
