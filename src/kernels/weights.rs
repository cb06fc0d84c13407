//! A weight matrix as the products read it ([`crate::kernels::matvec`], [`crate::kernels::matmul`]'s
//! forward and input-gradient products): f32, or 16 bits packed two per `u32` word
//! ([`crate::dtype`]).

use crate::dtype::Dtype;
use crate::error::Result;
use crate::gpu::Tensor;
use crate::kernels::check::{expect_len, matrix_dims};

/// A weight matrix as stored: `rows × cols` values of `dtype`, row-major, in `tensor`'s `u32` words as
/// [`crate::dtype`] packs them (an f32 matrix is its own 2-D tensor).
#[derive(Clone, Copy, Debug)]
pub struct Weights<'a> {
    pub tensor: &'a Tensor,
    pub dtype: Dtype,
    pub rows: usize,
    pub cols: usize,
}

impl<'a> Weights<'a> {
    /// An f32 matrix: the 2-D tensor `[rows, cols]`.
    pub fn f32(tensor: &'a Tensor) -> Result<Self> {
        let (rows, cols) = matrix_dims("weights", tensor)?;
        Ok(Weights {
            tensor,
            dtype: Dtype::F32,
            rows,
            cols,
        })
    }

    /// `rows × cols` values of `dtype` packed in `tensor`, which holds exactly their words.
    pub fn packed(tensor: &'a Tensor, dtype: Dtype, rows: usize, cols: usize) -> Result<Self> {
        expect_len(
            &format!("{} weights [{rows}, {cols}]", dtype.name()),
            tensor,
            dtype.words(rows * cols),
        )?;
        Ok(Weights {
            tensor,
            dtype,
            rows,
            cols,
        })
    }

    /// Whether every row starts on a vec4 of words (the `_vec4` entry points' view).
    pub(crate) fn rows_in_vec4s(&self) -> bool {
        self.cols.is_multiple_of(4 * self.dtype.per_word())
    }
}
