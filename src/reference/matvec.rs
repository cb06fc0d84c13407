//! `matvec` on the CPU: products of a few rows with weights stored as [`Dtype`] packs them, read
//! through [`Dtype::unpack`] (the same values the kernels see), then matmul's products (f64 sums).
//! `x: [m, k]`, `b: [n]`, `y: [m, n]`, all f32, row-major.

use crate::dtype::Dtype;
use crate::reference::matmul;

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
    matmul::forward(x, &dtype.unpack(w_words, k * n), b, m, k, n)
}

/// `x·eᵀ + b: [m, v]` for `e: [v, c]` packed in `e_words` (matmul's input-gradient product, then the
/// bias).
#[allow(clippy::too_many_arguments)]
pub fn transposed(
    x: &[f32],
    e_words: &[u32],
    dtype: Dtype,
    b: Option<&[f32]>,
    m: usize,
    c: usize,
    v: usize,
) -> Vec<f32> {
    let mut y = matmul::backward_input(x, &dtype.unpack(e_words, v * c), m, v, c);
    if let Some(b) = b {
        for row in y.chunks_mut(v) {
            row.iter_mut().zip(b).for_each(|(y, b)| *y += b);
        }
    }
    y
}
