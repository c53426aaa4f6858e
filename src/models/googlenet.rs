//! torchvision's GoogLeNet (Inception v1): BasicConv2d = conv (no bias) + batch norm
//! (eps 0.001) + ReLU; Inception modules of four branches merged by channel concatenation;
//! optional auxiliary classifiers after inception4a and inception4d.

use crate::error::Result;
use crate::layers::{AdaptiveAvgPool2d, BatchNorm2d, ChannelAffine, Concat, Conv2d, Conv2dConfig, Dropout, Flatten, Linear, MaxPool2d, Relu};
use crate::geometry::Padding;
use crate::net::Net;

/// `{name}.conv`, `{name}.bn`, `{name}.relu` from `input`; returns the output node's name.
#[allow(clippy::too_many_arguments)]
fn basic_conv(net: &mut Net, name: &str, input: &str, cin: usize, cout: usize, k: usize, stride: usize, pad: usize) -> Result<String> {
    net.add(&format!("{name}.conv"), Conv2d::new(Conv2dConfig::new(cin, cout, k).stride(stride).pad(pad).bias(false))?, &[input])?;
    net.add(&format!("{name}.bn"), BatchNorm2d::new(cout).with_eps(1e-3), &[&format!("{name}.conv")])?;
    net.add(&format!("{name}.relu"), Relu, &[&format!("{name}.bn")])?;
    Ok(format!("{name}.relu"))
}

/// Inception module `name`; returns `(output node, channels)`.
#[allow(clippy::too_many_arguments)]
fn inception(net: &mut Net, name: &str, input: &str, cin: usize, c1: usize, c3r: usize, c3: usize, c5r: usize, c5: usize, pool: usize) -> Result<(String, usize)> {
    let b1 = basic_conv(net, &format!("{name}.branch1"), input, cin, c1, 1, 1, 0)?;
    let b2 = basic_conv(net, &format!("{name}.branch2.0"), input, cin, c3r, 1, 1, 0)?;
    let b2 = basic_conv(net, &format!("{name}.branch2.1"), &b2, c3r, c3, 3, 1, 1)?;
    // torchvision's "5x5" branch uses a 3x3 kernel (a known quirk its weights depend on).
    let b3 = basic_conv(net, &format!("{name}.branch3.0"), input, cin, c5r, 1, 1, 0)?;
    let b3 = basic_conv(net, &format!("{name}.branch3.1"), &b3, c5r, c5, 3, 1, 1)?;
    net.add(&format!("{name}.branch4.0"), MaxPool2d::square(3, 1).with_padding(Padding::uniform(1)).with_ceil_mode(true), &[input])?;
    let b4 = basic_conv(net, &format!("{name}.branch4.1"), &format!("{name}.branch4.0"), cin, pool, 1, 1, 0)?;
    net.add(name, Concat, &[&b1, &b2, &b3, &b4])?;
    Ok((name.to_string(), c1 + c3 + c5 + pool))
}

/// An auxiliary classifier `name` on `input`: 4x4 adaptive pooling, 1x1 conv to 128, fc 2048 ->
/// 1024, ReLU, dropout 0.7, fc 1024 -> classes.
fn aux(net: &mut Net, name: &str, input: &str, cin: usize, classes: usize) -> Result<()> {
    net.add(&format!("{name}.avgpool"), AdaptiveAvgPool2d::new(4, 4)?, &[input])?;
    let c = basic_conv(net, &format!("{name}.conv"), &format!("{name}.avgpool"), cin, 128, 1, 1, 0)?;
    net.add(&format!("{name}.flatten"), Flatten, &[&c])?;
    net.add(&format!("{name}.fc1"), Linear::new(2048, 1024), &[&format!("{name}.flatten")])?;
    net.add(&format!("{name}.relu"), Relu, &[&format!("{name}.fc1")])?;
    net.add(&format!("{name}.dropout"), Dropout::new(0.7)?, &[&format!("{name}.relu")])?;
    net.add(&format!("{name}.fc2"), Linear::new(1024, classes), &[&format!("{name}.dropout")])?;
    Ok(())
}

/// GoogLeNet. `aux_logits` adds torchvision's `aux1` and `aux2` heads (side outputs the
/// training loss may use; the main output stays `fc`). `transform_input` re-scales
/// ImageNet-normalised input as torchvision does for its pretrained weights.
pub fn googlenet(classes: usize, input: [usize; 3], aux_logits: bool, transform_input: bool) -> Result<Net> {
    let mut net = Net::new(&input);
    let mut last = "input".to_string();
    if transform_input {
        net.push("transform_input", ChannelAffine::googlenet_transform_input())?;
        last = "transform_input".into();
    }
    let x = basic_conv(&mut net, "conv1", &last, input[0], 64, 7, 2, 3)?;
    net.add("maxpool1", MaxPool2d::square(3, 2).with_ceil_mode(true), &[&x])?;
    let x = basic_conv(&mut net, "conv2", "maxpool1", 64, 64, 1, 1, 0)?;
    let x = basic_conv(&mut net, "conv3", &x, 64, 192, 3, 1, 1)?;
    net.add("maxpool2", MaxPool2d::square(3, 2).with_ceil_mode(true), &[&x])?;
    let (x, c) = inception(&mut net, "inception3a", "maxpool2", 192, 64, 96, 128, 16, 32, 32)?;
    let (x, c) = inception(&mut net, "inception3b", &x, c, 128, 128, 192, 32, 96, 64)?;
    net.add("maxpool3", MaxPool2d::square(3, 2).with_ceil_mode(true), &[&x])?;
    let (x, c) = inception(&mut net, "inception4a", "maxpool3", c, 192, 96, 208, 16, 48, 64)?;
    let a1 = (x.clone(), c);
    let (x, c) = inception(&mut net, "inception4b", &x, c, 160, 112, 224, 24, 64, 64)?;
    let (x, c) = inception(&mut net, "inception4c", &x, c, 128, 128, 256, 24, 64, 64)?;
    let (x, c) = inception(&mut net, "inception4d", &x, c, 112, 144, 288, 32, 64, 64)?;
    let a2 = (x.clone(), c);
    let (x, c) = inception(&mut net, "inception4e", &x, c, 256, 160, 320, 32, 128, 128)?;
    net.add("maxpool4", MaxPool2d::square(2, 2).with_ceil_mode(true), &[&x])?;
    let (x, c) = inception(&mut net, "inception5a", "maxpool4", c, 256, 160, 320, 32, 128, 128)?;
    let (x, c) = inception(&mut net, "inception5b", &x, c, 384, 192, 384, 48, 128, 128)?;
    if aux_logits {
        aux(&mut net, "aux1", &a1.0, a1.1, classes)?;
        aux(&mut net, "aux2", &a2.0, a2.1, classes)?;
    }
    net.add("avgpool", AdaptiveAvgPool2d::global(), &[&x])?;
    net.add("flatten", Flatten, &["avgpool"])?;
    net.add("dropout", Dropout::new(0.2)?, &["flatten"])?;
    net.add("fc", Linear::new(c, classes), &["dropout"])?;
    Ok(net)
}
