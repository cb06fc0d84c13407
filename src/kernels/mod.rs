//! One module per shader: its `Params`, its variants and one launcher per entry point. Launchers check
//! shapes, then return a [`crate::gpu::Dispatch`] built once and recorded by every step.

pub(crate) mod check;
pub mod matmul;

use crate::gpu::Shader;

/// Every shader module the kernels compile (the naga translation test checks each of them).
pub const SHADERS: &[Shader] = &[matmul::SHADER, matmul::SUBGROUP_SHADER];
