//! `cast` on the CPU: 16-bit storage of f32 values, as [`crate::dtype`] specifies it.

use crate::dtype::Dtype;

/// The words of `x` in `dtype`.
pub fn pack(x: &[f32], dtype: Dtype) -> Vec<u32> {
    dtype.pack(x)
}

/// The words of `x` in `dtype`, and `x` rounded in place to the values they hold.
pub fn pack_rounding(x: &mut [f32], dtype: Dtype) -> Vec<u32> {
    let words = dtype.pack(x);
    x.copy_from_slice(&dtype.unpack(&words, x.len()));
    words
}

/// The `len` values the words of `x` hold in `dtype`.
pub fn unpack(x: &[u32], len: usize, dtype: Dtype) -> Vec<f32> {
    dtype.unpack(x, len)
}
