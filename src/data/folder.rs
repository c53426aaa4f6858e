//! Image folders: `root/<class name>/*.png|jpg|jpeg`, one subfolder per class (sorted by name,
//! as torchvision's `ImageFolder`), every image converted to the model's input shape.

use super::Dataset;
use crate::error::{Error, Result};
use image::imageops::FilterType;
use std::path::{Path, PathBuf};

fn is_image(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::file(dir, format!("cannot list: {e}")))?;
    let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    v.sort();
    Ok(v)
}

/// How an image of another size becomes the model's input size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// Resize to exactly H x W (MNIST-style inputs, training folders).
    Stretch,
    /// torchvision's ImageNet evaluation: resize the short side to `H * 256 / 224`, then crop
    /// the centre H x W.
    ResizeCrop,
}

/// Reads an image file and converts it to `[C, H, W]` bytes (C = 1 grey or 3 RGB), resized
/// to exactly H x W when its size differs.
pub fn load_image(path: &Path, shape: [usize; 3]) -> Result<Vec<u8>> {
    load_image_fit(path, shape, Fit::Stretch)
}

/// The largest image fovea decodes: sides up to 16,384 pixels and 512 MiB of decoded pixels, so
/// that a header claiming a giant image is refused before anything is allocated for it.
pub const MAX_SIDE: u32 = 16_384;
const MAX_DECODED_BYTES: u64 = 512 << 20;
/// The largest file fovea reads as an image.
const MAX_FILE_BYTES: u64 = 1 << 30;

/// Reads and decodes the PNG or JPEG at `path`, within the limits above.
pub fn open_image(path: &Path) -> Result<image::DynamicImage> {
    if path.is_dir() {
        return Err(Error::file(path, "is a directory, not an image (give a PNG or JPEG file)"));
    }
    let len = std::fs::metadata(path).map_err(|e| Error::file(path, format!("cannot read the image: {e}")))?.len();
    if len > MAX_FILE_BYTES {
        return Err(Error::file(path, format!("is {len} bytes, more than fovea reads as an image ({MAX_FILE_BYTES})")));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, format!("cannot read the image: {e}")))?;
    decode_image(&bytes).map_err(|m| Error::file(path, m))
}

/// Decodes image bytes (the format guessed from them) within the limits above; the message
/// says what is wrong.
pub fn decode_image(bytes: &[u8]) -> std::result::Result<image::DynamicImage, String> {
    decode_image_within(bytes, MAX_SIDE, MAX_DECODED_BYTES)
}

/// `decode_image` with tighter limits (a server decoding many requests at once): sides up to
/// `max_side` pixels and `max_bytes` of decoded pixels, checked from the header before decoding.
pub fn decode_image_within(bytes: &[u8], max_side: u32, max_bytes: u64) -> std::result::Result<image::DynamicImage, String> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| format!("cannot read the image: {e}"))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(max_side);
    limits.max_image_height = Some(max_side);
    limits.max_alloc = Some(max_bytes);
    reader.limits(limits);
    reader.decode().map_err(|e| format!("cannot read the image: {e}"))
}

/// `img` with its shorter side `size` pixels, the other in proportion (unchanged when it already
/// is): the `--size` of `fovea dream` and `fovea style`.
pub fn fit_short_side(img: image::DynamicImage, size: u32) -> image::DynamicImage {
    let short = img.width().min(img.height());
    if short == size || size == 0 {
        return img;
    }
    let f = size as f64 / short as f64;
    let (w, h) = (((img.width() as f64 * f).round() as u32).max(1), ((img.height() as f64 * f).round() as u32).max(1));
    img.resize_exact(w, h, FilterType::Triangle)
}

/// As `load_image`, fitting the size as `fit` says. An image that already has the input
/// size is not resampled.
pub fn load_image_fit(path: &Path, shape: [usize; 3], fit: Fit) -> Result<Vec<u8>> {
    fit_image(open_image(path)?, shape, fit).map_err(|m| Error::file(path, m))
}

/// A decoded image as `[C, H, W]` bytes (C = 1 grey or 3 RGB), its size fitted as `fit` says.
pub fn fit_image(img: image::DynamicImage, [c, h, w]: [usize; 3], fit: Fit) -> std::result::Result<Vec<u8>, String> {
    if !matches!(c, 1 | 3) || h == 0 || w == 0 {
        return Err(format!("images can be read as 1 or 3 channels of at least 1x1 pixels, not {c}x{h}x{w}"));
    }
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    let img = if iw == w && ih == h {
        img
    } else {
        match fit {
            Fit::Stretch => img.resize_exact(w as u32, h as u32, FilterType::Triangle),
            Fit::ResizeCrop => {
                let short = (h.min(w) * 256).div_ceil(224).max(h.max(w));
                // The long side grows with the short one: a 1 x 16,384 strip would become
                // 256 x 4 million pixels before the crop.
                let long = iw.max(ih) as f64 * short as f64 / iw.min(ih) as f64;
                if long * short as f64 > 1e8 {
                    return Err(format!("is {iw}x{ih} pixels: too elongated to resize to a {w}x{h} centre crop"));
                }
                let (nw, nh) = if iw <= ih {
                    (short, ((ih * short) as f64 / iw as f64).round() as usize)
                } else {
                    (((iw * short) as f64 / ih as f64).round() as usize, short)
                };
                let resized = img.resize_exact(nw as u32, nh as u32, FilterType::Triangle);
                let (x0, y0) = ((nw - w) / 2, (nh - h) / 2);
                resized.crop_imm(x0 as u32, y0 as u32, w as u32, h as u32)
            }
        }
    };
    match c {
        1 => Ok(img.to_luma8().into_raw()),
        3 => {
            let rgb = img.to_rgb8();
            let plane = h * w;
            let mut out = vec![0u8; 3 * plane];
            for (i, px) in rgb.pixels().enumerate() {
                for ch in 0..3 {
                    out[ch * plane + i] = px.0[ch];
                }
            }
            Ok(out)
        }
        _ => unreachable!("channels checked above"),
    }
}

/// Reads `root/<class>/*` into a data set of `shape` images.
pub fn load(root: &Path, shape: [usize; 3]) -> Result<Dataset> {
    let class_dirs: Vec<PathBuf> = sorted_entries(root)?.into_iter().filter(|p| p.is_dir()).collect();
    if class_dirs.is_empty() {
        return Err(Error::file(root, format!("holds no class subfolders, nor MNIST or CIFAR-10 files; {}", super::LAYOUTS)));
    }
    let mut ds = Dataset { shape, pixels: Vec::new(), labels: Vec::new(), classes: Vec::new() };
    for (label, dir) in class_dirs.iter().enumerate() {
        ds.classes.push(dir.file_name().unwrap_or_default().to_string_lossy().into_owned());
        for file in sorted_entries(dir)?.into_iter().filter(|p| p.is_file() && is_image(p)) {
            ds.pixels.extend(load_image(&file, shape)?);
            ds.labels.push(label as u16);
        }
    }
    if ds.is_empty() {
        return Err(Error::file(root, "holds no PNG or JPEG images in its class subfolders"));
    }
    Ok(ds)
}

/// `root/train` and `root/test` when both exist (with the same classes); else all of `root`
/// for training and an empty test set.
pub fn load_split(root: &Path, shape: [usize; 3]) -> Result<(Dataset, Dataset)> {
    let (tr, te) = (root.join("train"), root.join("test"));
    if tr.is_dir() && te.is_dir() {
        let (train, test) = (load(&tr, shape)?, load(&te, shape)?);
        if train.classes != test.classes {
            return Err(Error::file(&te, format!("has classes {:?}, the training folder {:?}", test.classes, train.classes)));
        }
        return Ok((train, test));
    }
    let train = load(root, shape)?;
    let test = Dataset { shape, pixels: Vec::new(), labels: Vec::new(), classes: train.classes.clone() };
    Ok((train, test))
}
