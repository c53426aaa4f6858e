//! torchvision's initialisations, for models trained from scratch. Layers start with PyTorch's
//! defaults (`Net::init`); these re-draw what torchvision draws differently.

use crate::net::Net;
use crate::rng::Rng;

/// How a family initialises its convolution and linear weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// PyTorch's layer defaults (AlexNet, the MNIST nets).
    Default,
    /// Conv weights normal with std `sqrt(2 / fan_out)`, conv biases 0 (ResNet, VGG);
    /// with `linear_normal`, linear weights normal(0, 0.01) and biases 0 (VGG).
    KaimingFanOut { linear_normal: bool },
    /// Conv and linear weights from a normal(0, 0.01) truncated to ±2 (GoogLeNet).
    TruncNormal,
}

/// The layer kind of the node a parameter (`features.0.weight`) belongs to.
fn kind_of(net: &Net, param: &str) -> Option<&'static str> {
    let node = param.rsplit_once('.').map_or(param, |(n, _)| n);
    net.layer(node).map(|l| l.kind())
}

/// Re-draws the parameters `scheme` says, from `seed`, in node order.
pub fn apply(net: &mut Net, scheme: Scheme, seed: u64) {
    if scheme == Scheme::Default {
        return;
    }
    let mut rng = Rng::new(seed ^ 0x1417);
    let plan: Vec<(String, &'static str, usize)> = net
        .params()
        .into_iter()
        .map(|(name, p)| {
            let kind = kind_of(net, &name);
            // Fan-out of a conv weight [out, in, kh, kw] is out * kh * kw.
            let s = p.value.shape();
            let fan_out = if s.len() == 4 { s[0] * s[2] * s[3] } else { s[0] };
            (name, kind.unwrap_or(""), fan_out)
        })
        .collect();
    for ((name, p), (_, kind, fan_out)) in net.params_mut().into_iter().zip(plan) {
        let is_weight = name.ends_with(".weight");
        let v = p.value.data_mut();
        match (scheme, kind, is_weight) {
            (Scheme::KaimingFanOut { .. }, "Conv2d", true) => {
                let std = (2.0 / fan_out as f32).sqrt();
                v.iter_mut().for_each(|x| *x = std * rng.normal());
            }
            (Scheme::KaimingFanOut { .. }, "Conv2d", false) => v.fill(0.0),
            (Scheme::KaimingFanOut { linear_normal: true }, "Linear", true) => {
                v.iter_mut().for_each(|x| *x = 0.01 * rng.normal());
            }
            (Scheme::KaimingFanOut { linear_normal: true }, "Linear", false) => v.fill(0.0),
            (Scheme::TruncNormal, "Conv2d" | "Linear", true) => {
                v.iter_mut().for_each(|x| {
                    *x = loop {
                        let z = rng.normal();
                        if z.abs() <= 2.0 / 0.01 {
                            break 0.01 * z;
                        }
                    }
                });
            }
            _ => {}
        }
    }
}
