//! Tokenizers behind one interface: the character vocabulary ([`CharTokenizer`]) and byte-level BPE
//! (GPT-2's built-in table, trained, or loaded from a Hugging Face `tokenizer.json`).
//!
//! Special tokens (`<|endoftext|>`, and those given when training) that appear in text are encoded as
//! their single id, as tiktoken does with `allowed_special="all"` and Hugging Face `tokenizers` does with
//! added tokens. Decoding joins the tokens' bytes and reads them as UTF-8, replacing invalid sequences
//! (a multi-byte character cut between tokens) with U+FFFD; [`Tokenizer::decode_bytes`] gives the raw
//! bytes, and [`TextStream`] decodes a token stream without cutting characters.

mod bpe;
mod gpt2;
mod hf;
mod train;

use std::path::Path;

pub use super::chars::CharTokenizer;
pub use bpe::{Bpe, GPT2_PATTERN};
pub use gpt2::{END_OF_TEXT, END_OF_TEXT_ID};

use crate::error::{Error, Result};

/// The file name a model directory keeps its tokenizer under.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// GPT-2's vocabulary size: a model of this size without a tokenizer.json uses GPT-2's tokenizer.
pub const GPT2_VOCAB_SIZE: usize = 50257;

#[derive(Clone, Debug)]
pub enum Tokenizer {
    Char(CharTokenizer),
    /// Boxed: a BPE's tables and regex are large beside a character list.
    Bpe(Box<Bpe>),
}

impl Tokenizer {
    /// GPT-2's byte-level BPE (50,257 ids, `<|endoftext|>` = 50256), built from the table compiled in;
    /// its ids equal tiktoken's `gpt2` encoding.
    pub fn gpt2() -> Self {
        Tokenizer::Bpe(Box::new(
            gpt2::gpt2().expect("the built-in GPT-2 table is valid (checked by tests)"),
        ))
    }

    /// A character vocabulary of `text`'s distinct characters.
    pub fn chars_of(text: &str) -> Self {
        Tokenizer::Char(CharTokenizer::from_text(text))
    }

    /// Trains a byte-level BPE of exactly `vocab_size` ids on `text`: ids 0..256 are the bytes, then the
    /// merges in the order learned, then `special` (each then encodes as one id). `progress(done, total)`
    /// hears about the merges as they are learned.
    pub fn train_bpe(
        text: &str,
        vocab_size: usize,
        special: &[&str],
        progress: Option<&mut dyn FnMut(usize, usize)>,
    ) -> Result<Self> {
        train::train(text, vocab_size, special, progress).map(|t| Tokenizer::Bpe(Box::new(t)))
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            Tokenizer::Char(t) => t.vocab_size(),
            Tokenizer::Bpe(t) => t.vocab_size(),
        }
    }

    /// Ids of `text` (special tokens in it become their id). Characters a char vocabulary lacks, and
    /// bytes a loaded BPE vocabulary lacks, are errors naming them.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match self {
            Tokenizer::Char(t) => t.encode(text),
            Tokenizer::Bpe(t) => t.encode(text),
        }
    }

    /// The bytes `ids` stand for; unknown ids become U+FFFD.
    pub fn decode_bytes(&self, ids: &[u32]) -> Vec<u8> {
        match self {
            Tokenizer::Char(t) => t.decode(ids).into_bytes(),
            Tokenizer::Bpe(t) => t.decode_bytes(ids),
        }
    }

    /// The text `ids` stand for, invalid UTF-8 replaced by U+FFFD (`decode(encode(x)) == x`).
    pub fn decode(&self, ids: &[u32]) -> String {
        match self {
            Tokenizer::Char(t) => t.decode(ids),
            Tokenizer::Bpe(t) => String::from_utf8_lossy(&t.decode_bytes(ids)).into_owned(),
        }
    }

    /// How one token reads on its own, for labels: its text, bytes that are not UTF-8 as U+FFFD.
    pub fn token_text(&self, id: u32) -> String {
        self.decode(&[id])
    }

    /// The id of the token that is exactly `text` (a character, a BPE token's bytes, or a special token).
    pub fn token_id(&self, text: &str) -> Option<u32> {
        match self {
            Tokenizer::Char(t) => {
                let mut it = text.chars();
                match (it.next(), it.next()) {
                    (Some(c), None) => t.chars().iter().position(|&x| x == c).map(|i| i as u32),
                    _ => None,
                }
            }
            Tokenizer::Bpe(t) => t.token_id(text),
        }
    }

    /// The `tokenizer.json` text: `{"type": "char", ...}` for characters, Hugging Face's format for BPE.
    pub fn to_json(&self) -> String {
        match self {
            Tokenizer::Char(t) => t.to_json(),
            Tokenizer::Bpe(t) => hf::to_json(t).to_string(),
        }
    }

    /// Reads either format of [`Tokenizer::to_json`] (and Hugging Face byte-level BPE files such as
    /// GPT-2's); `source` names the text in errors.
    pub fn from_json(text: &str, source: &str) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(Error::json(format!("{source}: not a tokenizer.json")))?;
        if value["type"] == "char" {
            CharTokenizer::from_json(text, source).map(Tokenizer::Char)
        } else if value.get("model").is_some() {
            hf::from_json(&value, source).map(|t| Tokenizer::Bpe(Box::new(t)))
        } else {
            Err(Error::Invalid(format!(
                "{source}: neither a char tokenizer (\"type\": \"char\") nor a Hugging Face one (\"model\")"
            )))
        }
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
        Self::from_json(&text, &path.display().to_string())
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_json()).map_err(Error::io(path))
    }

    /// The tokenizer of a model directory: its `tokenizer.json` when there is one, else GPT-2's when the
    /// model's vocabulary (`config_vocab`) is GPT-2's 50,257, else None.
    pub fn from_model_dir(dir: &Path, config_vocab: usize) -> Result<Option<Self>> {
        let path = dir.join(TOKENIZER_FILE);
        if path.exists() {
            Self::load(&path).map(Some)
        } else if config_vocab == GPT2_VOCAB_SIZE {
            Ok(Some(Self::gpt2()))
        } else {
            Ok(None)
        }
    }
}

/// Decodes a stream of ids piece by piece without cutting a character in two: bytes that may still
/// become a character wait for the next id.
pub struct TextStream<'a> {
    tokenizer: &'a Tokenizer,
    pending: Vec<u8>,
}

impl<'a> TextStream<'a> {
    pub fn new(tokenizer: &'a Tokenizer) -> Self {
        TextStream {
            tokenizer,
            pending: Vec::new(),
        }
    }

    /// The text that `id` completes (possibly empty). Bytes that can never be UTF-8 become U+FFFD now;
    /// an incomplete character at the end waits.
    pub fn push(&mut self, id: u32) -> String {
        self.pending
            .extend_from_slice(&self.tokenizer.decode_bytes(&[id]));
        let mut text = String::new();
        loop {
            let (valid, invalid) = match std::str::from_utf8(&self.pending) {
                Ok(_) => (self.pending.len(), None),
                Err(e) => (e.valid_up_to(), e.error_len()),
            };
            text.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
            match invalid {
                Some(len) => {
                    text.push('\u{FFFD}');
                    self.pending.drain(..valid + len);
                }
                None => {
                    self.pending.drain(..valid);
                    return text;
                }
            }
        }
    }

    /// Whatever is left (an incomplete character as U+FFFD).
    pub fn finish(self) -> String {
        String::from_utf8_lossy(&self.pending).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_holds_back_a_character_cut_between_tokens() {
        let gpt2 = Tokenizer::gpt2();
        let text = "a 😀 é 三";
        let ids = gpt2.encode(text).unwrap();
        let mut stream = TextStream::new(&gpt2);
        let pieces: Vec<String> = ids.iter().map(|&id| stream.push(id)).collect();
        assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')), "{pieces:?}");
        assert_eq!(pieces.concat() + &stream.finish(), text);
        // GPT-2 cuts the emoji after its third byte: " \xf0\x9f\x98" then "\x80".
        assert_eq!(pieces, ["a", " ", "😀", " é", " ", "三"]);
    }
}
