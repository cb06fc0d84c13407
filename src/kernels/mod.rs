//! One module per shader: its `Params`, its variants and one launcher per entry point. Launchers check
//! shapes, then return a [`crate::gpu::Dispatch`] built once and recorded by every step.

pub mod adamw;
pub mod attention;
pub mod cast;
pub(crate) mod check;
pub mod copy;
pub mod crossentropy;
pub mod dropout;
pub mod embedding;
pub mod gelu;
pub mod gradnorm;
pub(crate) mod grid;
pub mod kvcache;
pub mod layernorm;
pub mod matmul;
pub mod matvec;
pub mod residual;
pub mod rmsnorm;
pub mod weights;

use crate::gpu::Shader;

/// Every shader module the kernels compile (the naga translation test checks each of them).
pub const SHADERS: &[Shader] = &[
    adamw::SHADER,
    attention::SHADER,
    attention::CPU_SHADER,
    cast::SHADER,
    copy::SHADER,
    crossentropy::SHADER,
    dropout::SHADER,
    embedding::SHADER,
    gelu::SHADER,
    gradnorm::SHADER,
    kvcache::SHADER,
    layernorm::SHADER,
    matmul::SHADER,
    matmul::SUBGROUP_SHADER,
    matvec::SHADER,
    matvec::SUBGROUP_SHADER,
    residual::SHADER,
    rmsnorm::SHADER,
];
