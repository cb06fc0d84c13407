//! The GPT model: its configuration and presets, its parameters (names, shapes, init) in Hugging Face's
//! GPT-2 layout, its graph, and the model on the GPU with its training and evaluation plans.

mod config;
mod gpt;
pub mod graph;
mod params;

pub use config::{GptConfig, Norm};
pub use gpt::{matmul_variant, Gpt, KvCaches, Optimizer};
pub use graph::{GraphOptions, Recompute};
pub use params::{Init, ParamSpec};

/// The executor's types a model's user handles: the plans a [`Gpt`] builds, the batch a step takes, the
/// tensors of its graph and a decode step's position input. Layers above the model reach the executor
/// through these, never around the model.
pub use crate::graph::{
    ExchangeTimes, MemoryReport, Plan, ProfileRow, StepInputs, StepReadout, TensorId, Work,
    POSITION,
};
