//! A weight matrix as the products read it ([`crate::kernels::matvec`], [`crate::kernels::matmul`]'s
//! forward and input-gradient products): f32, or 16 bits packed two per `u32` word
//! ([`crate::dtype`]), its rows in order or, for [`crate::kernels::matvec::transposed`] on CPU
//! adapters, interleaved ([`Layout`]).

use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::gpu::Tensor;
use crate::kernels::check::{expect_len, matrix_dims};

/// A weight matrix as stored: `rows × cols` values of `dtype` in `tensor`'s `u32` words as
/// [`crate::dtype`] packs them (an f32 matrix is its own 2-D tensor), in the order of `layout`.
#[derive(Clone, Copy, Debug)]
pub struct Weights<'a> {
    pub tensor: &'a Tensor,
    pub dtype: Dtype,
    pub rows: usize,
    pub cols: usize,
    pub layout: Layout,
}

/// The order of a matrix's words. Both take the same words; only [`crate::kernels::matvec::transposed`]
/// reads [`Layout::Interleaved`] ([`crate::kernels::copy::transpose`] writes it), the other kernels
/// refuse it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Row-major.
    Rows,
    /// Rows in groups of 8 (the last one of what remains), each group a vec4 of words of every
    /// row at a time: vec4 `i` of the group's row `r` is vec4 `R·first + n·i + r` of the matrix,
    /// `first` the group's first row, `n` its rows, `R` the vec4s of a row (rows whole vec4s). An
    /// invocation of the transposed product owns a group, which it then reads as one stream instead of
    /// 8 side by side: on lavapipe 1.1-1.35x the GB/s at GPT-2's shapes.
    Interleaved,
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
            layout: Layout::Rows,
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
            layout: Layout::Rows,
        })
    }

    /// The same words read in `layout`: [`Layout::Interleaved`] needs rows of whole vec4s.
    pub fn laid_out(self, layout: Layout) -> Result<Self> {
        if layout == Layout::Interleaved && !self.rows_in_vec4s() {
            return Err(Error::shape(
                "interleaved weights",
                format!(
                    "rows of whole vec4s of words ({} values of {}), got {} values",
                    4 * self.dtype.per_word(),
                    self.dtype.name(),
                    self.cols
                ),
            ));
        }
        Ok(Weights { layout, ..self })
    }

    /// `Ok` for row-major weights; the error names `what` (a kernel that reads only those).
    pub(crate) fn expect_rows(&self, what: &str) -> Result<()> {
        match self.layout {
            Layout::Rows => Ok(()),
            Layout::Interleaved => Err(Error::Invalid(format!(
                "{what} reads weights row by row, not interleaved"
            ))),
        }
    }

    /// Whether every row starts on a vec4 of words (the `_vec4` entry points' view).
    pub(crate) fn rows_in_vec4s(&self) -> bool {
        self.cols.is_multiple_of(4 * self.dtype.per_word())
    }
}
