//! Copy: `x: [any] -> y: [same count]`, `y = x` (writes `y`).
//!
//! The bench's `copy` row is the adapter's achievable bandwidth, the yardstick for every memory-bound
//! kernel; [`crate::kernels::dropout`] also uses it for `p = 0`.

use crate::error::Result;
use crate::gpu::{Binding, Dispatch, Gpu, Shader, Tensor};
use crate::kernels::check::expect_len;
use crate::kernels::grid::{count, elementwise};

pub const SHADER: Shader = crate::shader!("copy");

/// `y = x`; writes `y`.
pub fn forward(gpu: &Gpu, x: &Tensor, y: &Tensor) -> Result<Dispatch> {
    expect_len("copy output", y, x.len())?;
    let bindings = [Binding::Read(x), Binding::ReadWrite(y)];
    elementwise(
        gpu,
        SHADER,
        ["copy_forward", "copy_forward_vec4"],
        &bindings,
        x.len(),
        count,
    )
}
