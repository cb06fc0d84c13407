//! Copy: `x: [any] -> y: [same count]`, `y = x` (writes `y`).
//!
//! [`columns`]: `x: [rows, X], y: [rows, Y]`, `y[:, y_first .. y_first + w] = x[:, x_first .. x_first + w]`
//! (writes that block of `y`): the pieces of a vocabulary split over several head products placed into
//! the whole logits, and the logits' gradient taken apart again.
//!
//! [`transpose`]: a weight matrix `w: [rows, cols]` of any [`crate::dtype::Dtype`] ([`Weights`]) into
//! `t: [cols, rows]` of the same dtype, in either [`Layout`] (writes `t`): a decode step's
//! matrix-vector products on CPU adapters read their weights transposed and interleaved
//! ([`crate::kernels::matvec::transposed`]).
//!
//! The bench's `copy` row is the adapter's achievable bandwidth, the yardstick for every memory-bound
//! kernel; [`crate::kernels::dropout`] also uses it for `p = 0`.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::{Binding, Dispatch, Gpu, Kernel, Shader, Tensor};
use crate::kernels::check::{expect_len, to_u32};
use crate::kernels::grid::{count, elementwise, elementwise_shape};
use crate::kernels::weights::{Layout, Weights};

pub const SHADER: Shader = crate::shader!("copy", ["elementwise", "dtype"]);

/// `y = x`; writes `y`.
pub fn forward(gpu: &Gpu, x: &Tensor, y: &Tensor) -> Result<Dispatch> {
    expect_len("copy output", y, x.len())?;
    let bindings = [Binding::Read(x), Binding::ReadWrite(y)];
    elementwise(
        gpu,
        SHADER,
        ["copy_forward", "copy_forward_vec4"],
        &bindings,
        x.len(),
        count,
    )
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct Columns {
    rows: u32,
    width: u32,
    x_cols: u32,
    x_first: u32,
    y_cols: u32,
    y_first: u32,
    _pad: [u32; 2],
}

/// `y[:, y_first .. y_first + width] = x[:, x_first .. x_first + width]` for `x: [.., X]`,
/// `y: [.., Y]` with the same rows; writes that block of `y` (its other columns keep their values).
pub fn columns(
    gpu: &Gpu,
    x: &Tensor,
    x_first: usize,
    y: &Tensor,
    y_first: usize,
    width: usize,
) -> Result<Dispatch> {
    // Any leading shape: the last dimension is the columns.
    let (x_cols, y_cols) = (last(x), last(y));
    let (rows, y_rows) = (x.len() / x_cols.max(1), y.len() / y_cols.max(1));
    if y_rows != rows || x_first + width > x_cols || y_first + width > y_cols {
        return Err(Error::shape(
            "copy columns",
            format!(
                "{width} columns from {x_first} of {} to {y_first} of {}",
                x.describe(),
                y.describe()
            ),
        ));
    }
    let params = Columns {
        rows: to_u32("copy columns rows", rows)?,
        width: to_u32("copy columns width", width)?,
        x_cols: x_cols as u32,
        x_first: x_first as u32,
        y_cols: to_u32("copy columns y", y_cols)?,
        y_first: y_first as u32,
        _pad: [0; 2],
    };
    to_u32("copy columns block", rows * width.max(x_cols).max(y_cols))?;
    let (wg, workgroups) = elementwise_shape(gpu, rows * width);
    let kernel = Kernel {
        shader: SHADER,
        entry: "copy_columns",
        constants: vec![("wg", wg as f64)],
    };
    let bindings = [Binding::Read(x), Binding::ReadWrite(y)];
    let workgroups = [workgroups, 1, 1];
    Dispatch::new(gpu, &kernel, &bindings, &params, workgroups)
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct Transpose {
    rows: u32,
    cols: u32,
    words: u32,
    _pad: u32,
}

/// `t[c, r] = w[r, c]`: `t` holds `w`'s transpose `[cols, rows]` in `w`'s dtype, packed alike (16-bit
/// values moved, not rounded), in `t`'s layout; writes `t`.
pub fn transpose(gpu: &Gpu, w: Weights, t: Weights) -> Result<Dispatch> {
    w.expect_rows("copy transpose input")?;
    if (t.dtype, t.rows, t.cols) != (w.dtype, w.cols, w.rows) {
        return Err(Error::shape(
            "copy transpose output",
            format!(
                "[{}, {}] of {}, got [{}, {}] of {}",
                w.cols,
                w.rows,
                w.dtype.name(),
                t.rows,
                t.cols,
                t.dtype.name()
            ),
        ));
    }
    let words = w.dtype.words(w.rows * w.cols);
    expect_len("copy transpose output", t.tensor, words)?;
    let what = "copy transpose";
    let params = Transpose {
        rows: to_u32(what, w.rows)?,
        cols: to_u32(what, w.cols)?,
        words: to_u32(what, words)?,
        _pad: 0,
    };
    // Values j of t up to 2·words.
    to_u32(what, 2 * words)?;
    // Items: a word of a row-major t, a vec4 of words of an interleaved one.
    let interleaved = t.layout == Layout::Interleaved;
    let items = if interleaved { words / 4 } else { words };
    let (wg, workgroups) = elementwise_shape(gpu, items);
    let kernel = Kernel {
        shader: SHADER,
        entry: "copy_transpose",
        constants: vec![
            ("wg", wg as f64),
            ("dtype", w.dtype.code() as f64),
            ("interleaved", interleaved as u32 as f64),
        ],
    };
    let bindings = [Binding::Read(w.tensor), Binding::ReadWrite(t.tensor)];
    Dispatch::new(gpu, &kernel, &bindings, &params, [workgroups, 1, 1])
}

fn last(t: &Tensor) -> usize {
    t.shape.last().copied().unwrap_or(1)
}
