//! Text generation: next-token choice (temperature, top-k, top-p) and a generator that runs the model on
//! the GPU one new token at a time over key/value caches (see [`Generator`]).

use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::{Gpt, Plan, StepInputs, POSITION};

/// How the next token is chosen from the logits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    /// Divides the logits; 0 picks the most likely token.
    pub temperature: f32,
    /// Keep only the k most likely tokens.
    pub top_k: Option<usize>,
    /// Keep the smallest set of most likely tokens whose probability reaches p.
    pub top_p: Option<f32>,
}

/// The next token for `logits` under `sampling`, drawn with `rng`.
pub fn choose(logits: &[f32], sampling: &Sampling, rng: &mut impl Rng) -> u32 {
    let argmax = || {
        logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i as u32)
    };
    if sampling.temperature <= 0.0 {
        return argmax();
    }
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    if let Some(k) = sampling.top_k {
        order.truncate(k.max(1));
    }
    let max = logits[order[0]] as f64;
    let t = sampling.temperature as f64;
    let mut probs: Vec<f64> = order
        .iter()
        .map(|&i| ((logits[i] as f64 - max) / t).exp())
        .collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if let Some(top_p) = sampling.top_p {
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

/// Generates with a model on the GPU, batch 1, one token per step over key/value caches.
///
/// A step runs the model's decode plan ([`Gpt::decode_plan`]) for one token at its position: its keys
/// and values join the per-layer caches and its attention reads the cached prefix, so nothing before it
/// is recomputed. A step is one submit with nothing created, and reads back only the logits.
///
/// The prompt is prefilled one step per token (the logits read after the last only): simple, exact, and
/// at the price of one decode step per prompt token. When the window reaches the context length, its
/// last half is prefilled again at positions 0.. (the model's positions stop at the context), so the
/// model then sees between half the context and all of it; before that, the logits are exactly those of
/// the full forward over the tokens so far.
pub struct Generator<'a> {
    gpu: &'a Gpu,
    plan: Plan,
    context: usize,
}

impl<'a> Generator<'a> {
    pub fn new(gpu: &'a Gpu, model: &Gpt) -> Result<Self> {
        let (plan, _) = model.decode_plan(gpu)?;
        Ok(Generator {
            gpu,
            plan,
            context: model.config.n_positions,
        })
    }

    /// Runs the decode step of `token` at `position`; reads the logits back when `read`.
    fn step(&self, token: u32, position: usize, read: bool) -> Result<Option<Vec<f32>>> {
        if position >= self.context {
            return Err(Error::Invalid(format!(
                "position {position} is outside the context of {} tokens",
                self.context
            )));
        }
        self.plan.set_batch(
            self.gpu,
            &StepInputs {
                tokens: &[token],
                targets: &[],
            },
        )?;
        self.plan
            .write_input(self.gpu, POSITION, &[position as u32])?;
        if read {
            return self.plan.run_and_read(self.gpu).map(Some);
        }
        self.plan.run(self.gpu, false)?;
        Ok(None)
    }

    /// Fills the caches with `tokens` at positions `0..` and returns the logits of the token after them.
    pub fn prefill(&self, tokens: &[u32]) -> Result<Vec<f32>> {
        let Some((&last, rest)) = tokens.split_last() else {
            return Err(Error::Invalid(
                "generation needs a prompt of at least one token".into(),
            ));
        };
        for (position, &token) in rest.iter().enumerate() {
            self.step(token, position, false)?;
        }
        self.step(last, rest.len(), true)?
            .ok_or_else(|| Error::Invalid("a decode step read no logits".into()))
    }

    /// Appends `token` at `position` (the caches hold positions `0..position` from earlier steps of this
    /// generation) and returns the logits of the token after it.
    pub fn extend(&self, token: u32, position: usize) -> Result<Vec<f32>> {
        self.step(token, position, true)?
            .ok_or_else(|| Error::Invalid("a decode step read no logits".into()))
    }

    /// Appends `count` tokens to `prompt` (of which the last `context` are read), calling `on_token` with
    /// each as it comes; `seed` makes the choice reproducible.
    pub fn generate(
        &self,
        prompt: &[u32],
        count: usize,
        sampling: &Sampling,
        seed: u64,
        mut on_token: impl FnMut(u32),
    ) -> Result<Vec<u32>> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut tokens = prompt.to_vec();
        // tokens[window] sits at position 0 of the caches.
        let mut window = tokens.len().saturating_sub(self.context);
        let mut logits = self.prefill(&tokens[window..])?;
        for i in 0..count {
            let next = choose(&logits, sampling, &mut rng);
            on_token(next);
            tokens.push(next);
            if i + 1 == count {
                break;
            }
            let position = tokens.len() - 1 - window;
            logits = if position < self.context {
                self.extend(next, position)?
            } else {
                window = tokens.len() - (self.context / 2).max(1);
                self.prefill(&tokens[window..])?
            };
        }
        Ok(tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_and_top_p_restrict_the_choice_and_zero_temperature_is_greedy() {
        let logits = [0.0, 3.0, 1.0, 2.9, -1.0];
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let greedy = Sampling {
            temperature: 0.0,
            top_k: None,
            top_p: None,
        };
        assert_eq!(choose(&logits, &greedy, &mut rng), 1);
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
}
