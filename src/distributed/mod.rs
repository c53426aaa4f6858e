//! Data-parallel training: several processes (ranks) train one model, each on its share of
//! every batch, and sum their gradients so that every rank takes the same optimizer step.
//!
//! The collective operations sit behind [`Collective`], so the trainer does not know what
//! carries them: MPI between processes (`mpi.rs`, cargo feature `mpi`), threads of one process
//! (`threads.rs`, which the tests use to hold the distributed trainer to the single-process one
//! without MPI), and later NCCL when GPUs come.

#[cfg(feature = "mpi")]
pub mod mpi;
pub mod threads;

use crate::error::{Error, Result};
use std::ops::Range;

/// What ranks do together. Every rank calls the same operations in the same order; `what`
/// names the operation in error messages (`"gradients"`, `"batch norm statistics of layer1.0.bn1"`).
pub trait Collective: Send + Sync {
    /// This process's place, `0..size()`; rank 0 evaluates, logs and writes files.
    fn rank(&self) -> usize;
    /// How many ranks train together.
    fn size(&self) -> usize;
    /// Sums `values` elementwise over all ranks, in place. Every rank receives the same bits.
    fn sum_f32(&self, what: &str, values: &mut [f32]) -> Result<()>;
    /// As `sum_f32`, in double precision (batch norm statistics).
    fn sum_f64(&self, what: &str, values: &mut [f64]) -> Result<()>;
    /// Rank 0's `bytes` on every rank (the others' are replaced, whatever their length).
    fn broadcast(&self, what: &str, bytes: &mut Vec<u8>) -> Result<()>;
}

/// Rank `rank`'s share of `len` items split over `size` ranks: contiguous, in rank order, sizes
/// differing by at most one (the first ranks get the smaller shares).
pub fn share(len: usize, rank: usize, size: usize) -> Range<usize> {
    (len * rank / size)..(len * (rank + 1) / size)
}

/// Checks that every rank holds rank 0's `bytes` (a configuration, a digest of the weights):
/// rank 0 broadcasts its own, each rank compares, and the number of ranks that differ is summed
/// so that all of them fail together (none waits for a rank that stopped). The error names what
/// differs and, on ranks other than 0, this rank.
pub fn agree(group: &dyn Collective, what: &str, bytes: &[u8]) -> Result<()> {
    let mut theirs = bytes.to_vec();
    group.broadcast(what, &mut theirs)?;
    let mut differing = [f32::from(u8::from(theirs != bytes))];
    group.sum_f32(what, &mut differing)?;
    match differing[0] as usize {
        0 => Ok(()),
        n if theirs != bytes => Err(Error::Invalid(format!(
            "rank {}: its {what} differs from rank 0's ({n} of {} ranks differ)",
            group.rank(),
            group.size()
        ))),
        n => Err(Error::Invalid(format!("the {what} of {n} of {} ranks differ from rank 0's", group.size()))),
    }
}

/// A 64-bit FNV-1a digest of `bytes`, for comparing large state between ranks cheaply.
pub fn digest(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The digest of `values`' bits.
pub fn digest_f32<'a>(values: impl IntoIterator<Item = &'a f32>) -> u64 {
    digest(values.into_iter().flat_map(|v| v.to_bits().to_le_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_the_batch_in_order() {
        for len in 0..40 {
            for size in 1..6 {
                let parts: Vec<_> = (0..size).map(|r| share(len, r, size)).collect();
                assert_eq!(parts[0].start, 0);
                assert_eq!(parts[size - 1].end, len);
                for w in parts.windows(2) {
                    assert_eq!(w[0].end, w[1].start, "len {len} size {size}");
                }
                let (lo, hi) = (parts.iter().map(|p| p.len()).min().unwrap(), parts.iter().map(|p| p.len()).max().unwrap());
                assert!(hi - lo <= 1, "len {len} size {size}: shares {parts:?}");
            }
        }
    }

    #[test]
    fn the_digest_sees_one_bit() {
        let a = [1.0f32, 2.0, 3.0];
        let b = [1.0, f32::from_bits(2.0f32.to_bits() ^ 1), 3.0];
        assert_ne!(digest_f32(&a), digest_f32(&b));
        assert_eq!(digest_f32(&a), digest_f32(&[1.0f32, 2.0, 3.0]));
        assert_ne!(digest([0u8, 1]), digest([1u8, 0]));
    }
}
