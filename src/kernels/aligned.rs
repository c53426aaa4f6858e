//! `f32` buffers whose first value sits on a 64-byte boundary: a 16-lane vector load from a
//! panel then never spans two cache lines (unaligned 512-bit loads of B split on every load
//! and cost the AVX-512 tile ~20% of its speed).

/// A resizable `f32` buffer, 64-byte aligned, allocated once and reused.
#[derive(Default)]
pub struct AlignedVec {
    raw: Vec<f32>,
    offset: usize,
    len: usize,
}

/// f32 values per 64 bytes.
const ALIGN: usize = 16;

impl AlignedVec {
    /// `len` values, every one set to `value`.
    pub fn fill_to(&mut self, len: usize, value: f32) {
        self.raw.clear();
        self.raw.resize(len + ALIGN, value);
        self.offset = (ALIGN - (self.raw.as_ptr() as usize / 4) % ALIGN) % ALIGN;
        self.len = len;
    }

    /// `len` values, keeping what is there where the buffer does not move (new values are
    /// `value`).
    pub fn resize(&mut self, len: usize, value: f32) {
        if len + ALIGN > self.raw.len() {
            return self.fill_to(len, value);
        }
        self.len = len;
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.raw[self.offset..self.offset + self.len]
    }

    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.raw[self.offset..self.offset + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_on_a_cache_line_and_keeps_its_length() {
        let mut v = AlignedVec::default();
        for len in [0, 1, 15, 16, 17, 1000, 5, 100_000] {
            v.resize(len, 2.0);
            assert_eq!(v.as_slice().len(), len);
            assert_eq!(v.as_slice().as_ptr() as usize % 64, 0, "len {len}");
            v.as_mut_slice().fill(1.0);
            v.fill_to(len, 3.0);
            assert!(v.as_slice().iter().all(|&x| x == 3.0));
        }
    }
}
