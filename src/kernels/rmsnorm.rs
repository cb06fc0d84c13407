//! RMSNorm over the last dimension (`x: [rows, C]`, any leading shape; `gain: [C]`; `rstd: [rows]`),
//! eps inside the square root:
//!
//! - [`forward`]: `y = x·rstd·gain`, `rstd = 1/√(mean(x²) + eps)` (writes `y` and `rstd`, which the
//!   backward reads).
//! - [`backward`]: `dx = rstd·(g - x̂·mean(g·x̂))`, `g = dy·gain`, `x̂ = x·rstd` (writes `dx`).
//! - [`backward_params`]: `dgain += Σ_rows dy·x̂` (adds), one invocation per column summing rows in
//!   order: deterministic without atomics.

use crate::error::Result;
use crate::gpu::{Binding, Dispatch, Gpu, Shader, Tensor};
use crate::kernels::check::{expect_len, expect_shape, rows};
use crate::kernels::grid::{per_row, Spread};

pub const SHADER: Shader = crate::shader!("rmsnorm", ["rowsum"]);

/// Checks the shapes shared by every entry point; returns `(rows, C)`.
fn dims(x: &Tensor, gain: &Tensor, rstd: &Tensor) -> Result<(usize, usize)> {
    let c = gain.len();
    let r = rows("rmsnorm input", x, c)?;
    expect_len("rmsnorm rstd", rstd, r)?;
    Ok((r, c))
}

/// `y = x·rstd·gain`; writes `y` and `rstd`.
pub fn forward(
    gpu: &Gpu,
    x: &Tensor,
    gain: &Tensor,
    y: &Tensor,
    rstd: &Tensor,
    eps: f32,
) -> Result<Dispatch> {
    let (r, c) = dims(x, gain, rstd)?;
    expect_shape("rmsnorm output", y, r, c)?;
    let bindings = [
        Binding::Read(x),
        Binding::Read(gain),
        Binding::ReadWrite(y),
        Binding::ReadWrite(rstd),
    ];
    per_row(
        gpu,
        SHADER,
        ["rmsnorm_forward", "rmsnorm_forward_vec4"],
        Spread::Rows,
        vec![],
        &bindings,
        (r, c),
        eps,
    )
}

/// `dx = rstd·(g - x̂·mean(g·x̂))` with `g = dy·gain`; writes `dx`.
pub fn backward(
    gpu: &Gpu,
    x: &Tensor,
    gain: &Tensor,
    rstd: &Tensor,
    dy: &Tensor,
    dx: &Tensor,
) -> Result<Dispatch> {
    let (r, c) = dims(x, gain, rstd)?;
    expect_shape("rmsnorm output gradient", dy, r, c)?;
    expect_shape("rmsnorm input gradient", dx, r, c)?;
    let bindings = [
        Binding::Read(x),
        Binding::Read(gain),
        Binding::Read(rstd),
        Binding::Read(dy),
        Binding::ReadWrite(dx),
    ];
    per_row(
        gpu,
        SHADER,
        ["rmsnorm_backward", "rmsnorm_backward_vec4"],
        Spread::Rows,
        vec![],
        &bindings,
        (r, c),
        0.0,
    )
}

/// `dgain += Σ_rows dy·x̂`; adds into `dgain`.
pub fn backward_params(
    gpu: &Gpu,
    x: &Tensor,
    rstd: &Tensor,
    dy: &Tensor,
    dgain: &Tensor,
) -> Result<Dispatch> {
    let (r, c) = dims(x, dgain, rstd)?;
    expect_shape("rmsnorm output gradient", dy, r, c)?;
    let bindings = [
        Binding::Read(x),
        Binding::Read(rstd),
        Binding::Read(dy),
        Binding::ReadWrite(dgain),
    ];
    per_row(
        gpu,
        SHADER,
        ["rmsnorm_backward_params", "rmsnorm_backward_params_vec4"],
        Spread::Columns,
        vec![],
        &bindings,
        (r, c),
        0.0,
    )
}
