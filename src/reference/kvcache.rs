//! `kvcache` on the CPU, in f64. Layouts as in [`crate::kernels::kvcache`]: `k_cache, v_cache: [N, ctx,
//! Hkv·D]`; a decode step's `qkv: [N, (H + 2·Hkv)·D]` and `out: [N, H·D]`; a prefill's `qkv: [B, T,
//! (H + 2·Hkv)·D]`.

use crate::contract::AttentionShape;

/// Rows per sequence of caches of `len` elements for `sequences` sequences of `width` columns.
fn context(len: usize, sequences: usize, width: usize) -> usize {
    len / (sequences * width)
}

/// Writes a prefill's keys and values (`qkv: [B, T, ·]`, `sh.batch = B`, `sh.seq = T`) into rows `0..T`
/// of each of the `sequences` caches, cache `n` from prompt `n mod B`.
pub fn fill(
    qkv: &[f32],
    sh: &AttentionShape,
    sequences: usize,
    k_cache: &mut [f32],
    v_cache: &mut [f32],
) {
    let (width, row) = (sh.kv_heads * sh.head_dim, sh.qkv_width());
    let ctx = context(k_cache.len(), sequences, width);
    let k0 = sh.heads * sh.head_dim;
    for n in 0..sequences {
        for t in 0..sh.seq {
            let source = ((n % sh.batch) * sh.seq + t) * row + k0;
            let at = (n * ctx + t) * width;
            k_cache[at..at + width].copy_from_slice(&qkv[source..source + width]);
            v_cache[at..at + width].copy_from_slice(&qkv[source + width..source + 2 * width]);
        }
    }
}

/// Writes each sequence's new token's k and v (from its `qkv` row; `sh.batch` sequences) into row `pos`
/// of its caches; nothing when `pos >= ctx`.
pub fn append(
    qkv: &[f32],
    sh: &AttentionShape,
    pos: usize,
    k_cache: &mut [f32],
    v_cache: &mut [f32],
) {
    let (width, row) = (sh.kv_heads * sh.head_dim, sh.qkv_width());
    let ctx = context(k_cache.len(), sh.batch, width);
    if pos >= ctx {
        return;
    }
    let k0 = sh.heads * sh.head_dim;
    for n in 0..sh.batch {
        let (source, at) = (n * row + k0, (n * ctx + pos) * width);
        k_cache[at..at + width].copy_from_slice(&qkv[source..source + width]);
        v_cache[at..at + width].copy_from_slice(&qkv[source + width..source + 2 * width]);
    }
}

/// `out[n, h] = softmax(scale·q[n, h]·k_cache[n, 0..=pos]ᵀ)·v_cache[n, 0..=pos]` with kv head
/// `h / (H / Hkv)`, for the `sh.batch` sequences; a position past the cache attends over all of it.
pub fn attention(
    qkv: &[f32],
    sh: &AttentionShape,
    pos: usize,
    k_cache: &[f32],
    v_cache: &[f32],
) -> Vec<f32> {
    let (d, width, row) = (sh.head_dim, sh.kv_heads * sh.head_dim, sh.qkv_width());
    let ctx = context(k_cache.len(), sh.batch, width);
    let pos = pos.min(ctx - 1);
    let scale = 1.0 / (d as f64).sqrt();
    let mut out = vec![0.0; sh.batch * sh.heads * d];
    for n in 0..sh.batch {
        let (keys, values) = (&k_cache[n * ctx * width..], &v_cache[n * ctx * width..]);
        for h in 0..sh.heads {
            let g = h / (sh.heads / sh.kv_heads);
            let q = &qkv[n * row + h * d..][..d];
            let scores: Vec<f64> = (0..=pos)
                .map(|j| {
                    let k = &keys[j * width + g * d..][..d];
                    scale
                        * q.iter()
                            .zip(k)
                            .map(|(&a, &b)| a as f64 * b as f64)
                            .sum::<f64>()
                })
                .collect();
            let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let total: f64 = weights.iter().sum();
            for c in 0..d {
                let sum: f64 = (0..=pos)
                    .map(|j| weights[j] * values[j * width + g * d + c] as f64)
                    .sum();
                out[(n * sh.heads + h) * d + c] = (sum / total) as f32;
            }
        }
    }
    out
}
