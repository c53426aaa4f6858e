//! Top image patches for a channel: scan a data set, keep the images where the channel fires
//! most, crop each to the receptive field of its strongest cell, and set the crop beside its
//! guided backprop (the lecture's all-convolutional-net slide).

use super::render::{enlarge, factor_for, grid, signed_tile};
use super::target::{input_gradient, Target};
use super::input_image;
use crate::data::{fill_batch, Dataset, Normalize};
use crate::error::{Error, Result};
use crate::geometry::Region;
use crate::layers::{ForwardCtx, Mode};
use crate::net::Net;
use crate::tensor::Tensor;
use crate::ReluRule;
use image::RgbImage;

/// One of a channel's strongest responses.
#[derive(Clone, Debug, PartialEq)]
pub struct Patch {
    /// Image index in the data set.
    pub image: usize,
    pub value: f32,
    /// The strongest cell of the channel's map.
    pub y: usize,
    pub x: usize,
    /// Its receptive field in the image.
    pub region: Region,
}

/// The `top` strongest responses of each of `channels` of node `layer` over the first `limit`
/// images of `ds` (one scan for all channels). One patch per image and channel: its maximal cell.
pub fn top_patches(net: &mut Net, ds: &Dataset, norm: &Normalize, layer: &str, channels: &[usize], top: usize, limit: usize) -> Result<Vec<Vec<Patch>>> {
    top_patches_with_progress(net, ds, norm, layer, channels, top, limit, |_| ())
}

/// `top_patches`, calling `progress` with the number of images scanned after each batch.
#[allow(clippy::too_many_arguments)]
pub fn top_patches_with_progress(net: &mut Net, ds: &Dataset, norm: &Normalize, layer: &str, channels: &[usize], top: usize, limit: usize, mut progress: impl FnMut(usize)) -> Result<Vec<Vec<Patch>>> {
    let n = ds.len().min(limit);
    let mut best: Vec<Vec<Patch>> = vec![Vec::new(); channels.len()];
    let (mut x, mut labels) = (Tensor::default(), Vec::new());
    let idx: Vec<usize> = (0..n).collect();
    for chunk in idx.chunks(128) {
        fill_batch(ds, chunk, norm, None, &mut x, &mut labels);
        net.forward(&x, &ForwardCtx { mode: Mode::Eval, seed: 0, ..Default::default() })?;
        let v = net.value(layer).ok_or_else(|| crate::viz::no_node(net, layer))?;
        let (c, h, w) = match *v.shape() {
            [_, c, h, w] => (c, h, w),
            _ => return Err(Error::Invalid(format!("{layer}'s output {:?} has no maps: pick a conv layer", v.shape()))),
        };
        for (k, &ch) in channels.iter().enumerate() {
            if ch >= c {
                return Err(Error::Invalid(format!("{layer} has {c} channels, not {}", ch + 1)));
            }
            for (b, &image) in chunk.iter().enumerate() {
                let map = &v.data()[(b * c + ch) * h * w..(b * c + ch + 1) * h * w];
                let (i, &value) = map.iter().enumerate().fold((0, &f32::NEG_INFINITY), |acc, (i, v)| if *v > *acc.1 { (i, v) } else { acc });
                best[k].push(Patch { image, value, y: i / w, x: i % w, region: Region::cell(0, 0) });
            }
            best[k].sort_by(|a, b| b.value.total_cmp(&a.value));
            best[k].truncate(top);
        }
        progress(chunk[chunk.len() - 1] + 1);
    }
    for list in best.iter_mut() {
        for p in list.iter_mut() {
            p.region = net.receptive_field(layer, p.y, p.x)?;
        }
    }
    Ok(best)
}

fn crop(img: &RgbImage, r: &Region) -> RgbImage {
    image::imageops::crop_imm(img, r.x0 as u32, r.y0 as u32, r.width() as u32, r.height() as u32).to_image()
}

/// Each patch's crop beside the crop of its guided backprop, in rows of `per_row` pairs.
pub fn patches_image(net: &mut Net, ds: &Dataset, norm: &Normalize, layer: &str, channel: usize, patches: &[Patch], per_row: usize) -> Result<RgbImage> {
    let mut tiles = Vec::new();
    for p in patches {
        let (mut x, mut l) = (Tensor::default(), Vec::new());
        fill_batch(ds, &[p.image], norm, None, &mut x, &mut l);
        let target = Target::Neuron { node: layer.to_string(), channel, at: Some((p.y, p.x)) };
        let (g, _) = input_gradient(net, &x, &target, ReluRule::Guided)?;
        let s = g.shape();
        let gimg = signed_tile(g.data(), s[1], s[2], s[3]);
        let (a, b) = (crop(&input_image(&x, norm), &p.region), crop(&gimg, &p.region));
        let f = factor_for(a.width().max(a.height()), 64);
        tiles.push(grid(&[enlarge(&a, f), enlarge(&b, f)], 2, 1));
    }
    Ok(grid(&tiles, per_row, 4))
}
