//! GELU, GPT-2's tanh approximation ("gelu_new"), elementwise over any shape:
//!
//! - [`forward`]: `y = x/2 · (1 + tanh(√(2/π) (x + 0.044715 x³)))` (writes `y`).
//! - [`backward`]: `dx = dy · gelu'(x)` from the forward's input `x` (writes `dx`).

use crate::error::Result;
use crate::gpu::{Binding, Dispatch, Gpu, Shader, Tensor};
use crate::kernels::check::expect_len;
use crate::kernels::grid::{count, elementwise};

pub const SHADER: Shader = crate::shader!("gelu", ["elementwise", "gelu_math"]);

/// `y = gelu(x)`; writes `y`.
pub fn forward(gpu: &Gpu, x: &Tensor, y: &Tensor) -> Result<Dispatch> {
    expect_len("gelu output", y, x.len())?;
    let bindings = [Binding::Read(x), Binding::ReadWrite(y)];
    elementwise(
        gpu,
        SHADER,
        ["gelu_forward", "gelu_forward_vec4"],
        &bindings,
        x.len(),
        count,
    )
}

/// `dx = dy · gelu'(x)`; writes `dx`.
pub fn backward(gpu: &Gpu, x: &Tensor, dy: &Tensor, dx: &Tensor) -> Result<Dispatch> {
    let n = x.len();
    expect_len("gelu output gradient", dy, n)?;
    expect_len("gelu input gradient", dx, n)?;
    let bindings = [Binding::Read(x), Binding::Read(dy), Binding::ReadWrite(dx)];
    elementwise(
        gpu,
        SHADER,
        ["gelu_backward", "gelu_backward_vec4"],
        &bindings,
        n,
        count,
    )
}
