//! GPU kernels against their CPU references (`cargo test --release --test kernels`).
//!
//! Every test runs on the adapter wgpu picks from the environment (`WGPU_BACKEND=vulkan|gl`, ...). A
//! machine without any adapter fails these tests loudly: a GPU test never skips.

mod attention;
mod common;
mod matmul;
mod shaders;
