//! What the kernels and their CPU twins (`reference`) agree on: shapes, the dropout encoding and
//! AdamW's settings and per-step values. Both import this module and neither imports the other, so the
//! checked code and its specification cannot drift apart through a shared definition on one side.

use crate::error::{Error, Result};

/// One attention layer's shape. `qkv: [B, T, (H + 2·Hkv)·D]` holds per token q (H heads), k (Hkv heads)
/// and v (Hkv heads); query head h uses kv head `h / (H / Hkv)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl AttentionShape {
    /// Width of one token's `qkv` row: `(H + 2·Hkv)·D`.
    pub fn qkv_width(&self) -> usize {
        (self.heads + 2 * self.kv_heads) * self.head_dim
    }

    /// `1/sqrt(D)`.
    pub fn scale(&self) -> f32 {
        1.0 / (self.head_dim as f32).sqrt()
    }
}

/// Length of the dropout state tensor `[seed, step, micro]`: the run's seed, the step, and which
/// micro-batch of an accumulated batch a submit runs (0 without accumulation; the masks then number
/// elements as in the whole batch, see `random_element` in `shaders/random.wgsl`).
pub const RANDOM_STATE_LEN: usize = 3;

/// Dropout on the attention probabilities: drop probability `p` and this layer's site (seed, step and
/// micro-batch come from the `[seed, step, micro]` state tensor at run time).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionDropout {
    pub p: f32,
    pub site: u32,
}

impl AttentionDropout {
    pub const NONE: AttentionDropout = AttentionDropout { p: 0.0, site: 0 };
}

/// The integer threshold for drop probability `p` in [0, 1): an element whose hash of (seed, step, site,
/// element) is below it drops (`shaders/random.wgsl`).
pub fn dropout_threshold(p: f32) -> u32 {
    (p.clamp(0.0, 1.0) as f64 * 4294967296.0).min(u32::MAX as f64) as u32
}

/// The factor `1/(1-p)` a kept element is multiplied by.
pub fn dropout_scale(p: f32) -> f32 {
    1.0 / (1.0 - p)
}

/// An error naming the first of `ids` (`what`: "input", "target", "training data") outside a
/// `vocab`-token vocabulary, with its position. Kernels index with token ids unchecked, so every batch
/// is checked before upload.
pub fn check_token_ids(what: &str, ids: &[u32], vocab: usize) -> Result<()> {
    match ids.iter().position(|&t| t as usize >= vocab) {
        None => Ok(()),
        Some(position) => Err(Error::TokenId {
            what: what.into(),
            id: ids[position],
            position,
            vocab,
        }),
    }
}

/// AdamW's settings fixed for a run (the learning rate varies per step). Kept in f64, as PyTorch keeps
/// them in Python floats: 0.999 in f32 would move 1 - β2 by 1e-5.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    /// PyTorch's defaults.
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// One tensor's range of the parameter arena and whether weight decay applies to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub offset: usize,
    pub len: usize,
    pub decay: bool,
}

/// Length of AdamW's per-step tensor ([`adamw_hyper`]).
pub const HYPER_LEN: usize = 8;

/// AdamW's per-step values for learning rate `lr` at step `t` (counted from 1), computed in f64 as
/// PyTorch computes them in Python floats:
///
/// | index | value                   |
/// |-------|-------------------------|
/// | 0     | lr                      |
/// | 1     | t                       |
/// | 2     | bc1 = 1 - β1^t          |
/// | 3     | bc2 = 1 - β2^t          |
/// | 4     | step_size = lr / bc1    |
/// | 5     | sqrt(bc2)               |
/// | 6     | 1 - lr·weight_decay     |
/// | 7     | 0                       |
///
/// The update reads 4..=6; 0..=3 are for whoever reads the tensor (logging, checkpoints).
pub fn adamw_hyper(config: &AdamWConfig, lr: f64, t: u32) -> [f32; HYPER_LEN] {
    let bc1 = 1.0 - config.beta1.powi(t as i32);
    let bc2 = 1.0 - config.beta2.powi(t as i32);
    [
        lr,
        t as f64,
        bc1,
        bc2,
        lr / bc1,
        bc2.sqrt(),
        1.0 - lr * config.weight_decay,
        0.0,
    ]
    .map(|x| x as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ids_outside_the_vocabulary_are_refused_naming_the_id_and_position() {
        assert!(check_token_ids("target", &[0, 64, 3], 65).is_ok());
        let err = check_token_ids("target", &[0, 64, 65, 3], 65).unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(
                err,
                Error::TokenId {
                    id: 65,
                    position: 2,
                    vocab: 65,
                    ..
                }
            ),
            "{message}"
        );
        assert!(
            message.contains("65") && message.contains("position 2"),
            "{message}"
        );
    }
}
