//! MNIST from its four original IDX files, gzip-compressed or not, in a folder or bundled in
//! the binary.

use super::idx::{read_idx, read_idx_bytes, IdxArray};
use super::Dataset;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

const STEMS: [&str; 4] = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

/// `dir/stem.gz` or `dir/stem`, whichever exists.
fn find(dir: &Path, stem: &str) -> Option<PathBuf> {
    [dir.join(format!("{stem}.gz")), dir.join(stem)].into_iter().find(|p| p.is_file())
}

pub fn is_mnist_dir(dir: &Path) -> bool {
    find(dir, STEMS[0]).is_some() || find(dir, STEMS[2]).is_some()
}

/// The data set of an images array (`[N, H, W]`) and its labels (`[N]`, digits), each named by
/// its file in errors.
fn pair(img: IdxArray, ip: &Path, lab: IdxArray, lp: &Path) -> Result<Dataset> {
    let [n, h, w] = img.dims[..] else {
        return Err(Error::file(ip, format!("has dimensions {:?}, MNIST images need [N, 28, 28]", img.dims)));
    };
    if lab.dims.len() != 1 {
        return Err(Error::file(lp, format!("has dimensions {:?}, labels need [N]", lab.dims)));
    }
    if lab.dims[0] != n {
        return Err(Error::file(lp, format!("holds {} labels for the {n} images of {}", lab.dims[0], ip.display())));
    }
    if let Some(pos) = lab.data.iter().position(|&l| l > 9) {
        return Err(Error::file(lp, format!("label {} at index {pos} is not a digit 0-9", lab.data[pos])));
    }
    Ok(Dataset {
        shape: [1, h, w],
        pixels: img.data,
        labels: lab.data.iter().map(|&l| l as u16).collect(),
        classes: (0..10).map(|d| d.to_string()).collect(),
    })
}

fn load_pair(dir: &Path, images: &str, labels: &str) -> Result<Dataset> {
    let ip = find(dir, images).ok_or_else(|| Error::file(dir.join(format!("{images}.gz")), "not found (nor without .gz)"))?;
    let lp = find(dir, labels).ok_or_else(|| Error::file(dir.join(format!("{labels}.gz")), "not found (nor without .gz)"))?;
    pair(read_idx(&ip)?, &ip, read_idx(&lp)?, &lp)
}

/// `(train, test)` from the directory holding the four MNIST files.
pub fn load(dir: &Path) -> Result<(Dataset, Dataset)> {
    Ok((load_pair(dir, STEMS[0], STEMS[1])?, load_pair(dir, STEMS[2], STEMS[3])?))
}

/// `(train, test)` from the four files' bytes (gzip or plain), in the order of `STEMS`;
/// errors name them as files under `origin`.
pub fn load_bytes(origin: &Path, files: [&[u8]; 4]) -> Result<(Dataset, Dataset)> {
    let read = |i: usize| {
        let name = origin.join(STEMS[i]);
        read_idx_bytes(&name, files[i]).map(|a| (a, name))
    };
    let ((ti, tin), (tl, tln)) = (read(0)?, read(1)?);
    let ((ei, ein), (el, eln)) = (read(2)?, read(3)?);
    Ok((pair(ti, &tin, tl, &tln)?, pair(ei, &ein, el, &eln)?))
}
