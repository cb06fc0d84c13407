//! Elementwise sums where two paths meet, for any shape (all operands the same element count):
//!
//! - [`forward`]: `y = a + b`, the residual stream (writes `y`).
//! - [`accumulate`]: `acc += x`, the gradient of a tensor read by two paths (adds into `acc`).

use crate::error::Result;
use crate::gpu::{Binding, Dispatch, Gpu, Shader, Tensor};
use crate::kernels::check::expect_len;
use crate::kernels::grid::{count, elementwise};

pub const SHADER: Shader = crate::shader!("residual", ["elementwise"]);

/// `y = a + b`; writes `y`.
pub fn forward(gpu: &Gpu, a: &Tensor, b: &Tensor, y: &Tensor) -> Result<Dispatch> {
    let n = a.len();
    expect_len("residual second operand", b, n)?;
    expect_len("residual output", y, n)?;
    let bindings = [Binding::Read(a), Binding::Read(b), Binding::ReadWrite(y)];
    elementwise(
        gpu,
        SHADER,
        ["residual_forward", "residual_forward_vec4"],
        &bindings,
        n,
        count,
    )
}

/// `acc += x`; adds into `acc`.
pub fn accumulate(gpu: &Gpu, x: &Tensor, acc: &Tensor) -> Result<Dispatch> {
    expect_len("residual accumulator", acc, x.len())?;
    let bindings = [Binding::Read(x), Binding::ReadWrite(acc)];
    elementwise(
        gpu,
        SHADER,
        ["residual_accumulate", "residual_accumulate_vec4"],
        &bindings,
        x.len(),
        count,
    )
}
