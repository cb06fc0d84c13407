//! The `wgpt` command line's library side, one module per command (`info`, `train`, `eval`, `sample`
//! and its `playground`, `prepare` and `tokenizer`, `inspect`), the flags of them all (`app`), checked
//! values (`values`) and progress bars (`progress`); the binary (`src/bin/wgpt.rs`) only parses and
//! dispatches. The examples reuse `train` and `inspect`. Here is what they share: choosing and opening
//! the device for a model, reading a model directory's tokenizer, and loading training data.

mod app;
mod data;
mod eval;
mod info;
mod inspect;
mod playground;
mod profile;
mod progress;
mod resume;
mod sample;
mod signals;
mod tokenizer;
mod train;
mod values;

pub use app::{completions, Cli, Command};
pub use data::Corpus;
pub use eval::{eval, EvalArgs};
pub use info::{devices, info, info_command, ranks_info, InfoArgs};
pub use inspect::{inspect, InspectArgs, ANATOMY_FILE};
pub use sample::{sample, SampleArgs};
pub use tokenizer::{prepare, tokenizer_command, PrepareArgs, TokenizerCommand};
pub use train::{gpu_for_training, train, train_on, ScheduleFlag, Summary, TrainArgs};

use std::path::Path;

use clap::Args;

use crate::checkpoint;
use crate::data::Tokenizer;
use crate::dtype::Dtype;
use crate::error::Result;
use crate::gpu::{adapters, AdapterChoice, Gpu};
use crate::model::{Gpt, GptConfig};

/// The `--dtype` flag of the commands that run a saved model without training it.
#[derive(Args, Clone, Debug)]
pub struct DtypeArgs {
    /// How the model's matrices (embeddings and weights) and its key/value cache are stored on the
    /// GPU: f32, or f16/bf16 (half the memory and of the bandwidth a decode step needs; sums, norms,
    /// biases and activations stay f32)
    #[arg(long, default_value = "f32", value_parser = values::dtype)]
    pub dtype: Dtype,
}

impl Default for DtypeArgs {
    fn default() -> Self {
        DtypeArgs { dtype: Dtype::F32 }
    }
}

impl DtypeArgs {
    /// The model saved in `dir`, its matrices stored in `--dtype` (rounded to nearest from the file's
    /// values, f32, f16 or bf16).
    pub fn load(&self, gpu: &Gpu, dir: &Path) -> Result<Gpt> {
        let saved = checkpoint::load(dir)?;
        Gpt::for_inference(gpu, &saved.config, &saved.params, self.dtype)
    }
}

/// The `--adapter` flag of every command that runs on a GPU.
#[derive(Args, Clone, Debug, Default)]
pub struct DeviceArgs {
    /// The GPU adapter: an index or part of a name from `wgpt devices`, or a backend (vulkan, gl,
    /// metal, dx12) [default: wgpu's choice, as WGPU_BACKEND and WGPU_ADAPTER_NAME say]
    #[arg(long, value_name = "INDEX|NAME")]
    pub adapter: Option<AdapterChoice>,
}

impl DeviceArgs {
    pub fn choice(&self) -> AdapterChoice {
        self.adapter.clone().unwrap_or_default()
    }

    /// The device of the process of local rank `local` on its machine (one process per GPU under
    /// `mpirun`): `--adapter` or `WGPU_ADAPTER_NAME` when given, else the `local`-th adapter (round
    /// robin) among those like wgpu's default choice (same backend and device type). Local rank 0
    /// keeps wgpu's choice.
    pub fn for_local_rank(&self, local: usize) -> DeviceArgs {
        let named = std::env::var_os("WGPU_ADAPTER_NAME").is_some();
        if local == 0 || self.adapter.is_some() || named {
            return self.clone();
        }
        let (list, Some(auto)) = adapters() else {
            return self.clone();
        };
        let like = |i: &usize| {
            let (a, b) = (&list[*i], &list[auto]);
            a.backend == b.backend && a.device_type == b.device_type
        };
        let candidates: Vec<usize> = (0..list.len()).filter(like).collect();
        DeviceArgs {
            adapter: Some(AdapterChoice::Index(candidates[local % candidates.len()])),
        }
    }
}

/// The tokenizer of a model directory: its tokenizer.json (characters or BPE), or GPT-2's when there is
/// none and config.json says the vocabulary is GPT-2's 50,257 (see [`Tokenizer::from_model_dir`]).
pub fn saved_tokenizer(dir: &Path) -> Result<Option<Tokenizer>> {
    let vocab = checkpoint::read_extra(dir, checkpoint::CONFIG_FILE)?
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|config| config["vocab_size"].as_u64())
        .unwrap_or(0);
    Tokenizer::from_model_dir(dir, vocab as usize)
}

/// The device on the adapter `device` names for a model of `config`: WebGPU's default limits, the
/// storage binding raised toward the largest parameter where the adapter allows (so it stays whole; the
/// model splits it otherwise), and kernel variants autotuned unless `WGPT_AUTOTUNE=off`.
pub fn gpu_for(device: &DeviceArgs, config: &GptConfig) -> Result<Gpu> {
    Gpu::with_binding_room(&device.choice(), config.largest_parameter_bytes()).map(Gpu::autotuned)
}

/// [`gpu_for`] the model a model directory holds (its config.json).
pub fn gpu_for_model(device: &DeviceArgs, dir: &Path) -> Result<Gpu> {
    gpu_for(device, &checkpoint::load_config(dir)?)
}
