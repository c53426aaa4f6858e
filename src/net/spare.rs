//! The buffers `Net::forward_lean` cuts its values from, kept from call to call.
//!
//! A buffer lent out for a smaller value keeps the values past it (`Tensor::reuse`), so lent
//! out for a larger one again it is not zeroed: zeroing was a whole pass over the MNIST
//! net's largest value every call (6% of LeNet-5's inference), as the buffers changed roles
//! from call to call.

use crate::tensor::{numel, Tensor};

#[derive(Default)]
pub(super) struct SpareBuffers {
    /// Each buffer at the length of the most values it has held.
    free: Vec<Vec<f32>>,
}

impl SpareBuffers {
    /// A tensor of `shape` (values unspecified): the buffer that has held the fewest values
    /// at least as many as it needs (nothing written), else the largest (grown, the new part
    /// zeroed), else a new one.
    pub fn lend(&mut self, shape: &[usize]) -> Tensor {
        let n = numel(shape);
        let free = &self.free;
        let fits = (0..free.len()).filter(|&i| free[i].len() >= n).min_by_key(|&i| free[i].len());
        let pick = fits.or_else(|| (0..free.len()).max_by_key(|&i| free[i].len()));
        Tensor::reuse(pick.map(|i| self.free.swap_remove(i)).unwrap_or_default(), shape)
    }

    /// Takes `t`'s buffer back, leaving `t` empty.
    pub fn give_back(&mut self, t: &mut Tensor) {
        let data = t.take_buffer();
        if data.capacity() > 0 {
            self.free.push(data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A buffer lent out short comes back and is lent long again with the values it held, not
    /// zeroed; growing past them zeroes only the new part.
    #[test]
    fn a_buffer_keeps_the_values_it_held_when_lent_short() {
        let mut spare = SpareBuffers::default();
        let mut t = spare.lend(&[4, 5]);
        t.data_mut().iter_mut().enumerate().for_each(|(i, v)| *v = i as f32 + 1.0);
        spare.give_back(&mut t);
        let mut short = spare.lend(&[3]);
        assert_eq!(short.data(), &[1.0, 2.0, 3.0]);
        assert_eq!((short.len(), short.shape()), (3, &[3][..]));
        spare.give_back(&mut short);
        let mut long = spare.lend(&[2, 10]);
        assert_eq!(long.data(), &(1..=20).map(|i| i as f32).collect::<Vec<_>>()[..]);
        spare.give_back(&mut long);
        let grown = spare.lend(&[22]);
        assert_eq!(grown.data()[18..], [19.0, 20.0, 0.0, 0.0]);
    }
}
