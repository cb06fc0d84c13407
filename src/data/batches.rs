//! Seeded batch sampling: `B` windows of `T + 1` tokens at random offsets, as nanoGPT's `get_batch`.
//! Batch `i` is a pure function of (seed, i), so a resumed run draws exactly the batches the
//! uninterrupted run would have, with no generator state to save.

use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};

/// Inputs and next-token targets, row-major `[B, T]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub inputs: Vec<u32>,
    pub targets: Vec<u32>,
}

/// Draws batches from one token sequence.
pub struct BatchSampler<'a> {
    tokens: &'a [u32],
    batch: usize,
    seq: usize,
    seed: u64,
}

impl<'a> BatchSampler<'a> {
    pub fn new(tokens: &'a [u32], batch: usize, seq: usize, seed: u64) -> Result<Self> {
        if tokens.len() <= seq {
            return Err(Error::Invalid(format!(
                "{} tokens are too few for sequences of {seq} (need at least {})",
                tokens.len(),
                seq + 1
            )));
        }
        Ok(BatchSampler {
            tokens,
            batch,
            seq,
            seed,
        })
    }

    /// Batch number `index` of this sampler's sequence.
    pub fn batch(&self, index: u64) -> Batch {
        // Decorrelate neighbouring indices before seeding (splitmix64's increment).
        let mut rng = rand::rngs::StdRng::seed_from_u64(
            self.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let mut batch = Batch {
            inputs: Vec::with_capacity(self.batch * self.seq),
            targets: Vec::with_capacity(self.batch * self.seq),
        };
        for _ in 0..self.batch {
            let start = rng.random_range(0..self.tokens.len() - self.seq);
            let window = &self.tokens[start..start + self.seq + 1];
            batch.inputs.extend_from_slice(&window[..self.seq]);
            batch.targets.extend_from_slice(&window[1..]);
        }
        batch
    }

    /// The fixed batch of `--overfit-batch`: x = tokens[0 .. B·T], y = tokens[1 .. B·T + 1].
    pub fn first_batch(&self) -> Result<Batch> {
        let n = self.batch * self.seq;
        if self.tokens.len() <= n {
            return Err(Error::Invalid(format!(
                "{} tokens are too few for one fixed batch of {} x {}",
                self.tokens.len(),
                self.batch,
                self.seq
            )));
        }
        Ok(Batch {
            inputs: self.tokens[..n].to_vec(),
            targets: self.tokens[1..=n].to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_shifted_windows_and_a_function_of_seed_and_index() {
        let tokens: Vec<u32> = (0..1000).collect();
        let a = BatchSampler::new(&tokens, 4, 16, 7).unwrap();
        let b = BatchSampler::new(&tokens, 4, 16, 7).unwrap();
        for i in 0..3 {
            let batch = a.batch(i);
            assert_eq!(batch, b.batch(i));
            for (x, y) in batch.inputs.iter().zip(&batch.targets) {
                assert_eq!(x + 1, *y);
            }
        }
        assert_ne!(a.batch(0), a.batch(1));
        let fixed = a.first_batch().unwrap();
        assert_eq!(fixed.inputs, (0..64).collect::<Vec<u32>>());
        assert_eq!(fixed.targets, (1..65).collect::<Vec<u32>>());
        assert!(BatchSampler::new(&tokens[..16], 1, 16, 0).is_err());
    }
}
