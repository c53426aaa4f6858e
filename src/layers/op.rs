//! What a layer computes, in terms another engine can rebuild: the operation and its settings,
//! without the parameters (those come from `Layer::params` and `Layer::buffers` under PyTorch's
//! names). Exporters (`crate::export`) translate it; a layer that has no such description says
//! `Op::Opaque`, and the exporter names it as the layer that cannot be expressed.

use crate::geometry::Window2d;

#[derive(Clone, Copy, Debug)]
pub enum Op<'a> {
    /// `weight` `[out, in/groups, kh, kw]`, optional `bias` `[out]`.
    Conv { window: Window2d, groups: usize },
    /// `weight` `[out, in]`, optional `bias` `[out]`: `y = x W^T + b`.
    Linear,
    Relu,
    /// Padding never wins (a padded cell counts as minus infinity).
    MaxPool(Window2d),
    /// Divides by the number of real cells in each window (`count_include_pad=False`).
    AvgPool(Window2d),
    /// Average pooling to `[oh, ow]` whatever the input size (PyTorch's adaptive bins).
    AdaptiveAvgPool { output: [usize; 2] },
    /// `weight`, `bias`, `running_mean`, `running_var`; evaluation-mode batch norm.
    BatchNorm { eps: f32 },
    /// `weight`, `bias`: each image's channel normalised over its own cells.
    InstanceNorm { eps: f32 },
    /// Reflection padding `[top, bottom, left, right]` (the edge is not repeated).
    ReflectPad { pad: [usize; 4] },
    /// Nearest-neighbour upsampling by an integer factor.
    UpsampleNearest { scale: usize },
    /// `x / (k + alpha / size * sum of squares over `size` neighbouring channels)^beta`.
    Lrn { size: usize, alpha: f32, beta: f32, k: f32 },
    /// `y[c] = x[c] * scale[c] + shift[c]`.
    ChannelAffine { scale: &'a [f32], shift: &'a [f32] },
    /// Along the channels (dimension 1).
    Concat,
    /// Elementwise sum of the inputs.
    Add,
    /// `[N, ...]` to `[N, product of the rest]`.
    Flatten,
    /// The identity outside training.
    Dropout,
    /// Over the last dimension of `[N, K]`.
    Softmax,
    /// No description: the layer cannot be exported.
    Opaque,
}
