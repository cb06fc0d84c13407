//! Byte-level BPE: text is split on special tokens, each remaining stretch is cut into words by GPT-2's
//! pattern, and each word's UTF-8 bytes are merged pairwise by rank until no listed merge applies. One
//! algorithm serves GPT-2, trained and loaded vocabularies (Hugging Face `tokenizers` semantics: repeatedly
//! merge the leftmost adjacent pair with the lowest merge rank).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use fancy_regex::Regex;

use crate::error::{Error, Result};

/// GPT-2's pre-tokenization pattern (tiktoken's `r50k_pat_str`, Hugging Face's ByteLevel `use_regex`).
pub const GPT2_PATTERN: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// What a merge of two adjacent ids makes, and its priority (lower merges first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Merge {
    pub rank: u32,
    pub id: u32,
}

pub type Merges = HashMap<(u32, u32), Merge>;

/// Merges `parts` in place: while some adjacent pair has a merge, the lowest-ranked (leftmost on ties)
/// becomes its merged id. The parts form a linked list and the candidate merges a min-heap keyed by
/// (rank, position), so a long word (a run of 100,000 letters) costs O(n log n), not O(n²).
pub fn merge_word(parts: &mut Vec<u32>, merges: &Merges) {
    const DEAD: u32 = u32::MAX;
    let n = parts.len();
    let mut next: Vec<usize> = (1..=n).collect();
    let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
    let mut heap = BinaryHeap::new();
    let candidate = |left: usize, a: u32, b: u32| {
        merges
            .get(&(a, b))
            .map(|m| Reverse((m.rank, left, a, b, m.id)))
    };
    heap.extend((1..n).filter_map(|i| candidate(i - 1, parts[i - 1], parts[i])));
    while let Some(Reverse((_, left, a, b, id))) = heap.pop() {
        let right = next[left];
        // Stale when either side has changed since the entry was pushed (a part only ever changes into
        // a longer token, and a merged-away part is DEAD).
        if right >= n || parts[left] != a || parts[right] != b {
            continue;
        }
        parts[left] = id;
        parts[right] = DEAD;
        next[left] = next[right];
        if next[left] < n {
            prev[next[left]] = left;
            heap.extend(candidate(left, id, parts[next[left]]));
        }
        if prev[left] < n {
            heap.extend(candidate(prev[left], parts[prev[left]], id));
        }
    }
    parts.retain(|&p| p != DEAD);
}

/// The pre-tokenizer: GPT-2's pattern as a compiled regex.
#[derive(Clone, Debug)]
pub struct Words(Regex);

impl Words {
    pub fn gpt2() -> Self {
        Words(Regex::new(GPT2_PATTERN).expect("GPT-2's pattern compiles"))
    }

    /// Calls `f` with each word of `text` in order (the words concatenate to `text`).
    pub fn each<'t>(&self, text: &'t str, mut f: impl FnMut(&'t str) -> Result<()>) -> Result<()> {
        for m in self.0.find_iter(text) {
            let m = m.map_err(|e| Error::Invalid(format!("pre-tokenizing text: {e}")))?;
            f(m.as_str())?;
        }
        Ok(())
    }
}

/// A stretch of text between special tokens, or a special token's id.
pub enum Piece<'t> {
    Text(&'t str),
    Special(u32),
}

/// Calls `f` with `text` cut at every occurrence of a special token (leftmost first, the longest where
/// two start at the same place), in order.
pub fn split_special<'t>(
    text: &'t str,
    special: &[(String, u32)],
    mut f: impl FnMut(Piece<'t>) -> Result<()>,
) -> Result<()> {
    let find = |from: usize, s: &str| text[from..].find(s).map(|at| at + from);
    // The next occurrence of each special token at or after `pos`, refreshed only once passed.
    let mut next: Vec<Option<usize>> = special.iter().map(|(s, _)| find(0, s)).collect();
    let mut pos = 0;
    loop {
        let hit = next
            .iter()
            .enumerate()
            .filter_map(|(k, at)| at.map(|at| (at, std::cmp::Reverse(special[k].0.len()), k)))
            .min();
        let Some((at, _, k)) = hit else { break };
        if at > pos {
            f(Piece::Text(&text[pos..at]))?;
        }
        f(Piece::Special(special[k].1))?;
        pos = at + special[k].0.len();
        for (slot, (s, _)) in next.iter_mut().zip(special) {
            if slot.is_some_and(|at| at < pos) {
                *slot = find(pos, s);
            }
        }
    }
    if pos < text.len() {
        f(Piece::Text(&text[pos..]))?;
    }
    Ok(())
}

/// A byte-level BPE vocabulary: every id's bytes, the merges in rank order and the special tokens.
#[derive(Clone, Debug)]
pub struct Bpe {
    /// Bytes of each id; a special token's are its text.
    tokens: Vec<Vec<u8>>,
    /// Ordinary (not special) tokens by their bytes.
    ids: HashMap<Vec<u8>, u32>,
    byte_ids: [Option<u32>; 256],
    merge_list: Vec<(u32, u32)>,
    merges: Merges,
    special: Vec<(String, u32)>,
    words: Words,
}

impl Bpe {
    /// A vocabulary from each id's bytes, the merges in rank order (each pair must concatenate to a token)
    /// and the ids that are special tokens (whose bytes must be UTF-8 text).
    pub fn new(tokens: Vec<Vec<u8>>, merge_list: Vec<(u32, u32)>, special: &[u32]) -> Result<Self> {
        let n = tokens.len();
        let bad = |why: String| Error::Invalid(format!("BPE vocabulary of {n} tokens: {why}"));
        let mut special_tokens = Vec::with_capacity(special.len());
        for &id in special {
            let bytes = tokens
                .get(id as usize)
                .ok_or_else(|| bad(format!("special token id {id} is outside it")))?;
            let text = String::from_utf8(bytes.clone())
                .map_err(|_| bad(format!("special token {id} is not UTF-8")))?;
            if text.is_empty() || special_tokens.iter().any(|(s, _)| *s == text) {
                return Err(bad(format!(
                    "special token {text:?} is empty or listed twice"
                )));
            }
            special_tokens.push((text, id));
        }
        let mut ids = HashMap::with_capacity(n);
        let mut byte_ids = [None; 256];
        for (id, bytes) in tokens.iter().enumerate() {
            let id = id as u32;
            if special.contains(&id) {
                continue;
            }
            if bytes.is_empty() || ids.insert(bytes.clone(), id).is_some() {
                return Err(bad(format!(
                    "token {id} ({bytes:?}) is empty or listed twice"
                )));
            }
            if let [b] = bytes[..] {
                byte_ids[b as usize] = Some(id);
            }
        }
        let mut merges = Merges::with_capacity(merge_list.len());
        for (rank, &(a, b)) in merge_list.iter().enumerate() {
            let part = |id: u32| {
                tokens
                    .get(id as usize)
                    .ok_or_else(|| bad(format!("merge {rank} names id {id}, outside it")))
            };
            let joined = [part(a)?.as_slice(), part(b)?].concat();
            let id = *ids.get(&joined).ok_or_else(|| {
                bad(format!(
                    "merge {rank} ({a}, {b}) makes {:?}, which is not a token",
                    String::from_utf8_lossy(&joined)
                ))
            })?;
            let merge = Merge {
                rank: rank as u32,
                id,
            };
            if merges.insert((a, b), merge).is_some() {
                return Err(bad(format!("merge {rank} ({a}, {b}) is listed twice")));
            }
        }
        Ok(Bpe {
            tokens,
            ids,
            byte_ids,
            merge_list,
            merges,
            special: special_tokens,
            words: Words::gpt2(),
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// Each id's bytes (a special token's: its text).
    pub fn tokens(&self) -> &[Vec<u8>] {
        &self.tokens
    }

    /// The merges in rank order.
    pub fn merges(&self) -> &[(u32, u32)] {
        &self.merge_list
    }

    /// The special tokens and their ids.
    pub fn special(&self) -> &[(String, u32)] {
        &self.special
    }

    /// Ids of `text`; special tokens in it become their single id. A byte with no token of its own (a
    /// loaded vocabulary that lacks some of the 256) is an error naming it.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(text.len() / 3);
        // Words repeat (" the", "\n"): merge each distinct one once.
        let mut cache: HashMap<&str, Vec<u32>> = HashMap::new();
        split_special(text, &self.special, |piece| match piece {
            Piece::Special(id) => {
                out.push(id);
                Ok(())
            }
            Piece::Text(stretch) => self.words.each(stretch, |word| {
                if let Some(ids) = cache.get(word) {
                    out.extend_from_slice(ids);
                    return Ok(());
                }
                let ids = self.encode_word(word)?;
                out.extend_from_slice(&ids);
                cache.insert(word, ids);
                Ok(())
            }),
        })?;
        Ok(out)
    }

    fn encode_word(&self, word: &str) -> Result<Vec<u32>> {
        let mut parts = word
            .bytes()
            .map(|b| {
                self.byte_ids[b as usize].ok_or_else(|| {
                    Error::Invalid(format!(
                        "byte 0x{b:02x} (in {word:?}) has no token in this BPE vocabulary"
                    ))
                })
            })
            .collect::<Result<Vec<u32>>>()?;
        merge_word(&mut parts, &self.merges);
        Ok(parts)
    }

    /// The bytes of `ids` joined; ids outside the vocabulary become U+FFFD.
    pub fn decode_bytes(&self, ids: &[u32]) -> Vec<u8> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            match self.tokens.get(id as usize) {
                Some(bytes) => out.extend_from_slice(bytes),
                None => out.extend_from_slice("\u{FFFD}".as_bytes()),
            }
        }
        out
    }

    /// The id of the token whose bytes are exactly `text`'s, or of the special token `text`.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.special
            .iter()
            .find(|(s, _)| s == text)
            .map(|&(_, id)| id)
            .or_else(|| self.ids.get(text.as_bytes()).copied())
    }
}
