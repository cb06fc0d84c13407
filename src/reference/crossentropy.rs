//! `crossentropy` on the CPU: softmax cross-entropy of `logits [rows, vocab]` against `targets [rows]`.

/// Per-row losses `logsumexp(x) - x[target]`, with the max subtracted, accumulated in f64.
pub fn forward(logits: &[f32], targets: &[u32], vocab: usize) -> Vec<f32> {
    logits
        .chunks(vocab)
        .zip(targets)
        .map(|(x, &t)| (logsumexp(x) - x[t as usize] as f64) as f32)
        .collect()
}

/// The mean of the per-row losses.
pub fn mean(losses: &[f32]) -> f32 {
    (losses.iter().map(|&l| l as f64).sum::<f64>() / losses.len() as f64) as f32
}

/// Gradient of the mean loss over `mean_over` rows (these rows, or a batch they are a chunk of):
/// `(softmax(x) - onehot(target)) / mean_over`.
pub fn backward(logits: &[f32], targets: &[u32], vocab: usize, mean_over: usize) -> Vec<f32> {
    let rows = mean_over as f64;
    let mut dlogits = Vec::with_capacity(logits.len());
    for (x, &t) in logits.chunks(vocab).zip(targets) {
        let lse = logsumexp(x);
        for (j, &xj) in x.iter().enumerate() {
            let onehot = if j == t as usize { 1.0 } else { 0.0 };
            dlogits.push((((xj as f64 - lse).exp() - onehot) / rows) as f32);
        }
    }
    dlogits
}

fn logsumexp(x: &[f32]) -> f64 {
    let m = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    m + x.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln()
}
