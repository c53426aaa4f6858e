//! An owned f32 buffer with a shape. Images are NCHW. No autograd: the net keeps activations and
//! gradients itself.

use crate::error::{Error, Result};
use std::fmt;

#[derive(Default)]
pub struct Tensor {
    shape: Vec<usize>,
    /// The values, `data[..len]`; a reused buffer may hold more past them (`reuse`), which
    /// are not the tensor's.
    data: Vec<f32>,
    /// `numel(shape)`.
    len: usize,
}

impl Clone for Tensor {
    fn clone(&self) -> Self {
        Tensor { shape: self.shape.clone(), data: self.data().to_vec(), len: self.len }
    }
}

impl PartialEq for Tensor {
    fn eq(&self, other: &Self) -> bool {
        self.shape == other.shape && self.data() == other.data()
    }
}

/// Number of elements of a shape.
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// `[64, 32, 5, 5]`, as error messages print shapes.
pub fn fmt_shape(shape: &[usize]) -> String {
    format!("{shape:?}")
}

impl Tensor {
    pub fn zeros(shape: &[usize]) -> Self {
        Tensor { shape: shape.to_vec(), data: vec![0.0; numel(shape)], len: numel(shape) }
    }

    pub fn full(shape: &[usize], value: f32) -> Self {
        Tensor { shape: shape.to_vec(), data: vec![value; numel(shape)], len: numel(shape) }
    }

    /// A tensor over `data`; fails when the length does not match the shape.
    pub fn from_vec(shape: &[usize], data: Vec<f32>) -> Result<Self> {
        if numel(shape) != data.len() {
            return Err(Error::shape(format!(
                "{} values cannot have shape {} ({} values)",
                data.len(),
                fmt_shape(shape),
                numel(shape)
            )));
        }
        Ok(Tensor { shape: shape.to_vec(), len: data.len(), data })
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn data(&self) -> &[f32] {
        &self.data[..self.len]
    }

    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data[..self.len]
    }

    pub fn into_vec(mut self) -> Vec<f32> {
        self.data.truncate(self.len);
        self.data
    }

    /// Takes the buffer out with every value it holds (its length is the most values it has
    /// held, `reuse`), leaving an empty tensor (shape `[0]`), so another can reuse it.
    pub fn take_buffer(&mut self) -> Vec<f32> {
        self.shape.clear();
        self.shape.push(0);
        self.len = 0;
        std::mem::take(&mut self.data)
    }

    /// A tensor of `shape` over a reused buffer. Values are unspecified, as after `set_shape`:
    /// what the buffer held, zero where it grew. A buffer that holds more values keeps them
    /// past the tensor's, so lent out for a smaller value and then a larger one again (as
    /// `Net::forward_lean` lends its buffers) it is never written to but by its users.
    pub fn reuse(mut buffer: Vec<f32>, shape: &[usize]) -> Self {
        let len = numel(shape);
        if buffer.len() < len {
            buffer.resize(len, 0.0);
        }
        Tensor { shape: shape.to_vec(), data: buffer, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Gives the tensor a new shape, keeping its allocation when it is large enough. Values are
    /// unspecified afterwards (kept where they were, zero where the buffer grew): callers either
    /// overwrite every element or call `fill`.
    pub fn set_shape(&mut self, shape: &[usize]) {
        if self.shape != shape {
            self.shape.clear();
            self.shape.extend_from_slice(shape);
            // Zero where the tensor grows, a reused buffer's spare values included.
            self.data.truncate(self.len);
            self.len = numel(shape);
            self.data.resize(self.len, 0.0);
        }
    }

    /// Same values, another shape of the same size.
    pub fn reshape(&mut self, shape: &[usize]) -> Result<()> {
        if numel(shape) != self.len {
            return Err(Error::shape(format!(
                "cannot reshape {} to {}",
                fmt_shape(&self.shape),
                fmt_shape(shape)
            )));
        }
        self.shape = shape.to_vec();
        Ok(())
    }

    pub fn fill(&mut self, value: f32) {
        crate::kernels::parallel::fill(self.data_mut(), value);
    }

    /// `(n, c, h, w)` of a 4-d tensor, or an error that names `what`.
    pub fn dims4(&self, what: &str) -> Result<(usize, usize, usize, usize)> {
        dims4(&self.shape, what)
    }

    /// Index of the largest value of each row of a `[N, K]` tensor.
    pub fn argmax_rows(&self) -> Vec<usize> {
        let k = *self.shape.last().unwrap_or(&1);
        if k == 0 {
            return Vec::new();
        }
        self.data()
            .chunks(k)
            .map(|row| {
                let mut best = 0;
                for (i, &v) in row.iter().enumerate() {
                    if v > row[best] {
                        best = i;
                    }
                }
                best
            })
            .collect()
    }

    /// Largest absolute difference to `other`, or None when the shapes differ.
    pub fn max_abs_diff(&self, other: &Tensor) -> Option<f32> {
        if self.shape != other.shape {
            return None;
        }
        Some(self.data().iter().zip(other.data()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max))
    }
}

/// `(n, c, h, w)` of a 4-d shape, or an error that names `what`.
pub fn dims4(shape: &[usize], what: &str) -> Result<(usize, usize, usize, usize)> {
    match *shape {
        [n, c, h, w] => Ok((n, c, h, w)),
        _ => Err(Error::shape(format!(
            "{what} has shape {}, expected 4 dimensions [N, C, H, W]",
            fmt_shape(shape)
        ))),
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head: Vec<f32> = self.data().iter().take(8).copied().collect();
        write!(f, "Tensor{:?} {:?}{}", self.shape, head, if self.len > 8 { " ..." } else { "" })
    }
}
