//! What the model-level test files share: a tiny configuration and parameters that make mistakes show.

use rand::{Rng, SeedableRng};
use wgpt::model::{GptConfig, Norm};

/// 2 layers, 4 heads, width 64, vocabulary 97, context 32, dropout 0.1: GPT-2 (LayerNorm, biases, 4 kv
/// heads) or the modern variant (RMSNorm, no biases, 4 query heads over 2 kv heads).
pub fn tiny(modern: bool) -> GptConfig {
    GptConfig {
        vocab_size: 97,
        n_positions: 32,
        n_embd: 64,
        n_layer: 2,
        n_head: 4,
        n_kv_head: if modern { 2 } else { 4 },
        n_inner: 256,
        norm: if modern {
            Norm::RmsNorm
        } else {
            Norm::LayerNorm
        },
        bias: !modern,
        tie_word_embeddings: true,
        layer_norm_epsilon: 1e-5,
        dropout: 0.1,
    }
}

/// Parameters uniform in [-0.3, 0.3): far from GPT-2's small initialization, so that attention is
/// peaked and logits spread, and a wrong row, head, cache slot or position shows.
// Each test file is its own crate; tests/model.rs does not use this one.
#[allow(dead_code)]
pub fn uniform_params(config: &GptConfig, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    config
        .params()
        .iter()
        .map(|spec| {
            (0..spec.len())
                .map(|_| rng.random_range(-0.3..0.3))
                .collect()
        })
        .collect()
}
