//! Buffer planning: where every tensor of a step lives.
//!
//! - Parameters, gradients and the two AdamW moments are arenas: each tensor a 256-byte-aligned view of
//!   one contiguous range, the same layout in all four, so `gradnorm` and `adamw` sweep them in a few
//!   dispatches. An arena is split into chunks no larger than one storage binding allows; a tensor
//!   never straddles two chunks.
//! - Activations (and their gradients, and scratch) get buffers by lifetime: the largest first, each
//!   into the first buffer no tensor alive at the same time holds, so smaller tensors fill the gaps
//!   between larger ones' lives. Whole buffers rather than offsets in one big buffer, because WebGPU
//!   forbids a dispatch to read and write the same buffer.

use std::cmp::Reverse;

use crate::error::{Error, Result};
use crate::gpu::Tensor;

/// One tensor to place: its length, and the first and last step (op index) that touch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetime {
    pub len: usize,
    pub first: usize,
    pub last: usize,
}

impl Lifetime {
    /// Whether some step touches both tensors (lives are inclusive at both ends).
    pub fn overlaps(&self, other: &Lifetime) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

/// Where the tensors of an arena go: `(chunk, element offset)` per tensor, and each chunk's length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArenaLayout {
    pub places: Vec<(usize, usize)>,
    pub chunks: Vec<usize>,
}

impl ArenaLayout {
    /// Packs tensors of the given lengths in order into chunks of at most `max_chunk` elements, each
    /// tensor starting at a multiple of [`Tensor::ALIGN`].
    pub fn pack(lens: &[usize], max_chunk: usize) -> Result<Self> {
        let mut places = Vec::with_capacity(lens.len());
        let mut chunks = vec![0usize];
        for &len in lens {
            if len > max_chunk {
                return Err(Error::Invalid(format!(
                    "a tensor of {len} elements exceeds the largest storage binding ({max_chunk} elements)"
                )));
            }
            let mut start = chunks
                .last()
                .copied()
                .unwrap_or(0)
                .next_multiple_of(Tensor::ALIGN);
            if start + len > max_chunk {
                chunks.push(0);
                start = 0;
            }
            let chunk = chunks.len() - 1;
            places.push((chunk, start));
            chunks[chunk] = start + len;
        }
        Ok(ArenaLayout { places, chunks })
    }

    pub fn total_len(&self) -> usize {
        self.chunks.iter().sum()
    }
}

/// Buffers for short-lived tensors: `slot[i]` is the buffer of tensor `i`, `sizes[s]` the length of
/// buffer `s`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotLayout {
    pub slot: Vec<usize>,
    pub sizes: Vec<usize>,
}

impl SlotLayout {
    /// Gives each tensor a buffer that no tensor alive at the same step shares. Largest first, each
    /// into the first buffer free for its whole life, else into a new buffer of its size (so a
    /// buffer's size is its first tensor's). For every length L, any placement needs as many buffers
    /// of at least L as there are tensors of at least L alive at once; on GPT-2 training steps this
    /// order comes within 0.1% of the sum that bound sets.
    pub fn assign(tensors: &[Lifetime]) -> Self {
        let mut order: Vec<usize> = (0..tensors.len()).collect();
        order.sort_by_key(|&i| (Reverse(tensors[i].len), tensors[i].first, i));
        let mut slot = vec![usize::MAX; tensors.len()];
        let mut sizes = Vec::new();
        // The lives of the tensors each buffer holds.
        let mut held: Vec<Vec<Lifetime>> = Vec::new();
        for i in order {
            let t = tensors[i];
            let free = (held.iter()).position(|lives| !lives.iter().any(|u| u.overlaps(&t)));
            let s = free.unwrap_or_else(|| {
                sizes.push(t.len);
                held.push(Vec::new());
                sizes.len() - 1
            });
            held[s].push(t);
            slot[i] = s;
        }
        SlotLayout { slot, sizes }
    }

    pub fn total_len(&self) -> usize {
        self.sizes.iter().sum()
    }
}

/// The least memory any placement of these tensors needs: the largest total length alive at one step.
pub fn peak_live_len(tensors: &[Lifetime]) -> usize {
    let steps = tensors.iter().map(|t| t.last + 1).max().unwrap_or(0);
    let mut delta = vec![0isize; steps + 1];
    for t in tensors {
        delta[t.first] += t.len as isize;
        delta[t.last + 1] -= t.len as isize;
    }
    let mut live = 0isize;
    let mut peak = 0isize;
    for d in delta {
        live += d;
        peak = peak.max(live);
    }
    peak as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arenas_align_every_tensor_and_split_at_the_binding_limit() {
        let layout = ArenaLayout::pack(&[10, 64, 1, 100], 200).unwrap();
        assert_eq!(layout.places, [(0, 0), (0, 64), (0, 128), (1, 0)]);
        assert_eq!(layout.chunks, [129, 100]);
        assert!(ArenaLayout::pack(&[201], 200).is_err());
    }

    fn t(len: usize, first: usize, last: usize) -> Lifetime {
        Lifetime { len, first, last }
    }

    /// Fails unless every tensor fits its buffer and no two tensors alive at one step share one.
    fn assert_sound(tensors: &[Lifetime], layout: &SlotLayout) {
        for (i, a) in tensors.iter().enumerate() {
            let s = layout.slot[i];
            assert!(
                a.len <= layout.sizes[s],
                "tensor {i} ({a:?}) overflows buffer {s}"
            );
            for (j, b) in tensors.iter().enumerate().skip(i + 1) {
                let shared = layout.slot[j] == s;
                assert!(
                    !(shared && a.overlaps(b)),
                    "{i} {a:?} and {j} {b:?} share buffer {s}"
                );
            }
        }
    }

    #[test]
    fn a_dead_buffer_takes_a_smaller_tensor() {
        // 1 overlaps 0; 2 comes after both and fits in either, so it takes the first (0's).
        let tensors = [t(8, 0, 1), t(6, 1, 3), t(4, 4, 6)];
        let layout = SlotLayout::assign(&tensors);
        assert_eq!(layout.slot, [0, 1, 0]);
        assert_eq!(layout.sizes, [8, 6]);
        assert_sound(&tensors, &layout);
    }

    #[test]
    fn a_small_tensor_first_used_does_not_size_the_buffer_a_larger_one_reuses() {
        // By first use, 0 would size a buffer of 2 that 1 outgrows; largest first, 1 sizes it.
        let tensors = [t(2, 0, 1), t(8, 2, 3)];
        let layout = SlotLayout::assign(&tensors);
        assert_eq!(layout.slot, [0, 0]);
        assert_eq!(layout.sizes, [8]);
    }

    #[test]
    fn tensors_alive_at_the_same_step_never_share_a_buffer() {
        // Staggered lives of mixed lengths, many overlapping at each step.
        let tensors: Vec<Lifetime> = (0..60)
            .map(|i| t(1 + (i * 37) % 23, i / 2, i / 2 + (i * 11) % 7))
            .collect();
        assert_sound(&tensors, &SlotLayout::assign(&tensors));
    }

    #[test]
    fn mixed_sizes_plan_no_more_than_same_size_reuse_did() {
        // Same-size reuse gave each tensor its own buffer (16 + 8 + 8 + 4 = 36): 2 could not take 0's
        // dead buffer, nor 3 take 1's.
        let tensors = [t(16, 0, 2), t(8, 1, 3), t(8, 3, 4), t(4, 4, 5)];
        let layout = SlotLayout::assign(&tensors);
        assert_sound(&tensors, &layout);
        assert_eq!(layout.slot, [0, 1, 0, 1]);
        assert!(layout.total_len() <= 36);
        assert_eq!(layout.total_len(), peak_live_len(&tensors));
    }
}
