//! The `wgpt` command line's library side, one module per command (`info`, `train`, `eval`, `sample`
//! and its `playground`, `prepare` and `tokenizer`, `inspect`); the binary (`src/bin/wgpt.rs`) only
//! parses and dispatches. The examples reuse `train` and `inspect`. Here is what they share: opening the
//! device for a model, reading a model directory's tokenizer, and loading training data.

mod data;
mod eval;
mod info;
mod inspect;
mod playground;
mod profile;
mod sample;
mod tokenizer;
mod train;

pub use data::Corpus;
pub use eval::{eval, EvalArgs};
pub use info::{info, model_info};
pub use inspect::{inspect, InspectArgs, ANATOMY_FILE};
pub use sample::{sample, SampleArgs};
pub use tokenizer::{prepare, tokenizer_command, PrepareArgs, TokenizerCommand};
pub use train::{gpu_for_training, train, ScheduleFlag, Summary, TrainArgs};

use std::path::Path;

use crate::checkpoint;
use crate::data::Tokenizer;
use crate::error::Result;
use crate::gpu::Gpu;
use crate::model::GptConfig;

/// The tokenizer of a model directory: its tokenizer.json (characters or BPE), or GPT-2's when there is
/// none and config.json says the vocabulary is GPT-2's 50,257 (see [`Tokenizer::from_model_dir`]).
pub fn saved_tokenizer(dir: &Path) -> Result<Option<Tokenizer>> {
    let vocab = checkpoint::read_extra(dir, checkpoint::CONFIG_FILE)?
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|config| config["vocab_size"].as_u64())
        .unwrap_or(0);
    Tokenizer::from_model_dir(dir, vocab as usize)
}

/// The device for a model of `config`: WebGPU's default limits, the storage binding raised toward the
/// largest parameter where the adapter allows (so it stays whole; the model splits it otherwise).
pub fn gpu_for(config: &GptConfig) -> Result<Gpu> {
    Gpu::with_binding_room(config.largest_parameter_bytes())
}

/// [`gpu_for`] the model a model directory holds (its config.json).
pub fn gpu_for_model(dir: &Path) -> Result<Gpu> {
    gpu_for(&checkpoint::load_config(dir)?)
}
