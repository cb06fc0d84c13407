//! PyTorch's AdamW (bias-corrected moments, decoupled weight decay applied before the update) over the
//! parameter arena in one dispatch.
//!
//! [`step`]: `params, grads, m, v: [N]` (one arena each, same layout) -> `params, m, v` updated in place
//! (writes them; reads `grads`), for every element of the [`Segments`]. Weight decay applies to the
//! segments marked `decay` (tensors with two or more dimensions, as nanoGPT does).
//!
//! What changes per step (learning rate, step number, bias corrections) is in a small storage tensor,
//! `hyper: [HYPER_LEN]` ([`crate::contract::adamw_hyper`]'s values), that the trainer writes once per
//! step, so the dispatch is built once; the shader reads its entries 4..=6. With clipping, gradients are
//! scaled by [`gradnorm`](crate::kernels::gradnorm)'s `out[SCALE]`, read on the GPU.

use bytemuck::{Pod, Zeroable};

use crate::contract::{AdamWConfig, Segment, HYPER_LEN};
use crate::error::{Error, Result};
use crate::gpu::{Binding, Dispatch, Gpu, Kernel, Shader, Tensor};
use crate::kernels::check::{chunks, expect_len, to_u32};
use crate::kernels::gradnorm;

pub const SHADER: Shader = crate::shader!("adamw");

/// The segments AdamW updates, as the GPU table the shader reads: sorted, disjoint, adjacent segments of
/// the same decay merged into one run. Built once with the plan.
pub struct Segments {
    table: Tensor,
    runs: usize,
    start: usize,
    end: usize,
    /// Every run starts and ends on a multiple of 4: the step runs over vec4s.
    aligned: bool,
}

impl Segments {
    /// Validates `segments` (any order; they must not overlap) and uploads the run table.
    pub fn new(gpu: &Gpu, segments: &[Segment]) -> Result<Self> {
        let mut sorted: Vec<Segment> = segments.iter().filter(|s| s.len > 0).copied().collect();
        sorted.sort_by_key(|s| s.offset);
        let mut runs: Vec<[usize; 3]> = Vec::new();
        for s in sorted {
            let end = s.offset + s.len;
            match runs.last_mut() {
                Some(last) if s.offset < last[1] => {
                    return Err(Error::Invalid(format!(
                        "AdamW segment at {}..{end} overlaps the one ending at {}",
                        s.offset, last[1]
                    )))
                }
                Some(last) if s.offset == last[1] && (last[2] == 1) == s.decay => last[1] = end,
                _ => runs.push([s.offset, end, s.decay as usize]),
            }
        }
        let (Some(first), Some(last)) = (runs.first(), runs.last()) else {
            return Err(Error::Invalid("AdamW has no parameters to update".into()));
        };
        let (start, end) = (first[0], last[1]);
        let mut table = Vec::with_capacity(4 * runs.len());
        for r in &runs {
            table.extend([r[0], r[1], r[2], 0].map(|x| x as u32));
        }
        to_u32("AdamW arena", end)?;
        Ok(Segments {
            table: gpu.upload("adamw segments", &[runs.len(), 4], &table)?,
            runs: runs.len(),
            start,
            end,
            aligned: runs
                .iter()
                .all(|r| r[0].is_multiple_of(4) && r[1].is_multiple_of(4)),
        })
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct Params {
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    eps: f32,
    runs: u32,
    start: u32,
    end: u32,
    chunk: u32,
    _pad: [u32; 3],
}

/// Invocations per workgroup.
const WG: usize = 256;
/// Workgroups at most: enough to fill any GPU, and well under the 65535 dispatch limit; larger arenas give
/// each invocation more elements, which amortizes its setup (the run search, the per-step loads).
const MAX_GROUPS: usize = 4096;

/// The launch geometry for a span of `len` elements: `(workgroups, elements per workgroup)`, within
/// the dispatch limit for any arena that fits in u32 indices.
pub fn grid(len: usize) -> (usize, usize) {
    // At least 8 elements per invocation.
    chunks(len, 8 * WG, MAX_GROUPS)
}

/// One AdamW step over `segments` of the arenas; writes `params`, `m`, `v` (reads `grads`, `hyper` and,
/// when given, the clip scale `clip[gradnorm::SCALE]`, a [`gradnorm`] output tensor).
#[allow(clippy::too_many_arguments)]
pub fn step(
    gpu: &Gpu,
    config: &AdamWConfig,
    params: &Tensor,
    grads: &Tensor,
    m: &Tensor,
    v: &Tensor,
    segments: &Segments,
    hyper: &Tensor,
    clip: Option<&Tensor>,
) -> Result<Dispatch> {
    let n = params.len();
    expect_len("AdamW gradients", grads, n)?;
    expect_len("AdamW first moments", m, n)?;
    expect_len("AdamW second moments", v, n)?;
    expect_len("AdamW per-step values", hyper, HYPER_LEN)?;
    if let Some(clip) = clip {
        expect_len("AdamW clip scale", clip, gradnorm::OUT_LEN)?;
    }
    if segments.end > n {
        return Err(Error::shape(
            "AdamW segments",
            format!("they reach element {} of an arena of {n}", segments.end),
        ));
    }
    let (groups, chunk) = grid(segments.end - segments.start);
    to_u32("AdamW arena", segments.end + chunk)?;
    let uniform = Params {
        beta1: config.beta1 as f32,
        one_minus_beta1: (1.0 - config.beta1) as f32,
        beta2: config.beta2 as f32,
        one_minus_beta2: (1.0 - config.beta2) as f32,
        eps: config.eps as f32,
        runs: segments.runs as u32,
        start: segments.start as u32,
        end: segments.end as u32,
        chunk: chunk as u32,
        _pad: [0; 3],
    };
    let kernel = Kernel {
        shader: SHADER,
        // vec4 loads and stores: 3x faster on lavapipe, the usual wide accesses on GPUs.
        entry: if segments.aligned {
            "adamw_step_vec4"
        } else {
            "adamw_step"
        },
        constants: vec![
            ("wg", WG as f64),
            ("use_clip", clip.is_some() as u32 as f64),
        ],
    };
    Dispatch::new(
        gpu,
        &kernel,
        &[
            Binding::ReadWrite(params),
            Binding::Read(grads),
            Binding::ReadWrite(m),
            Binding::ReadWrite(v),
            Binding::Read(&segments.table),
            Binding::Read(hyper),
            // Unused without clipping; the per-step tensor fills the slot.
            Binding::Read(clip.unwrap_or(hyper)),
        ],
        &uniform,
        [groups as u32, 1, 1],
    )
}
