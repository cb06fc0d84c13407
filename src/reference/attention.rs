//! `attention` on the CPU: causal multi-head / grouped-query attention on the `c_attn` output, in f64.
//! Layouts as in [`crate::kernels::attention`]: `qkv: [B, T, (H + 2·Hkv)·D]`, `o: [B, T, H·D]`,
//! `lse: [B, H, T]`; dropout element `((b·H + h)·T + t)·T + s` (wrapping) at `dropout.site`, numbered in
//! the whole batch for micro-batch `state[2]` of `state = [seed, step, micro]`.

use crate::contract::{AttentionDropout, AttentionShape};
use crate::reference::random;

/// Offsets of query head h's, key head g's and value head g's vectors in token (b, t)'s `qkv` row.
fn q_at(sh: &AttentionShape, b: usize, t: usize, h: usize) -> usize {
    (b * sh.seq + t) * sh.qkv_width() + h * sh.head_dim
}

fn k_at(sh: &AttentionShape, b: usize, t: usize, g: usize) -> usize {
    q_at(sh, b, t, sh.heads + g)
}

fn v_at(sh: &AttentionShape, b: usize, t: usize, g: usize) -> usize {
    q_at(sh, b, t, sh.heads + sh.kv_heads + g)
}

fn o_at(sh: &AttentionShape, b: usize, t: usize, h: usize) -> usize {
    ((b * sh.seq + t) * sh.heads + h) * sh.head_dim
}

fn dot(x: &[f32], i: usize, y: &[f32], j: usize, d: usize) -> f64 {
    (0..d).map(|c| x[i + c] as f64 * y[j + c] as f64).sum()
}

/// The dropout factor `Z_ts` (`keep / (1 - p)`) of query row (b, h, t) and key s.
fn dropout_factor(
    sh: &AttentionShape,
    dropout: AttentionDropout,
    state: [u32; 3],
    b: usize,
    h: usize,
    t: usize,
    s: usize,
) -> f64 {
    if dropout.p == 0.0 {
        return 1.0;
    }
    let row = ((b * sh.heads + h) * sh.seq + t) as u32;
    let local = row.wrapping_mul(sh.seq as u32).wrapping_add(s as u32);
    let count = sh.batch * sh.heads * sh.seq * sh.seq;
    let element = random::element(state[2], count, local);
    if random::keep(state[0], state[1], dropout.site, element, dropout.p) {
        1.0 / (1.0 - dropout.p as f64)
    } else {
        0.0
    }
}

/// Softmax probabilities `P_ts` (s = 0..=t) of query row (b, h, t) and their log-sum-exp.
pub fn probabilities(
    qkv: &[f32],
    sh: &AttentionShape,
    b: usize,
    h: usize,
    t: usize,
) -> (Vec<f64>, f64) {
    let g = h / (sh.heads / sh.kv_heads);
    let scale = 1.0 / (sh.head_dim as f64).sqrt();
    let scores: Vec<f64> = (0..=t)
        .map(|s| scale * dot(qkv, q_at(sh, b, t, h), qkv, k_at(sh, b, s, g), sh.head_dim))
        .collect();
    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = max + scores.iter().map(|s| (s - max).exp()).sum::<f64>().ln();
    (scores.iter().map(|s| (s - lse).exp()).collect(), lse)
}

/// Every head's probabilities `P: [B, H, T, T]`, 0 above the diagonal (before dropout).
pub fn probability_matrix(qkv: &[f32], sh: &AttentionShape) -> Vec<f32> {
    let t_len = sh.seq;
    let mut out = vec![0.0; sh.batch * sh.heads * t_len * t_len];
    for b in 0..sh.batch {
        for h in 0..sh.heads {
            for t in 0..t_len {
                let (p, _) = probabilities(qkv, sh, b, h, t);
                let row = ((b * sh.heads + h) * t_len + t) * t_len;
                for (s, &ps) in p.iter().enumerate() {
                    out[row + s] = ps as f32;
                }
            }
        }
    }
    out
}

/// `(o, lse)`.
pub fn forward(
    qkv: &[f32],
    sh: &AttentionShape,
    dropout: AttentionDropout,
    state: [u32; 3],
) -> (Vec<f32>, Vec<f32>) {
    let d = sh.head_dim;
    let mut o = vec![0.0; sh.batch * sh.seq * sh.heads * d];
    let mut lse = vec![0.0; sh.batch * sh.heads * sh.seq];
    for b in 0..sh.batch {
        for h in 0..sh.heads {
            let g = h / (sh.heads / sh.kv_heads);
            for t in 0..sh.seq {
                let (p, l) = probabilities(qkv, sh, b, h, t);
                lse[(b * sh.heads + h) * sh.seq + t] = l as f32;
                for c in 0..d {
                    let sum: f64 = (0..=t)
                        .map(|s| {
                            let a = p[s] * dropout_factor(sh, dropout, state, b, h, t, s);
                            a * qkv[v_at(sh, b, s, g) + c] as f64
                        })
                        .sum();
                    o[o_at(sh, b, t, h) + c] = sum as f32;
                }
            }
        }
    }
    (o, lse)
}

/// `dqkv` for the output gradient `d_o: [B, T, H·D]`, recomputing the probabilities.
pub fn backward(
    qkv: &[f32],
    d_o: &[f32],
    sh: &AttentionShape,
    dropout: AttentionDropout,
    state: [u32; 3],
) -> Vec<f32> {
    let d = sh.head_dim;
    let scale = 1.0 / (d as f64).sqrt();
    let mut grad = vec![0.0f64; qkv.len()];
    for b in 0..sh.batch {
        for h in 0..sh.heads {
            let g = h / (sh.heads / sh.kv_heads);
            for t in 0..sh.seq {
                let (p, _) = probabilities(qkv, sh, b, h, t);
                let (qi, oi) = (q_at(sh, b, t, h), o_at(sh, b, t, h));
                // dA_ts = dO_t·v_s; A = P·Z; dS = P·(Z·dA - Σ_s' P Z dA).
                let z: Vec<f64> = (0..=t)
                    .map(|s| dropout_factor(sh, dropout, state, b, h, t, s))
                    .collect();
                let da: Vec<f64> = (0..=t)
                    .map(|s| dot(d_o, oi, qkv, v_at(sh, b, s, g), d))
                    .collect();
                let delta: f64 = (0..=t).map(|s| p[s] * z[s] * da[s]).sum();
                for s in 0..=t {
                    let ds = p[s] * (z[s] * da[s] - delta);
                    let (ki, vi) = (k_at(sh, b, s, g), v_at(sh, b, s, g));
                    for c in 0..d {
                        grad[qi + c] += scale * ds * qkv[ki + c] as f64;
                        grad[ki + c] += scale * ds * qkv[qi + c] as f64;
                        grad[vi + c] += p[s] * z[s] * d_o[oi + c] as f64;
                    }
                }
            }
        }
    }
    grad.into_iter().map(|x| x as f32).collect()
}
