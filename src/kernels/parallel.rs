//! Deterministic work splitting: a batch is cut into a fixed number of contiguous chunks, and
//! per-chunk partial sums are added in chunk order, so the same thread count gives the same bits.

use std::ops::Range;

/// `n` items in `parts` contiguous ranges as even as possible (never more ranges than items,
/// always at least one).
pub fn chunk_ranges(n: usize, parts: usize) -> Vec<Range<usize>> {
    let parts = parts.clamp(1, n.max(1));
    let (base, extra) = (n / parts, n % parts);
    let mut start = 0;
    (0..parts)
        .map(|i| {
            let len = base + usize::from(i < extra);
            let r = start..start + len;
            start += len;
            r
        })
        .collect()
}

/// `dst[..] = value`, split across the pool when large: zeroing a step's gradient buffers
/// (~50 MB for the MNIST net) is bound by memory bandwidth, which one core does not saturate.
pub fn fill(dst: &mut [f32], value: f32) {
    const CHUNK: usize = 1 << 16;
    if dst.len() < 2 * CHUNK || rayon::current_num_threads() < 2 {
        dst.fill(value);
    } else {
        use rayon::prelude::*;
        dst.par_chunks_mut(CHUNK).for_each(|c| c.fill(value));
    }
}

/// Splits `data` into consecutive mutable slices of the given lengths (what is left over is
/// not returned): one share of a result per thread.
pub fn split_lengths<T>(mut data: &mut [T], lengths: impl IntoIterator<Item = usize>) -> Vec<&mut [T]> {
    let mut out = Vec::new();
    for len in lengths {
        let (head, tail) = std::mem::take(&mut data).split_at_mut(len);
        out.push(head);
        data = tail;
    }
    out
}

/// `dst += p0 + p1 + ...`, in that order.
pub fn sum_partials_into<'a>(dst: &mut [f32], partials: impl Iterator<Item = &'a [f32]>) {
    for p in partials {
        for (d, v) in dst.iter_mut().zip(p) {
            *d += v;
        }
    }
}

/// `dst = p0 + p1 + ...`, in that order (the bits of `sum_partials_into` on zeros); zeros
/// when there is no partial.
pub fn write_partials_into<'a>(dst: &mut [f32], mut partials: impl Iterator<Item = &'a [f32]>) {
    match partials.next() {
        Some(first) => dst.copy_from_slice(&first[..dst.len()]),
        None => dst.fill(0.0),
    }
    sum_partials_into(dst, partials);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_everything_once() {
        for n in 0..20 {
            for parts in 1..6 {
                let r = chunk_ranges(n, parts);
                assert!(!r.is_empty());
                assert_eq!(r.iter().map(|r| r.len()).sum::<usize>(), n);
                assert!(r.windows(2).all(|w| w[0].end == w[1].start));
            }
        }
    }
}
