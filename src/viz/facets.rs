//! Nguyen et al.'s multifaceted feature visualization, its initialisation step: the images of
//! a data set that score highest for a class are clustered (k-means on a hidden layer's codes),
//! and each cluster's mean image starts its own gradient ascent, so the facets of a class
//! (a 7 with and without a bar, say) each get a picture.

use crate::data::{fill_batch, Dataset, Normalize};
use crate::error::{Error, Result};
use crate::layers::{ForwardCtx, Mode};
use crate::net::Net;
use crate::rng::Rng;
use crate::tensor::Tensor;

/// k-means with k-means++ seeding on `points` (each of length `dim`); returns each point's
/// cluster. Deterministic for a seed.
pub fn kmeans(points: &[Vec<f32>], k: usize, iterations: usize, seed: u64) -> Vec<usize> {
    let n = points.len();
    if n == 0 || k == 0 {
        return vec![0; n];
    }
    let k = k.min(n);
    let dist = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>();
    let mut rng = Rng::new(seed);
    let mut centres = vec![points[rng.below(n)].clone()];
    while centres.len() < k {
        let d: Vec<f32> = points.iter().map(|p| centres.iter().map(|c| dist(p, c)).fold(f32::MAX, f32::min)).collect();
        let total: f32 = d.iter().sum();
        let mut r = rng.uniform(0.0, total.max(1e-12));
        let mut pick = n - 1;
        for (i, di) in d.iter().enumerate() {
            if r < *di {
                pick = i;
                break;
            }
            r -= di;
        }
        centres.push(points[pick].clone());
    }
    let mut assign = vec![0; n];
    for _ in 0..iterations {
        for (i, p) in points.iter().enumerate() {
            assign[i] = (0..k).min_by(|&a, &b| dist(p, &centres[a]).total_cmp(&dist(p, &centres[b]))).unwrap_or(0);
        }
        for (c, centre) in centres.iter_mut().enumerate() {
            let members: Vec<&Vec<f32>> = points.iter().zip(&assign).filter(|(_, &a)| a == c).map(|(p, _)| p).collect();
            if members.is_empty() {
                continue;
            }
            for (d, v) in centre.iter_mut().enumerate() {
                *v = members.iter().map(|m| m[d]).sum::<f32>() / members.len() as f32;
            }
        }
    }
    assign
}

/// The mean images (`[1, C, H, W]`, normalised) of `k` clusters of the `top` images of `ds`
/// that score highest for `class`, clustered on node `layer`'s codes.
#[allow(clippy::too_many_arguments)]
pub fn facet_starts(net: &mut Net, ds: &Dataset, norm: &Normalize, class: usize, layer: &str, k: usize, top: usize, seed: u64) -> Result<Vec<Tensor>> {
    let (mut x, mut labels) = (Tensor::default(), Vec::new());
    let mut scored: Vec<(f32, usize)> = Vec::new();
    let idx: Vec<usize> = (0..ds.len()).collect();
    for chunk in idx.chunks(256) {
        fill_batch(ds, chunk, norm, None, &mut x, &mut labels);
        let logits = net.forward(&x, &ForwardCtx { mode: Mode::Eval, seed: 0, ..Default::default() })?;
        let kc = logits.shape()[1];
        if class >= kc {
            return Err(Error::Invalid(format!("class {class} is not one of the net's classes 0-{}", kc.saturating_sub(1))));
        }
        scored.extend(chunk.iter().enumerate().map(|(b, &i)| (logits.data()[b * kc + class], i)));
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.truncate(top.max(k));
    let chosen: Vec<usize> = scored.iter().map(|s| s.1).collect();
    fill_batch(ds, &chosen, norm, None, &mut x, &mut labels);
    net.forward(&x, &ForwardCtx { mode: Mode::Eval, seed: 0, ..Default::default() })?;
    let codes = net.value(layer).ok_or_else(|| crate::viz::no_node(net, layer))?;
    let dim = codes.len() / chosen.len().max(1);
    let points: Vec<Vec<f32>> = codes.data().chunks(dim).map(|c| c.to_vec()).collect();
    let assign = kmeans(&points, k, 20, seed);
    let per = x.len() / chosen.len().max(1);
    let mut shape = vec![1];
    shape.extend_from_slice(&x.shape()[1..]);
    let mut starts = Vec::new();
    for c in 0..k.min(chosen.len()) {
        let members: Vec<usize> = (0..chosen.len()).filter(|&i| assign[i] == c).collect();
        if members.is_empty() {
            continue;
        }
        let mean: Vec<f32> = (0..per).map(|j| members.iter().map(|&m| x.data()[m * per + j]).sum::<f32>() / members.len() as f32).collect();
        starts.push(Tensor::from_vec(&shape, mean)?);
    }
    Ok(starts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kmeans_separates_two_blobs() {
        let mut pts: Vec<Vec<f32>> = (0..10).map(|i| vec![i as f32 * 0.01, 0.0]).collect();
        pts.extend((0..10).map(|i| vec![5.0 + i as f32 * 0.01, 5.0]));
        let a = kmeans(&pts, 2, 10, 3);
        assert!(a[..10].iter().all(|&c| c == a[0]) && a[10..].iter().all(|&c| c == a[10]) && a[0] != a[10]);
    }
}
