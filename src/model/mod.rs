//! The GPT model: its configuration and presets, and its parameters (names, shapes, init) in Hugging
//! Face's GPT-2 layout.

mod config;
mod params;

pub use config::{GptConfig, Norm};
pub use params::{Init, ParamSpec};
