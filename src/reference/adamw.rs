//! `adamw` on the CPU: one PyTorch AdamW step, in f32 with the shader's order of operations (the update
//! is elementwise, so there is no accumulation that f64 would protect).

use crate::contract::{AdamWConfig, Segment};

/// Updates `p`, `m`, `v` in place for the elements of `segments`, with `hyper` from
/// [`crate::contract::adamw_hyper`] and gradients scaled by `clip_scale`.
#[allow(clippy::too_many_arguments)]
pub fn step(
    config: &AdamWConfig,
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    segments: &[Segment],
    hyper: &[f32],
    clip_scale: f32,
) {
    let (step_size, bc2_sqrt, decay_keep) = (hyper[4], hyper[5], hyper[6]);
    // The constants as the shader gets them: rounded to f32 once, from f64.
    let (beta1, beta2, eps) = (config.beta1 as f32, config.beta2 as f32, config.eps as f32);
    let one_minus_beta1 = (1.0 - config.beta1) as f32;
    let one_minus_beta2 = (1.0 - config.beta2) as f32;
    for s in segments {
        for i in s.offset..s.offset + s.len {
            let g = g[i] * clip_scale;
            m[i] = beta1 * m[i] + one_minus_beta1 * g;
            v[i] = beta2 * v[i] + one_minus_beta2 * g * g;
            if s.decay {
                p[i] *= decay_keep;
            }
            p[i] -= step_size * (m[i] / (v[i].sqrt() / bc2_sqrt + eps));
        }
    }
}
