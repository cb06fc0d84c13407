//! `matvec` on the CPU: products of a few rows with weights stored as [`Dtype`] packs them, read
//! through [`Dtype::unpack`] (the same values the kernels see), accumulated in f64.
//! `x: [m, k]`, `b: [n]`, `y: [m, n]`, all f32, row-major.

use crate::dtype::Dtype;

/// `y = x·w + b` for `w: [k, n]` packed in `w_words`.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    x: &[f32],
    w_words: &[u32],
    dtype: Dtype,
    b: Option<&[f32]>,
    m: usize,
    k: usize,
    n: usize,
) -> Vec<f32> {
    let w = dtype.unpack(w_words, k * n);
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

/// `x·eᵀ: [m, v]` for `e: [v, c]` packed in `e_words`.
pub fn transposed(
    x: &[f32],
    e_words: &[u32],
    dtype: Dtype,
    m: usize,
    c: usize,
    v: usize,
) -> Vec<f32> {
    let e = dtype.unpack(e_words, v * c);
    let mut y = vec![0.0; m * v];
    for i in 0..m {
        for j in 0..v {
            let sum: f64 = (0..c)
                .map(|p| x[i * c + p] as f64 * e[j * c + p] as f64)
                .sum();
            y[i * v + j] = sum as f32;
        }
    }
    y
}
