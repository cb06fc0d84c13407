//! `kvcache` on the CPU, in f64. Layouts as in [`crate::kernels::kvcache`]: `qkv: [1, (H + 2·Hkv)·D]`,
//! `k_cache, v_cache: [ctx, Hkv·D]`, `out: [1, H·D]`.

use crate::contract::AttentionShape;

/// Writes the new token's k and v (from `qkv`) into row `pos` of the caches; nothing when `pos >= ctx`.
pub fn append(
    qkv: &[f32],
    sh: &AttentionShape,
    pos: usize,
    k_cache: &mut [f32],
    v_cache: &mut [f32],
) {
    let width = sh.kv_heads * sh.head_dim;
    if (pos + 1) * width > k_cache.len() {
        return;
    }
    let k0 = sh.heads * sh.head_dim;
    for i in 0..width {
        k_cache[pos * width + i] = qkv[k0 + i];
        v_cache[pos * width + i] = qkv[k0 + width + i];
    }
}

/// `out[h] = softmax(scale·q_h·k_cache[0..=pos]ᵀ)·v_cache[0..=pos]` with kv head `h / (H / Hkv)`; a
/// position past the cache attends over all of it.
pub fn attention(
    qkv: &[f32],
    sh: &AttentionShape,
    pos: usize,
    k_cache: &[f32],
    v_cache: &[f32],
) -> Vec<f32> {
    let (d, width) = (sh.head_dim, sh.kv_heads * sh.head_dim);
    let pos = pos.min(k_cache.len() / width - 1);
    let scale = 1.0 / (d as f64).sqrt();
    let mut out = vec![0.0; sh.heads * d];
    for h in 0..sh.heads {
        let g = h / (sh.heads / sh.kv_heads);
        let scores: Vec<f64> = (0..=pos)
            .map(|j| {
                let dot: f64 = (0..d)
                    .map(|c| qkv[h * d + c] as f64 * k_cache[j * width + g * d + c] as f64)
                    .sum();
                scale * dot
            })
            .collect();
        let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
        let total: f64 = weights.iter().sum();
        for c in 0..d {
            let sum: f64 = (0..=pos)
                .map(|j| weights[j] * v_cache[j * width + g * d + c] as f64)
                .sum();
            out[h * d + c] = (sum / total) as f32;
        }
    }
    out
}
