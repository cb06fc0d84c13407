//! Shape checks shared by the launchers, so a mismatch is an error naming the tensor, never a GPU fault.

use crate::error::{Error, Result};
use crate::gpu::Tensor;

/// `[rows, cols]` of a 2-D tensor.
pub(crate) fn matrix_dims(what: &str, t: &Tensor) -> Result<(usize, usize)> {
    match t.shape[..] {
        [r, c] => Ok((r, c)),
        _ => Err(Error::shape(
            what,
            format!("expected a matrix, got shape {}", t.describe()),
        )),
    }
}

/// Rows of an activation whose last dimension must be `features` (all leading dimensions are rows).
pub(crate) fn rows(what: &str, t: &Tensor, features: usize) -> Result<usize> {
    match t.shape.last() {
        Some(&last) if last == features => Ok(t.len() / features.max(1)),
        _ => Err(Error::shape(
            what,
            format!(
                "expected last dimension {features}, got shape {}",
                t.describe()
            ),
        )),
    }
}

/// `t` holds `m` rows of `n` (any leading shape).
pub(crate) fn expect_shape(what: &str, t: &Tensor, m: usize, n: usize) -> Result<()> {
    if t.shape.last() != Some(&n) || t.len() != m * n {
        return Err(Error::shape(
            what,
            format!("expected {m} rows of {n}, got shape {}", t.describe()),
        ));
    }
    Ok(())
}

/// `t` holds exactly `n` elements.
pub(crate) fn expect_len(what: &str, t: &Tensor, n: usize) -> Result<()> {
    if t.len() != n {
        return Err(Error::shape(
            what,
            format!("expected {n} elements, got shape {}", t.describe()),
        ));
    }
    Ok(())
}

/// A size as the `u32` the shaders index with.
pub(crate) fn to_u32(what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::shape(what, format!("size {v} exceeds u32")))
}

/// Splits `len` elements into contiguous chunks, one per workgroup: at most `max_groups` workgroups
/// (the dispatch limit, or a scratch size), each chunk a multiple of `step` elements. Returns
/// `(workgroups, chunk)`; the last chunk may be short, and `len = 0` gives no workgroups.
pub(crate) fn chunks(len: usize, step: usize, max_groups: usize) -> (usize, usize) {
    let steps = len.div_ceil(step);
    let chunk = steps.div_ceil(max_groups).max(1) * step;
    (len.div_ceil(chunk), chunk)
}
