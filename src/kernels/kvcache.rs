//! Key/value caches of `N` sequences and one decode step of attention over them: a prefill writes a
//! prompt's keys and values into rows `0..T` of every cache; a decode step appends each sequence's new
//! token's k and v at its position, then its query attends over every cached position up to and
//! including it.
//!
//! Shapes, with `W = (H + 2·Hkv)·D`: `k_cache, v_cache: [N, ctx, Hkv·D]` (a cache per sequence);
//! `position: [1]` u32 (the new tokens' position `pos`, the same for every sequence, written before each
//! step, so the dispatches are built once). Query head h uses kv head `h / (H / Hkv)`;
//! `scale = 1/sqrt(D)`.
//!
//! - [`fill`]: `qkv: [B, T, W]` (a prefill's `c_attn` output, `B` = 1 or N): `k_cache[n, t] = k[n mod
//!   B, t]`, `v_cache[n, t] = v[n mod B, t]` for `t < T`; writes those rows. One prompt (`B = 1`) fills
//!   every sequence's cache.
//! - [`append`]: `qkv: [N, W]` (each sequence's new token): `k_cache[n, pos] = k[n]`,
//!   `v_cache[n, pos] = v[n]`; writes those rows (nothing when `pos >= ctx`).
//! - [`step`]: the append, then `out[n, h] = softmax(scale·q[n, h]·k_cache[n, 0..=pos]ᵀ)·v_cache[n,
//!   0..=pos]`, `out: [N, H·D]`; writes `out` and the appended rows.
//!
//! The caches are stored in a [`Dtype`] (every launcher takes it): f32, or 16 bits packed two per word
//! ([`crate::dtype`]), each row `[Hkv·D / 2]` words (`Hkv·D` even), the values rounded as they are
//! written (f16 to either neighbour, as WGSL's `pack2x16float` may; bf16 to nearest even) and widened
//! as they are read. `qkv` and `out` are f32.
//!
//! The attention comes in two [`Variant`]s: `chunks` (64 invocations per head scoring 64 keys at a time
//! through workgroup memory; any shape, every adapter) and `lanes` (8 invocations per head, each walking
//! its own keys with its state in registers, one lane appending the new rows first, so a step is one
//! dispatch instead of two; CPU adapters' pick, 9-15x faster on lavapipe at GPT-2's heads). The chunks
//! loops run about `(pos / 64 + 1)·(D + 256)` iterations per invocation; llvmpipe stops an invocation
//! after 65,535, which bounds its context at about 8,000 positions at D = 128, and [`Variant::fits`]
//! keeps the lanes variant within the same cap.

use bytemuck::{Pod, Zeroable};

use crate::contract::AttentionShape;
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::gpu::{Binding, Dispatch, Gpu, Kernel, Shader, Tensor};
use crate::kernels::attention::MAX_HEAD_DIM;
use crate::kernels::check::{expect_len, expect_shape, to_u32};
use crate::kernels::grid::groups;

pub const SHADER: Shader = crate::shader!("kvcache", ["dtype"]);

/// Invocations per workgroup (`WG` in the shader).
const WG: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct Params {
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    context: u32,
    scale: f32,
    sequences: u32,
    /// [`fill`]'s `qkv` batch `B` and length `T` (1 and 1 for a decode step).
    batch: u32,
    seq: u32,
}

/// `[N, ctx]` of the caches `[N, ctx, words]` holding rows of `width` values of `dtype`.
fn cache_dims(
    k_cache: &Tensor,
    v_cache: &Tensor,
    width: usize,
    dtype: Dtype,
) -> Result<(usize, usize)> {
    if !width.is_multiple_of(dtype.per_word()) {
        return Err(Error::shape(
            "kvcache",
            format!("{} caches need an even Hkv·D, got {width}", dtype.name()),
        ));
    }
    let width = dtype.words(width);
    let [sequences, context, w] = k_cache.shape[..] else {
        return Err(Error::shape(
            "kvcache k_cache",
            format!("expected [N, ctx, {width}], got {}", k_cache.describe()),
        ));
    };
    if w != width || sequences == 0 || context == 0 {
        return Err(Error::shape(
            "kvcache k_cache",
            format!(
                "expected [N ≥ 1, ctx ≥ 1, {width}], got {}",
                k_cache.describe()
            ),
        ));
    }
    if v_cache.shape != k_cache.shape {
        return Err(Error::shape(
            "kvcache v_cache",
            format!(
                "expected {}, got {}",
                k_cache.describe(),
                v_cache.describe()
            ),
        ));
    }
    Ok((sequences, context))
}

/// Checks the heads and the caches against `shape` (whose batch and seq are the `qkv` rows'); returns
/// the params.
fn check(shape: AttentionShape, caches: Caches) -> Result<Params> {
    let Caches {
        k_cache,
        v_cache,
        dtype,
    } = caches;
    let (h, hkv, d) = (shape.heads, shape.kv_heads, shape.head_dim);
    if d == 0 || d > MAX_HEAD_DIM {
        return Err(Error::shape(
            "kvcache",
            format!("head_dim {d} must be in 1..={MAX_HEAD_DIM}"),
        ));
    }
    if hkv == 0 || h % hkv != 0 {
        return Err(Error::shape(
            "kvcache",
            format!("{hkv} kv heads must divide {h} query heads"),
        ));
    }
    let (sequences, context) = cache_dims(k_cache, v_cache, hkv * d, dtype)?;
    let what = "kvcache";
    to_u32(what, k_cache.len())?;
    Ok(Params {
        heads: to_u32(what, h)?,
        kv_heads: to_u32(what, hkv)?,
        head_dim: to_u32(what, d)?,
        context: to_u32(what, context)?,
        scale: shape.scale(),
        sequences: to_u32(what, sequences)?,
        batch: to_u32(what, shape.batch)?,
        seq: to_u32(what, shape.seq)?,
    })
}

/// Checks a decode step's operands: `qkv: [N, W]` for caches of `N` sequences, `position: [1]`.
fn check_step(
    shape: AttentionShape,
    qkv: &Tensor,
    position: &Tensor,
    caches: Caches,
) -> Result<Params> {
    let params = check(shape, caches)?;
    if shape.seq != 1 || shape.batch != params.sequences as usize {
        return Err(Error::shape(
            "kvcache",
            format!(
                "a decode step is one token for each of the caches' {} sequences, got [{}, {}]",
                params.sequences, shape.batch, shape.seq
            ),
        ));
    }
    expect_shape("kvcache qkv", qkv, shape.batch, shape.qkv_width())?;
    expect_len("kvcache position", position, 1)?;
    Ok(params)
}

/// The key and value caches `[N, ctx, words]` and the dtype of their values.
#[derive(Clone, Copy)]
pub struct Caches<'a> {
    pub k_cache: &'a Tensor,
    pub v_cache: &'a Tensor,
    pub dtype: Dtype,
}

fn kernel(entry: &'static str, dtype: Dtype) -> Kernel {
    Kernel {
        shader: SHADER,
        entry,
        constants: vec![("dtype", dtype.code() as f64)],
    }
}

/// `k_cache[n, t] = k[n mod B, t]`, `v_cache[n, t] = v[n mod B, t]` for `t < T` from a prefill's `qkv:
/// [B, T, W]` (`shape.batch = B`, 1 or the caches' N; `shape.seq = T ≤ ctx`); writes those rows.
pub fn fill(gpu: &Gpu, shape: AttentionShape, qkv: &Tensor, caches: Caches) -> Result<Dispatch> {
    let params = check(shape, caches)?;
    let (sequences, context) = (params.sequences as usize, params.context as usize);
    if !(shape.batch == 1 || shape.batch == sequences) || shape.seq == 0 || shape.seq > context {
        return Err(Error::shape(
            "kvcache fill",
            format!(
                "{} prompts of {} tokens for {sequences} caches of {context} rows (need 1 or \
                 {sequences} prompts of 1..={context} tokens)",
                shape.batch, shape.seq
            ),
        ));
    }
    expect_shape(
        "kvcache qkv",
        qkv,
        shape.batch * shape.seq,
        shape.qkv_width(),
    )?;
    let bindings = [
        Binding::Read(qkv),
        Binding::ReadWrite(caches.k_cache),
        Binding::ReadWrite(caches.v_cache),
    ];
    // One item per cache word.
    let items = sequences * shape.seq * caches.dtype.words(shape.kv_heads * shape.head_dim);
    let workgroups = [groups(gpu, items, WG), 1, 1];
    let kernel = kernel("kvcache_fill", caches.dtype);
    Dispatch::new(gpu, &kernel, &bindings, &params, workgroups)
}

/// `k_cache[n, pos] = k[n]`, `v_cache[n, pos] = v[n]` from each sequence's new token's `qkv` row;
/// writes those rows.
pub fn append(
    gpu: &Gpu,
    shape: AttentionShape,
    qkv: &Tensor,
    position: &Tensor,
    caches: Caches,
) -> Result<Dispatch> {
    let params = check_step(shape, qkv, position, caches)?;
    let bindings = [
        Binding::Read(qkv),
        Binding::Read(position),
        Binding::ReadWrite(caches.k_cache),
        Binding::ReadWrite(caches.v_cache),
    ];
    // One item per cache word.
    let items = shape.batch * caches.dtype.words(shape.kv_heads * shape.head_dim);
    let workgroups = [groups(gpu, items, WG), 1, 1];
    let kernel = kernel("kvcache_append", caches.dtype);
    Dispatch::new(gpu, &kernel, &bindings, &params, workgroups)
}

/// How a decode step's attention runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// A workgroup of 64 per (query head, sequence) scoring 64 keys at a time through workgroup memory:
    /// every shape, on every adapter.
    Chunks,
    /// For CPU adapters: a workgroup of 8 lanes per (query head, sequence), each walking its own keys
    /// with its state in registers and reading the cache rows as vec4s; the lanes meet once. The lane
    /// whose keys include the new position appends the new rows first: one dispatch a step. Head rows
    /// of whole vec4s only: D a multiple of 4 in f32, of 8 in 16 bits.
    Lanes,
}

/// Lanes per workgroup of [`Variant::Lanes`] (`LANES` in the shader).
const LANES: usize = 8;

/// llvmpipe's cap on loop iterations per invocation, less a margin.
const CPU_LOOP_LIMIT: usize = 65535 - 512;

impl Variant {
    pub const ALL: [Variant; 2] = [Variant::Chunks, Variant::Lanes];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Chunks => "chunks",
            Variant::Lanes => "lanes",
        }
    }

    /// Whether the variant takes heads of `head_dim` over caches of `context` rows in `dtype`. The lanes
    /// variant needs head rows of whole vec4s, and on CPU adapters refuses caches whose longest
    /// invocation could pass llvmpipe's silent cap of 65535 loop iterations were none of its loops over
    /// D unrolled: ceil(ctx / 8) keys of three loops of D / 4, plus the query's load, the append and the
    /// lanes' meeting.
    pub fn fits(self, gpu: &Gpu, head_dim: usize, context: usize, dtype: Dtype) -> bool {
        let d4 = head_dim / 4;
        let iterations = context.div_ceil(LANES) * (3 * d4 + 1) + 2 * d4 + 3 * LANES;
        match self {
            Variant::Chunks => true,
            Variant::Lanes => {
                head_dim.is_multiple_of(4 * dtype.per_word())
                    && head_dim <= MAX_HEAD_DIM
                    && (!gpu.is_cpu() || iterations <= CPU_LOOP_LIMIT)
            }
        }
    }

    /// The variant a decode step uses: lanes on CPU adapters where it fits, else chunks.
    pub fn best(gpu: &Gpu, head_dim: usize, caches: Caches) -> Variant {
        let context = caches.k_cache.shape.get(1).copied().unwrap_or(0);
        match gpu.is_cpu() && Variant::Lanes.fits(gpu, head_dim, context, caches.dtype) {
            true => Variant::Lanes,
            false => Variant::Chunks,
        }
    }
}

/// A decode step: each sequence's new token's key and value appended to its caches at `pos` (as
/// [`append`]) and its attention over the cache rows `0..=pos`, one workgroup per (query head,
/// sequence), as `variant` runs it: [`Variant::Chunks`] in two dispatches, [`Variant::Lanes`] in one;
/// writes `out` and those cache rows.
pub fn step(
    gpu: &Gpu,
    variant: Variant,
    shape: AttentionShape,
    qkv: &Tensor,
    position: &Tensor,
    caches: Caches,
    out: &Tensor,
) -> Result<Vec<Dispatch>> {
    let params = check_step(shape, qkv, position, caches)?;
    expect_shape(
        "kvcache output",
        out,
        shape.batch,
        shape.heads * shape.head_dim,
    )?;
    let context = params.context as usize;
    if !variant.fits(gpu, shape.head_dim, context, caches.dtype) {
        return Err(Error::shape(
            "kvcache attention",
            format!(
                "the {} variant cannot take heads of {} over {context} {} cache rows",
                variant.name(),
                shape.head_dim,
                caches.dtype.name()
            ),
        ));
    }
    // The lanes variant writes the caches too (it appends); the chunks kernel only reads them.
    let cache = |t| match variant {
        Variant::Chunks => Binding::Read(t),
        Variant::Lanes => Binding::ReadWrite(t),
    };
    let bindings = [
        Binding::Read(qkv),
        Binding::Read(position),
        cache(caches.k_cache),
        cache(caches.v_cache),
        Binding::ReadWrite(out),
    ];
    let workgroups = [params.heads, params.sequences, 1];
    Ok(match variant {
        Variant::Chunks => {
            let kernel = kernel("kvcache_attention", caches.dtype);
            vec![
                append(gpu, shape, qkv, position, caches)?,
                Dispatch::new(gpu, &kernel, &bindings, &params, workgroups)?,
            ]
        }
        Variant::Lanes => {
            let mut kernel = kernel("kvcache_attention_lanes", caches.dtype);
            kernel.constants.push(("d4", (shape.head_dim / 4) as f64));
            vec![Dispatch::new(gpu, &kernel, &bindings, &params, workgroups)?]
        }
    })
}
