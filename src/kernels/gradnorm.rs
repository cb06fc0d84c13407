//! The global L2 norm of the gradients and the clip scale AdamW applies, computed on the GPU in two
//! fixed-order reductions so a step never reads anything back.
//!
//! [`norm`]: `parts: [(grads, offset .. offset + len)] -> out: [OUT_LEN]` (writes `out`):
//! - `out[NORM] = sqrt(Σ g²)` over every part,
//! - `out[SCALE] = min(1, max_norm / norm)`, or 1 when clipping is off (`max_norm = None`),
//! - `out[NORM_SUM] += norm`: adds (reads and writes `out[NORM_SUM]`),
//! - `out[4..]`: the per-workgroup partial sums (scratch).
//!
//! The parts are the chunks of the gradient arena (each one buffer, at most one storage binding); a
//! sub-range takes the norm of part of a chunk. Each part's partial-sum dispatch writes its own slots of
//! the scratch, and one merge sums them all. [`crate::kernels::adamw`] reads `out[SCALE]` directly.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::{Binding, Dispatch, Gpu, Kernel, Shader, Tensor};
use crate::kernels::check::{chunks, expect_len, to_u32};

pub const SHADER: Shader = crate::shader!("gradnorm");

/// Index of the norm in the output tensor.
pub const NORM: usize = 0;
/// Index of the clip scale in the output tensor.
pub const SCALE: usize = 1;
/// Index of the running sum of every norm written to this output tensor: a non-finite norm at any step
/// leaves it non-finite, so a trainer that reads it now and then learns of a bad step it did not read.
pub const NORM_SUM: usize = 2;
/// The output tensor's header (norm, scale, sum, one unused slot) before the partial sums.
pub const HEAD_LEN: usize = 4;
/// Workgroups of the first stage at most: the scratch the output tensor holds after its 4 header floats.
pub const MAX_PARTIALS: usize = 1024;
/// Length of the output tensor.
pub const OUT_LEN: usize = HEAD_LEN + MAX_PARTIALS;

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct Params {
    offset: u32,
    len: u32,
    chunk: u32,
    groups: u32,
    max_norm: f32,
    /// The first scratch slot this dispatch's partial sums go to.
    first: u32,
    _pad: [u32; 2],
}

/// Invocations per workgroup (a power of two, at most the shader's `MAX_WG`).
const WG: usize = 256;

/// The dispatches (partial sums per part, then the final merge) writing the norm of all `parts`
/// (`grads[range]` each) and the clip scale for `max_norm` into `out`; writes `out`. Record them in
/// order, after the backward pass.
pub fn norm(
    gpu: &Gpu,
    parts: &[(&Tensor, std::ops::Range<usize>)],
    max_norm: Option<f32>,
    out: &Tensor,
) -> Result<Vec<Dispatch>> {
    expect_len("gradnorm output", out, OUT_LEN)?;
    let Some(&(first_grads, _)) = parts.first() else {
        return Err(Error::Invalid("gradnorm has no gradients to sum".into()));
    };
    if parts.len() > MAX_PARTIALS {
        return Err(Error::Invalid(format!(
            "gradnorm takes at most {MAX_PARTIALS} parts, got {}",
            parts.len()
        )));
    }
    let max_norm = match max_norm {
        None => 0.0,
        Some(m) if m > 0.0 && m.is_finite() => m,
        Some(m) => {
            return Err(Error::Invalid(format!(
                "gradient clipping max_norm must be positive and finite, got {m}"
            )))
        }
    };
    // Each part gets an equal share of the scratch slots.
    let share = MAX_PARTIALS / parts.len();
    let mut dispatches = Vec::with_capacity(parts.len() + 1);
    let mut first = 0;
    for (grads, range) in parts {
        let (dispatch, groups) = partials(gpu, grads, range.clone(), share, first, max_norm, out)?;
        dispatches.push(dispatch);
        first += groups;
    }
    let params = Params {
        offset: 0,
        len: 0,
        chunk: 0,
        groups: first as u32,
        max_norm,
        first: 0,
        _pad: [0; 2],
    };
    // The merge reads only `out`; the first part fills the gradient slot.
    dispatches.push(stage(gpu, "gradnorm_finish", first_grads, out, &params, 1)?);
    Ok(dispatches)
}

/// The partial sums of `grads[range]` into at most `share` scratch slots from `first` on; returns the
/// dispatch and the slots it writes.
fn partials(
    gpu: &Gpu,
    grads: &Tensor,
    range: std::ops::Range<usize>,
    share: usize,
    first: usize,
    max_norm: f32,
    out: &Tensor,
) -> Result<(Dispatch, usize)> {
    if range.start > range.end || range.end > grads.len() {
        return Err(Error::shape(
            "gradnorm range",
            format!(
                "{range:?} is not within a gradient tensor of shape {}",
                grads.describe()
            ),
        ));
    }
    // vec4 loads when the range allows them (4x fewer loads: 3x faster on lavapipe); the uniform then
    // counts vec4s. Chunks are whole multiples of 4·WG elements (four loads, or one vec4, in flight per
    // invocation), and at least 8 of them, so the tree merge of a workgroup (costly where barriers
    // are, as on CPUs) amortizes.
    let (entry, unit) = if range.start.is_multiple_of(4) && range.len().is_multiple_of(4) {
        ("gradnorm_partials_vec4", 4)
    } else {
        ("gradnorm_partials", 1)
    };
    let (groups, chunk) = chunks(range.len() / unit, 32 * WG / unit, share);
    let params = Params {
        offset: to_u32("gradnorm offset", range.start / unit)?,
        len: to_u32("gradnorm length", range.len() / unit)?,
        chunk: to_u32("gradnorm chunk", chunk)?,
        groups: groups as u32,
        max_norm,
        first: first as u32,
        _pad: [0; 2],
    };
    let dispatch = stage(gpu, entry, grads, out, &params, groups as u32)?;
    Ok((dispatch, groups))
}

fn stage(
    gpu: &Gpu,
    entry: &'static str,
    grads: &Tensor,
    out: &Tensor,
    params: &Params,
    workgroups: u32,
) -> Result<Dispatch> {
    let kernel = Kernel {
        shader: SHADER,
        entry,
        constants: vec![("wg", WG as f64)],
    };
    let bindings = [Binding::Read(grads), Binding::ReadWrite(out)];
    Dispatch::new(gpu, &kernel, &bindings, params, [workgroups, 1, 1])
}
