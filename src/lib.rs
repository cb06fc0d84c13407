//! wgpt trains and runs GPT language models on any GPU through wgpu, with every kernel hand-written in
//! WGSL. See `docs/architecture.md` for the layers: `gpu` (context, buffers, pipelines, timing) under `kernels`
//! (one module per shader), each with a plain CPU twin in `reference`.

pub mod checkpoint;
pub mod cli;
pub mod contract;
pub mod data;
pub mod dist;
pub mod dtype;
pub mod error;
pub mod gpu;
pub mod graph;
pub mod inspect;
pub mod kernels;
pub mod model;
pub mod plot;
pub mod reference;
pub mod sample;
pub mod train;

pub use error::{Error, Result};
pub use gpu::{Dispatch, Gpu, Tensor};
