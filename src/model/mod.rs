//! The GPT model: its configuration and presets, its parameters (names, shapes, init) in Hugging Face's
//! GPT-2 layout, its graph, and the model on the GPU with its training and evaluation plans.

mod config;
mod gpt;
pub mod graph;
mod params;

pub use config::{GptConfig, Norm};
pub use gpt::{Gpt, Optimizer};
pub use params::{Init, ParamSpec};
