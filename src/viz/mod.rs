//! Looking inside a convnet: filters as images, activation maps, gradients at the image under
//! the plain, guided and deconvnet rules (saliency maps), gradient ascent to a class or a
//! neuron, and the HTML report that gathers them.

pub mod ascent;
pub mod cam;
pub mod dream;
pub mod facets;
pub mod filter;
pub mod lucid;
pub mod patches;
pub mod render;
pub mod report;
pub mod style;
pub mod target;

use crate::data::Normalize;
use crate::error::{Error, Result};
use crate::layers::{ForwardCtx, Mode};
use crate::net::Net;
use crate::tensor::Tensor;
use image::RgbImage;
use render::{enlarge, factor_for, grid, range_tile, signed_tile};

/// The node a name means: the node itself, or for a block of torchvision's names (`layer3`,
/// `features`, `inception4c` when it is not a node) the last node inside it, whose output is
/// the block's, as a PyTorch hook on the module would see it.
pub fn resolve_node(net: &Net, name: &str) -> Result<String> {
    if net.layer(name).is_some() {
        return Ok(name.to_string());
    }
    let prefix = format!("{name}.");
    net.node_names().filter(|n| n.starts_with(&prefix)).last().map(String::from).ok_or_else(|| no_node(net, name))
}

/// Every filter of conv node `layer`, a tile each: colour when it reads 3 channels, otherwise one
/// grey tile per input channel (rows: filters, columns: input channels). Each tile is scaled
/// symmetrically around zero.
/// The error for a node name the net does not have, listing the ones it has.
pub fn no_node(net: &Net, name: &str) -> Error {
    Error::Invalid(format!("no node named {name:?}; the nodes are {}", net.node_names().collect::<Vec<_>>().join(", ")))
}

pub fn filters_image(net: &Net, layer: &str) -> Result<RgbImage> {
    let l = net.layer(layer).ok_or_else(|| no_node(net, layer))?;
    let params = l.params();
    let weight = params
        .iter()
        .find(|(n, _)| *n == "weight")
        .filter(|(_, p)| p.value.shape().len() == 4)
        .ok_or_else(|| Error::Invalid(format!("{layer} is a {}, not a convolution", l.kind())))?;
    let s = weight.1.value.shape();
    let (o, i, kh, kw) = (s[0], s[1], s[2], s[3]);
    let d = weight.1.value.data();
    let f = factor_for(kh.max(kw) as u32, 40);
    let (tiles, cols) = if i == 3 {
        let t: Vec<RgbImage> = (0..o).map(|k| enlarge(&signed_tile(&d[k * 3 * kh * kw..(k + 1) * 3 * kh * kw], 3, kh, kw), f)).collect();
        (t, (o as f64).sqrt().ceil() as usize)
    } else if i == 1 {
        let t: Vec<RgbImage> = (0..o).map(|k| enlarge(&signed_tile(&d[k * kh * kw..(k + 1) * kh * kw], 1, kh, kw), f)).collect();
        (t, (o as f64).sqrt().ceil() as usize)
    } else {
        let t: Vec<RgbImage> = (0..o * i).map(|k| enlarge(&signed_tile(&d[k * kh * kw..(k + 1) * kh * kw], 1, kh, kw), f)).collect();
        (t, i)
    };
    Ok(grid(&tiles, cols, 2))
}

/// An image at its own size as the net's input `[1, C, H, W]` (C = 1 grey or 3 RGB),
/// normalised by `norm`; `input_image` is its inverse.
pub fn image_tensor(img: &image::DynamicImage, channels: usize, norm: &Normalize) -> Tensor {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let plane = h * w;
    let mut data = vec![0.0; channels * plane];
    let pixels: Vec<u8> = if channels == 1 { img.to_luma8().into_raw() } else { img.to_rgb8().into_raw() };
    for i in 0..plane {
        for ch in 0..channels {
            let v = pixels[i * channels + ch] as f32 / 255.0;
            let (mean, std) = norm.channel(ch);
            data[ch * plane + i] = (v - mean) / std;
        }
    }
    Tensor::from_vec(&[1, channels, h, w], data).unwrap_or_else(|_| Tensor::zeros(&[1, channels, h, w]))
}

/// The input image `x` (`[1, C, H, W]`, normalised) back as pixels.
pub fn input_image(x: &Tensor, norm: &Normalize) -> RgbImage {
    let s = x.shape();
    let (c, h, w) = (s[1], s[2], s[3]);
    let plane = h * w;
    let px = |ch: usize, i: usize| {
        let (m, sd) = norm.channel(ch);
        ((x.data()[ch * plane + i] * sd + m).clamp(0.0, 1.0) * 255.0).round() as u8
    };
    RgbImage::from_fn(w as u32, h as u32, |xx, y| {
        let i = y as usize * w + xx as usize;
        if c >= 3 {
            image::Rgb([px(0, i), px(1, i), px(2, i)])
        } else {
            let g = px(0, i);
            image::Rgb([g, g, g])
        }
    })
}

/// Every channel's map of node `layer` for the image `x` (`[1, C, H, W]`), each scaled from its
/// own minimum to maximum, in a grid; the input image first.
pub fn activations_image(net: &mut Net, x: &Tensor, layer: &str, norm: &Normalize) -> Result<RgbImage> {
    net.forward(x, &ForwardCtx { mode: Mode::Eval, seed: 0, ..Default::default() })?;
    let v = net.value(layer).ok_or_else(|| no_node(net, layer))?;
    let (c, h, w) = match *v.shape() {
        [_, c, h, w] => (c, h, w),
        _ => return Err(Error::Invalid(format!("{layer}'s output {:?} is not a stack of maps", v.shape()))),
    };
    let f = factor_for(h.max(w) as u32, 56);
    let input = input_image(x, norm);
    let mut tiles = vec![image::imageops::resize(&input, w as u32 * f, h as u32 * f, image::imageops::FilterType::Nearest)];
    tiles.extend((0..c).map(|k| enlarge(&range_tile(&v.data()[k * h * w..(k + 1) * h * w], h, w), f)));
    Ok(grid(&tiles, ((c + 1) as f64).sqrt().ceil() as usize, 2))
}

/// A gradient at the image (`[1, C, H, W]`) as a picture: `saliency` as Simonyan et al.'s
/// map in a hot colour map; otherwise signed, in a diverging map (one channel) or scaled
/// around grey (colour).
pub fn gradient_image(grad: &Tensor, saliency: bool, clip: f32) -> RgbImage {
    let s = grad.shape();
    let (c, h, w) = (s[1], s[2], s[3]);
    if saliency {
        render::hot(&target::saliency(grad), h, w, clip)
    } else if c == 1 {
        render::diverging(grad.data(), h, w, clip)
    } else {
        let m = render::percentile(grad.data(), clip, true).max(1e-12);
        let clipped: Vec<f32> = grad.data().iter().map(|v| v.clamp(-m, m)).collect();
        signed_tile(&clipped, c, h, w)
    }
}
