//! A convolution's output gradient as a max pool hands it down, where the pool alone reads the
//! convolution's output through a fused ReLU (`conv -> relu -> maxpool`, the lecture's block):
//! the pool's gradient, its argmax and its output (the ReLU's gate). The backward pass scatters
//! a sample (or a group of them) at a time into a buffer in cache, where the pool's own
//! backward pass would first scatter the whole batch's into an activation-sized gradient in
//! memory (12.8 MB for the MNIST net's conv1) for the convolution to read back.

use std::ops::Range;

use crate::kernels::finite::all_finite;
use crate::kernels::pool::scatter_planes;

/// What the pool keeps for its backward pass, all `[N, C, Ho, Wo]`.
#[derive(Clone, Copy, Debug)]
pub struct PooledGrad<'a> {
    /// The gradient at the pool's output.
    pub d_out: &'a [f32],
    /// Where each pooled value came from, an index into its plane of the convolution's output.
    pub argmax: &'a [u32],
    /// The pool's output: a gradient passes where it is not `<= 0`, the ReLU's rule.
    pub out: &'a [f32],
    /// `Ho * Wo`.
    pub out_plane: usize,
}

/// A convolution's output gradient, `[N, Cout, Ho, Wo]`: in memory, or as a pool hands it down.
#[derive(Clone, Copy, Debug)]
pub(super) enum OutputGrad<'a> {
    Dense(&'a [f32]),
    Pooled(PooledGrad<'a>),
}

impl<'a> OutputGrad<'a> {
    /// The gradient of samples `range`, `[len, channels, plane]`: a slice of the dense one, or
    /// the pool's scattered into `buf`, the values the pool's backward pass would write.
    pub fn samples<'b>(&self, range: Range<usize>, channels: usize, plane: usize, buf: &'b mut Vec<f32>) -> &'b [f32]
    where
        'a: 'b,
    {
        let sample_len = channels * plane;
        match self {
            OutputGrad::Dense(dy) => &dy[range.start * sample_len..range.end * sample_len],
            OutputGrad::Pooled(p) => {
                buf.clear();
                buf.resize(range.len() * sample_len, 0.0);
                let pooled = channels * p.out_plane;
                let at = range.start * pooled..range.end * pooled;
                scatter_planes(buf, &p.d_out[at.clone()], &p.argmax[at.clone()], Some(&p.out[at]), plane, p.out_plane);
                buf
            }
        }
    }

    /// Whether every value is finite. For the pool's: every value of its gradient, also where
    /// the gate stops it (a NaN there leaves a dense zero): `false` then only makes each sample
    /// be checked on its own (`WinogradPlan::takes`), which sees the dense values.
    pub fn all_finite(&self) -> bool {
        match self {
            OutputGrad::Dense(dy) => all_finite(dy),
            OutputGrad::Pooled(p) => all_finite(p.d_out),
        }
    }
}
