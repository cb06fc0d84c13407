//! Causal multi-head and grouped-query attention on the `c_attn` output, fused (flash-style: online
//! softmax, the T×T matrix never stored) and unfused (the baseline that stores it).
//!
//! The fused kernels come in two [`Variant`]s with the same results; the launchers take one, and
//! [`Variant::best`] picks it for an adapter.
//!
//! Shapes, with `W = (H + 2·Hkv)·D`: `qkv: [B, T, W]` holds per token q (H heads), k (Hkv heads), v (Hkv
//! heads); query head h uses kv head `h / (H / Hkv)`. `o: [B, T, H·D]`, `lse: [B, H, T]` (row
//! log-sum-exp of the scaled scores, saved for the backward), `delta: [B, H, T]`, `dqkv` as `qkv`.
//! `scale = 1/sqrt(D)`.
//!
//! - [`forward`]: `o = softmax(scale·q·kᵀ, causal)·v` with dropout on the probabilities; writes `o`, `lse`.
//! - [`backward_delta`]: `delta = rowsum(dO∘O)`; writes `delta`.
//! - [`backward_key_value`]: the dk and dv parts of `dqkv`; writes them.
//! - [`backward_query`]: the dq part of `dqkv`; writes it. After both, every element of `dqkv` is written.
//! - [`unfused_forward`], [`unfused_backward`]: the same results through `scores: [B, H, T, T]`.
//! - [`probabilities`]: `P: [B, H, T, T]` recomputed from `qkv` and the forward's `lse` (0 above the
//!   diagonal, before dropout), for looking at; writes `P`.
//!
//! AttentionDropout: element `((b·H + h)·T + t)·T + s` (mod 2³²) of site `dropout.site`, numbered in the
//! whole batch for a micro-batch, with seed, step and micro-batch read from `state: [seed, step, micro]`
//! (u32, the tensor [`crate::kernels::dropout`] reads too), which the trainer writes before each
//! submit; the dispatches never change. `p = 0`
//! compiles the mask out.

use bytemuck::{Pod, Zeroable};

use crate::contract::{
    dropout_scale, dropout_threshold, AttentionDropout, AttentionShape, RANDOM_STATE_LEN,
};
use crate::error::{Error, Result};
use crate::gpu::{Binding, Dispatch, Gpu, Kernel, Shader, Tensor};
use crate::kernels::check::{expect_len, expect_shape, to_u32};

pub const SHADER: Shader = crate::shader!("attention", ["random"]);
/// The fused kernels for CPU adapters, apart because naga validates a whole module and subgroup
/// operations need the device's SUBGROUP feature.
pub const CPU_SHADER: Shader =
    crate::shader!("attention_cpu", ["random", "attention"], subgroups = 8);

/// Largest head dimension (`4·MAX_D4` in the shader, sized so the accumulators fill 16 KiB).
pub const MAX_HEAD_DIM: usize = 128;
/// The head dimensions the fused kernels take: they read D as vec4s, two at a time in dk/dv, and keep
/// at most [`MAX_HEAD_DIM`] accumulators.
pub fn check_head_dim(d: usize) -> Result<()> {
    if d == 0 || !d.is_multiple_of(8) || d > MAX_HEAD_DIM {
        return Err(Error::Config(format!(
            "head dimension {d} (n_embd / n_head) must be a positive multiple of 8 up to \
             {MAX_HEAD_DIM} for the attention kernels"
        )));
    }
    Ok(())
}

/// Invocations per workgroup: query rows (`ROWS` in the shader), key rows (`KEYS`), and elements or vec4
/// columns (the unfused kernels' `block`).
const ROWS: usize = 32;
const KEYS: usize = 16;
const BLOCK: usize = 64;
/// Invocations per workgroup of the cpu variant (`LANES` in attention_cpu.wgsl): one subgroup, of one
/// query row each in dq, two query rows in the forward and two key rows in dk/dv.
const CPU_LANES: usize = 8;

/// How the fused kernels run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// Accumulators in workgroup memory, no barriers: runs everywhere, and compiles quickly on GL.
    Portable,
    /// For CPU adapters (lavapipe): rows and accumulators in registers, the rows every lane needs loaded
    /// once per subgroup and shared through `subgroupBroadcast`. Needs subgroups of at least 8
    /// invocations.
    Cpu,
}

impl Variant {
    pub const ALL: [Variant; 2] = [Variant::Portable, Variant::Cpu];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Portable => "portable",
            Variant::Cpu => "cpu",
        }
    }

    /// Whether this adapter can run the variant.
    pub fn supported(self, gpu: &Gpu) -> bool {
        match self {
            Variant::Portable => true,
            Variant::Cpu => gpu
                .subgroup_sizes()
                .is_some_and(|(min, _)| min as usize >= CPU_LANES),
        }
    }

    /// Whether the variant takes this shape on this adapter: on CPU adapters the cpu variant refuses
    /// shapes whose loops could pass llvmpipe's silent cap of 65535 iterations per invocation.
    pub fn fits(self, gpu: &Gpu, shape: AttentionShape) -> bool {
        self == Variant::Portable || !gpu.is_cpu() || cpu_loop_iterations(shape) <= CPU_LOOP_LIMIT
    }

    /// The variant the launchers use for this shape on this adapter: `cpu` on CPU adapters that support
    /// it, where it fits and up to D = 64, else `portable`. (Past D = 64 Mesa keeps the cpu variant's
    /// loops over D as loops and its rows in memory, and it runs slower than `portable`: 2.4 against 4.1
    /// GFLOP/s forward at D = 128, T = 256 on lavapipe.)
    pub fn best(gpu: &Gpu, shape: AttentionShape) -> Variant {
        let cpu = Variant::Cpu;
        if gpu.is_cpu() && shape.head_dim <= 64 && cpu.supported(gpu) && cpu.fits(gpu, shape) {
            Variant::Cpu
        } else {
            Variant::Portable
        }
    }
}

/// llvmpipe's cap on loop iterations per invocation, less a margin.
const CPU_LOOP_LIMIT: usize = 65535 - 512;

/// Loop iterations of the longest cpu-variant invocation were none of its D loops unrolled (Mesa unrolls
/// them at small D only): up to (H/Hkv)·(T/4 + 1) steps (dk/dv; T/4 + 1 in the others), each with 8
/// shared-row loops of ceil(D/32) iterations and at most 8 loops over D/4 vec4s (dk/dv's two keys),
/// plus the rows' loads and stores.
fn cpu_loop_iterations(shape: AttentionShape) -> usize {
    let d4 = shape.head_dim / 4;
    let steps = (shape.heads / shape.kv_heads.max(1)) * (shape.seq / 4 + 1);
    steps * (8 * d4.div_ceil(8) + 8 * d4 + 1) + 8 * d4
}

/// The fused kernels that come in both variants.
#[derive(Clone, Copy)]
enum Fused {
    Forward,
    KeyValue,
    Query,
}

impl Fused {
    fn entry(self, variant: Variant) -> &'static str {
        match (variant, self) {
            (Variant::Portable, Fused::Forward) => "attention_forward",
            (Variant::Portable, Fused::KeyValue) => "attention_backward_key_value",
            (Variant::Portable, Fused::Query) => "attention_backward_query",
            (Variant::Cpu, Fused::Forward) => "attention_cpu_forward",
            (Variant::Cpu, Fused::KeyValue) => "attention_cpu_backward_key_value",
            (Variant::Cpu, Fused::Query) => "attention_cpu_backward_query",
        }
    }

    fn grid(self, variant: Variant) -> Grid {
        match (variant, self) {
            (Variant::Portable, Fused::KeyValue) => Grid::KeyRows,
            (Variant::Cpu, Fused::KeyValue) => Grid::KeyRowPairs,
            (Variant::Cpu, Fused::Forward) => Grid::QueryRowPairs,
            (_, Fused::Forward | Fused::Query) => Grid::QueryRows,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct Params {
    batch: u32,
    seq: u32,
    heads: u32,
    kv_heads: u32,
    scale: f32,
    _pad0: u32,
    site: u32,
    threshold: u32,
    keep_scale: f32,
    head_dim: u32,
    _pad: [u32; 2],
}

/// The tensors of one attention layer, checked against a [`AttentionShape`] by [`Tensors::check`].
struct Tensors<'a> {
    qkv: &'a Tensor,
    state: &'a Tensor,
    o: &'a Tensor,
    lse: &'a Tensor,
    d_o: Option<&'a Tensor>,
    delta: Option<&'a Tensor>,
    dqkv: Option<&'a Tensor>,
    scores: Option<&'a Tensor>,
}

impl Tensors<'_> {
    fn check(&self, shape: AttentionShape) -> Result<()> {
        let AttentionShape {
            batch: b,
            seq: t,
            heads: h,
            kv_heads: hkv,
            head_dim: d,
        } = shape;
        check_head_dim(d)?;
        if hkv == 0 || h % hkv != 0 {
            return Err(Error::shape(
                "attention",
                format!("{hkv} kv heads must divide {h} query heads"),
            ));
        }
        let rows = b * t;
        expect_shape("attention qkv", self.qkv, rows, shape.qkv_width())?;
        expect_len(
            "attention state [seed, step, micro]",
            self.state,
            RANDOM_STATE_LEN,
        )?;
        expect_shape("attention output", self.o, rows, h * d)?;
        expect_len("attention lse", self.lse, b * h * t)?;
        if let Some(d_o) = self.d_o {
            expect_shape("attention output gradient", d_o, rows, h * d)?;
        }
        if let Some(delta) = self.delta {
            expect_len("attention delta", delta, b * h * t)?;
        }
        if let Some(dqkv) = self.dqkv {
            expect_shape("attention qkv gradient", dqkv, rows, shape.qkv_width())?;
        }
        if let Some(scores) = self.scores {
            expect_len("attention scores", scores, b * h * t * t)?;
        }
        Ok(())
    }

    /// The shader's bindings in order. An unused read slot repeats `qkv`; an unused writable slot
    /// takes a `spare` tensor, as WebGPU forbids binding one buffer writable twice in a dispatch.
    fn bindings<'a>(&'a self, spare: &'a [Tensor; 3]) -> [Binding<'a>; 8] {
        [
            Binding::Read(self.qkv),
            Binding::Read(self.state),
            Binding::ReadWrite(self.o),
            Binding::ReadWrite(self.lse),
            Binding::Read(self.d_o.unwrap_or(self.qkv)),
            Binding::ReadWrite(self.delta.unwrap_or(&spare[0])),
            Binding::ReadWrite(self.dqkv.unwrap_or(&spare[1])),
            Binding::ReadWrite(self.scores.unwrap_or(&spare[2])),
        ]
    }
}

/// Which axis one invocation (or one vec4 column block of it) covers, giving the grid.
#[derive(Clone, Copy)]
enum Grid {
    /// One invocation per query row: `(ceil(T / ROWS), B·H)`.
    QueryRows,
    /// One invocation per two query rows (the cpu forward): `(ceil(T / (2·lanes)), B·H)`.
    QueryRowPairs,
    /// One invocation per key row: `(ceil(T / KEYS), B·Hkv)`.
    KeyRows,
    /// One invocation per two key rows (the cpu dk/dv): `(ceil(T / (2·lanes)), B·Hkv)`.
    KeyRowPairs,
    /// One invocation per vec4 of a query row: `(ceil(T·D/4 / BLOCK), B·H)`.
    QueryColumns,
    /// One invocation per vec4 of a key row: `(ceil(T·D/4 / BLOCK), B·Hkv)`.
    KeyColumns,
    /// One invocation per score element: `(ceil(T² / BLOCK), B·H)`.
    Scores,
}

fn dispatch(
    gpu: &Gpu,
    variant: Variant,
    entry: &'static str,
    grid: Grid,
    shape: AttentionShape,
    dropout: AttentionDropout,
    tensors: &Tensors,
) -> Result<Dispatch> {
    tensors.check(shape)?;
    if !(0.0..1.0).contains(&dropout.p) {
        return Err(Error::Invalid(format!(
            "attention dropout probability {} is not in [0, 1)",
            dropout.p
        )));
    }
    if !variant.supported(gpu) {
        return Err(Error::MissingFeature {
            what: format!("attention variant {}", variant.name()),
            feature: "SUBGROUP (with subgroups of at least 8)",
            adapter: gpu.info().name.clone(),
        });
    }
    if !variant.fits(gpu, shape) {
        return Err(Error::Limit {
            what: format!("attention variant {} ({shape:?})", variant.name()),
            limit: "loop iterations per invocation",
            needed: cpu_loop_iterations(shape) as u64,
            allowed: CPU_LOOP_LIMIT as u64,
            adapter: gpu.info().name.clone(),
        });
    }
    let (t, d4) = (shape.seq, shape.head_dim / 4);
    let (shader, rows, keys) = match variant {
        Variant::Portable => (SHADER, ROWS, KEYS),
        Variant::Cpu => (CPU_SHADER, CPU_LANES, CPU_LANES),
    };
    let (items, lanes, groups) = match grid {
        Grid::QueryRows => (t, rows, shape.batch * shape.heads),
        Grid::QueryRowPairs => (t, 2 * rows, shape.batch * shape.heads),
        Grid::KeyRows => (t, keys, shape.batch * shape.kv_heads),
        Grid::KeyRowPairs => (t, 2 * keys, shape.batch * shape.kv_heads),
        Grid::QueryColumns => (t * d4, BLOCK, shape.batch * shape.heads),
        Grid::KeyColumns => (t * d4, BLOCK, shape.batch * shape.kv_heads),
        Grid::Scores => (t * t, BLOCK, shape.batch * shape.heads),
    };
    let what = "attention";
    let params = Params {
        batch: to_u32(what, shape.batch)?,
        seq: to_u32(what, t)?,
        heads: to_u32(what, shape.heads)?,
        kv_heads: to_u32(what, shape.kv_heads)?,
        scale: shape.scale(),
        _pad0: 0,
        site: dropout.site,
        threshold: dropout_threshold(dropout.p),
        keep_scale: dropout_scale(dropout.p),
        head_dim: to_u32(what, shape.head_dim)?,
        _pad: [0; 2],
    };
    let mut constants = vec![
        ("dropout", (dropout.p > 0.0) as u32 as f64),
        ("block", BLOCK as f64),
    ];
    if variant == Variant::Cpu {
        constants.push(("cpu_d4", d4 as f64));
    }
    let kernel = Kernel {
        shader,
        entry,
        constants,
    };
    let workgroups = [
        to_u32(what, items.div_ceil(lanes))?,
        to_u32(what, groups)?,
        1,
    ];
    let spare = [gpu.unused(0)?, gpu.unused(1)?, gpu.unused(2)?];
    Dispatch::new(gpu, &kernel, &tensors.bindings(&spare), &params, workgroups)
}

/// Fused forward: writes `o` and `lse`.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    gpu: &Gpu,
    variant: Variant,
    shape: AttentionShape,
    dropout: AttentionDropout,
    qkv: &Tensor,
    state: &Tensor,
    o: &Tensor,
    lse: &Tensor,
) -> Result<Dispatch> {
    let tensors = Tensors {
        qkv,
        state,
        o,
        lse,
        d_o: None,
        delta: None,
        dqkv: None,
        scores: None,
    };
    fused(gpu, variant, Fused::Forward, shape, dropout, &tensors)
}

fn fused(
    gpu: &Gpu,
    variant: Variant,
    kernel: Fused,
    shape: AttentionShape,
    dropout: AttentionDropout,
    tensors: &Tensors,
) -> Result<Dispatch> {
    let entry = kernel.entry(variant);
    let grid = kernel.grid(variant);
    dispatch(gpu, variant, entry, grid, shape, dropout, tensors)
}

/// The backward's operands: the forward's inputs and saved outputs, the output gradient, and the
/// `delta: [B, H, T]` scratch.
pub struct Backward<'a> {
    pub qkv: &'a Tensor,
    pub state: &'a Tensor,
    pub o: &'a Tensor,
    pub lse: &'a Tensor,
    pub d_o: &'a Tensor,
    pub delta: &'a Tensor,
    pub dqkv: &'a Tensor,
}

impl<'a> Backward<'a> {
    fn tensors(&self, scores: Option<&'a Tensor>) -> Tensors<'a> {
        Tensors {
            qkv: self.qkv,
            state: self.state,
            o: self.o,
            lse: self.lse,
            d_o: Some(self.d_o),
            delta: Some(self.delta),
            dqkv: Some(self.dqkv),
            scores,
        }
    }
}

/// `delta = rowsum(dO∘O)`; writes `delta`. Runs before the other backward kernels.
pub fn backward_delta(gpu: &Gpu, shape: AttentionShape, t: &Backward) -> Result<Dispatch> {
    let entry = "attention_backward_delta";
    let tensors = t.tensors(None);
    let p = AttentionDropout::NONE;
    dispatch(
        gpu,
        Variant::Portable,
        entry,
        Grid::QueryRows,
        shape,
        p,
        &tensors,
    )
}

/// dk and dv, per kv head and key, over the query heads of its group; writes their part of `dqkv`.
pub fn backward_key_value(
    gpu: &Gpu,
    variant: Variant,
    shape: AttentionShape,
    dropout: AttentionDropout,
    t: &Backward,
) -> Result<Dispatch> {
    let tensors = t.tensors(None);
    fused(gpu, variant, Fused::KeyValue, shape, dropout, &tensors)
}

/// dq, per query row; writes its part of `dqkv`.
pub fn backward_query(
    gpu: &Gpu,
    variant: Variant,
    shape: AttentionShape,
    dropout: AttentionDropout,
    t: &Backward,
) -> Result<Dispatch> {
    let tensors = t.tensors(None);
    fused(gpu, variant, Fused::Query, shape, dropout, &tensors)
}

/// The fused backward in order: delta, dk/dv, dq. Writes `delta` and all of `dqkv`.
pub fn backward(
    gpu: &Gpu,
    variant: Variant,
    shape: AttentionShape,
    dropout: AttentionDropout,
    t: &Backward,
) -> Result<Vec<Dispatch>> {
    Ok(vec![
        backward_delta(gpu, shape, t)?,
        backward_key_value(gpu, variant, shape, dropout, t)?,
        backward_query(gpu, variant, shape, dropout, t)?,
    ])
}

/// Unfused forward (the baseline): scores, softmax, output through `scores: [B, H, T, T]`, which then
/// holds the probabilities the unfused backward needs. Writes `scores`, `o` and `lse`. Its grid of T²/64
/// workgroups limits it to T ≤ 2047 (`max_compute_workgroups_per_dimension`).
#[allow(clippy::too_many_arguments)]
pub fn unfused_forward(
    gpu: &Gpu,
    shape: AttentionShape,
    dropout: AttentionDropout,
    qkv: &Tensor,
    state: &Tensor,
    o: &Tensor,
    lse: &Tensor,
    scores: &Tensor,
) -> Result<Vec<Dispatch>> {
    let tensors = Tensors {
        qkv,
        state,
        o,
        lse,
        d_o: None,
        delta: None,
        dqkv: None,
        scores: Some(scores),
    };
    // (entry, grid, whether it applies the mask); the others get no dropout, so no second pipeline.
    let steps = [
        ("attention_unfused_scores", Grid::Scores, false),
        ("attention_unfused_softmax", Grid::QueryRows, false),
        ("attention_unfused_output", Grid::QueryColumns, true),
    ];
    unfused(gpu, shape, dropout, &tensors, &steps)
}

/// The attention probabilities of a forward that saved `lse` (and wrote `o`, which the dispatch binds
/// but does not touch): `P[b, h, t, s] = exp(scale·q_t·k_s - lse[b, h, t])` for `s ≤ t`, 0 above the
/// diagonal, before dropout. Writes `probs: [B, H, T, T]`; one invocation per element, for inspection
/// rather than training.
pub fn probabilities(
    gpu: &Gpu,
    shape: AttentionShape,
    qkv: &Tensor,
    state: &Tensor,
    o: &Tensor,
    lse: &Tensor,
    probs: &Tensor,
) -> Result<Dispatch> {
    let tensors = Tensors {
        qkv,
        state,
        o,
        lse,
        d_o: None,
        delta: None,
        dqkv: None,
        scores: Some(probs),
    };
    let (entry, grid, p) = (
        "attention_probabilities",
        Grid::Scores,
        AttentionDropout::NONE,
    );
    dispatch(gpu, Variant::Portable, entry, grid, shape, p, &tensors)
}

/// Unfused backward (the baseline): delta, dv, dS (overwriting the probabilities in `scores`), dq, dk.
/// Writes `delta`, `scores` and all of `dqkv`; run it once per [`unfused_forward`].
pub fn unfused_backward(
    gpu: &Gpu,
    shape: AttentionShape,
    dropout: AttentionDropout,
    t: &Backward,
    scores: &Tensor,
) -> Result<Vec<Dispatch>> {
    let tensors = t.tensors(Some(scores));
    let steps = [
        ("attention_backward_delta", Grid::QueryRows, false),
        ("attention_unfused_value_grad", Grid::KeyColumns, true),
        ("attention_unfused_score_grad", Grid::Scores, true),
        ("attention_unfused_query_grad", Grid::QueryColumns, false),
        ("attention_unfused_key_grad", Grid::KeyColumns, false),
    ];
    unfused(gpu, shape, dropout, &tensors, &steps)
}

fn unfused(
    gpu: &Gpu,
    shape: AttentionShape,
    dropout: AttentionDropout,
    tensors: &Tensors,
    steps: &[(&'static str, Grid, bool)],
) -> Result<Vec<Dispatch>> {
    steps
        .iter()
        .map(|&(entry, grid, masks)| {
            let p = if masks {
                dropout
            } else {
                AttentionDropout::NONE
            };
            dispatch(gpu, Variant::Portable, entry, grid, shape, p, tensors)
        })
        .collect()
}
