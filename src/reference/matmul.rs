//! `matmul` on the CPU: the products of a linear layer with weights stored `[in, out]`.
//! `x: [m, k]`, `w: [k, n]`, `b: [n]`, `dy: [m, n]`, all row-major. The fused products are the plain
//! ones followed by the `gelu` and `residual` twins, as the unfused graph computes them.

use crate::reference::{dropout, gelu, residual};

/// `y = x·w + b`.
pub fn forward(x: &[f32], w: &[f32], b: Option<&[f32]>, m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut y = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut sum = b.map_or(0.0, |b| b[j] as f64);
            for p in 0..k {
                sum += x[i * k + p] as f64 * w[p * n + j] as f64;
            }
            y[i * n + j] = sum as f32;
        }
    }
    y
}

/// `(pre, gelu(pre))` with `pre = x·w + b`.
pub fn forward_gelu(
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    m: usize,
    k: usize,
    n: usize,
) -> (Vec<f32>, Vec<f32>) {
    let pre = forward(x, w, b, m, k, n);
    let y = gelu::forward(&pre);
    (pre, y)
}

/// `y = r + dropout(x·w + b)`, dropout given as `(state, site, p)` (see [`dropout::forward`]).
#[allow(clippy::too_many_arguments)]
pub fn forward_residual(
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    dropout: Option<([u32; 3], u32, f32)>,
    r: &[f32],
    m: usize,
    k: usize,
    n: usize,
) -> Vec<f32> {
    let mut branch = forward(x, w, b, m, k, n);
    if let Some((state, site, p)) = dropout {
        branch = dropout::forward(&branch, state, site, p);
    }
    residual::forward(r, &branch)
}

/// `dpre = (dy·wᵀ)·gelu'(pre)`.
pub fn backward_input_gelu(
    dy: &[f32],
    w: &[f32],
    pre: &[f32],
    m: usize,
    k: usize,
    n: usize,
) -> Vec<f32> {
    gelu::backward(pre, &backward_input(dy, w, m, k, n))
}

/// `dx = dy·wᵀ`.
pub fn backward_input(dy: &[f32], w: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut dx = vec![0.0; m * k];
    for i in 0..m {
        for p in 0..k {
            let mut sum = 0.0f64;
            for j in 0..n {
                sum += dy[i * n + j] as f64 * w[p * n + j] as f64;
            }
            dx[i * k + p] = sum as f32;
        }
    }
    dx
}

/// `xᵀ·dy`, the increment the kernel adds into `dw`.
pub fn backward_weight(x: &[f32], dy: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut dw = vec![0.0; k * n];
    for p in 0..k {
        for j in 0..n {
            let mut sum = 0.0f64;
            for i in 0..m {
                sum += x[i * k + p] as f64 * dy[i * n + j] as f64;
            }
            dw[p * n + j] = sum as f32;
        }
    }
    dw
}

/// `colsum(dy)`, the increment the kernel adds into `db`.
pub fn backward_bias(dy: &[f32], m: usize, n: usize) -> Vec<f32> {
    (0..n)
        .map(|j| (0..m).map(|i| dy[i * n + j] as f64).sum::<f64>() as f32)
        .collect()
}
