//! Buffer planning: where every tensor of a step lives.
//!
//! - Parameters, gradients and the two AdamW moments are arenas: each tensor a 256-byte-aligned view of
//!   one contiguous range, the same layout in all four, so `gradnorm` and `adamw` sweep them in a few
//!   dispatches. An arena is split into chunks no larger than one storage binding allows; a tensor
//!   never straddles two chunks.
//! - Activations (and their gradients, and scratch) get buffers by lifetime: a buffer whose tensor is
//!   dead is reused by a later tensor of the same size. Whole buffers rather than offsets in one big
//!   buffer, because WebGPU forbids a dispatch to read and write the same buffer.

use crate::error::{Error, Result};
use crate::gpu::Tensor;

/// One tensor to place: its length, and the first and last step (op index) that touch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetime {
    pub len: usize,
    pub first: usize,
    pub last: usize,
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
    /// Gives each tensor a buffer, reusing one whose last tensor died before this one is first used
    /// and whose size is exactly this tensor's (transformer activations come in few distinct sizes).
    pub fn assign(tensors: &[Lifetime]) -> Self {
        let mut order: Vec<usize> = (0..tensors.len()).collect();
        order.sort_by_key(|&i| (tensors[i].first, i));
        let mut slot = vec![usize::MAX; tensors.len()];
        let mut sizes: Vec<usize> = Vec::new();
        // When each buffer becomes free: the last step of the tensor it holds.
        let mut free_after: Vec<usize> = Vec::new();
        for i in order {
            let t = tensors[i];
            let reuse = (0..sizes.len()).find(|&s| sizes[s] == t.len && free_after[s] < t.first);
            let s = reuse.unwrap_or_else(|| {
                sizes.push(t.len);
                free_after.push(0);
                sizes.len() - 1
            });
            free_after[s] = t.last;
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

    #[test]
    fn dead_buffers_are_reused_by_tensors_of_the_same_size() {
        let t = |len, first, last| Lifetime { len, first, last };
        // 0 and 2 never overlap and share a size; 1 overlaps both; 3 has another size.
        let tensors = [t(8, 0, 1), t(8, 1, 3), t(8, 2, 4), t(4, 5, 6)];
        let layout = SlotLayout::assign(&tensors);
        assert_eq!(layout.slot, [0, 1, 0, 2]);
        assert_eq!(layout.total_len(), 20);
        assert_eq!(peak_live_len(&tensors), 16);
    }
}
