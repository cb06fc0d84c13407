//! One module per shader: its `Params`, its variants and one launcher per entry point. Launchers check
//! shapes, then return a [`crate::gpu::Dispatch`] built once and recorded by every step.

pub(crate) mod check;
pub mod matmul;
