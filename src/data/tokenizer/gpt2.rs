//! GPT-2's vocabulary, built in: `data/gpt2.tiktoken` (tiktoken's `r50k_base` table, one
//! `base64(bytes) rank` line per token) plus `<|endoftext|>` = 50256. The table lists ranks only; the
//! merges are derived from it so that the one merge-based algorithm of [`super::bpe`] encodes it.

use super::bpe::{merge_word, Bpe, Merge, Merges};
use crate::error::{Error, Result};

/// The table, as shipped (see data/README.md for its origin and licence).
pub const TABLE: &[u8] = include_bytes!("../../../data/gpt2.tiktoken");

pub const END_OF_TEXT: &str = "<|endoftext|>";
pub const END_OF_TEXT_ID: u32 = 50256;

/// GPT-2's 50,257-token vocabulary.
pub fn gpt2() -> Result<Bpe> {
    let mut tokens = ranks(TABLE, "data/gpt2.tiktoken")?;
    let merges = derive_merges(&tokens)?;
    tokens.push(END_OF_TEXT.as_bytes().to_vec());
    Bpe::new(tokens, merges, &[END_OF_TEXT_ID])
}

/// Each rank's bytes from a tiktoken table, whose ranks must run 0, 1, 2, ... in order.
fn ranks(table: &[u8], source: &str) -> Result<Vec<Vec<u8>>> {
    let bad =
        |line: usize, why: &str| Error::Invalid(format!("{source}: line {}: {why}", line + 1));
    table
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .enumerate()
        .map(|(line, text)| {
            let text = std::str::from_utf8(text).map_err(|_| bad(line, "not ASCII"))?;
            let (token, rank) = text
                .split_once(' ')
                .ok_or_else(|| bad(line, "not `base64 rank`"))?;
            if rank.parse::<usize>().ok() != Some(line) {
                return Err(bad(line, "ranks must count up from 0"));
            }
            base64(token).ok_or_else(|| bad(line, "bad base64"))
        })
        .collect()
}

/// Standard base64 (with `=` padding), or None when malformed.
fn base64(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let text = text.as_bytes();
    if !text.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for quad in text.chunks_exact(4) {
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        let mut bits = 0u32;
        for &c in &quad[..4 - pad] {
            bits = bits << 6 | value(c)? as u32;
        }
        bits <<= 6 * pad;
        out.extend_from_slice(&bits.to_be_bytes()[1..4 - pad]);
    }
    Some(out)
}

/// The merge that makes each multi-byte token: encoding its bytes with the merges of lower ranks must
/// leave exactly two parts, and merging those two is the token's own merge (ranked as the token is).
fn derive_merges(tokens: &[Vec<u8>]) -> Result<Vec<(u32, u32)>> {
    let mut byte_ids = [None; 256];
    for (id, bytes) in tokens.iter().enumerate() {
        if let [b] = bytes[..] {
            byte_ids[b as usize] = Some(id as u32);
        }
    }
    let mut merges = Merges::new();
    let mut list = Vec::new();
    for (id, bytes) in tokens.iter().enumerate().filter(|(_, b)| b.len() > 1) {
        let mut parts = bytes
            .iter()
            .map(|&b| byte_ids[b as usize])
            .collect::<Option<Vec<u32>>>()
            .ok_or_else(|| Error::Invalid("GPT-2 table lacks a single-byte token".into()))?;
        merge_word(&mut parts, &merges);
        let [a, b] = parts[..] else {
            return Err(Error::Invalid(format!(
                "GPT-2 table: token {id} does not split into two lower-ranked tokens"
            )));
        };
        let merge = Merge {
            rank: list.len() as u32,
            id: id as u32,
        };
        merges.insert((a, b), merge);
        list.push((a, b));
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_padded_and_rejects_malformed() {
        assert_eq!(base64("IQ==").unwrap(), b"!");
        assert_eq!(base64("aGk=").unwrap(), b"hi");
        assert_eq!(base64("aGV5").unwrap(), b"hey");
        assert_eq!(base64("IHRoZQ==").unwrap(), b" the");
        assert!(base64("aGk").is_none() && base64("a*k=").is_none());
    }
}
