//! GPU kernels against their CPU references (`cargo test --release --test kernels`).
//!
//! Every test runs on the adapter wgpu picks from the environment (`WGPU_BACKEND=vulkan|gl`, ...). A
//! machine without any adapter fails these tests loudly: a GPU test never skips.

mod adamw;
mod attention;
mod cast;
mod common;
mod compile;
mod copy;
mod crossentropy;
mod dropout;
mod embedding;
mod gelu;
mod gradnorm;
mod kvcache;
mod layernorm;
mod matmul;
mod matvec;
mod residual;
mod rmsnorm;
mod shaders;
mod tensors;
mod tune;
