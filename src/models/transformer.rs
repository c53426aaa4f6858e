//! Johnson, Alahi and Fei-Fei's image transformation network ("Perceptual Losses for Real-Time
//! Style Transfer and Super-Resolution", 2016), as pytorch/examples' `fast_neural_style`
//! builds it, under its names, so the models trained there load as they are: a 9x9 convolution,
//! two stride-2 3x3 convolutions down, five residual blocks, two nearest-neighbour upsamplings
//! each followed by a 3x3 convolution, and a 9x9 convolution back to three channels; reflection
//! padding before every convolution, instance norm and ReLU after all but the last.
//!
//! Pixels in and out are in 0-255 (as that example's). The network is fully convolutional: it
//! takes any picture with sides of at least [`MIN_SIDE`] pixels, and gives back a side of
//! `4 ceil(ceil(n / 2) / 2)`, the input's when that is a multiple of 4 (`viz::style::realtime`
//! pads a picture to one by reflection and crops the result).

use crate::error::Result;
use crate::layers::{Add, Conv2d, Conv2dConfig, InstanceNorm2d, ReflectionPad2d, Relu, UpsampleNearest2d};
use crate::net::Net;

/// The model's name in weights files' metadata.
pub const NAME: &str = "transformer-net";

/// Johnson et al.'s width: 32, 64 and 128 channels.
pub const DEFAULT_WIDTH: usize = 32;

/// The smallest side the network takes: the first layer's reflection padding of 4 needs 5
/// cells, and after two halvings (ceil(5 / 4) = 2) the residual blocks' padding of 1 needs 2.
pub const MIN_SIDE: usize = 5;

/// `{prefix}.reflection_pad` then `{prefix}.conv2d` (pytorch/examples' `ConvLayer`), with an
/// `{prefix}.upsample` first when `upsample` (its `UpsampleConvLayer`); returns the last node.
fn conv_layer(net: &mut Net, prefix: &str, input: &str, [cin, cout]: [usize; 2], k: usize, stride: usize, upsample: bool) -> Result<String> {
    let mut last = input.to_string();
    if upsample {
        net.add(&format!("{prefix}.upsample"), UpsampleNearest2d::new(2)?, &[&last])?;
        last = format!("{prefix}.upsample");
    }
    net.add(&format!("{prefix}.reflection_pad"), ReflectionPad2d::uniform(k / 2), &[&last])?;
    net.add(&format!("{prefix}.conv2d"), Conv2d::new(Conv2dConfig::new(cin, cout, k).stride(stride))?, &[&format!("{prefix}.reflection_pad")])?;
    Ok(format!("{prefix}.conv2d"))
}

/// Instance norm `norm` on `input`, then ReLU `relu`; returns the ReLU's name.
fn norm_relu(net: &mut Net, norm: &str, relu: &str, input: &str, channels: usize) -> Result<String> {
    net.add(norm, InstanceNorm2d::new(channels), &[input])?;
    net.add(relu, Relu, &[norm])?;
    Ok(relu.to_string())
}

/// The network at `width` (Johnson et al.'s: 32) for pictures of `[3, H, W]` (the shape its
/// construction checks; any other size of at least [`MIN_SIDE`] runs as well).
pub fn transformer_net(width: usize, input: [usize; 3]) -> Result<Net> {
    let w = width;
    let mut net = Net::new(&input);
    let x = conv_layer(&mut net, "conv1", "input", [input[0], w], 9, 1, false)?;
    let x = norm_relu(&mut net, "in1", "relu1", &x, w)?;
    let x = conv_layer(&mut net, "conv2", &x, [w, 2 * w], 3, 2, false)?;
    let x = norm_relu(&mut net, "in2", "relu2", &x, 2 * w)?;
    let x = conv_layer(&mut net, "conv3", &x, [2 * w, 4 * w], 3, 2, false)?;
    let mut x = norm_relu(&mut net, "in3", "relu3", &x, 4 * w)?;
    for i in 1..=5 {
        let p = format!("res{i}");
        let a = conv_layer(&mut net, &format!("{p}.conv1"), &x, [4 * w, 4 * w], 3, 1, false)?;
        let a = norm_relu(&mut net, &format!("{p}.in1"), &format!("{p}.relu"), &a, 4 * w)?;
        let b = conv_layer(&mut net, &format!("{p}.conv2"), &a, [4 * w, 4 * w], 3, 1, false)?;
        net.add(&format!("{p}.in2"), InstanceNorm2d::new(4 * w), &[&b])?;
        net.add(&format!("{p}.add"), Add, &[&format!("{p}.in2"), &x])?;
        x = format!("{p}.add");
    }
    let x = conv_layer(&mut net, "deconv1", &x, [4 * w, 2 * w], 3, 1, true)?;
    let x = norm_relu(&mut net, "in4", "relu4", &x, 2 * w)?;
    let x = conv_layer(&mut net, "deconv2", &x, [2 * w, w], 3, 1, true)?;
    let x = norm_relu(&mut net, "in5", "relu5", &x, w)?;
    conv_layer(&mut net, "deconv3", &x, [w, input[0]], 9, 1, false)?;
    Ok(net)
}
