//! Text generation: next-token choice (temperature, top-k, top-p) and a generator that runs the model on
//! the GPU for a batch of sequences: one forward pass over the prompt, then one new token per sequence
//! per step over key/value caches (see [`Generator`]).

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::{Gpt, KvCaches, Plan, StepInputs, POSITION};

/// How the next token is chosen from the logits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    /// Divides the logits; 0 picks the most likely token (the lowest id among equals).
    pub temperature: f32,
    /// Keep only the k most likely tokens.
    pub top_k: Option<usize>,
    /// Keep the smallest set of most likely tokens whose probability reaches p.
    pub top_p: Option<f32>,
}

impl Sampling {
    /// An error naming the first setting outside its range: a temperature that is negative or not a
    /// number, a top-k of 0, a top-p outside (0, 1].
    pub fn check(&self) -> Result<()> {
        let t = self.temperature;
        if !(t >= 0.0 && t.is_finite()) {
            return Err(Error::Invalid(format!(
                "temperature {t} must be a finite number ≥ 0 (0 picks the most likely token)"
            )));
        }
        if self.top_k == Some(0) {
            return Err(Error::Invalid("top-k 0 keeps no token; give k ≥ 1".into()));
        }
        match self.top_p {
            Some(p) if !(p > 0.0 && p <= 1.0) => Err(Error::Invalid(format!(
                "top-p {p} must be in (0, 1] (1 keeps every token)"
            ))),
            _ => Ok(()),
        }
    }
}

/// The next token for `logits` under `sampling`, drawn with `rng`. Temperature 0 is greedy: the most
/// likely token, the lowest id among equal logits, drawing nothing from `rng`.
pub fn choose(logits: &[f32], sampling: &Sampling, rng: &mut impl Rng) -> u32 {
    if sampling.temperature <= 0.0 {
        let best = (0..logits.len()).fold(0, |best, i| {
            if logits[i].total_cmp(&logits[best]).is_gt() {
                i
            } else {
                best
            }
        });
        return best as u32;
    }
    let mut order = candidates(logits, sampling);
    let max = (order.iter()).fold(f32::NEG_INFINITY, |max, &i| max.max(logits[i])) as f64;
    let t = sampling.temperature as f64;
    let mut probs: Vec<f64> = order
        .iter()
        .map(|&i| ((logits[i] as f64 - max) / t).exp())
        .collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if let Some(top_p) = sampling.top_p.filter(|&p| p < 1.0) {
        let mut mass = 0.0;
        let keep = probs
            .iter()
            .position(|&p| {
                mass += p;
                mass >= top_p as f64
            })
            .map_or(probs.len(), |i| i + 1);
        order.truncate(keep);
        probs.truncate(keep);
    }
    let total: f64 = probs.iter().sum();
    let mut u = rng.random::<f64>() * total;
    for (&i, &p) in order.iter().zip(&probs) {
        u -= p;
        if u <= 0.0 {
            return i as u32;
        }
    }
    order[order.len() - 1] as u32
}

/// The tokens a draw may pick, in the order it walks them: with top-k or top-p, which cut by
/// likelihood, the most likely first (top-k's alone, selected without sorting the vocabulary); else
/// every token in id order, since the walk's order does not change what is drawn, and sorting a 50k
/// vocabulary would cost more than the rest of the draw.
fn candidates(logits: &[f32], sampling: &Sampling) -> Vec<usize> {
    match sampling.top_k {
        Some(k) if k < logits.len() => most_likely(logits, k.max(1)),
        _ if sampling.top_p.is_some_and(|p| p < 1.0) => most_likely(logits, logits.len()),
        _ => (0..logits.len()).collect(),
    }
}

/// The `k` most likely token ids, from the largest logit down, the lower id first among equal logits
/// (`total_cmp`'s order). Sorted as one `u64` key per id (the logit's bits mapped so that integer
/// order is `total_cmp`'s, reversed, then the id), which sorts a 50k vocabulary several times faster
/// than comparing through the logits; for k below the vocabulary, the k smallest keys are selected
/// first and only they are sorted.
fn most_likely(logits: &[f32], k: usize) -> Vec<usize> {
    let mut keys: Vec<u64> = (logits.iter().enumerate())
        .map(|(id, &l)| {
            let bits = l.to_bits();
            // Ascending in total_cmp's order: flip all bits of negatives, the sign bit of the rest.
            let ascending = if bits >> 31 == 1 {
                !bits
            } else {
                bits | 1 << 31
            };
            ((!ascending as u64) << 32) | id as u64
        })
        .collect();
    if k < keys.len() {
        keys.select_nth_unstable(k);
        keys.truncate(k);
    }
    keys.sort_unstable();
    keys.into_iter()
        .map(|k| (k & 0xffff_ffff) as usize)
        .collect()
}

/// The random stream sequence `index` of a generation seeded with `seed` draws from: stream `index` of
/// ChaCha12 keyed by the seed. Stream 0 is `StdRng::seed_from_u64(seed)`, so one sequence draws what a
/// single generation always drew; the others are independent of it and of each other.
pub fn sequence_rng(seed: u64, index: usize) -> ChaCha12Rng {
    let mut rng = ChaCha12Rng::seed_from_u64(seed);
    rng.set_stream(index as u64);
    rng
}

/// Prefill plans a generator keeps (the prompt's length and the re-prefill's past the context).
const PREFILL_PLANS: usize = 2;

/// Generates with a model on the GPU for a batch of sequences that start from the same prompt.
///
/// The prompt is prefilled in one forward pass ([`Gpt::prefill_plan`], the training kernels), which
/// writes every layer's keys and values into rows `0..T` of each sequence's cache and computes the
/// logits of its last token only. A decode step ([`Gpt::decode_plan`]) then runs one new token per
/// sequence at their common position: its keys and values join the caches and its attention reads the
/// cached prefix, so nothing before it is recomputed. A decode step is one submit with nothing created,
/// and reads back only the logits `[N, V]`. Both plans share the caches ([`Gpt::kv_caches`]).
///
/// Every sequence has the same length, so they share one position: a sequence that has ended keeps
/// running, its tokens dropped. When the position reaches the context length, each sequence's last half
/// window is prefilled again at positions `0..` in one pass (the model's positions stop at the
/// context), so the model then sees between half the context and all of it; before that, the logits
/// are exactly those of the full forward over the tokens so far.
pub struct Generator<'a> {
    gpu: &'a Gpu,
    model: &'a Gpt,
    caches: KvCaches,
    decode: Plan,
    /// Prefill plans by (prompts, length), the most recent last.
    prefills: Vec<(usize, usize, Plan)>,
    context: usize,
}

/// What [`Generator::generate`] made, and how long it took.
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    /// Each sequence's new tokens, up to and including the one that ended it.
    pub tokens: Vec<Vec<u32>>,
    /// Before the prefill: building its plan (none when built before) and finishing the uploads still
    /// queued (the parameters', on a model's first generation).
    pub setup: Duration,
    /// The prompt's prefill: one forward pass, to its logits on the CPU.
    pub prefill: Duration,
    /// Forward passes after the prefill (decode steps, and re-prefills past the context).
    pub steps: usize,
    /// Their time, with choosing each token: from the prefill's logits to the last token.
    pub decode: Duration,
}

impl<'a> Generator<'a> {
    /// A generator of `sequences` sequences at a time (their caches and decode plan made here).
    pub fn new(gpu: &'a Gpu, model: &'a Gpt, sequences: usize) -> Result<Self> {
        let caches = model.kv_caches(gpu, sequences)?;
        let (decode, _) = model.decode_plan(gpu, &caches)?;
        Ok(Generator {
            gpu,
            model,
            caches,
            decode,
            prefills: Vec::new(),
            context: model.config.n_positions,
        })
    }

    pub fn sequences(&self) -> usize {
        self.caches.sequences()
    }

    /// The plan of a decode step (one token per sequence).
    pub fn decode_plan(&self) -> &Plan {
        &self.decode
    }

    /// The caches the plans share.
    pub fn caches(&self) -> &KvCaches {
        &self.caches
    }

    /// The prefill plan of `prompts` prompts of `len` tokens, built on first use; the oldest kept plan
    /// makes room when there are [`PREFILL_PLANS`].
    fn prefill_plan(&mut self, prompts: usize, len: usize) -> Result<&Plan> {
        let found = (self.prefills.iter()).position(|(p, l, _)| (*p, *l) == (prompts, len));
        let entry = match found {
            Some(i) => self.prefills.remove(i),
            None => {
                if self.prefills.len() == PREFILL_PLANS {
                    self.prefills.remove(0);
                }
                let (plan, _) = self
                    .model
                    .prefill_plan(self.gpu, &self.caches, prompts, len)?;
                (prompts, len, plan)
            }
        };
        self.prefills.push(entry);
        Ok(&self.prefills[self.prefills.len() - 1].2)
    }

    /// Fills every sequence's caches at positions `0..T` in one forward pass, from `tokens`: one prompt
    /// `[T]` for all of them (`prompts = 1`), or `[N, T]` row-major, one per sequence. Returns the
    /// logits of the token after each prompt, `[prompts, V]`.
    pub fn prefill(&mut self, tokens: &[u32], prompts: usize) -> Result<Vec<f32>> {
        let len = tokens.len() / prompts.max(1);
        if len == 0 || len * prompts != tokens.len() {
            return Err(Error::Invalid(format!(
                "a prefill needs {prompts} prompt(s) of the same length ≥ 1, got {} tokens",
                tokens.len()
            )));
        }
        if len > self.context {
            return Err(Error::Invalid(format!(
                "a prompt of {len} tokens is longer than the model's context of {} tokens",
                self.context
            )));
        }
        let gpu = self.gpu;
        let plan = self.prefill_plan(prompts, len)?;
        let inputs = StepInputs {
            tokens,
            targets: &[],
        };
        plan.set_batch(gpu, &inputs)?;
        plan.run_and_read(gpu)
    }

    /// Appends one token per sequence (`tokens: [N]`) at `position` (the caches hold positions
    /// `0..position` from the prefill and earlier steps) and returns the logits of the token after
    /// each, `[N, V]`.
    pub fn extend(&self, tokens: &[u32], position: usize) -> Result<Vec<f32>> {
        if position >= self.context {
            return Err(Error::Invalid(format!(
                "position {position} is outside the context of {} tokens",
                self.context
            )));
        }
        if tokens.len() != self.sequences() {
            return Err(Error::Invalid(format!(
                "a decode step takes one token for each of {} sequences, got {}",
                self.sequences(),
                tokens.len()
            )));
        }
        let inputs = StepInputs {
            tokens,
            targets: &[],
        };
        self.decode.set_batch(self.gpu, &inputs)?;
        (self.decode).write_input(self.gpu, POSITION, &[position as u32])?;
        self.decode.run_and_read(self.gpu)
    }

    /// Generates up to `count` new tokens for each sequence after `prompt` (1 to the context length),
    /// calling `on_token(sequence, token)` with each as it comes; `on_token` returns whether that
    /// token ends its sequence, and generation stops once every sequence has ended. Sequence `i` draws
    /// from [`sequence_rng`]`(seed, i)`.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        count: usize,
        sampling: &Sampling,
        seed: u64,
        mut on_token: impl FnMut(usize, u32) -> bool,
    ) -> Result<Generation> {
        sampling.check()?;
        self.check_prompt(prompt)?;
        let n = self.sequences();
        let mut run = Generation {
            tokens: vec![Vec::new(); n],
            setup: Duration::ZERO,
            prefill: Duration::ZERO,
            steps: 0,
            decode: Duration::ZERO,
        };
        if count == 0 {
            return Ok(run);
        }
        let start = Instant::now();
        self.prefill_plan(1, prompt.len())?;
        self.gpu.run(|_| {})?;
        run.setup = start.elapsed();
        let start = Instant::now();
        let mut logits = self.prefill(prompt, 1)?;
        run.prefill = start.elapsed();
        let start = Instant::now();
        let vocab = self.model.config.vocab_size;
        let mut rngs: Vec<ChaCha12Rng> = (0..n).map(|i| sequence_rng(seed, i)).collect();
        // Each sequence's tokens, the prompt's and the new; whether it has ended.
        let mut histories = vec![prompt.to_vec(); n];
        let mut ended = vec![false; n];
        // histories[_][window] sits at position 0 of the caches.
        let mut window = 0;
        for made in 1..=count {
            // One row of logits for all (after the prompt's prefill) or one per sequence.
            let rows = logits.len() / vocab;
            for (i, (history, rng)) in histories.iter_mut().zip(&mut rngs).enumerate() {
                let next = choose(&logits[(i % rows) * vocab..][..vocab], sampling, rng);
                history.push(next);
                if !ended[i] {
                    run.tokens[i].push(next);
                    ended[i] = on_token(i, next);
                }
            }
            if made == count || ended.iter().all(|&e| e) {
                break;
            }
            let position = histories[0].len() - 1 - window;
            logits = if position < self.context {
                let last: Vec<u32> = histories.iter().map(|h| h[h.len() - 1]).collect();
                self.extend(&last, position)?
            } else {
                window = histories[0].len() - (self.context / 2).max(1);
                let windows: Vec<u32> = histories
                    .iter()
                    .flat_map(|h| &h[window..])
                    .copied()
                    .collect();
                self.prefill(&windows, n)?
            };
            run.steps += 1;
        }
        run.decode = start.elapsed();
        Ok(run)
    }

    /// An error unless `prompt` holds 1 to the context length of tokens.
    fn check_prompt(&self, prompt: &[u32]) -> Result<()> {
        if prompt.is_empty() {
            return Err(Error::Invalid(
                "generation needs a prompt of at least one token".into(),
            ));
        }
        if prompt.len() > self.context {
            return Err(Error::Invalid(format!(
                "the prompt is {} tokens, longer than the model's context of {} tokens; shorten it",
                prompt.len(),
                self.context
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GREEDY: Sampling = Sampling {
        temperature: 0.0,
        top_k: None,
        top_p: None,
    };

    #[test]
    fn top_k_and_top_p_restrict_the_choice_and_zero_temperature_is_greedy() {
        let logits = [0.0, 3.0, 1.0, 2.9, -1.0];
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        assert_eq!(choose(&logits, &GREEDY, &mut rng), 1);
        let top2 = Sampling {
            temperature: 1.0,
            top_k: Some(2),
            top_p: None,
        };
        let nucleus = Sampling {
            temperature: 1.0,
            top_k: None,
            top_p: Some(0.5),
        };
        for _ in 0..200 {
            assert!([1, 3].contains(&choose(&logits, &top2, &mut rng)));
            // 3.0 alone holds under half the mass: the nucleus is {1, 3}.
            assert!([1, 3].contains(&choose(&logits, &nucleus, &mut rng)));
        }
        let all = Sampling {
            temperature: 1.0,
            top_k: None,
            top_p: None,
        };
        let seen: std::collections::HashSet<u32> =
            (0..500).map(|_| choose(&logits, &all, &mut rng)).collect();
        assert_eq!(seen.len(), 5);
    }

    #[test]
    fn draws_follow_the_softmax_of_the_kept_tokens() {
        let logits = [0.3, -1.0, 2.0, 1.5, 0.0, 2.0, -0.5];
        let temperature = 0.8;
        let weight = |i: usize| (logits[i] as f64 / temperature as f64).exp();
        // All tokens (walked in id order), the 3 most likely, and the nucleus of 0.6: tokens 2 and 5
        // hold 0.36 each.
        for (top_k, top_p, kept) in [
            (None, None, vec![0, 1, 2, 3, 4, 5, 6]),
            (Some(3), None, vec![2, 3, 5]),
            (None, Some(0.6), vec![2, 5]),
        ] {
            let sampling = Sampling {
                temperature,
                top_k,
                top_p,
            };
            let mut rng = rand::rngs::StdRng::seed_from_u64(4);
            let draws = 40_000;
            let mut counts = [0usize; 7];
            for _ in 0..draws {
                counts[choose(&logits, &sampling, &mut rng) as usize] += 1;
            }
            let total: f64 = kept.iter().map(|&i| weight(i)).sum();
            for (i, &count) in counts.iter().enumerate() {
                let p = if kept.contains(&i) {
                    weight(i) / total
                } else {
                    0.0
                };
                let seen = count as f64 / draws as f64;
                // Five standard deviations of a frequency over this many draws.
                let allowed = 5.0 * (p * (1.0 - p) / draws as f64).sqrt();
                assert!(
                    (seen - p).abs() <= allowed,
                    "{sampling:?}: token {i} drawn {seen}, expected {p}"
                );
            }
        }
    }

    #[test]
    fn greedy_and_top_k_1_pick_the_lowest_id_among_equal_maxima() {
        let logits = [0.5, 2.0, -1.0, 2.0, 2.0];
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        assert_eq!(choose(&logits, &GREEDY, &mut rng), 1);
        let top1 = Sampling {
            temperature: 0.7,
            top_k: Some(1),
            top_p: None,
        };
        for _ in 0..20 {
            assert_eq!(choose(&logits, &top1, &mut rng), 1);
        }
    }

    #[test]
    fn the_most_likely_tokens_come_as_a_stable_sort_by_total_cmp_orders_them() {
        // Ties, both zeros, subnormals, infinities, NaNs of both signs, and a vocabulary of random
        // logits with repeats.
        let special = [
            1.0,
            -0.0,
            0.0,
            2.0,
            1.0,
            f32::MIN_POSITIVE / 2.0,
            -f32::MIN_POSITIVE / 2.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            -3.5,
            2.0,
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let random: Vec<f32> = (0..50257)
            .map(|_| (rng.random_range(-8.0f32..8.0) * 16.0).round() / 16.0)
            .collect();
        for logits in [&special[..], &random] {
            let mut stable: Vec<usize> = (0..logits.len()).collect();
            stable.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
            for k in [1, 2, 7, logits.len() - 1, logits.len()] {
                assert_eq!(most_likely(logits, k), stable[..k], "k = {k}");
            }
        }
    }

    #[test]
    fn sequence_0_draws_what_a_single_generation_drew_and_the_others_differ() {
        let mut single = rand::rngs::StdRng::seed_from_u64(1337);
        let mut first = sequence_rng(1337, 0);
        let mut second = sequence_rng(1337, 1);
        let a: Vec<u64> = (0..8).map(|_| single.random()).collect();
        let b: Vec<u64> = (0..8).map(|_| first.random()).collect();
        let c: Vec<u64> = (0..8).map(|_| second.random()).collect();
        assert_eq!(a, b);
        assert_ne!(b, c);
    }

    #[test]
    fn sampling_settings_outside_their_range_are_refused() {
        let with = |temperature, top_k, top_p| Sampling {
            temperature,
            top_k,
            top_p,
        };
        assert!(with(0.0, Some(1), Some(1.0)).check().is_ok());
        for bad in [
            with(-0.1, None, None),
            with(f32::NAN, None, None),
            with(f32::INFINITY, None, None),
            with(1.0, Some(0), None),
            with(1.0, None, Some(0.0)),
            with(1.0, None, Some(1.5)),
            with(1.0, None, Some(f32::NAN)),
        ] {
            assert!(bad.check().is_err(), "{bad:?} accepted");
        }
    }
}
