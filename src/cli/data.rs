//! Training and evaluation data: `--data` (text) or `--tokens` (uint16 ids, a file or a `wgpt prepare`
//! directory), split into training and validation.

use std::path::Path;

use crate::data::tokenizer::TOKENIZER_FILE;
use crate::data::{read_tokens, split_train_val, Tokenizer};
use crate::error::{Error, Result};

/// A corpus as token ids split into training and validation, with its tokenizer when known.
pub struct Corpus {
    pub train: Vec<u32>,
    pub val: Vec<u32>,
    pub tokenizer: Option<Tokenizer>,
    /// The vocabulary the ids come from (None: a token file without --vocab-size or tokenizer).
    pub vocab_size: Option<usize>,
}

impl Corpus {
    /// Reads `--data` (text, character vocabulary) or `--tokens` (uint16 ids: one file split 90/10, or a
    /// `wgpt prepare` directory). A model's own tokenizer, when given, encodes the text instead, so a
    /// resumed or fine-tuned model keeps its ids; a prepared directory's tokenizer must then be the same.
    pub fn load(
        data: Option<&Path>,
        tokens: Option<&Path>,
        vocab_size: Option<usize>,
        tokenizer: Option<Tokenizer>,
    ) -> Result<Self> {
        match (data, tokens) {
            (Some(path), _) => {
                let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
                let tokenizer = tokenizer.unwrap_or_else(|| Tokenizer::chars_of(&text));
                let tokens = tokenizer
                    .encode(&text)
                    .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
                let vocab_size = vocabulary(vocab_size, Some(&tokenizer))?;
                Ok(Corpus::split(tokens, Some(tokenizer), vocab_size))
            }
            (None, Some(dir)) if dir.is_dir() => Self::prepared(dir, vocab_size, tokenizer),
            (None, Some(path)) => {
                let vocab_size = vocabulary(vocab_size, tokenizer.as_ref())?;
                Ok(Corpus::split(read_tokens(path)?, tokenizer, vocab_size))
            }
            (None, None) => Err(Error::Invalid(
                "no training data: give --data FILE (text) or --tokens FILE.bin|DIR".into(),
            )),
        }
    }

    /// One token sequence split 90/10; the vocabulary is the tokenizer's unless `vocab_size` says.
    fn split(tokens: Vec<u32>, tokenizer: Option<Tokenizer>, vocab_size: Option<usize>) -> Self {
        let (train, val) = split_train_val(&tokens);
        Corpus {
            train: train.to_vec(),
            val: val.to_vec(),
            vocab_size: vocab_size.or(tokenizer.as_ref().map(Tokenizer::vocab_size)),
            tokenizer,
        }
    }

    /// A directory `wgpt prepare` wrote: train.bin, val.bin and (optionally) tokenizer.json.
    fn prepared(dir: &Path, vocab_size: Option<usize>, model: Option<Tokenizer>) -> Result<Self> {
        let path = dir.join(TOKENIZER_FILE);
        let tokenizer = match (path.exists().then(|| Tokenizer::load(&path)).transpose()?, model) {
            (Some(own), Some(model)) if own.to_json() != model.to_json() => {
                return Err(Error::Invalid(format!(
                    "{}: the data's tokenizer differs from the model's, so its ids mean other tokens; prepare the data with the model's tokenizer.json",
                    path.display()
                )))
            }
            (own, model) => own.or(model),
        };
        Ok(Corpus {
            train: read_tokens(&dir.join("train.bin"))?,
            val: read_tokens(&dir.join("val.bin"))?,
            vocab_size: vocabulary(vocab_size, tokenizer.as_ref())?,
            tokenizer,
        })
    }
}

/// The vocabulary of the data: `--vocab-size` when given (at least the tokenizer's: a larger one pads
/// the model, as nanoGPT's 50304 for GPT-2), else the tokenizer's; an error when it is smaller.
fn vocabulary(given: Option<usize>, tokenizer: Option<&Tokenizer>) -> Result<Option<usize>> {
    let own = tokenizer.map(Tokenizer::vocab_size);
    match (given, own) {
        (Some(v), Some(own)) if v < own => Err(Error::Invalid(format!(
            "--vocab-size {v} contradicts the tokenizer, which has {own} tokens (ids up to {}); drop it or give at least {own}",
            own - 1
        ))),
        (given, own) => Ok(given.or(own)),
    }
}
