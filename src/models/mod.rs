//! The model zoo: functions that build a `Net` with PyTorch's parameter names (torchvision's
//! where torchvision has the model), selectable by name.

mod alexnet;
mod googlenet;
pub mod init;
mod lenet;
mod resnet;
pub mod transformer;
mod vgg;

pub use alexnet::{alexnet, alexnet_1012};
pub use googlenet::googlenet;
pub use lenet::{lenet5, mnist_cnn};
pub use resnet::resnet;
pub use transformer::transformer_net;
pub use vgg::vgg;

use crate::data::Normalize;
use crate::error::{Error, Result};
use crate::net::Net;
use init::Scheme;

/// Names accepted by `build`.
pub const NAMES: &[&str] = &[
    "mnist-cnn", "lenet5", "alexnet-1012", "alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn",
    "vgg16_bn", "vgg19_bn", "googlenet", "googlenet-aux", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
];

/// The input `[C, H, W]` model `name` is made for.
pub fn default_input(name: &str) -> [usize; 3] {
    match name {
        "mnist-cnn" | "lenet5" => [1, 28, 28],
        "alexnet-1012" => [3, 227, 227],
        _ => [3, 224, 224],
    }
}

/// The number of classes model `name` has by default: 10 for the MNIST nets, 1000 (ImageNet)
/// for the others.
pub fn default_classes(name: &str) -> usize {
    match name {
        "mnist-cnn" | "lenet5" => 10,
        _ => 1000,
    }
}

/// Builds model `name` for `classes` classes and images of shape `input` (`None`: its
/// default), initialised from `seed` as PyTorch and torchvision would.
pub fn build_for(name: &str, classes: usize, input: Option<[usize; 3]>, seed: u64) -> Result<Net> {
    let (mut net, scheme) = architecture(name, classes, input)?;
    net.init(seed);
    init::apply(&mut net, scheme, seed);
    Ok(net)
}

/// Model `name` with all parameters zero (for summaries, or to load weights into), and how
/// torchvision initialises it.
pub fn architecture(name: &str, classes: usize, input: Option<[usize; 3]>) -> Result<(Net, Scheme)> {
    let input = input.unwrap_or_else(|| default_input(name));
    let fixed = |what: &str| -> Result<()> {
        if input != default_input(name) {
            return Err(Error::Invalid(format!(
                "{name} takes {:?} images only ({what}); --input {}x{}x{} does not fit",
                default_input(name), input[0], input[1], input[2]
            )));
        }
        Ok(())
    };
    Ok(match name {
        "mnist-cnn" => (fixed("its fully connected layers fix the size").and_then(|_| mnist_cnn(classes))?, Scheme::Default),
        "lenet5" => (fixed("its fully connected layers fix the size").and_then(|_| lenet5(classes))?, Scheme::Default),
        "alexnet-1012" => (alexnet_1012(classes, input)?, Scheme::Default),
        "alexnet" => (alexnet(classes, input)?, Scheme::Default),
        "googlenet" => (googlenet(classes, input, false, true)?, Scheme::TruncNormal),
        "googlenet-aux" => (googlenet(classes, input, true, true)?, Scheme::TruncNormal),
        _ => {
            if let Some(rest) = name.strip_prefix("vgg") {
                let (depth, bn) = match rest.strip_suffix("_bn") {
                    Some(d) => (d, true),
                    None => (rest, false),
                };
                let depth = depth.parse().map_err(|_| unknown(name))?;
                (vgg(depth, bn, classes, input)?, Scheme::KaimingFanOut { linear_normal: true })
            } else if let Some(depth) = name.strip_prefix("resnet") {
                (resnet(depth.parse().map_err(|_| unknown(name))?, classes, input)?, Scheme::KaimingFanOut { linear_normal: false })
            } else {
                return Err(unknown(name));
            }
        }
    })
}

fn unknown(name: &str) -> Error {
    Error::Invalid(format!("unknown model {name:?}; the models are {}", NAMES.join(", ")))
}

/// Builds model `name` for `classes` classes at its default input size.
pub fn build(name: &str, classes: usize, seed: u64) -> Result<Net> {
    build_for(name, classes, None, seed)
}

/// How model `name` expects its input normalised (pixels first scaled to [0, 1]), in training
/// and prediction alike.
pub fn normalization(name: &str) -> Normalize {
    match name {
        "mnist-cnn" | "lenet5" => Normalize::mnist(),
        _ => Normalize::imagenet(),
    }
}
