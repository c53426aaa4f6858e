//! torchvision's ResNet 18/34/50/101/152 (v1.5: the stride sits in the 3x3 conv of a
//! bottleneck).

use crate::error::{Error, Result};
use crate::geometry::Padding;
use crate::layers::{AdaptiveAvgPool2d, Add, BatchNorm2d, Conv2d, Conv2dConfig, Flatten, Linear, MaxPool2d, Relu};
use crate::net::Net;

/// Blocks per stage and whether they are bottlenecks.
fn config(depth: usize) -> Result<([usize; 4], bool)> {
    Ok(match depth {
        18 => ([2, 2, 2, 2], false),
        34 => ([3, 4, 6, 3], false),
        50 => ([3, 4, 6, 3], true),
        101 => ([3, 4, 23, 3], true),
        152 => ([3, 8, 36, 3], true),
        other => return Err(Error::Invalid(format!("ResNet has depths 18, 34, 50, 101 and 152, not {other}"))),
    })
}

fn conv(cin: usize, cout: usize, k: usize, stride: usize) -> Result<Conv2d> {
    Conv2d::new(Conv2dConfig::new(cin, cout, k).stride(stride).pad(k / 2).bias(false))
}

/// conv -> bn (-> relu) named `{prefix}.conv{i}`, `{prefix}.bn{i}`, `{prefix}.relu{i}`;
/// returns the name of the last node.
fn conv_bn(net: &mut Net, prefix: &str, i: usize, input: &str, c: Conv2d, relu: bool) -> Result<String> {
    let channels = c.config().out_channels;
    net.add(&format!("{prefix}.conv{i}"), c, &[input])?;
    net.add(&format!("{prefix}.bn{i}"), BatchNorm2d::new(channels), &[&format!("{prefix}.conv{i}")])?;
    if !relu {
        return Ok(format!("{prefix}.bn{i}"));
    }
    net.add(&format!("{prefix}.relu{i}"), Relu, &[&format!("{prefix}.bn{i}")])?;
    Ok(format!("{prefix}.relu{i}"))
}

/// One residual block `prefix` (`layer2.0`) from `input` with `cin` channels; returns the name
/// of its output node and its channel count.
fn block(net: &mut Net, prefix: &str, input: &str, cin: usize, planes: usize, stride: usize, bottleneck: bool) -> Result<(String, usize)> {
    let cout = if bottleneck { planes * 4 } else { planes };
    let last = if bottleneck {
        let a = conv_bn(net, prefix, 1, input, conv(cin, planes, 1, 1)?, true)?;
        let b = conv_bn(net, prefix, 2, &a, conv(planes, planes, 3, stride)?, true)?;
        conv_bn(net, prefix, 3, &b, conv(planes, cout, 1, 1)?, false)?
    } else {
        let a = conv_bn(net, prefix, 1, input, conv(cin, planes, 3, stride)?, true)?;
        conv_bn(net, prefix, 2, &a, conv(planes, planes, 3, 1)?, false)?
    };
    let shortcut = if stride != 1 || cin != cout {
        net.add(&format!("{prefix}.downsample.0"), conv(cin, cout, 1, stride)?, &[input])?;
        net.add(&format!("{prefix}.downsample.1"), BatchNorm2d::new(cout), &[&format!("{prefix}.downsample.0")])?;
        format!("{prefix}.downsample.1")
    } else {
        input.to_string()
    };
    net.add(&format!("{prefix}.add"), Add, &[&last, &shortcut])?;
    net.add(&format!("{prefix}.relu"), Relu, &[&format!("{prefix}.add")])?;
    Ok((format!("{prefix}.relu"), cout))
}

/// ResNet-`depth`; global average pooling takes any input of at least 32x32.
pub fn resnet(depth: usize, classes: usize, input: [usize; 3]) -> Result<Net> {
    let (blocks, bottleneck) = config(depth)?;
    let mut net = Net::new(&input);
    net.push("conv1", Conv2d::new(Conv2dConfig::new(input[0], 64, 7).stride(2).pad(3).bias(false))?)?
        .push("bn1", BatchNorm2d::new(64))?
        .push("relu", Relu)?
        .push("maxpool", MaxPool2d::square(3, 2).with_padding(Padding::uniform(1)))?;
    let (mut last, mut channels) = ("maxpool".to_string(), 64);
    for (stage, &n) in blocks.iter().enumerate() {
        let planes = 64 << stage;
        for b in 0..n {
            let stride = if b == 0 && stage > 0 { 2 } else { 1 };
            let (out, c) = block(&mut net, &format!("layer{}.{b}", stage + 1), &last, channels, planes, stride, bottleneck)?;
            last = out;
            channels = c;
        }
    }
    net.push("avgpool", AdaptiveAvgPool2d::global())?.push("flatten", Flatten)?.push("fc", Linear::new(channels, classes))?;
    Ok(net)
}
