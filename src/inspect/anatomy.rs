//! The numbers behind every figure of `wgpt inspect`, gathered from the GPU: one forward of the prompt
//! (attention maps, the residual stream across depth, the next-token distribution), the parameters, and
//! the gradients of one training step on the prompt (of a model in f32: one stored in 16 bits does not
//! train).

use serde::Serialize;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::inspect::capture::capture;
use crate::inspect::stats::Stats;
use crate::model::{Gpt, StepInputs};
use crate::plot::Bins;

/// Histogram bins per tensor.
const BINS: usize = 60;
/// Rows of the embedding heatmap: the first token ids that print as text.
const EMBEDDING_ROWS: usize = 48;
/// Most distinct prompt tokens in the cosine-similarity matrix.
const COSINE_TOKENS: usize = 24;
/// Tokens of the next-token distribution.
const TOP_K: usize = 15;

/// One prompt token: its id and its text.
#[derive(Clone, Debug, Serialize)]
pub struct Token {
    pub id: u32,
    pub text: String,
}

/// The residual stream at one depth and what the sublayer before it added.
#[derive(Clone, Debug, Serialize)]
pub struct Depth {
    pub name: String,
    pub stream: Stats,
    /// `None` for the embedding.
    pub sublayer: Option<Stats>,
}

/// A tensor's values (or gradients): summarized, binned as its histogram draws them, and (not in the
/// JSON) the values themselves.
#[derive(Clone, Debug, Serialize)]
pub struct TensorSummary {
    pub name: String,
    pub shape: Vec<usize>,
    pub stats: Stats,
    pub histogram: Bins,
    #[serde(skip)]
    pub values: Vec<f32>,
}

/// A labelled square or rectangular matrix, row-major.
#[derive(Clone, Debug, Serialize)]
pub struct Matrix {
    pub rows: Vec<String>,
    pub columns: Vec<String>,
    pub values: Vec<f32>,
}

/// Everything `wgpt inspect` draws, also written as JSON.
#[derive(Clone, Debug, Serialize)]
pub struct Anatomy {
    pub prompt: Vec<Token>,
    /// `attention[layer][head]`: `[T, T]` row-major, query rows over key columns, 0 above the diagonal.
    pub attention: Vec<Vec<Vec<f32>>>,
    pub depth: Vec<Depth>,
    /// The embedding rows × channels of the first token ids that print as text (a byte-level BPE's
    /// first ids are control bytes and lone bytes of multi-byte characters).
    pub embedding: Matrix,
    /// Cosine similarity of the prompt's distinct tokens' embeddings.
    pub cosine: Matrix,
    pub parameters: Vec<TensorSummary>,
    /// Gradients of one training step on the prompt (next-token loss, dropout as configured); empty for
    /// a one-token prompt, which has no next token to learn.
    pub gradients: Vec<TensorSummary>,
    pub gradient_loss: Option<f32>,
    /// The most likely tokens after the prompt, with their probabilities.
    pub next_token: Vec<(Token, f32)>,
}

impl Anatomy {
    /// Looks at `model` on the prompt `tokens` (1 ..= context length of them); `text` names a token id.
    pub fn new(
        gpu: &Gpu,
        model: &Gpt,
        tokens: &[u32],
        text: &dyn Fn(u32) -> String,
    ) -> Result<Self> {
        let config = &model.config;
        if tokens.is_empty() || tokens.len() > config.n_positions {
            return Err(Error::Invalid(format!(
                "the prompt is {} tokens; inspect takes 1 to {} (the model's context length)",
                tokens.len(),
                config.n_positions
            )));
        }
        let token = |id: u32| Token { id, text: text(id) };
        let captured = capture(gpu, model, tokens)?;
        let seq = tokens.len();
        let attention = captured
            .attention
            .iter()
            .map(|layer| layer.chunks(seq * seq).map(<[f32]>::to_vec).collect())
            .collect();
        let depth = captured
            .stages
            .iter()
            .map(|s| Depth {
                name: s.name.clone(),
                stream: Stats::of(&s.stream),
                sublayer: s.sublayer.as_deref().map(Stats::of),
            })
            .collect();

        let vocab = config.vocab_size;
        let last = &captured.logits[(seq - 1) * vocab..seq * vocab];
        let next_token = top_k(&softmax(last), TOP_K)
            .into_iter()
            .map(|(id, p)| (token(id), p))
            .collect();

        let specs = config.params();
        let params = model.read_params(gpu)?;
        let summarize = |values: Vec<Vec<f32>>| -> Vec<TensorSummary> {
            specs
                .iter()
                .zip(values)
                .map(|(spec, v)| TensorSummary {
                    name: spec.name.clone(),
                    shape: spec.shape.clone(),
                    stats: Stats::of(&v),
                    histogram: Bins::of(&v, BINS),
                    values: v,
                })
                .collect()
        };
        let wte = specs
            .iter()
            .position(|s| s.name == "transformer.wte.weight")
            .map(|i| &params[i])
            .ok_or_else(|| Error::Invalid("the model has no token embedding".into()))?;
        let c = config.n_embd;
        let shown: Vec<u32> = (0..vocab as u32)
            .filter(|&id| prints(&text(id)))
            .take(EMBEDDING_ROWS)
            .collect();
        let embedding = Matrix {
            rows: shown.iter().map(|&id| text(id)).collect(),
            columns: (0..c).map(|j| j.to_string()).collect(),
            values: shown
                .iter()
                .flat_map(|&id| &wte[id as usize * c..(id as usize + 1) * c])
                .copied()
                .collect(),
        };
        let mut distinct: Vec<u32> = Vec::new();
        for &t in tokens {
            if !distinct.contains(&t) && distinct.len() < COSINE_TOKENS {
                distinct.push(t);
            }
        }
        let cosine = cosine_matrix(wte, c, &distinct, text);

        // A model in 16 bits has no training step: no gradients.
        let (gradients, gradient_loss) = if seq >= 2 && model.trains() {
            let (plan, _) = model.gradient_plan(gpu, 1, seq - 1)?;
            plan.set_batch(
                gpu,
                &StepInputs {
                    tokens: &tokens[..seq - 1],
                    targets: &tokens[1..],
                },
            )?;
            let loss = plan.run(gpu, true)?;
            (summarize(model.read_grads(gpu)?), loss)
        } else {
            (Vec::new(), None)
        };

        Ok(Anatomy {
            prompt: tokens.iter().map(|&t| token(t)).collect(),
            attention,
            depth,
            embedding,
            cosine,
            parameters: summarize(params),
            gradients,
            gradient_loss,
            next_token,
        })
    }

    /// The `k` most likely next tokens as `"text" p, ...` (small probabilities in scientific notation).
    pub fn next_token_summary(&self, k: usize) -> String {
        let shown: Vec<String> = self
            .next_token
            .iter()
            .take(k)
            .map(|(t, p)| match p {
                p if *p >= 1e-3 => format!("{:?} {p:.3}", t.text),
                p => format!("{:?} {p:.2e}", t.text),
            })
            .collect();
        shown.join(", ")
    }

    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(Error::json("anatomy as JSON"))
    }
}

/// Whether a token's text shows as something: no control characters but newline and tab (which figures
/// draw as ↵ and ⇥), no replacement character (a lone byte of a multi-byte character).
fn prints(text: &str) -> bool {
    !text.is_empty()
        && text.chars().all(|ch| {
            ch != char::REPLACEMENT_CHARACTER && (!ch.is_control() || matches!(ch, '\n' | '\t'))
        })
}

fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = logits.iter().map(|&x| ((x - max) as f64).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|&e| (e / sum) as f32).collect()
}

/// The `k` largest probabilities with their ids, largest first (ties by smaller id).
fn top_k(probs: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut order: Vec<u32> = (0..probs.len() as u32).collect();
    order.sort_by(|&a, &b| {
        probs[b as usize]
            .total_cmp(&probs[a as usize])
            .then(a.cmp(&b))
    });
    order
        .into_iter()
        .take(k)
        .map(|i| (i, probs[i as usize]))
        .collect()
}

/// Cosine similarity between the embedding rows of `ids` (`wte: [V, c]`).
fn cosine_matrix(wte: &[f32], c: usize, ids: &[u32], text: &dyn Fn(u32) -> String) -> Matrix {
    let row = |id: u32| &wte[id as usize * c..(id as usize + 1) * c];
    let norm = |x: &[f32]| x.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
    let mut values = Vec::with_capacity(ids.len() * ids.len());
    for &a in ids {
        for &b in ids {
            let dot: f64 = row(a)
                .iter()
                .zip(row(b))
                .map(|(&x, &y)| x as f64 * y as f64)
                .sum();
            let denom = norm(row(a)) * norm(row(b));
            values.push(if denom > 0.0 {
                (dot / denom) as f32
            } else {
                0.0
            });
        }
    }
    let labels: Vec<String> = ids.iter().map(|&id| text(id)).collect();
    Matrix {
        rows: labels.clone(),
        columns: labels,
        values,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bytes_and_lone_utf8_bytes_do_not_print() {
        assert!(prints(" the") && prints("\n") && prints("é"));
        assert!(!prints("\u{1}") && !prints("\r") && !prints("\u{fffd}") && !prints(""));
    }

    #[test]
    fn top_k_orders_by_probability_then_id() {
        assert_eq!(
            top_k(&[0.1, 0.4, 0.1, 0.4], 3),
            vec![(1, 0.4), (3, 0.4), (0, 0.1)]
        );
    }

    #[test]
    fn cosine_of_a_row_with_itself_is_one_and_orthogonal_rows_zero() {
        let wte = [1.0, 0.0, 0.0, 2.0, 3.0, 0.0];
        let m = cosine_matrix(&wte, 2, &[0, 1, 2], &|i| i.to_string());
        assert_eq!(m.values, vec![1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
        assert_eq!(m.rows, ["0", "1", "2"]);
    }
}
