//! A run's checkpoint: the model directory plus AdamW's moments (`optimizer.safetensors`) and the steps
//! done with the settings (`trainer_state.json`), so `--resume` continues exactly; and where the latest
//! checkpoint of a run lives.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::checkpoint;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::{Gpt, GptConfig};
use crate::train::Settings;

/// Saved beside a checkpoint so `--resume` continues exactly.
#[derive(Serialize, Deserialize)]
struct TrainerState {
    /// Steps completed.
    step: u32,
    settings: Settings,
}

const STATE_FILE: &str = "trainer_state.json";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// An output directory's latest checkpoint and its best one (lowest validation loss).
pub const LATEST_DIR: &str = "model";
pub const BEST_DIR: &str = "best";

/// The checkpoint `--resume DIR` means: `DIR/model` when DIR is a run's output directory (or
/// `DIR/model.old`, left by a save killed between its two renames), else DIR.
pub fn latest_checkpoint(dir: &Path) -> PathBuf {
    [LATEST_DIR, "model.old"]
        .iter()
        .map(|name| dir.join(name))
        .find(|d| d.is_dir())
        .unwrap_or_else(|| dir.to_path_buf())
}

/// A checkpoint's files: the model directory's, `extra` (the tokenizer), the moments and the state.
/// An error instead when a parameter or moment is NaN or infinite, so a diverged run never replaces
/// a good checkpoint.
pub fn checkpoint_files(
    config: &GptConfig,
    params: &[Vec<f32>],
    moments: &[Vec<Vec<f32>>; 2],
    step: u32,
    settings: &Settings,
    extra: &[(&str, Vec<u8>)],
) -> Result<Vec<(String, Vec<u8>)>> {
    let specs = config.params();
    for (what, tensors) in [
        ("parameter", params),
        ("AdamW m", &moments[0]),
        ("AdamW v", &moments[1]),
    ] {
        for (spec, values) in specs.iter().zip(tensors) {
            if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
                return Err(Error::Diverged(format!(
                    "{what} {} holds {bad} after step {step}: not saved, the last checkpoint stays as it was; lower the learning rate or check the data",
                    spec.name
                )));
            }
        }
    }
    let names: Vec<[String; 2]> = (specs.iter())
        .map(|s| [format!("m.{}", s.name), format!("v.{}", s.name)])
        .collect();
    let mut tensors: Vec<(&str, &[usize], &[f32])> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        tensors.push((&names[i][0], &spec.shape, &moments[0][i]));
        tensors.push((&names[i][1], &spec.shape, &moments[1][i]));
    }
    let state = TrainerState {
        step,
        settings: settings.clone(),
    };
    let state = serde_json::to_vec_pretty(&state).map_err(Error::json("trainer state"))?;
    let mut files = extra.to_vec();
    files.push((OPTIMIZER_FILE, checkpoint::serialize(&tensors)?));
    files.push((STATE_FILE, state));
    checkpoint::model_files(config, params, &files)
}

/// The steps done and the settings of the run saved in `dir`.
pub fn saved_state(dir: &Path) -> Result<(u32, Settings)> {
    let bytes = checkpoint::read_extra(dir, STATE_FILE)?.ok_or_else(|| {
        Error::Invalid(format!(
            "{}: no {STATE_FILE}: not a training checkpoint (start from its weights instead of resuming it)",
            dir.display()
        ))
    })?;
    let state: TrainerState = serde_json::from_slice(&bytes)
        .map_err(Error::json(format!("{}/{STATE_FILE}", dir.display())))?;
    state.settings.validate()?;
    Ok((state.step, state.settings))
}

/// AdamW's moments `[m, v]` saved in `dir` for a model of `config`, in [`GptConfig::params`] order.
pub fn saved_moments(dir: &Path, config: &GptConfig) -> Result<[Vec<Vec<f32>>; 2]> {
    let optimizer = checkpoint::read_extra(dir, OPTIMIZER_FILE)?
        .ok_or_else(|| Error::Invalid(format!("{}: no {OPTIMIZER_FILE}", dir.display())))?;
    let source = format!("{}/{OPTIMIZER_FILE}", dir.display());
    let specs = config.params();
    let read = |prefix: &str| -> Result<Vec<Vec<f32>>> {
        (specs.iter())
            .map(|s| {
                let name = format!("{prefix}.{}", s.name);
                checkpoint::tensor(&optimizer, &source, &name, &s.shape)
            })
            .collect()
    };
    Ok([read("m")?, read("v")?])
}

/// A saved run: the model (with its AdamW moments loaded), its settings and the steps done. `dir` is a
/// checkpoint or a run's output directory (its latest checkpoint, [`latest_checkpoint`]).
pub fn resume(gpu: &Gpu, dir: &Path) -> Result<(Gpt, Settings, u32)> {
    let dir = latest_checkpoint(dir);
    let saved = checkpoint::load(&dir)?;
    let (step, settings) = saved_state(&dir)?;
    let moments = saved_moments(&dir, &saved.config)?;
    let model = Gpt::new(gpu, &saved.config, &saved.params)?;
    model.write_moments(gpu, &moments)?;
    Ok((model, settings, step))
}
