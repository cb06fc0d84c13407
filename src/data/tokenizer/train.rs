//! Training a byte-level BPE: count the words of the text (GPT-2's pre-tokenization, special tokens cut
//! out), then repeatedly merge the most frequent adjacent pair of ids across all words. Pair counts are
//! kept up to date incrementally, with an index from each pair to the words holding it and a max-heap
//! whose stale entries are skipped when popped. Ties go to the smallest pair (left id, then right id), so
//! training is deterministic.
//!
//! Layout of the result: ids 0..256 are the bytes in byte order, then one id per merge in the order
//! learned, then the special tokens.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::bpe::{split_special, Bpe, Piece, Words};
use crate::error::{Error, Result};

type Pair = (u32, u32);

/// A distinct word of the corpus as its current ids, and how often it occurs.
struct Word {
    ids: Vec<u32>,
    count: i64,
}

impl Word {
    fn pairs(&self) -> impl Iterator<Item = Pair> + '_ {
        self.ids.windows(2).map(|w| (w[0], w[1]))
    }

    /// Replaces every occurrence of `pair` (left to right) with `id`; false when there was none.
    fn merge(&mut self, pair: Pair, id: u32) -> bool {
        let mut out = Vec::with_capacity(self.ids.len());
        let mut i = 0;
        while i < self.ids.len() {
            if i + 1 < self.ids.len() && (self.ids[i], self.ids[i + 1]) == pair {
                out.push(id);
                i += 2;
            } else {
                out.push(self.ids[i]);
                i += 1;
            }
        }
        let changed = out.len() != self.ids.len();
        self.ids = out;
        changed
    }
}

/// Learns a vocabulary of exactly `vocab_size` ids from `text`: the 256 bytes, `vocab_size - 256 -
/// special.len()` merges, and `special` at the end. `progress(done, total)` hears about the merges.
pub fn train(
    text: &str,
    vocab_size: usize,
    special: &[&str],
    mut progress: Option<&mut dyn FnMut(usize, usize)>,
) -> Result<Bpe> {
    let fixed = 256 + special.len();
    if vocab_size < fixed {
        return Err(Error::Invalid(format!(
            "vocabulary size {vocab_size} is too small: the 256 bytes and {} special tokens need {fixed}",
            special.len()
        )));
    }
    if vocab_size > u32::MAX as usize {
        return Err(Error::Invalid(format!(
            "vocabulary size {vocab_size} is too large"
        )));
    }
    let wanted = vocab_size - fixed;
    // Specials carry placeholder ids while cutting: only the text between them is counted.
    let cut: Vec<(String, u32)> = special.iter().map(|s| (s.to_string(), 0)).collect();
    let mut words = count_words(text, &cut)?;

    let mut counts: HashMap<Pair, i64> = HashMap::new();
    let mut holders: HashMap<Pair, Vec<usize>> = HashMap::new();
    for (w, word) in words.iter().enumerate() {
        for pair in word.pairs() {
            *counts.entry(pair).or_default() += word.count;
            let list = holders.entry(pair).or_default();
            if list.last() != Some(&w) {
                list.push(w);
            }
        }
    }
    let mut heap: BinaryHeap<(i64, Reverse<Pair>)> =
        counts.iter().map(|(&p, &c)| (c, Reverse(p))).collect();

    let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    let mut merges = Vec::with_capacity(wanted);
    while merges.len() < wanted {
        let Some((count, Reverse(pair))) = heap.pop() else {
            return Err(Error::Invalid(format!(
                "the text allows only {} merges, but a vocabulary of {vocab_size} needs {wanted}: give more text or a smaller vocabulary size",
                merges.len()
            )));
        };
        if counts.get(&pair) != Some(&count) || count <= 0 {
            continue; // stale: the pair's count changed after this entry was pushed
        }
        let id = tokens.len() as u32;
        tokens.push([tokens[pair.0 as usize].as_slice(), &tokens[pair.1 as usize]].concat());
        merges.push(pair);
        let mut changed: HashMap<Pair, i64> = HashMap::new();
        for w in holders.remove(&pair).unwrap_or_default() {
            let word = &mut words[w];
            let before: Vec<Pair> = word.pairs().collect();
            if !word.merge(pair, id) {
                continue;
            }
            for p in before {
                *changed.entry(p).or_default() -= word.count;
            }
            for p in word.pairs() {
                *changed.entry(p).or_default() += word.count;
                if p.0 == id || p.1 == id {
                    let list = holders.entry(p).or_default();
                    if list.last() != Some(&w) {
                        list.push(w);
                    }
                }
            }
        }
        for (p, delta) in changed.into_iter().filter(|&(_, d)| d != 0) {
            let c = counts.entry(p).or_default();
            *c += delta;
            if *c > 0 {
                heap.push((*c, Reverse(p)));
            }
        }
        counts.remove(&pair);
        if let Some(report) = progress.as_mut() {
            report(merges.len(), wanted);
        }
    }
    let special_ids: Vec<u32> = (0..special.len())
        .map(|k| (tokens.len() + k) as u32)
        .collect();
    tokens.extend(special.iter().map(|s| s.as_bytes().to_vec()));
    Bpe::new(tokens, merges, &special_ids)
}

/// The distinct words of `text` (outside special tokens) as byte ids, with their counts, in order of
/// first appearance (so training does not depend on hash order).
fn count_words(text: &str, special: &[(String, u32)]) -> Result<Vec<Word>> {
    let pre = Words::gpt2();
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut words: Vec<Word> = Vec::new();
    split_special(text, special, |piece| match piece {
        Piece::Special(_) => Ok(()),
        Piece::Text(stretch) => pre.each(stretch, |w| {
            let k = *index.entry(w).or_insert_with(|| {
                words.push(Word {
                    ids: w.bytes().map(u32::from).collect(),
                    count: 0,
                });
                words.len() - 1
            });
            words[k].count += 1;
            Ok(())
        }),
    })?;
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification: recount every pair of every word before each merge.
    fn naive_merges(text: &str, merges: usize) -> Vec<Pair> {
        let mut words = count_words(text, &[]).unwrap();
        let mut learned = Vec::new();
        for id in 256..256 + merges as u32 {
            let mut counts: HashMap<Pair, i64> = HashMap::new();
            for word in &words {
                for pair in word.pairs() {
                    *counts.entry(pair).or_default() += word.count;
                }
            }
            let best = counts
                .into_iter()
                .max_by_key(|&(pair, count)| (count, Reverse(pair)));
            let Some((pair, _)) = best else { break };
            for word in &mut words {
                word.merge(pair, id);
            }
            learned.push(pair);
        }
        learned
    }

    #[test]
    fn incremental_counts_learn_the_same_merges_as_recounting() {
        let text = &include_str!("../../../data/tinyshakespeare.txt")[..20_000];
        let bpe = train(text, 256 + 300, &[], None).unwrap();
        assert_eq!(bpe.merges(), naive_merges(text, 300));
        // Runs of one letter exercise overlapping pairs ("aaaa" -> "aa aa").
        let runs = "aaaa aaaaaaa ab aaab bbbbbb aaaaaaaaaaaaaa";
        let bpe = train(runs, 256 + 6, &[], None).unwrap();
        assert_eq!(bpe.merges(), naive_merges(runs, 6));
    }
}
