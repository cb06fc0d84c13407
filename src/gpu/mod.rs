//! The GPU context and everything kernels need from it: adapter and device, buffers, pipelines, timing.
//!
//! Kernels never talk to wgpu directly beyond this module's types: they allocate [`Tensor`]s, describe a
//! [`Kernel`] (shader, entry point, override constants) and build [`Dispatch`]es once; recording a
//! dispatch into a pass is the only thing that happens per step. Kernels with variants may let
//! [`Gpu::tune`] time them on the adapter (see `tune.rs`).

mod buffers;
mod compile;
mod context;
mod driver_cache;
mod pipelines;
mod timing;
mod tune;
mod user_cache;

pub use buffers::Tensor;
pub use context::{binding_room, AdapterSummary, Counts, Gpu};
pub use pipelines::{Binding, Dispatch, Kernel, Shader};
pub use timing::GpuTimer;
pub use tune::{Clock, GpuClock, Tuner};
pub use user_cache::AdapterKey;
