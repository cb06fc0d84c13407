//! One module per shader: its `Params`, its variants and one launcher per entry point. Launchers check
//! shapes, then return a [`crate::gpu::Dispatch`] built once and recorded by every step.

pub(crate) mod check;
pub mod copy;
pub mod dropout;
pub mod embedding;
pub mod gelu;
pub(crate) mod grid;
pub mod layernorm;
pub mod matmul;
pub mod residual;
pub mod rmsnorm;

use crate::gpu::Shader;

/// Every shader module the kernels compile (the naga translation test checks each of them).
pub const SHADERS: &[Shader] = &[
    copy::SHADER,
    dropout::SHADER,
    embedding::SHADER,
    gelu::SHADER,
    layernorm::SHADER,
    matmul::SHADER,
    residual::SHADER,
    rmsnorm::SHADER,
];
