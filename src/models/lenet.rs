//! The MNIST networks: LeNet-5 and the lecture's TensorFlow convnet. Both take one 28x28 channel.

use crate::error::Result;
use crate::geometry::Padding;
use crate::layers::{Conv2d, Conv2dConfig, Dropout, Flatten, Linear, MaxPool2d, Relu};
use crate::net::Net;

/// LeNet-5 as in the golden case: conv1 6@5x5 pad 2, ReLU, max pool 2; conv2 16@5x5, ReLU,
/// max pool 2; fc1 400 -> 120, ReLU; fc2 120 -> 84, ReLU; fc3 84 -> classes.
pub fn lenet5(classes: usize) -> Result<Net> {
    let mut net = Net::new(&[1, 28, 28]);
    net.push("conv1", Conv2d::new(Conv2dConfig::new(1, 6, 5).pad(2))?)?
        .push("relu1", Relu)?
        .push("pool1", MaxPool2d::square(2, 2))?
        .push("conv2", Conv2d::new(Conv2dConfig::new(6, 16, 5))?)?
        .push("relu2", Relu)?
        .push("pool2", MaxPool2d::square(2, 2))?
        .push("flatten", Flatten)?
        .push("fc1", Linear::new(400, 120))?
        .push("relu3", Relu)?
        .push("fc2", Linear::new(120, 84))?
        .push("relu4", Relu)?
        .push("fc3", Linear::new(84, classes))?;
    Ok(net)
}

/// The lecture's convnet: conv 32@5x5 SAME, ReLU, max pool 2x2; conv 64@5x5 SAME, ReLU, max pool
/// 2x2; fc 3136 -> 1024, ReLU, dropout 0.5; fc 1024 -> classes.
pub fn mnist_cnn(classes: usize) -> Result<Net> {
    let mut net = Net::new(&[1, 28, 28]);
    net.push("conv1", Conv2d::new(Conv2dConfig::new(1, 32, 5).padding(Padding::Same))?)?
        .push("relu1", Relu)?
        .push("pool1", MaxPool2d::square(2, 2))?
        .push("conv2", Conv2d::new(Conv2dConfig::new(32, 64, 5).padding(Padding::Same))?)?
        .push("relu2", Relu)?
        .push("pool2", MaxPool2d::square(2, 2))?
        .push("flatten", Flatten)?
        .push("fc1", Linear::new(7 * 7 * 64, 1024))?
        .push("relu3", Relu)?
        .push("dropout", Dropout::new(0.5)?)?
        .push("fc2", Linear::new(1024, classes))?;
    Ok(net)
}
