//! Data sets in memory as raw bytes (`[N, C, H, W]`, 0-255) with labels, and the batches built
//! from them: scaled to [0, 1], normalised per channel, optionally shifted at random.

pub mod bundled;
pub mod cifar;
pub mod folder;
pub mod idx;
pub mod mnist;

use crate::error::{Error, Result};
use crate::rng::{mix64, Rng};
use crate::tensor::Tensor;
use std::path::Path;

/// Images of one shape with class labels.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// `[C, H, W]` of every image.
    pub shape: [usize; 3],
    /// `[N, C, H, W]` bytes.
    pub pixels: Vec<u8>,
    /// One class index per image.
    pub labels: Vec<u16>,
    /// Class names, indexed by label.
    pub classes: Vec<String>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The bytes of image `i`, `[C, H, W]`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let mut pixels = Vec::with_capacity(indices.len() * self.image_len());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        Dataset {
            shape: self.shape,
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            classes: self.classes.clone(),
        }
    }

    /// Splits off `held_out` images, chosen by a seeded shuffle, as a validation set:
    /// `(train, validation)`.
    pub fn split(&self, held_out: usize, seed: u64) -> Result<(Dataset, Dataset)> {
        if held_out >= self.len() {
            return Err(Error::Invalid(format!(
                "cannot hold out {held_out} of {} images for validation",
                self.len()
            )));
        }
        let mut order: Vec<usize> = (0..self.len()).collect();
        Rng::new(seed).shuffle(&mut order);
        let (train, val) = order.split_at(self.len() - held_out);
        let (mut train, mut val) = (train.to_vec(), val.to_vec());
        train.sort_unstable();
        val.sort_unstable();
        Ok((self.subset(&train), self.subset(&val)))
    }
}

/// Per-channel normalisation of pixels scaled to [0, 1]: `(x - mean) / std`.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalize {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalize {
    /// PyTorch's MNIST example: mean 0.1307, std 0.3081.
    pub fn mnist() -> Self {
        Normalize { mean: vec![0.1307], std: vec![0.3081] }
    }

    /// torchvision's ImageNet statistics.
    pub fn imagenet() -> Self {
        Normalize { mean: vec![0.485, 0.456, 0.406], std: vec![0.229, 0.224, 0.225] }
    }

    /// The mean and std of channel `c` (the last given, for fewer given than channels).
    pub fn channel(&self, c: usize) -> (f32, f32) {
        let pick = |v: &[f32]| v.get(c).or(v.last()).copied();
        (pick(&self.mean).unwrap_or(0.0), pick(&self.std).unwrap_or(1.0))
    }
}

/// Random shifts of up to `max` pixels in each direction, the empty border filled with 0
/// (black), drawn from `seed` and each image's position in the batch.
#[derive(Clone, Copy, Debug)]
pub struct Shift {
    pub max: usize,
    pub seed: u64,
    /// The place of the first image given in the step's whole batch (0 but for one rank's share
    /// of a distributed step): an image's shift is drawn for its place in the whole batch.
    pub first_image: usize,
}

/// One image's bytes (`[C, H, W]` of `shape`) as a batch of one, `[1, C, H, W]`, normalised by
/// `norm` as training normalises; inverted first (`255 - v`) when `invert` (the MNIST nets
/// learned white digits on black; a digit on paper is black on white).
pub fn single_input(shape: [usize; 3], mut pixels: Vec<u8>, norm: &Normalize, invert: bool) -> Tensor {
    if invert {
        pixels.iter_mut().for_each(|p| *p = 255 - *p);
    }
    let one = Dataset { shape, pixels, labels: vec![0], classes: vec![] };
    let (mut x, mut labels) = (Tensor::default(), Vec::new());
    fill_batch(&one, &[0], norm, None, &mut x, &mut labels);
    x
}

/// Fills `out` (`[B, C, H, W]`) and `labels` with the images at `indices`, normalised, and
/// shifted when `shift` is given.
pub fn fill_batch(ds: &Dataset, indices: &[usize], norm: &Normalize, shift: Option<Shift>, out: &mut Tensor, labels: &mut Vec<usize>) {
    let [c, h, w] = ds.shape;
    out.set_shape(&[indices.len(), c, h, w]);
    labels.clear();
    // A lookup table per channel: 256 values, so the batch costs one load per pixel.
    let tables: Vec<[f32; 256]> = (0..c)
        .map(|ch| {
            let (m, s) = norm.channel(ch);
            std::array::from_fn(|v| (v as f32 / 255.0 - m) / s)
        })
        .collect();
    let plane = h * w;
    for (b, (&i, dst)) in indices.iter().zip(out.data_mut().chunks_mut(c * plane)).enumerate() {
        labels.push(ds.labels[i] as usize);
        let src = ds.image(i);
        let (dy, dx) = match shift {
            Some(s) if s.max > 0 => {
                let r = mix64(s.seed ^ mix64((s.first_image + b) as u64 + 1));
                let span = 2 * s.max as u64 + 1;
                ((r % span) as isize - s.max as isize, ((r / span) % span) as isize - s.max as isize)
            }
            _ => (0, 0),
        };
        for ch in 0..c {
            let t = &tables[ch];
            let (sp, dp) = (&src[ch * plane..(ch + 1) * plane], &mut dst[ch * plane..(ch + 1) * plane]);
            if dy == 0 && dx == 0 {
                dp.iter_mut().zip(sp).for_each(|(d, &v)| *d = t[v as usize]);
                continue;
            }
            for y in 0..h {
                let sy = y as isize - dy;
                for x in 0..w {
                    let sx = x as isize - dx;
                    let v = if sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < w {
                        sp[sy as usize * w + sx as usize]
                    } else {
                        0
                    };
                    dp[y * w + x] = t[v as usize];
                }
            }
        }
    }
}

/// What `--data` accepts, for the errors that refuse a path.
pub const LAYOUTS: &str = "--data takes a folder of MNIST's IDX files (train-images-idx3-ubyte[.gz] and the \
other three), of CIFAR-10's binary batches (data_batch_1.bin ... test_batch.bin), or of images as \
<class>/*.png|jpg (or train/<class>/... beside test/<class>/...); without --data, the MNIST bundled \
in the binary";

/// A training set and a test set read from one directory.
pub struct Split {
    pub train: Dataset,
    pub test: Dataset,
    /// What was found: `MNIST (IDX)`, `CIFAR-10 (binary)` or `image folder`.
    pub format: &'static str,
}

/// Reads the data at `dir`: MNIST IDX files, CIFAR-10 binary batches, or an image folder
/// (`dir/<class>/*.png|jpg`, or `dir/train/<class>/...` with `dir/test/<class>/...`) whose
/// images are converted to `shape` (`[C, H, W]`).
pub fn load_dir(dir: &Path, shape: [usize; 3]) -> Result<Split> {
    if bundled::is_bundled(dir) {
        let (train, test) = bundled::load()?;
        return Ok(Split { train, test, format: "MNIST (IDX, bundled in the binary)" });
    }
    if !dir.exists() {
        return Err(Error::file(dir, format!("does not exist; {LAYOUTS}")));
    }
    if !dir.is_dir() {
        return Err(Error::file(dir, format!("is not a directory; {LAYOUTS}")));
    }
    if mnist::is_mnist_dir(dir) {
        let (train, test) = mnist::load(dir)?;
        return Ok(Split { train, test, format: "MNIST (IDX)" });
    }
    if let Some(cdir) = cifar::find_dir(dir) {
        let (train, test) = cifar::load(&cdir)?;
        return Ok(Split { train, test, format: "CIFAR-10 (binary)" });
    }
    let (train, test) = folder::load_split(dir, shape)?;
    Ok(Split { train, test, format: "image folder" })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Dataset {
        Dataset { shape: [1, 3, 3], pixels: (0..18).map(|v| v as u8 * 10).collect(), labels: vec![4, 7], classes: (0..10).map(|c| c.to_string()).collect() }
    }

    #[test]
    fn batches_are_normalised_and_shifted() {
        let ds = tiny();
        let (mut out, mut labels) = (Tensor::default(), Vec::new());
        let norm = Normalize { mean: vec![0.5], std: vec![0.25] };
        fill_batch(&ds, &[1, 0], &norm, None, &mut out, &mut labels);
        assert_eq!(out.shape(), &[2, 1, 3, 3]);
        assert_eq!(labels, vec![7, 4]);
        assert!((out.data()[0] - (90.0 / 255.0 - 0.5) / 0.25).abs() < 1e-6);
        // A shift moves content and fills the border with the value of a black pixel.
        let black = (0.0 - 0.5) / 0.25;
        let mut shifted_any = false;
        for seed in 0..20 {
            fill_batch(&ds, &[0], &norm, Some(Shift { max: 1, seed, first_image: 0 }), &mut out, &mut labels);
            let sum: f32 = out.data().iter().sum();
            let plain: f32 = (0..9).map(|v| (v as f32 * 10.0 / 255.0 - 0.5) / 0.25).sum();
            if (sum - plain).abs() > 1e-4 {
                shifted_any = true;
                assert!(out.data().iter().any(|&v| (v - black).abs() < 1e-6));
            }
        }
        assert!(shifted_any);
    }

    /// One rank's share of a batch, told where it starts, gets the shifts the whole batch gives
    /// those images.
    #[test]
    fn a_share_of_a_batch_is_shifted_as_in_the_whole_batch() {
        let ds = Dataset { shape: [1, 5, 5], pixels: (0..5 * 25).map(|v| (v * 7 % 256) as u8).collect(), labels: vec![0, 1, 2, 3, 4], classes: vec![] };
        let norm = Normalize { mean: vec![0.0], std: vec![1.0] };
        let (mut whole, mut share, mut labels) = (Tensor::default(), Tensor::default(), Vec::new());
        let order = [3, 0, 4, 1, 2];
        fill_batch(&ds, &order, &norm, Some(Shift { max: 2, seed: 77, first_image: 0 }), &mut whole, &mut labels);
        fill_batch(&ds, &order[2..], &norm, Some(Shift { max: 2, seed: 77, first_image: 2 }), &mut share, &mut labels);
        assert_eq!(share.data(), &whole.data()[2 * 25..]);
        assert_eq!(labels, vec![4, 1, 2]);
        // Told nothing, the share would be shifted as the batch's first images are.
        fill_batch(&ds, &order[2..], &norm, Some(Shift { max: 2, seed: 77, first_image: 0 }), &mut share, &mut labels);
        assert_ne!(share.data(), &whole.data()[2 * 25..]);
    }

    #[test]
    fn split_is_seeded_and_disjoint() {
        let ds = Dataset { shape: [1, 1, 1], pixels: (0..100).collect(), labels: (0..100).collect(), classes: vec![] };
        let (a, b) = ds.split(10, 3).unwrap();
        let (a2, _) = ds.split(10, 3).unwrap();
        assert_eq!((a.len(), b.len()), (90, 10));
        assert_eq!(a.labels, a2.labels);
        assert!(b.labels.iter().all(|l| !a.labels.contains(l)));
        assert!(ds.split(100, 0).is_err());
    }
}
