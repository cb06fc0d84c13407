//! Training data: tokenizers (characters, byte-level BPE), token files (`.bin`, little-endian u16 as nanoGPT writes them),
//! the train/val split and seeded batch sampling.

mod batches;
mod chars;
pub mod tokenizer;
mod tokens;

pub use batches::{Batch, BatchSampler};
pub use tokenizer::{CharTokenizer, TextStream, Tokenizer};
pub use tokens::{read_tokens, write_tokens};

/// Splits a token sequence 90/10 into train and validation, as nanoGPT's `prepare.py` does.
pub fn split_train_val(tokens: &[u32]) -> (&[u32], &[u32]) {
    tokens.split_at(tokens.len() * 9 / 10)
}
