//! Fused softmax + cross-entropy over the vocabulary, the loss of a language model.
//!
//! - [`forward_backward`]: `logits: [rows, V], targets: u32 [rows] -> losses: [rows], dlogits: [rows, V]`,
//!   `losses[r] = logsumexp(logits[r]) - logits[r, targets[r]]`,
//!   `dlogits = (softmax(logits) - onehot(targets)) / mean_over` (writes both), `mean_over` the rows of
//!   the whole batch (more than `rows` when the logits are taken in row chunks). One dispatch: each row
//!   is swept once for the online (max, sum) and once more, still in cache, for `dlogits`.
//! - [`forward`]: the same without `dlogits` (evaluation; writes `losses`).
//! - [`mean`]: `losses: [rows] -> mean: [1]`, `mean = Σ losses / rows` in a fixed order on the GPU (writes
//!   `mean`), so logging reads back one float.
//!
//! `logits` may have any leading shape (`[B, T, V]`): its last dimension is the vocabulary. Targets must be
//! below `V`; [`crate::contract::check_token_ids`] is the check to run on them before upload (the shader does not).

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::{Binding, Dispatch, Gpu, Kernel, Shader, Tensor};
use crate::kernels::check::{expect_len, expect_shape, rows, to_u32};

pub const SHADER: Shader = crate::shader!("crossentropy");

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct Params {
    rows: u32,
    vocab: u32,
    inv_rows: f32,
    _pad: u32,
}

/// How rows are spread over invocations; both give the same result within rounding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// One invocation per row, no barriers: small vocabularies, and CPUs.
    Row,
    /// One workgroup per row with a tree merge in workgroup memory: large vocabularies on GPUs.
    Workgroup,
}

impl Variant {
    pub const ALL: [Variant; 2] = [Variant::Row, Variant::Workgroup];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Row => "row",
            Variant::Workgroup => "workgroup",
        }
    }

    /// The variant the launchers use for this vocabulary on this adapter: a row per invocation when a
    /// row is too short to share, or when invocations are SIMD lanes of a CPU (lavapipe, llvmpipe).
    pub fn best(gpu: &Gpu, vocab: usize) -> Variant {
        if gpu.is_cpu() || vocab < 1024 {
            Variant::Row
        } else {
            Variant::Workgroup
        }
    }

    fn entry(self) -> &'static str {
        match self {
            Variant::Row => "crossentropy_row",
            Variant::Workgroup => "crossentropy_workgroup",
        }
    }
}

/// Invocations per workgroup (a power of two, at most the shader's `MAX_WG`).
const WG: u32 = 256;
/// Rows per dispatch dimension before the workgroup variant wraps rows into `y`.
const MAX_GROUPS: usize = 65535;

/// Per-row losses and `dlogits` of a mean over `mean_over` rows; writes `losses` and `dlogits`.
pub fn forward_backward(
    gpu: &Gpu,
    variant: Variant,
    logits: &Tensor,
    targets: &Tensor,
    losses: &Tensor,
    dlogits: &Tensor,
    mean_over: usize,
) -> Result<Dispatch> {
    let (r, v) = shapes(logits, targets, losses)?;
    expect_shape("crossentropy dlogits", dlogits, r, v)?;
    if mean_over < r {
        return Err(Error::shape(
            "crossentropy mean_over",
            format!("{mean_over} rows for a mean, fewer than the {r} rows of the logits"),
        ));
    }
    launch(
        gpu,
        variant,
        logits,
        targets,
        losses,
        Some((dlogits, mean_over)),
    )
}

/// Per-row losses only; writes `losses`.
pub fn forward(
    gpu: &Gpu,
    variant: Variant,
    logits: &Tensor,
    targets: &Tensor,
    losses: &Tensor,
) -> Result<Dispatch> {
    shapes(logits, targets, losses)?;
    launch(gpu, variant, logits, targets, losses, None)
}

/// `mean[0] = Σ losses / rows`; writes `mean` (one element).
pub fn mean(gpu: &Gpu, losses: &Tensor, mean: &Tensor) -> Result<Dispatch> {
    expect_len("crossentropy mean", mean, 1)?;
    let kernel = Kernel {
        shader: SHADER,
        entry: "crossentropy_mean",
        constants: vec![("wg", WG as f64)],
    };
    // The logits/targets slots are unused by this entry point: a spare tensor fills them (`losses` may
    // not, as WebGPU forbids binding a buffer writable and read-only, or writable twice, in a dispatch).
    // The mean goes where dlogits would.
    let spare = gpu.unused(0)?;
    Dispatch::new(
        gpu,
        &kernel,
        &[
            Binding::Read(&spare),
            Binding::Read(&spare),
            Binding::ReadWrite(losses),
            Binding::ReadWrite(mean),
        ],
        &params(losses.len(), 1)?,
        [1, 1, 1],
    )
}

/// Checks `logits [rows, V]`, `targets [rows]`, `losses [rows]` and returns `(rows, V)`.
fn shapes(logits: &Tensor, targets: &Tensor, losses: &Tensor) -> Result<(usize, usize)> {
    let v = *logits.shape.last().unwrap_or(&0);
    if v == 0 {
        return Err(Error::shape(
            "crossentropy logits",
            format!(
                "expected a vocabulary axis, got shape {}",
                logits.describe()
            ),
        ));
    }
    let r = rows("crossentropy logits", logits, v)?;
    expect_len("crossentropy targets", targets, r)?;
    expect_len("crossentropy losses", losses, r)?;
    Ok((r, v))
}

fn launch(
    gpu: &Gpu,
    variant: Variant,
    logits: &Tensor,
    targets: &Tensor,
    losses: &Tensor,
    dlogits: Option<(&Tensor, usize)>,
) -> Result<Dispatch> {
    let (r, v) = (losses.len(), *logits.shape.last().unwrap_or(&1));
    let mean_over = dlogits.map_or(r, |(_, n)| n);
    let dlogits = dlogits.map(|(d, _)| d);
    let workgroups = match variant {
        Variant::Row => [r.div_ceil(WG as usize), 1, 1],
        Variant::Workgroup => [r.min(MAX_GROUPS), r.div_ceil(MAX_GROUPS), 1],
    };
    let kernel = Kernel {
        shader: SHADER,
        entry: variant.entry(),
        constants: vec![
            ("wg", WG as f64),
            ("write_grad", dlogits.is_some() as u32 as f64),
        ],
    };
    // Unused when forward only: a spare tensor fills the slot (not `losses`: WebGPU forbids binding it
    // writable twice).
    let spare = gpu.unused(0)?;
    Dispatch::new(
        gpu,
        &kernel,
        &[
            Binding::Read(logits),
            Binding::Read(targets),
            Binding::ReadWrite(losses),
            Binding::ReadWrite(dlogits.unwrap_or(&spare)),
        ],
        &Params {
            inv_rows: 1.0 / mean_over.max(1) as f32,
            ..params(r, v)?
        },
        workgroups.map(|g| g as u32),
    )
}

fn params(rows: usize, vocab: usize) -> Result<Params> {
    Ok(Params {
        rows: to_u32("crossentropy rows", rows)?,
        vocab: to_u32("crossentropy vocabulary", vocab)?,
        inv_rows: 1.0 / rows.max(1) as f32,
        _pad: 0,
    })
}
