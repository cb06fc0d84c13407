//! The GPU context and everything kernels need from it: adapter and device, buffers, pipelines, timing.
//!
//! Kernels never talk to wgpu directly beyond this module's types: they allocate [`Tensor`]s, describe a
//! [`Kernel`] (shader, entry point, override constants) and build [`Dispatch`]es once; recording a
//! dispatch into a pass is the only thing that happens per step. Kernels with variants may let
//! [`Gpu::tune`] time them on the adapter (see `tune.rs`).

mod adapter;
mod buffers;
mod commands;
mod compile;
mod context;
mod driver_cache;
pub mod export;
mod health;
mod pipelines;
mod timing;
mod tune;
mod user_cache;
mod warm_up;

pub use buffers::Tensor;

/// WebGPU's default `max_storage_buffer_binding_size` (128 MiB): what a device gets unless raised.
pub fn default_max_binding() -> u64 {
    wgpu::Limits::default().max_storage_buffer_binding_size
}
pub use adapter::{adapters, AdapterChoice, AdapterSummary};
pub use commands::{Commands, Readback, Submission};
pub use context::{binding_room, Counts, Gpu};
pub use health::TEST_DEVICE_MEMORY;
pub use pipelines::{Binding, Dispatch, Kernel, Shader};
pub use timing::{GpuTimer, Timeline};
pub use tune::{Clock, GpuClock, Tuner};
pub use user_cache::AdapterKey;
