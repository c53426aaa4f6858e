//! torchvision's VGG 11/13/16/19, with or without batch normalisation.

use crate::error::{Error, Result};
use crate::layers::{AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Conv2dConfig, Dropout, Flatten, Linear, MaxPool2d, Relu};
use crate::net::Net;

/// Output channels of each 3x3 conv; 0 marks a 2x2 max pool. torchvision's configurations
/// A, B, D and E.
fn config(depth: usize) -> Result<&'static [usize]> {
    Ok(match depth {
        11 => &[64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0],
        13 => &[64, 64, 0, 128, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0],
        16 => &[64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0],
        19 => &[64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512, 512, 0],
        other => return Err(Error::Invalid(format!("VGG has depths 11, 13, 16 and 19, not {other}"))),
    })
}

/// VGG-`depth` (`features.*`, `classifier.*`); `batch_norm` adds a BatchNorm2d after every conv.
/// Adaptive 7x7 pooling before the classifier takes any input of at least 32x32.
pub fn vgg(depth: usize, batch_norm: bool, classes: usize, input: [usize; 3]) -> Result<Net> {
    let mut net = Net::new(&input);
    let (mut i, mut channels) = (0, input[0]);
    for &c in config(depth)? {
        if c == 0 {
            net.push(&format!("features.{i}"), MaxPool2d::square(2, 2))?;
            i += 1;
            continue;
        }
        net.push(&format!("features.{i}"), Conv2d::new(Conv2dConfig::new(channels, c, 3).pad(1))?)?;
        i += 1;
        if batch_norm {
            net.push(&format!("features.{i}"), BatchNorm2d::new(c))?;
            i += 1;
        }
        net.push(&format!("features.{i}"), Relu)?;
        i += 1;
        channels = c;
    }
    net.push("avgpool", AdaptiveAvgPool2d::new(7, 7)?)?
        .push("flatten", Flatten)?
        .push("classifier.0", Linear::new(512 * 7 * 7, 4096))?
        .push("classifier.1", Relu)?
        .push("classifier.2", Dropout::new(0.5)?)?
        .push("classifier.3", Linear::new(4096, 4096))?
        .push("classifier.4", Relu)?
        .push("classifier.5", Dropout::new(0.5)?)?
        .push("classifier.6", Linear::new(4096, classes))?;
    Ok(net)
}
