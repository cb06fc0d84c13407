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

/// The kernel on a piece of `wte` (the rows of token ids `first .. first + piece.len() / c`): at
/// `first = 0` it writes every row of `out`, `wpe[start + t]` plus the token's row when the token is in
/// the piece; a later piece adds its tokens' rows into `out`.
#[allow(clippy::too_many_arguments)]
pub fn forward_piece(
    tokens: &[u32],
    piece: &[f32],
    first: usize,
    wpe: &[f32],
    start: usize,
    t: usize,
    c: usize,
    out: &mut [f32],
) {
    let rows = piece.len() / c;
    for (row, &token) in tokens.iter().enumerate() {
        let local = (token as usize).checked_sub(first).filter(|&l| l < rows);
        let out = &mut out[row * c..(row + 1) * c];
        if first == 0 {
            let pos = start + row % t;
            out.copy_from_slice(&wpe[pos * c..(pos + 1) * c]);
        }
        if let Some(l) = local {
            for (o, w) in out.iter_mut().zip(&piece[l * c..(l + 1) * c]) {
                *o += w;
            }
        }
    }
}

/// The increments the kernel adds for a piece of `rows` token ids from `first`: `(dpiece [rows, C],
/// dwpe [ctx, C])`, `dwpe` all zeros except for the piece at `first = 0`.
pub fn backward_piece(
    tokens: &[u32],
    dx: &[f32],
    (first, rows, ctx): (usize, usize, usize),
    t: usize,
    c: usize,
) -> (Vec<f32>, Vec<f32>) {
    let vocab = tokens.iter().map(|&v| v as usize + 1).max().unwrap_or(0);
    let (dwte, dwpe) = backward(tokens, dx, (vocab.max(first + rows), ctx), t, c);
    let dwpe = if first == 0 { dwpe } else { vec![0.0; ctx * c] };
    (dwte[first * c..(first + rows) * c].to_vec(), dwpe)
}
