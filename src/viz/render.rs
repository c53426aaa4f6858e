//! Numbers to pictures: tiles scaled symmetrically around zero, a diverging colour map for
//! signed maps, a "hot" map for magnitudes, percentile clipping, grids, PNG encoding.

use crate::error::{Error, Result};
use image::{Rgb, RgbImage};
use std::path::Path;

/// The value below which `pct` percent of `values` lie (by magnitude when `abs`).
pub fn percentile(values: &[f32], pct: f32, abs: bool) -> f32 {
    let mut v: Vec<f32> = values.iter().map(|x| if abs { x.abs() } else { *x }).filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((pct.clamp(0.0, 100.0) / 100.0) * (v.len() - 1) as f32).round() as usize;
    v[i]
}

/// A grey (one plane) or colour (three planes) tile of `[C, h, w]` values, scaled
/// symmetrically around zero: 0 is mid-grey, the largest magnitude black or white.
pub fn signed_tile(values: &[f32], c: usize, h: usize, w: usize) -> RgbImage {
    let m = values.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
    let to_byte = |v: f32| ((0.5 + 0.5 * v / m).clamp(0.0, 1.0) * 255.0).round() as u8;
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let i = y as usize * w + x as usize;
        if c >= 3 {
            Rgb([to_byte(values[i]), to_byte(values[h * w + i]), to_byte(values[2 * h * w + i])])
        } else {
            let g = to_byte(values[i]);
            Rgb([g, g, g])
        }
    })
}

/// A grey tile from `min` (black) to `max` (white) of one `[h, w]` map.
pub fn range_tile(values: &[f32], h: usize, w: usize) -> RgbImage {
    let (lo, hi) = values.iter().fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let span = (hi - lo).max(1e-12);
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let g = (((values[y as usize * w + x as usize] - lo) / span) * 255.0).round() as u8;
        Rgb([g, g, g])
    })
}

/// A signed `[h, w]` map in a diverging colour map centred on zero (blue, white, red), clipped
/// at the `clip` percentile of magnitudes.
pub fn diverging(values: &[f32], h: usize, w: usize, clip: f32) -> RgbImage {
    let m = percentile(values, clip, true).max(1e-12);
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let t = (values[y as usize * w + x as usize] / m).clamp(-1.0, 1.0);
        let (a, b) = (255.0 * (1.0 - t.abs()), 255.0);
        if t >= 0.0 {
            Rgb([b as u8, a as u8, a as u8])
        } else {
            Rgb([a as u8, a as u8, b as u8])
        }
    })
}

/// A non-negative `[h, w]` map in a "hot" colour map (black, red, yellow, white), clipped at
/// the `clip` percentile.
pub fn hot(values: &[f32], h: usize, w: usize, clip: f32) -> RgbImage {
    let m = percentile(values, clip, true).max(1e-12);
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let t = (values[y as usize * w + x as usize].abs() / m).clamp(0.0, 1.0) * 3.0;
        let ch = |k: f32| ((t - k).clamp(0.0, 1.0) * 255.0) as u8;
        Rgb([ch(0.0), ch(1.0), ch(2.0)])
    })
}

/// `img` blended over `base` (same size) with weight `alpha`.
pub fn overlay(base: &RgbImage, img: &RgbImage, alpha: f32) -> RgbImage {
    RgbImage::from_fn(base.width(), base.height(), |x, y| {
        let (a, b) = (base.get_pixel(x, y).0, img.get_pixel(x, y).0);
        Rgb(std::array::from_fn(|k| ((1.0 - alpha) * a[k] as f32 + alpha * b[k] as f32) as u8))
    })
}

/// Nearest-neighbour enlargement by an integer `factor`, so small maps stay crisp.
pub fn enlarge(img: &RgbImage, factor: u32) -> RgbImage {
    let f = factor.max(1);
    RgbImage::from_fn(img.width() * f, img.height() * f, |x, y| *img.get_pixel(x / f, y / f))
}

/// Tiles in a grid of `cols` columns with `pad` pixels of white between them.
pub fn grid(tiles: &[RgbImage], cols: usize, pad: u32) -> RgbImage {
    if tiles.is_empty() {
        return RgbImage::new(1, 1);
    }
    let cols = cols.clamp(1, tiles.len());
    let rows = tiles.len().div_ceil(cols);
    let tw = tiles.iter().map(|t| t.width()).max().unwrap_or(1);
    let th = tiles.iter().map(|t| t.height()).max().unwrap_or(1);
    let mut out = RgbImage::from_pixel(cols as u32 * (tw + pad) + pad, rows as u32 * (th + pad) + pad, Rgb([255, 255, 255]));
    for (i, t) in tiles.iter().enumerate() {
        let (gx, gy) = ((i % cols) as u32, (i / cols) as u32);
        image::imageops::replace(&mut out, t, (pad + gx * (tw + pad)) as i64, (pad + gy * (th + pad)) as i64);
    }
    out
}

/// `img` enlarged by a whole factor to at least `side` pixels on its longer side (pixels stay
/// sharp squares); `factor_for` rounds down instead.
pub fn enlarge_to_at_least(img: &RgbImage, side: u32) -> RgbImage {
    enlarge(img, side.div_ceil(img.width().max(img.height()).max(1)))
}

/// A factor that brings a `size`-pixel image to about `target` pixels.
pub fn factor_for(size: u32, target: u32) -> u32 {
    (target / size.max(1)).max(1)
}

/// PNG bytes of an image.
pub fn png_bytes(img: &RgbImage) -> Result<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).map_err(|e| Error::Invalid(format!("cannot encode a PNG: {e}")))?;
    Ok(out.into_inner())
}

/// Writes `img` to `path` atomically, in the format its extension names: `.png`, or `.jpg` /
/// `.jpeg` (quality 95). Any other extension is refused before anything is written (PNG bytes
/// under a `.jpg` name would mislead every program that opens the file).
pub fn save_image(path: &Path, img: &RgbImage) -> Result<()> {
    let bytes = match image_format_for(path)? {
        image::ImageFormat::Png => png_bytes(img)?,
        _ => {
            let mut out = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95)
                .encode_image(img)
                .map_err(|e| Error::file(path, format!("cannot encode a JPEG: {e}")))?;
            out
        }
    };
    crate::io::atomic::write_atomic(path, &bytes)
}

/// The format a file name asks for: PNG for `.png`, JPEG for `.jpg` / `.jpeg` (any case);
/// anything else is an error that says what is accepted.
pub fn image_format_for(path: &Path) -> Result<image::ImageFormat> {
    match path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
        Some("png") => Ok(image::ImageFormat::Png),
        Some("jpg" | "jpeg") => Ok(image::ImageFormat::Jpeg),
        _ => Err(Error::file(path, "is not a .png, .jpg or .jpeg name: the image format follows the extension")),
    }
}
