//! What a visualization explains: a class score (before softmax) or one neuron, named
//! `LAYER:CHANNEL[:Y:X]` (a node's output; a conv node's output is before its ReLU; without
//! `Y:X`, the centre of the map). And the gradient of that target at the input image.

use crate::error::{Error, Result};
use crate::layers::{BackwardCtx, ForwardCtx, Mode};
use crate::net::Net;
use crate::tensor::Tensor;
use crate::ReluRule;

#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// A class score of the net's output.
    Class(usize),
    /// One neuron of a node's output: channel, and `(y, x)` for maps (the centre when `None`).
    Neuron { node: String, channel: usize, at: Option<(usize, usize)> },
    /// A whole channel: the mean of its map over positions (Olah et al.'s channel objective).
    Channel { node: String, channel: usize },
    /// A direction in a node's activation space: the mean over positions of the dot product
    /// of each position's activation vector with `vector` (one value per channel).
    Direction { node: String, vector: Vec<f32> },
    /// The sum of several objectives (possibly at different nodes).
    Sum(Vec<Target>),
}

/// As a user writes it: `class 7`, `neuron conv2:5`, `neuron conv2:5:4:6`.
impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Class(c) => write!(f, "class {c}"),
            Target::Neuron { node, channel, at: None } => write!(f, "neuron {node}:{channel}"),
            Target::Neuron { node, channel, at: Some((y, x)) } => write!(f, "neuron {node}:{channel}:{y}:{x}"),
            Target::Channel { node, channel } => write!(f, "channel {node}:{channel}"),
            Target::Direction { node, vector } => write!(f, "direction at {node} ({} channels)", vector.len()),
            Target::Sum(parts) => {
                let names: Vec<String> = parts.iter().map(|t| t.to_string()).collect();
                write!(f, "{}", names.join(" + "))
            }
        }
    }
}

impl Target {
    /// Parses `LAYER:CHANNEL[:Y:X]`.
    pub fn parse_neuron(s: &str) -> Result<Target> {
        let parts: Vec<&str> = s.split(':').collect();
        let num = |p: &str| p.parse::<usize>().map_err(|_| Error::Invalid(format!("neuron {s:?}: {p:?} is not a number (LAYER:CHANNEL[:Y:X])")));
        match parts.as_slice() {
            [node, c] => Ok(Target::Neuron { node: node.to_string(), channel: num(c)?, at: None }),
            [node, c, y, x] => Ok(Target::Neuron { node: node.to_string(), channel: num(c)?, at: Some((num(y)?, num(x)?)) }),
            _ => Err(Error::Invalid(format!("neuron {s:?} is not LAYER:CHANNEL[:Y:X]"))),
        }
    }

    /// Parses a class given by index or by label.
    pub fn parse_class(s: &str, labels: &[String]) -> Result<Target> {
        class_index(s, labels).map(Target::Class)
    }

    /// Parses `LAYER:CHANNEL` as a channel objective.
    pub fn parse_channel(s: &str) -> Result<Target> {
        match s.rsplit_once(':') {
            Some((node, c)) if !node.is_empty() => {
                let channel = c.parse().map_err(|_| Error::Invalid(format!("channel {s:?}: {c:?} is not a number (LAYER:CHANNEL)")))?;
                Ok(Target::Channel { node: node.to_string(), channel })
            }
            _ => Err(Error::Invalid(format!("channel {s:?} is not LAYER:CHANNEL"))),
        }
    }

    /// Parses `LAYER:V1,V2,...` (one weight per channel) as a direction objective.
    pub fn parse_direction(s: &str) -> Result<Target> {
        let Some((node, values)) = s.split_once(':') else {
            return Err(Error::Invalid(format!("direction {s:?} is not LAYER:V1,V2,... (one value per channel)")));
        };
        let vector = values
            .split(',')
            .map(|v| v.trim().parse::<f32>().ok().filter(|x| x.is_finite()))
            .collect::<Option<Vec<f32>>>()
            .ok_or_else(|| Error::Invalid(format!("direction {s:?}: the values must be numbers, comma-separated")))?;
        Ok(Target::Direction { node: node.to_string(), vector })
    }

    /// Each node the objective reads and the gradient of the objective with respect to that
    /// node's output, for the last forward pass (one seed per part of a sum).
    pub fn seeds(&self, net: &Net) -> Result<Vec<(String, Tensor)>> {
        let value_of = |node: &str| -> Result<Vec<usize>> {
            Ok(net
                .value(node)
                .ok_or_else(|| Error::Invalid(format!("no node named {node:?}; the nodes are {}", net.node_names().collect::<Vec<_>>().join(", "))))?
                .shape()
                .to_vec())
        };
        match self {
            Target::Class(_) | Target::Neuron { .. } => Ok(vec![self.seed(net)?]),
            Target::Channel { node, channel } => {
                let shape = value_of(node)?;
                let (c, positions) = (shape.get(1).copied().unwrap_or(0), shape[2..].iter().product::<usize>());
                if *channel >= c {
                    return Err(Error::Invalid(format!("{node}:{channel} is outside {node}'s {c} channels")));
                }
                let mut seed = Tensor::zeros(&shape);
                for sample in seed.data_mut().chunks_mut(c * positions) {
                    sample[channel * positions..(channel + 1) * positions].fill(1.0 / positions as f32);
                }
                Ok(vec![(node.clone(), seed)])
            }
            Target::Direction { node, vector } => {
                let shape = value_of(node)?;
                let (c, positions) = (shape.get(1).copied().unwrap_or(0), shape[2..].iter().product::<usize>());
                if vector.len() != c {
                    return Err(Error::Invalid(format!("the direction has {} values, {node} has {c} channels", vector.len())));
                }
                let mut seed = Tensor::zeros(&shape);
                for sample in seed.data_mut().chunks_mut(c * positions) {
                    for (ch, &v) in vector.iter().enumerate() {
                        sample[ch * positions..(ch + 1) * positions].fill(v / positions as f32);
                    }
                }
                Ok(vec![(node.clone(), seed)])
            }
            Target::Sum(parts) => {
                let mut all = Vec::new();
                for p in parts {
                    all.extend(p.seeds(net)?);
                }
                Ok(all)
            }
        }
    }

    /// The node whose output holds a class or neuron target, and the one-hot seed gradient of
    /// the target for that output's shape, in every image of the batch.
    pub fn seed(&self, net: &Net) -> Result<(String, Tensor)> {
        let (node, index, shape) = match self {
            Target::Class(c) => {
                let out = net.output_name().to_string();
                let shape = net.value(&out).map(|t| t.shape().to_vec()).unwrap_or_default();
                let k = *shape.last().unwrap_or(&0);
                if *c >= k {
                    return Err(Error::Invalid(format!("class {c} is not one of the net's classes 0-{}", k.saturating_sub(1))));
                }
                (out, *c, shape)
            }
            Target::Neuron { node, channel, at } => {
                let shape = net
                    .value(node)
                    .ok_or_else(|| Error::Invalid(format!("no node named {node:?}; the nodes are {}", net.node_names().collect::<Vec<_>>().join(", "))))?
                    .shape()
                    .to_vec();
                let index = match *shape.as_slice() {
                    [_, c, h, w] => {
                        let (y, x) = at.unwrap_or((h / 2, w / 2));
                        if *channel >= c || y >= h || x >= w {
                            return Err(Error::Invalid(format!("{node}:{channel}:{y}:{x} is outside {node}'s output [{c}, {h}, {w}]")));
                        }
                        (channel * h + y) * w + x
                    }
                    [_, k] if *channel < k => *channel,
                    _ => return Err(Error::Invalid(format!("{node}:{channel} is outside {node}'s output {:?}", &shape[1..]))),
                };
                (node.clone(), index, shape)
            }
            other => {
                let mut seeds = other.seeds(net)?;
                if seeds.len() != 1 {
                    return Err(Error::Invalid(format!("{other} reads several nodes: it has no single seed")));
                }
                return Ok(seeds.remove(0));
            }
        };
        // The same target in every image of the batch: one-hot in each sample's slice.
        let mut seed = Tensor::zeros(&shape);
        let per_sample = shape[1..].iter().product::<usize>();
        for b in 0..shape[0] {
            seed.data_mut()[b * per_sample + index] = 1.0;
        }
        Ok((node, seed))
    }
}

/// A class given by index or by label.
pub fn class_index(s: &str, labels: &[String]) -> Result<usize> {
    if let Ok(i) = s.parse::<usize>() {
        return Ok(i);
    }
    labels.iter().position(|l| l == s).ok_or_else(|| Error::Invalid(format!("no class labelled {s:?}")))
}

/// The gradient of `target` at the input `x` (`[N, C, H, W]`; each image its own gradient)
/// under `rule`, and the target's value summed over the batch. Evaluation mode: batch norm
/// uses its running statistics and dropout is off, so images do not affect one another.
pub fn input_gradient(net: &mut Net, x: &Tensor, target: &Target, rule: ReluRule) -> Result<(Tensor, f32)> {
    net.forward(x, &ForwardCtx { mode: Mode::Eval, seed: 0, ..Default::default() })?;
    let seeds = target.seeds(net)?;
    // Every objective is linear in its node's output, so its value is the seed's dot product.
    let value = seeds.iter().map(|(node, seed)| net.value(node).map_or(0.0, |t| t.data().iter().zip(seed.data()).map(|(a, b)| a * b).sum::<f32>())).sum();
    let refs: Vec<(&str, &Tensor)> = seeds.iter().map(|(n, t)| (n.as_str(), t)).collect();
    net.backward_seeds(&refs, &BackwardCtx { rule, param_grads: false, input_grad: true })?;
    Ok((net.input_grad().clone(), value))
}

/// Simonyan et al.'s saliency: the largest absolute gradient over the colour channels of each
/// pixel. `grad: [1, C, H, W]` -> `[H, W]`.
pub fn saliency(grad: &Tensor) -> Vec<f32> {
    let s = grad.shape();
    let (c, plane) = (s[1], s[2] * s[3]);
    (0..plane).map(|i| (0..c).map(|ch| grad.data()[ch * plane + i].abs()).fold(0.0, f32::max)).collect()
}
