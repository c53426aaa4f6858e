//! What practitioners use beside the lecture's methods: Grad-CAM (Selvaraju et al.) and guided
//! Grad-CAM at a chosen conv layer, and occlusion sensitivity (Zeiler and Fergus).

use super::target::{input_gradient, Target};
use crate::data::Normalize;
use crate::error::{Error, Result};
use crate::layers::{BackwardCtx, ForwardCtx, Mode};
use crate::net::Net;
use crate::tensor::Tensor;
use crate::ReluRule;

/// Bilinear resampling of one `[h, w]` map to `[oh, ow]` (align-corners off, as PyTorch).
pub fn resize_bilinear(map: &[f32], (h, w): (usize, usize), (oh, ow): (usize, usize)) -> Vec<f32> {
    let mut out = vec![0.0; oh * ow];
    for y in 0..oh {
        let fy = ((y as f32 + 0.5) * h as f32 / oh as f32 - 0.5).clamp(0.0, (h - 1) as f32);
        let (y0, ty) = (fy.floor() as usize, fy - fy.floor());
        let y1 = (y0 + 1).min(h - 1);
        for x in 0..ow {
            let fx = ((x as f32 + 0.5) * w as f32 / ow as f32 - 0.5).clamp(0.0, (w - 1) as f32);
            let (x0, tx) = (fx.floor() as usize, fx - fx.floor());
            let x1 = (x0 + 1).min(w - 1);
            let top = map[y0 * w + x0] * (1.0 - tx) + map[y0 * w + x1] * tx;
            let bottom = map[y1 * w + x0] * (1.0 - tx) + map[y1 * w + x1] * tx;
            out[y * ow + x] = top * (1.0 - ty) + bottom * ty;
        }
    }
    out
}

/// The node Grad-CAM looks at by default: the last ReLU (or concatenation of ReLU'd branches,
/// as GoogLeNet's inception blocks) whose output is still a stack of maps larger than 1x1 - the
/// last convolutional block's rectified output (`relu2` in the MNIST nets, `layer4.1.relu` in
/// ResNet, `inception5b` in GoogLeNet). Pre-ReLU conv outputs weighted by their mean gradients
/// are often negative everywhere, which the final ReLU turns into a blank map.
pub fn default_layer(net: &Net) -> Result<String> {
    let summary = net.summary(None)?;
    summary
        .layers
        .iter()
        .rev()
        .find(|r| (r.kind == "ReLU" || r.kind == "Concat") && r.output.len() == 3 && r.output[1] * r.output[2] > 1)
        .map(|r| r.name.clone())
        .ok_or_else(|| Error::Invalid("the model has no rectified stack of maps for Grad-CAM: give --layer".into()))
}

/// Grad-CAM of `class` at node `layer` for image `x` (`[1, C, H, W]`): the layer's maps
/// weighted by their mean gradient, summed, ReLU'd, resized to `[H, W]`.
pub fn grad_cam(net: &mut Net, x: &Tensor, class: usize, layer: &str) -> Result<Vec<f32>> {
    net.forward(x, &ForwardCtx { mode: Mode::Eval, seed: 0, ..Default::default() })?;
    let (node, seed) = Target::Class(class).seed(net)?;
    net.backward(&node, &seed, &BackwardCtx { rule: ReluRule::Plain, param_grads: false, input_grad: false })?;
    let a = net.value(layer).ok_or_else(|| crate::viz::no_node(net, layer))?;
    let g = net.grad(layer).filter(|g| !g.is_empty()).ok_or_else(|| Error::Invalid(format!("the class score does not depend on {layer}")))?;
    let (k, h, w) = match *a.shape() {
        [_, k, h, w] => (k, h, w),
        _ => return Err(Error::Invalid(format!("{layer}'s output {:?} is not a stack of maps: pick a conv layer", a.shape()))),
    };
    let plane = h * w;
    let mut cam = vec![0.0f32; plane];
    for c in 0..k {
        let alpha: f32 = g.data()[c * plane..(c + 1) * plane].iter().sum::<f32>() / plane as f32;
        for (v, a) in cam.iter_mut().zip(&a.data()[c * plane..(c + 1) * plane]) {
            *v += alpha * a;
        }
    }
    cam.iter_mut().for_each(|v| *v = v.max(0.0));
    let s = x.shape();
    Ok(resize_bilinear(&cam, (h, w), (s[2], s[3])))
}

/// Guided Grad-CAM: guided backprop times Grad-CAM, `[1, C, H, W]`.
pub fn guided_grad_cam(net: &mut Net, x: &Tensor, class: usize, layer: &str) -> Result<Tensor> {
    let cam = grad_cam(net, x, class, layer)?;
    let (mut g, _) = input_gradient(net, x, &Target::Class(class), ReluRule::Guided)?;
    let plane = cam.len();
    for ch in g.data_mut().chunks_mut(plane) {
        ch.iter_mut().zip(&cam).for_each(|(v, c)| *v *= c);
    }
    Ok(g)
}

/// Occlusion sensitivity: a grey `size` x `size` square slid with `stride` over `x`
/// (`[1, C, H, W]`); at each position, how much the class score (before softmax) drops.
/// Returns the `[H, W]` map (each pixel: the mean drop of the squares covering it).
pub fn occlusion(net: &mut Net, x: &Tensor, class: usize, size: usize, stride: usize, norm: &Normalize) -> Result<Vec<f32>> {
    let s = x.shape().to_vec();
    let (c, h, w) = (s[1], s[2], s[3]);
    if size == 0 || stride == 0 || size > h.min(w) {
        return Err(Error::Invalid(format!("occlusion square {size} at stride {stride} does not fit a {h}x{w} image")));
    }
    let score = |logits: &Tensor, row: usize| logits.data()[row * logits.shape()[1] + class];
    let base = score(net.forward(x, &ForwardCtx { mode: Mode::Eval, seed: 0, ..Default::default() })?, 0);
    let grey: Vec<f32> = (0..c).map(|ch| {
        let (mean, std) = norm.channel(ch);
        (0.5 - mean) / std
    }).collect();
    let positions: Vec<(usize, usize)> = (0..=(h - size)).step_by(stride).flat_map(|y| (0..=(w - size)).step_by(stride).map(move |xx| (y, xx))).collect();
    let (mut sum, mut count) = (vec![0.0f32; h * w], vec![0u32; h * w]);
    for batch in positions.chunks(32) {
        let mut data = Vec::with_capacity(batch.len() * x.len());
        for &(y0, x0) in batch {
            let mut img = x.data().to_vec();
            for ch in 0..c {
                for y in y0..y0 + size {
                    img[ch * h * w + y * w + x0..ch * h * w + y * w + x0 + size].fill(grey[ch]);
                }
            }
            data.extend(img);
        }
        let xb = Tensor::from_vec(&[batch.len(), c, h, w], data)?;
        let logits = net.forward(&xb, &ForwardCtx { mode: Mode::Eval, seed: 0, ..Default::default() })?;
        for (r, &(y0, x0)) in batch.iter().enumerate() {
            let drop = base - score(logits, r);
            for y in y0..y0 + size {
                for xx in x0..x0 + size {
                    sum[y * w + xx] += drop;
                    count[y * w + xx] += 1;
                }
            }
        }
    }
    Ok(sum.iter().zip(&count).map(|(s, &n)| if n > 0 { s / n as f32 } else { 0.0 }).collect())
}
