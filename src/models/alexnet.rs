//! AlexNet: the lecture's (simplified, one-tower) version and torchvision's.

use crate::error::Result;
use crate::layers::{AdaptiveAvgPool2d, Conv2d, Conv2dConfig, Dropout, Flatten, Linear, Lrn, MaxPool2d, Relu};
use crate::net::Net;

/// The lecture's AlexNet on 227x227x3: CONV1 96 11x11 s4 -> [55x55x96], MAX POOL1 3x3 s2 ->
/// [27x27x96], NORM1, CONV2 256 5x5 p2, MAX POOL2 -> [13x13x256], NORM2, CONV3 384 3x3 p1,
/// CONV4 384 3x3 p1, CONV5 256 3x3 p1, MAX POOL3 -> [6x6x256], FC6 4096, FC7 4096, FC8.
/// ReLU after every conv and hidden fc, dropout before FC6 and FC7. FC6 takes whatever POOL3
/// leaves (6x6x256 = 9,216 on the lecture's 227x227), so other input sizes work too.
pub fn alexnet_1012(classes: usize, input: [usize; 3]) -> Result<Net> {
    let mut net = Net::new(&input);
    net.push("conv1", Conv2d::new(Conv2dConfig::new(input[0], 96, 11).stride(4))?)?
        .push("relu1", Relu)?
        .push("pool1", MaxPool2d::square(3, 2))?
        .push("norm1", Lrn::alexnet())?
        .push("conv2", Conv2d::new(Conv2dConfig::new(96, 256, 5).pad(2))?)?
        .push("relu2", Relu)?
        .push("pool2", MaxPool2d::square(3, 2))?
        .push("norm2", Lrn::alexnet())?
        .push("conv3", Conv2d::new(Conv2dConfig::new(256, 384, 3).pad(1))?)?
        .push("relu3", Relu)?
        .push("conv4", Conv2d::new(Conv2dConfig::new(384, 384, 3).pad(1))?)?
        .push("relu4", Relu)?
        .push("conv5", Conv2d::new(Conv2dConfig::new(384, 256, 3).pad(1))?)?
        .push("relu5", Relu)?
        .push("pool3", MaxPool2d::square(3, 2))?
        .push("flatten", Flatten)?
        .push("drop6", Dropout::new(0.5)?)?;
    let features = net.summary(None)?.layers.last().map_or(0, |r| r.output[0]);
    net.push("fc6", Linear::new(features, 4096))?
        .push("relu6", Relu)?
        .push("drop7", Dropout::new(0.5)?)?
        .push("fc7", Linear::new(4096, 4096))?
        .push("relu7", Relu)?
        .push("fc8", Linear::new(4096, classes))?;
    Ok(net)
}

/// torchvision's `alexnet` (`features.*`, `classifier.*`), any input of at least 63x63
/// thanks to its adaptive 6x6 pooling.
pub fn alexnet(classes: usize, input: [usize; 3]) -> Result<Net> {
    let mut net = Net::new(&input);
    net.push("features.0", Conv2d::new(Conv2dConfig::new(input[0], 64, 11).stride(4).pad(2))?)?
        .push("features.1", Relu)?
        .push("features.2", MaxPool2d::square(3, 2))?
        .push("features.3", Conv2d::new(Conv2dConfig::new(64, 192, 5).pad(2))?)?
        .push("features.4", Relu)?
        .push("features.5", MaxPool2d::square(3, 2))?
        .push("features.6", Conv2d::new(Conv2dConfig::new(192, 384, 3).pad(1))?)?
        .push("features.7", Relu)?
        .push("features.8", Conv2d::new(Conv2dConfig::new(384, 256, 3).pad(1))?)?
        .push("features.9", Relu)?
        .push("features.10", Conv2d::new(Conv2dConfig::new(256, 256, 3).pad(1))?)?
        .push("features.11", Relu)?
        .push("features.12", MaxPool2d::square(3, 2))?
        .push("avgpool", AdaptiveAvgPool2d::new(6, 6)?)?
        .push("flatten", Flatten)?
        .push("classifier.0", Dropout::new(0.5)?)?
        .push("classifier.1", Linear::new(256 * 6 * 6, 4096))?
        .push("classifier.2", Relu)?
        .push("classifier.3", Dropout::new(0.5)?)?
        .push("classifier.4", Linear::new(4096, 4096))?
        .push("classifier.5", Relu)?
        .push("classifier.6", Linear::new(4096, classes))?;
    Ok(net)
}
