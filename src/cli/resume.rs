//! What `--out`, `--resume` and `--vocab-size` mean for `wgpt train`, and the checks that refuse a
//! command contradicting its checkpoint or data before anything is written: the output directory (and
//! not overwriting another run's checkpoint in it), a `--preset`/`--config` given with `--resume`, and
//! a vocabulary size against the model and the tokenizer.

use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::cli::{Corpus, TrainArgs};
use crate::error::{Error, Result};
use crate::model::GptConfig;
use crate::train::{latest_checkpoint, saved_state, LATEST_DIR};

/// The run's name: the preset, the config file's stem, or the checkpoint directory's name.
pub fn run_name(args: &TrainArgs, preset: &str) -> String {
    let stem = |p: &Path| p.file_stem().map(|s| s.to_string_lossy().into_owned());
    let dir = args.resume.as_deref().or(args.init.as_deref());
    (args.config.as_deref().and_then(stem))
        .or_else(|| args.preset.clone())
        .or_else(|| dir.and_then(stem))
        .unwrap_or_else(|| preset.to_string())
}

/// `--out`, else the directory resumed when it is a run's output directory, else `out/<run name>`;
/// an error when it holds an unfinished run other than the one resumed (continue it or pick another).
/// A finished run there is replaced, as nanoGPT does, so the same command runs again.
pub fn output_dir(args: &TrainArgs, preset: &str, resumed: Option<&Path>) -> Result<PathBuf> {
    let resumed_out = (args.resume.as_deref()).filter(|d| latest_checkpoint(d) != *d);
    let out = (args.out.clone())
        .or_else(|| resumed_out.map(Path::to_path_buf))
        .unwrap_or_else(|| Path::new("out").join(run_name(args, preset)));
    let latest = latest_checkpoint(&out);
    if latest == out || !checkpoint::exists(&out.join(LATEST_DIR)) {
        return Ok(out);
    }
    if resumed.is_some_and(|r| same_dir(r, &latest)) {
        return Ok(out);
    }
    let at = match saved_state(&latest) {
        Ok((done, settings)) if done >= settings.steps => return Ok(out),
        Ok((done, settings)) => format!(" (step {done} of {})", settings.steps),
        Err(_) => String::new(),
    };
    Err(Error::Invalid(format!(
        "{} holds an unfinished run{at}: continue it with --resume {}, or give another --out",
        out.display(),
        out.display()
    )))
}

fn same_dir(a: &Path, b: &Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

/// An error naming every key where `wanted` (what `--preset`/`--config` describe, sized to the data as
/// a fresh run would be) differs from the config of the checkpoint at `dir`.
pub fn check_agrees(
    wanted: &GptConfig,
    saved: &GptConfig,
    dir: &Path,
    corpus: &Corpus,
) -> Result<()> {
    let wanted = GptConfig {
        vocab_size: corpus.vocab_size.unwrap_or(wanted.vocab_size),
        ..wanted.clone()
    };
    let as_map = |c: &GptConfig| -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(&c.to_json()).unwrap_or_default()
    };
    let (a, b) = (as_map(&wanted), as_map(saved));
    let differences: Vec<String> = (a.iter())
        .filter(|(k, v)| b.get(*k) != Some(v))
        .map(|(k, v)| {
            format!(
                "{k} {v} (checkpoint: {})",
                b.get(k).unwrap_or(&"none".into())
            )
        })
        .collect();
    if differences.is_empty() {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "--preset/--config contradict the checkpoint {}: {}; drop them to resume as saved",
        dir.display(),
        differences.join(", ")
    )))
}

/// An error when `--vocab-size` contradicts the model being trained (a checkpoint's) or the data's
/// vocabulary is larger than the model's.
pub fn check_vocabulary(args: &TrainArgs, config: &GptConfig, corpus: &Corpus) -> Result<()> {
    let vocab = config.vocab_size;
    let from_checkpoint = args.resume.is_some() || args.init.is_some();
    if let Some(v) = args.vocab_size.filter(|&v| from_checkpoint && v != vocab) {
        return Err(Error::Invalid(format!(
            "--vocab-size {v} contradicts the model's vocabulary of {vocab} (its config.json); drop it"
        )));
    }
    if let Some(v) = corpus.vocab_size.filter(|&v| v > vocab) {
        return Err(Error::Invalid(format!(
            "the data's vocabulary ({v}) is larger than the model's ({vocab})"
        )));
    }
    config.check_tokens("training data", &corpus.train)?;
    config.check_tokens("validation data", &corpus.val)
}

/// `(name, bytes)` pairs with owned names.
pub fn owned(files: &[(&str, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    (files.iter())
        .map(|(n, b)| (n.to_string(), b.clone()))
        .collect()
}
