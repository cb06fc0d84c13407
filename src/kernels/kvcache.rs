//! One decode step of attention over a key/value cache, for batch 1: the new token's k and v are
//! appended at its position, then its query attends over every cached position up to and including it.
//!
//! Shapes, with `W = (H + 2·Hkv)·D`: `qkv: [1, W]` (the new token's `c_attn` row), `k_cache, v_cache:
//! [ctx, Hkv·D]`, `out: [1, H·D]`, `position: [1]` u32 (the new token's position `pos`, written before
//! each step, so the dispatches are built once). Query head h uses kv head `h / (H / Hkv)`;
//! `scale = 1/sqrt(D)`.
//!
//! - [`append`]: `k_cache[pos] = k`, `v_cache[pos] = v`; writes those rows (nothing when `pos >= ctx`).
//! - [`attention`]: `out[h] = softmax(scale·q_h·k_cache[0..=pos]ᵀ)·v_cache[0..=pos]`; writes `out`.
//!
//! The attention's loops run about `(pos / 64 + 1)·(D + 256)` iterations per invocation; llvmpipe stops
//! an invocation after 65,535, which bounds its context at about 8,000 positions at D = 128.

use bytemuck::{Pod, Zeroable};

use crate::contract::AttentionShape;
use crate::error::{Error, Result};
use crate::gpu::{Binding, Dispatch, Gpu, Kernel, Shader, Tensor};
use crate::kernels::attention::MAX_HEAD_DIM;
use crate::kernels::check::{expect_len, expect_shape, matrix_dims, to_u32};
use crate::kernels::grid::groups;

pub const SHADER: Shader = crate::shader!("kvcache");

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
    _pad: [u32; 3],
}

/// Checks the operands against `shape` (batch 1, one token); returns the params.
fn check(
    shape: AttentionShape,
    qkv: &Tensor,
    position: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
) -> Result<Params> {
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
    if shape.batch * shape.seq != 1 {
        return Err(Error::shape(
            "kvcache",
            format!(
                "a decode step is one token of batch 1, got [{}, {}]",
                shape.batch, shape.seq
            ),
        ));
    }
    expect_shape("kvcache qkv", qkv, 1, shape.qkv_width())?;
    expect_len("kvcache position", position, 1)?;
    let (context, _) = matrix_dims("kvcache k_cache", k_cache)?;
    expect_shape("kvcache k_cache", k_cache, context, hkv * d)?;
    expect_shape("kvcache v_cache", v_cache, context, hkv * d)?;
    if context == 0 {
        return Err(Error::shape("kvcache k_cache", "the cache has no rows"));
    }
    let what = "kvcache";
    Ok(Params {
        heads: to_u32(what, h)?,
        kv_heads: to_u32(what, hkv)?,
        head_dim: to_u32(what, d)?,
        context: to_u32(what, context)?,
        scale: shape.scale(),
        _pad: [0; 3],
    })
}

fn kernel(entry: &'static str) -> Kernel {
    Kernel {
        shader: SHADER,
        entry,
        constants: vec![],
    }
}

/// `k_cache[pos] = k`, `v_cache[pos] = v` from the new token's `qkv` row; writes those two rows.
pub fn append(
    gpu: &Gpu,
    shape: AttentionShape,
    qkv: &Tensor,
    position: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
) -> Result<Dispatch> {
    let params = check(shape, qkv, position, k_cache, v_cache)?;
    let bindings = [
        Binding::Read(qkv),
        Binding::Read(position),
        Binding::ReadWrite(k_cache),
        Binding::ReadWrite(v_cache),
    ];
    let width = shape.kv_heads * shape.head_dim;
    let workgroups = [groups(gpu, width, WG), 1, 1];
    Dispatch::new(
        gpu,
        &kernel("kvcache_append"),
        &bindings,
        &params,
        workgroups,
    )
}

/// The new token's attention over cache rows `0..=pos`, one workgroup per query head; writes `out`.
pub fn attention(
    gpu: &Gpu,
    shape: AttentionShape,
    qkv: &Tensor,
    position: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    out: &Tensor,
) -> Result<Dispatch> {
    let params = check(shape, qkv, position, k_cache, v_cache)?;
    expect_shape("kvcache output", out, 1, shape.heads * shape.head_dim)?;
    let bindings = [
        Binding::Read(qkv),
        Binding::Read(position),
        Binding::Read(k_cache),
        Binding::Read(v_cache),
        Binding::ReadWrite(out),
    ];
    let workgroups = [to_u32("kvcache heads", shape.heads)?, 1, 1];
    Dispatch::new(
        gpu,
        &kernel("kvcache_attention"),
        &bindings,
        &params,
        workgroups,
    )
}
