//! Dropout for embeddings and residual branches, over any shape: `y = keep ? x / (1 - p) : 0` with
//! `keep = random_keep(seed, step, site, element, dropout_threshold(p))` (`shaders/random.wgsl`, CPU twin
//! [`crate::reference::random`]); `element` is the flat index, numbered in the whole batch when the
//! submit runs micro-batch `micro` of an accumulated batch (`random_element`).
//!
//! - [`forward`]: `x -> y` (writes `y`).
//! - [`backward`]: `dy -> dx`, the same map with the mask regenerated from the same state (writes `dx`).
//!
//! `state` is a `[3]` u32 tensor `[seed, step, micro]` that the trainer writes before each submit; the
//! dispatch reads it when it runs, so one dispatch built with the plan serves every step. `site` (which
//! dropout of the model this is) and `p` are fixed when the dispatch is built, in its uniform.
//!
//! `p = 0` dispatches a plain [`crate::kernels::copy`], no hashing; a caller that can alias `y` to `x`
//! skips it (see [`is_identity`]).

use bytemuck::{Pod, Zeroable};

use crate::contract::{dropout_scale, dropout_threshold, RANDOM_STATE_LEN};
use crate::error::{Error, Result};
use crate::gpu::{Binding, Dispatch, Gpu, Shader, Tensor};
use crate::kernels::check::expect_len;
use crate::kernels::copy;
use crate::kernels::grid::elementwise;

pub const SHADER: Shader = crate::shader!("dropout", ["random", "elementwise"]);

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct Params {
    n: u32,
    site: u32,
    threshold: u32,
    scale: f32,
}

/// Whether dropout with probability `p` is the identity, so the caller may use `x` as `y`.
pub fn is_identity(p: f32) -> bool {
    p == 0.0
}

/// Refuses a state tensor that is not `[seed, step, micro]` and a probability outside [0, 1).
pub fn check(state: &Tensor, p: f32) -> Result<()> {
    expect_len("dropout state [seed, step, micro]", state, RANDOM_STATE_LEN)?;
    if !(0.0..1.0).contains(&p) {
        return Err(Error::Invalid(format!(
            "dropout probability {p} is outside [0, 1)"
        )));
    }
    Ok(())
}

/// `y = dropout(x)`; writes `y`.
pub fn forward(
    gpu: &Gpu,
    x: &Tensor,
    state: &Tensor,
    site: u32,
    p: f32,
    y: &Tensor,
) -> Result<Dispatch> {
    expect_len("dropout output", y, x.len())?;
    check(state, p)?;
    if is_identity(p) {
        return copy::forward(gpu, x, y);
    }
    let bindings = [
        Binding::Read(x),
        Binding::Read(state),
        Binding::ReadWrite(y),
    ];
    elementwise(
        gpu,
        SHADER,
        ["dropout_apply", "dropout_apply_vec4"],
        &bindings,
        x.len(),
        |n| Params {
            n,
            site,
            threshold: dropout_threshold(p),
            scale: dropout_scale(p),
        },
    )
}

/// `dx = dropout(dy)` with the forward's mask (same `state` contents, `site` and `p`); writes `dx`.
pub fn backward(
    gpu: &Gpu,
    dy: &Tensor,
    state: &Tensor,
    site: u32,
    p: f32,
    dx: &Tensor,
) -> Result<Dispatch> {
    forward(gpu, dy, state, site, p, dx)
}
