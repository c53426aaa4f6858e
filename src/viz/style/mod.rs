//! Neural style transfer (Gatys, Ecker and Bethge, "Image Style Transfer Using Convolutional
//! Neural Networks", 2016): an image whose VGG features match a photo's at one layer (content)
//! and whose features' Gram matrices match a painting's at several (style), optimised by
//! L-BFGS or Adam. The losses, exactly as the paper and issue 10 state them:
//! - content = 1/2 sum((F - P)^2) at the content layer;
//! - style = sum over style layers of w_l E_l, w_l = 1 / L,
//!   E_l = sum((G - A)^2) / (4 N_l^2 M_l^2), G = F F^T over N_l channels x M_l positions;
//! - tv = sum of squared differences between neighbouring pixels (normalised input);
//! - total = alpha content + beta style + gamma tv.

pub mod photos;
pub mod realtime;

use crate::error::{Error, Result};
use crate::kernels::matmul::{matmul, Mat, Threads};
use crate::layers::{AvgPool2d, BackwardCtx, ForwardCtx, Mode};
use crate::net::Net;
use crate::tensor::Tensor;
use crate::ReluRule;
use serde::Serialize;

/// Where the features are read: torchvision's VGG-19 names by default (the ReLUs after
/// conv1_1, conv2_1, conv3_1, conv4_1, conv5_1 for style; after conv4_2 for content).
#[derive(Clone, Debug)]
pub struct StyleLayers {
    pub style: Vec<String>,
    pub content: String,
}

impl Default for StyleLayers {
    fn default() -> Self {
        StyleLayers { style: ["features.1", "features.6", "features.11", "features.20", "features.29"].map(String::from).to_vec(), content: "features.22".into() }
    }
}

/// The weights of the three terms.
#[derive(Clone, Copy, Debug)]
pub struct LossWeights {
    pub alpha: f32,
    pub beta: f32,
    pub gamma: f32,
}

impl Default for LossWeights {
    fn default() -> Self {
        LossWeights { alpha: 1.0, beta: 1e3, gamma: 0.0 }
    }
}

/// The losses at one image, unweighted, and the weighted total.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Losses {
    pub content: f64,
    pub style: f64,
    pub tv: f64,
    pub total: f64,
}

/// `G = F F^T` of features `f` (`N` channels x `M` positions, row-major): `[N, N]`.
pub fn gram(f: &[f32], n: usize, m: usize) -> Vec<f32> {
    let mut g = vec![0.0; n * n];
    matmul(&mut g, Mat::n(f), Mat::t(f), n, n, m, false, Threads::Pool);
    g
}

/// `E = sum((G - A)^2) / (4 N^2 M^2)` for features `f` (`[N, M]`) against the style's Gram
/// matrix `a`, and `dE/dF = (G - A) F / (N^2 M^2)`.
pub fn style_layer_loss(f: &[f32], a: &[f32], n: usize, m: usize) -> (f64, Vec<f32>) {
    let g = gram(f, n, m);
    let diff: Vec<f32> = g.iter().zip(a).map(|(x, y)| x - y).collect();
    let norm = (n as f64 * n as f64) * (m as f64 * m as f64);
    let e = diff.iter().map(|d| (*d as f64).powi(2)).sum::<f64>() / (4.0 * norm);
    let mut grad = vec![0.0; n * m];
    matmul(&mut grad, Mat::n(&diff), Mat::n(f), n, m, n, false, Threads::Pool);
    let k = (1.0 / norm) as f32;
    grad.iter_mut().for_each(|v| *v *= k);
    (e, grad)
}

/// `1/2 sum((F - P)^2)` and its gradient `F - P`.
pub fn content_loss(f: &[f32], p: &[f32]) -> (f64, Vec<f32>) {
    let grad: Vec<f32> = f.iter().zip(p).map(|(a, b)| a - b).collect();
    (0.5 * grad.iter().map(|d| (*d as f64).powi(2)).sum::<f64>(), grad)
}

/// Total variation of `x` (`[1, C, H, W]`): the sum over channels of squared differences
/// between vertical and horizontal neighbours, and its gradient.
pub fn total_variation(x: &Tensor) -> (f64, Vec<f32>) {
    let s = x.shape();
    let (h, w) = (s[2], s[3]);
    let mut grad = vec![0.0; x.data().len()];
    let mut tv = 0.0f64;
    for (plane, gp) in x.data().chunks(h * w).zip(grad.chunks_mut(h * w)) {
        for y in 0..h {
            for xx in 0..w {
                let i = y * w + xx;
                for j in [(y + 1 < h).then(|| i + w), (xx + 1 < w).then(|| i + 1)].into_iter().flatten() {
                    let d = plane[j] - plane[i];
                    tv += (d as f64).powi(2);
                    gp[j] += 2.0 * d;
                    gp[i] -= 2.0 * d;
                }
            }
        }
    }
    (tv, grad)
}

/// The features the image is pulled towards: the content photo's at the content layer, the
/// style image's Gram matrices at the style layers.
pub struct Targets {
    content: Vec<f32>,
    grams: Vec<Vec<f32>>,
}

/// The deepest of `layers`' nodes, which a forward pass must reach.
pub(crate) fn deepest(net: &Net, layers: &StyleLayers) -> Result<String> {
    let names: Vec<&str> = net.node_names().collect();
    let mut best = 0;
    for l in layers.style.iter().chain(std::iter::once(&layers.content)) {
        let i = names.iter().position(|n| n == l).ok_or_else(|| super::no_node(net, l))?;
        best = best.max(i);
    }
    Ok(names[best].to_string())
}

/// `[N, M]` view of a node's output `[1, N, h, w]`, and (N, M).
fn features<'a>(net: &'a Net, layer: &str) -> Result<(&'a [f32], usize, usize)> {
    let v = net.value(layer).ok_or_else(|| super::no_node(net, layer))?;
    match *v.shape() {
        [1, n, h, w] => Ok((v.data(), n, h * w)),
        ref s => Err(Error::shape(format!("style transfer reads maps [1, C, H, W]; {layer} gives {s:?}"))),
    }
}

/// Runs the net up to the deepest layer, with an error that says which image does not fit.
fn forward(net: &mut Net, x: &Tensor, layers: &StyleLayers, what: &str) -> Result<()> {
    let last = deepest(net, layers)?;
    let s = x.shape();
    net.forward_to(x, &ForwardCtx { mode: Mode::Eval, seed: 0, ..Default::default() }, &last).map_err(|e| {
        Error::Invalid(format!("the {what} at {}x{} pixels is too small for the layers up to {last} ({e}); give a larger --size", s[3], s[2]))
    })?;
    Ok(())
}

/// The targets of a content photo and a style image (both `[1, C, H, W]`, normalised).
pub fn targets(net: &mut Net, content: &Tensor, style: &Tensor, layers: &StyleLayers) -> Result<Targets> {
    if content.shape()[1] != style.shape()[1] {
        return Err(Error::shape(format!("the content image has {} channels, the style image {}", content.shape()[1], style.shape()[1])));
    }
    forward(net, content, layers, "content image")?;
    let content_features = features(net, &layers.content)?.0.to_vec();
    forward(net, style, layers, "style image")?;
    let mut grams = Vec::new();
    for l in &layers.style {
        let (f, n, m) = features(net, l)?;
        grams.push(gram(f, n, m));
    }
    Ok(Targets { content: content_features, grams })
}

/// The losses at image `x` and the gradient of the weighted total with respect to `x`.
pub fn losses_and_gradient(net: &mut Net, x: &Tensor, targets: &Targets, layers: &StyleLayers, weights: &LossWeights) -> Result<(Losses, Tensor)> {
    forward(net, x, layers, "image")?;
    let mut seeds: Vec<(String, Tensor)> = Vec::new();
    let (f, ..) = features(net, &layers.content)?;
    if f.len() != targets.content.len() {
        return Err(Error::shape(format!("the image's {} features at {} differ from the content photo's {}", f.len(), layers.content, targets.content.len())));
    }
    let (content, g) = content_loss(f, &targets.content);
    let shape = net.value(&layers.content).map(|v| v.shape().to_vec()).unwrap_or_default();
    seeds.push((layers.content.clone(), Tensor::from_vec(&shape, g.iter().map(|v| v * weights.alpha).collect())?));
    let w_l = 1.0 / layers.style.len().max(1) as f64;
    let mut style = 0.0;
    for (l, a) in layers.style.iter().zip(&targets.grams) {
        let (f, n, m) = features(net, l)?;
        let (e, g) = style_layer_loss(f, a, n, m);
        style += w_l * e;
        let k = (weights.beta as f64 * w_l) as f32;
        let shape = net.value(l).map(|v| v.shape().to_vec()).unwrap_or_default();
        seeds.push((l.clone(), Tensor::from_vec(&shape, g.iter().map(|v| v * k).collect())?));
    }
    let refs: Vec<(&str, &Tensor)> = seeds.iter().map(|(n, t)| (n.as_str(), t)).collect();
    net.backward_seeds(&refs, &BackwardCtx { rule: ReluRule::Plain, param_grads: false, input_grad: true })?;
    let mut grad = net.input_grad().clone();
    let (tv, tv_grad) = total_variation(x);
    if weights.gamma != 0.0 {
        for (g, t) in grad.data_mut().iter_mut().zip(&tv_grad) {
            *g += weights.gamma * t;
        }
    }
    let total = weights.alpha as f64 * content + weights.beta as f64 * style + weights.gamma as f64 * tv;
    Ok((Losses { content, style, tv, total }, grad))
}

/// Where the optimisation starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    Content,
    Style,
    Noise,
}

/// The optimiser of the image.
#[derive(Clone, Copy, Debug)]
pub enum Optimizer {
    /// L-BFGS with this many remembered steps, as the paper.
    Lbfgs { history: usize },
    /// Adam at this learning rate (in the normalised input's units).
    Adam { lr: f32 },
}

/// Optimises an image for `steps` steps from `init`; `each_step(step, losses)` sees step 0
/// (before any update) and every step after. Returns the image (`[1, C, H, W]`, normalised).
#[allow(clippy::too_many_arguments)]
pub fn stylize(
    net: &mut Net,
    content: &Tensor,
    style: &Tensor,
    layers: &StyleLayers,
    weights: &LossWeights,
    init: Init,
    optimizer: Optimizer,
    steps: usize,
    seed: u64,
    mut each_step: impl FnMut(usize, &Losses),
) -> Result<Tensor> {
    let targets = targets(net, content, style, layers)?;
    let mut x = match init {
        Init::Content => content.clone(),
        Init::Style => super::dream::resize(style, content.shape()[2], content.shape()[3]),
        Init::Noise => {
            let mut rng = crate::rng::Rng::new(seed);
            Tensor::from_vec(content.shape(), (0..content.data().len()).map(|_| rng.normal()).collect())?
        }
    };
    let shape = x.shape().to_vec();
    let (first, _) = losses_and_gradient(net, &x, &targets, layers, weights)?;
    each_step(0, &first);
    match optimizer {
        Optimizer::Lbfgs { history } => {
            // The losses of the point the line search accepted last, for the step's report.
            let last = std::cell::Cell::new(first);
            let mut data = x.data().to_vec();
            crate::optim::lbfgs::minimize(
                &mut data,
                steps,
                history,
                |p| {
                    let t = Tensor::from_vec(&shape, p.to_vec())?;
                    let (l, g) = losses_and_gradient(net, &t, &targets, layers, weights)?;
                    last.set(l);
                    Ok((l.total, g.data().to_vec()))
                },
                |step, _| each_step(step, &last.get()),
            )?;
            x = Tensor::from_vec(&shape, data)?;
        }
        Optimizer::Adam { lr } => {
            let mut adam = crate::optim::VecAdam::new(x.data().len());
            for step in 1..=steps {
                let (_, g) = losses_and_gradient(net, &x, &targets, layers, weights)?;
                adam.step(x.data_mut(), g.data(), lr);
                let (l, _) = losses_and_gradient(net, &x, &targets, layers, weights)?;
                each_step(step, &l);
            }
        }
    }
    Ok(x)
}

/// Gatys et al.'s variant of a VGG: every max pooling layer swapped for average pooling over
/// the same window.
pub fn average_pools(net: &mut Net) -> Result<()> {
    let pools: Vec<(String, crate::geometry::Window2d)> =
        net.node_names().filter_map(|n| net.layer(n).and_then(|l| l.max_pool_window()).map(|w| (n.to_string(), w))).collect();
    for (name, window) in pools {
        net.replace_layer(&name, AvgPool2d::new(window)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gram_and_losses_by_hand() {
        // F = [[1, 2, 0], [0, 1, 3]]: G = [[5, 2], [2, 10]].
        let f = [1.0, 2.0, 0.0, 0.0, 1.0, 3.0];
        assert_eq!(gram(&f, 2, 3), vec![5.0, 2.0, 2.0, 10.0]);
        // Against A = [[4, 2], [2, 8]]: sum((G - A)^2) = 1 + 4 = 5; / (4 * 2^2 * 3^2) = 144.
        let (e, g) = style_layer_loss(&f, &[4.0, 2.0, 2.0, 8.0], 2, 3);
        assert!((e - 5.0 / 144.0).abs() < 1e-9, "{e}");
        // dE/dF = (G - A) F / 36 = [[1, 0], [0, 2]] F / 36.
        let want = [1.0, 2.0, 0.0, 0.0, 2.0, 6.0].map(|v: f32| v / 36.0);
        assert!(g.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-7), "{g:?}");
        let (c, g) = content_loss(&[1.0, 2.0], &[0.0, 4.0]);
        assert_eq!((c, g), (2.5, vec![1.0, -2.0]));
        // One 2x2 plane [[0, 1], [3, 5]]: (3-0)^2 + (5-1)^2 + (1-0)^2 + (5-3)^2 = 30.
        let x = Tensor::from_vec(&[1, 1, 2, 2], vec![0.0, 1.0, 3.0, 5.0]).unwrap();
        assert_eq!(total_variation(&x).0, 30.0);
    }

    #[test]
    fn gradients_match_finite_differences() {
        let mut rng = crate::rng::Rng::new(4);
        let (n, m) = (3, 7);
        let f = rng.uniform_vec(n * m, -1.0, 1.0);
        let a = gram(&rng.uniform_vec(n * m, -1.0, 1.0), n, m);
        let x = Tensor::from_vec(&[1, 2, 3, 4], rng.uniform_vec(24, -1.0, 1.0)).unwrap();
        let (_, gs) = style_layer_loss(&f, &a, n, m);
        let (_, gt) = total_variation(&x);
        let h = 1e-3f32;
        for i in [0, 5, 11, 20] {
            let at = |d: f32| {
                let mut f2 = f.clone();
                f2[i] += d;
                style_layer_loss(&f2, &a, n, m).0
            };
            let numeric = (at(h) - at(-h)) / (2.0 * h as f64);
            assert!((numeric - gs[i] as f64).abs() < 1e-4 * (1.0 + numeric.abs()), "style at {i}: {numeric} vs {}", gs[i]);
            let at = |d: f32| {
                let mut x2 = x.clone();
                x2.data_mut()[i] += d;
                total_variation(&x2).0
            };
            let numeric = (at(h) - at(-h)) / (2.0 * h as f64);
            assert!((numeric - gt[i] as f64).abs() < 1e-2, "tv at {i}: {numeric} vs {}", gt[i]);
        }
    }
}
