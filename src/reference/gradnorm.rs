//! `gradnorm` on the CPU: the global L2 norm of gradients and the clip scale.

/// `sqrt(Σ g²)`, accumulated in f64.
pub fn norm(grads: &[f32]) -> f64 {
    grads
        .iter()
        .map(|&g| g as f64 * g as f64)
        .sum::<f64>()
        .sqrt()
}

/// `min(1, max_norm / norm)`; 1 when clipping is off.
pub fn scale(norm: f64, max_norm: Option<f32>) -> f64 {
    match max_norm {
        Some(m) if norm > m as f64 => m as f64 / norm,
        _ => 1.0,
    }
}
