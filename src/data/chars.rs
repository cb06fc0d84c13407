//! The character-level tokenizer: one id per distinct character of the corpus, in sorted order (so
//! tiny-shakespeare gets nanoGPT's 65 ids).

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CharTokenizer {
    chars: Vec<char>,
}

impl CharTokenizer {
    /// The vocabulary of `text`: its distinct characters, sorted.
    pub fn from_text(text: &str) -> Self {
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        CharTokenizer { chars }
    }

    /// A tokenizer over exactly these characters, in this order (as saved with a model).
    pub fn from_chars(chars: Vec<char>) -> Result<Self> {
        let mut sorted = chars.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != chars.len() {
            return Err(Error::Invalid(
                "character vocabulary lists a character twice".into(),
            ));
        }
        Ok(CharTokenizer { chars })
    }

    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    pub fn vocab_size(&self) -> usize {
        self.chars.len()
    }

    /// The `tokenizer.json` a model directory keeps: `{"type": "char", "chars": [...]}`.
    pub fn to_json(&self) -> String {
        let chars: Vec<String> = self.chars.iter().map(|c| c.to_string()).collect();
        serde_json::json!({ "type": "char", "chars": chars }).to_string()
    }

    /// Reads [`CharTokenizer::to_json`]'s format.
    pub fn from_json(text: &str, source: &str) -> Result<Self> {
        let bad = |why: &str| Error::Invalid(format!("{source}: not a character tokenizer: {why}"));
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(Error::json(format!("{source}: not a character tokenizer")))?;
        if value["type"] != "char" {
            return Err(bad("\"type\" is not \"char\""));
        }
        let chars = value["chars"]
            .as_array()
            .ok_or_else(|| bad("no \"chars\" list"))?
            .iter()
            .map(|c| {
                let s = c.as_str().unwrap_or_default();
                let mut it = s.chars();
                match (it.next(), it.next()) {
                    (Some(ch), None) => Ok(ch),
                    _ => Err(bad(&format!("{c} is not one character"))),
                }
            })
            .collect::<Result<Vec<char>>>()?;
        Self::from_chars(chars)
    }

    /// Ids of `text`; a character outside the vocabulary is an error naming it and its position.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let sorted = self.chars.windows(2).all(|w| w[0] < w[1]);
        text.chars()
            .enumerate()
            .map(|(pos, ch)| {
                let found = if sorted {
                    self.chars.binary_search(&ch).ok()
                } else {
                    self.chars.iter().position(|&c| c == ch)
                };
                found.map(|id| id as u32).ok_or_else(|| {
                    Error::Invalid(format!(
                        "character {ch:?} at position {pos} is not in the {}-character vocabulary",
                        self.chars.len()
                    ))
                })
            })
            .collect()
    }

    /// Text of `ids`; ids outside the vocabulary decode as U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        ids.iter()
            .map(|&id| self.chars.get(id as usize).copied().unwrap_or('\u{FFFD}'))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_shakespeare_has_nanogpts_65_characters_and_round_trips() {
        let text = include_str!("../../data/tinyshakespeare.txt");
        let tokenizer = CharTokenizer::from_text(text);
        assert_eq!(tokenizer.vocab_size(), 65);
        assert_eq!(tokenizer.chars()[0], '\n');
        let ids = tokenizer.encode(text).unwrap();
        assert_eq!(tokenizer.decode(&ids), text);
    }

    #[test]
    fn tokenizer_json_round_trips() {
        let tokenizer = CharTokenizer::from_text("hello, wörld\n");
        let back = CharTokenizer::from_json(&tokenizer.to_json(), "t").unwrap();
        assert_eq!(back, tokenizer);
        assert!(CharTokenizer::from_json("{\"type\":\"bpe\"}", "t").is_err());
    }

    #[test]
    fn unknown_characters_are_an_error_naming_them() {
        let tokenizer = CharTokenizer::from_text("abc");
        let err = tokenizer.encode("abz").unwrap_err().to_string();
        assert!(err.contains("'z'") && err.contains("position 2"), "{err}");
    }
}
