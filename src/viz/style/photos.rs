//! The photos a style network trains on: every PNG or JPEG under a folder (subfolders too, in
//! name order, as COCO's `train2014/` or an ImageNet tree), each read as Johnson et al. and
//! pytorch/examples do: the shorter side resized to the training size, the centre square cut
//! out, RGB (a greyscale photo's grey in all three channels), pixels 0-255.

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

fn is_photo(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

/// Every PNG and JPEG under `root`, sorted by path (so an order and a seed name the same
/// images on any machine).
pub fn list(root: &Path) -> Result<Vec<PathBuf>> {
    if !root.is_dir() {
        return Err(Error::file(root, "is not a folder of photos (give a folder of PNG or JPEG files, such as COCO's train2014)"));
    }
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::file(&dir, format!("cannot list: {e}")))?;
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if is_photo(&p) {
                found.push(p);
            }
        }
    }
    found.sort();
    if found.is_empty() {
        return Err(Error::file(root, "holds no PNG or JPEG photos (subfolders included)"));
    }
    Ok(found)
}

/// The photo at `path` as `[3, size, size]` pixels 0-255: shorter side to `size`, centre crop.
pub fn load_square(path: &Path, size: usize) -> Result<Vec<f32>> {
    let img = crate::data::folder::open_image(path)?;
    Ok(square(img, size))
}

/// A decoded picture as `[3, size, size]` pixels 0-255: shorter side to `size`, centre crop.
pub fn square(img: image::DynamicImage, size: usize) -> Vec<f32> {
    let img = crate::data::folder::fit_short_side(img, size as u32);
    let (x0, y0) = ((img.width() as usize - size) / 2, (img.height() as usize - size) / 2);
    let rgb = img.crop_imm(x0 as u32, y0 as u32, size as u32, size as u32).to_rgb8();
    planes(&rgb)
}

/// An RGB picture as `[3, H, W]` floats 0-255.
pub fn planes(rgb: &image::RgbImage) -> Vec<f32> {
    let plane = rgb.width() as usize * rgb.height() as usize;
    let mut out = vec![0.0; 3 * plane];
    for (i, px) in rgb.pixels().enumerate() {
        for ch in 0..3 {
            out[ch * plane + i] = px.0[ch] as f32;
        }
    }
    out
}

/// The photos `paths` as one batch `[N, 3, size, size]`, decoded in parallel; the error names
/// the first file that cannot be read.
pub fn batch(paths: &[&Path], size: usize) -> Result<Tensor> {
    let images: Vec<Vec<f32>> = paths.par_iter().map(|p| load_square(p, size)).collect::<Result<_>>()?;
    Tensor::from_vec(&[paths.len(), 3, size, size], images.concat())
}
