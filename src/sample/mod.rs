//! Text generation: next-token choice (temperature, top-k, top-p) and a generator that runs the model's
//! forward on the GPU one new token at a time.
//!
//! The generator recomputes the forward over the (cropped) context for every token with one plan of
//! `[1, context]`: causal attention makes positions after the prompt irrelevant to the logits read, so
//! the window is padded and the row of the last real token is read back.

use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Tensor};
use crate::graph::{Plan, StepInputs};
use crate::model::Gpt;

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

/// Generates with a model on the GPU.
pub struct Generator<'a> {
    gpu: &'a Gpu,
    plan: Plan,
    logits: Tensor,
    context: usize,
    vocab: usize,
}

impl<'a> Generator<'a> {
    pub fn new(gpu: &'a Gpu, model: &Gpt) -> Result<Self> {
        let context = model.config.n_positions;
        let (plan, graph) = model.eval_plan(gpu, 1, context)?;
        let logits = plan.tensor(graph.logits).clone();
        Ok(Generator {
            gpu,
            plan,
            logits,
            context,
            vocab: model.config.vocab_size,
        })
    }

    /// The logits of the token after `tokens` (the last `context` of them).
    pub fn next_logits(&self, tokens: &[u32]) -> Result<Vec<f32>> {
        if tokens.is_empty() {
            return Err(Error::Invalid(
                "generation needs a prompt of at least one token".into(),
            ));
        }
        let window = &tokens[tokens.len().saturating_sub(self.context)..];
        let mut padded = window.to_vec();
        padded.resize(self.context, 0);
        let targets = vec![0; self.context];
        self.plan.set_batch(
            self.gpu,
            &StepInputs {
                tokens: &padded,
                targets: &targets,
            },
        )?;
        self.plan.run(self.gpu, false)?;
        self.gpu
            .read_range(&self.logits, (window.len() - 1) * self.vocab, self.vocab)
    }

    /// Appends `count` tokens to `prompt`, calling `on_token` with each as it comes; `seed` makes the
    /// choice reproducible.
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
        for _ in 0..count {
            let next = choose(&self.next_logits(&tokens)?, sampling, &mut rng);
            on_token(next);
            tokens.push(next);
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
