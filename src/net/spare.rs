//! The buffers `Net::forward_lean` cuts its values from, kept from call to call.
//!
//! A buffer lent out as a smaller value comes back shorter (a tensor's length is its size),
//! and growing it again would zero what it held: a whole pass over the MNIST net's largest
//! value, every call (6% of LeNet-5's inference). So each buffer remembers how many values
//! it has held (`filled`), and is lent out again at any length up to that without a write.

use crate::tensor::{numel, Tensor};

/// A buffer and how many of its values have been written (all initialized `f32`s).
struct Spare {
    data: Vec<f32>,
    filled: usize,
}

/// What a lent buffer was, to know it again when it comes back.
#[derive(Clone, Copy, Debug)]
pub(super) struct Lent {
    ptr: *const f32,
    capacity: usize,
    filled: usize,
}

#[derive(Default)]
pub(super) struct SpareBuffers {
    free: Vec<Spare>,
}

impl SpareBuffers {
    /// A tensor of `shape` (values unspecified): the buffer that held the fewest values at
    /// least as many as it needs (nothing written), else the largest (grown, the new part
    /// zeroed), else a new one.
    pub fn lend(&mut self, shape: &[usize]) -> (Tensor, Lent) {
        let n = numel(shape);
        let free = &self.free;
        let fits = (0..free.len()).filter(|&i| free[i].filled >= n).min_by_key(|&i| free[i].filled);
        let pick = fits.or_else(|| (0..free.len()).max_by_key(|&i| free[i].filled));
        let Spare { mut data, filled } = pick.map(|i| self.free.swap_remove(i)).unwrap_or(Spare { data: Vec::new(), filled: 0 });
        if n <= filled {
            // SAFETY: `filled <= capacity` and the first `filled` values of this allocation were
            // written (`Spare`'s invariant, kept by `give_back`); any bits are a valid f32.
            unsafe { data.set_len(n) };
        } else {
            // SAFETY: as above, for the first `filled` values; the rest are written by `resize`.
            unsafe { data.set_len(filled) };
            data.resize(n, 0.0);
        }
        let lent = Lent { ptr: data.as_ptr(), capacity: data.capacity(), filled: filled.max(n) };
        (Tensor::reuse(data, shape), lent)
    }

    /// Takes `t`'s buffer back (leaving `t` empty). `lent` is what `lend` said of it, if it
    /// came from here: while it is the same allocation (neither moved nor resized), the
    /// values it held before still count; otherwise only its length does.
    pub fn give_back(&mut self, t: &mut Tensor, lent: Option<Lent>) {
        let data = t.take_buffer();
        if data.capacity() == 0 {
            return;
        }
        let same = lent.filter(|l| l.ptr == data.as_ptr() && l.capacity == data.capacity());
        let filled = same.map_or(data.len(), |l| l.filled.max(data.len()));
        self.free.push(Spare { data, filled });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A buffer lent out short comes back and is lent long again with the values it held, not
    /// zeroed; one that was replaced counts only its own length.
    #[test]
    fn a_buffer_keeps_the_values_it_held_when_lent_short() {
        let mut spare = SpareBuffers::default();
        let (mut t, lent) = spare.lend(&[4, 5]);
        t.data_mut().iter_mut().enumerate().for_each(|(i, v)| *v = i as f32 + 1.0);
        spare.give_back(&mut t, Some(lent));
        let (mut short, lent) = spare.lend(&[3]);
        assert_eq!(short.data(), &[1.0, 2.0, 3.0]);
        spare.give_back(&mut short, Some(lent));
        let (long, _) = spare.lend(&[2, 10]);
        assert_eq!(long.data()[..20], (1..=20).map(|i| i as f32).collect::<Vec<_>>()[..]);

        // Replaced while lent (a layer reshaping its output): only what it holds counts.
        let (mut t, lent) = spare.lend(&[2]);
        t = Tensor::from_vec(&[1], vec![9.0]).unwrap();
        spare.give_back(&mut t, Some(lent));
        let (grown, _) = spare.lend(&[3]);
        assert_eq!(grown.data(), &[9.0, 0.0, 0.0]);
    }
}
