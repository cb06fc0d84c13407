//! `embedding` on the CPU: `tokens: [B, T]`, `wte: [V, C]`, `wpe: [ctx, C]`, `out, dx: [B, T, C]`.

/// `out[b, t] = wte[tokens[b, t]] + wpe[t]`, for a batch of sequences of length `t`.
pub fn forward(tokens: &[u32], wte: &[f32], wpe: &[f32], t: usize, c: usize) -> Vec<f32> {
    forward_at(tokens, wte, wpe, 0, t, c)
}

/// `out[b, t] = wte[tokens[b, t]] + wpe[start + t]`.
pub fn forward_at(
    tokens: &[u32],
    wte: &[f32],
    wpe: &[f32],
    start: usize,
    t: usize,
    c: usize,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(tokens.len() * c);
    for (row, &token) in tokens.iter().enumerate() {
        let token = token as usize;
        let pos = start + row % t;
        out.extend((0..c).map(|j| wte[token * c + j] + wpe[pos * c + j]));
    }
    out
}

/// The increments the kernel adds: `(dwte [vocab, C], dwpe [ctx, C])`.
pub fn backward(
    tokens: &[u32],
    dx: &[f32],
    (vocab, ctx): (usize, usize),
    t: usize,
    c: usize,
) -> (Vec<f32>, Vec<f32>) {
    let mut dwte = vec![0.0f64; vocab * c];
    let mut dwpe = vec![0.0f64; ctx * c];
    for (row, &token) in tokens.iter().enumerate() {
        let token = token as usize;
        let pos = row % t;
        for j in 0..c {
            dwte[token * c + j] += dx[row * c + j] as f64;
            dwpe[pos * c + j] += dx[row * c + j] as f64;
        }
    }
    let f32s = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect();
    (f32s(dwte), f32s(dwpe))
}
