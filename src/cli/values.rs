//! Flag values checked as they are parsed, so an impossible one is refused with the flag's name and the
//! reason (clap prints `invalid value '0' for '--batch <N>': must be at least 1`), and model paths that
//! resolve where users put models.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::checkpoint::CONFIG_FILE;
use crate::dtype::Dtype;
use crate::model::Recompute;

/// The number, or clap's message for a value that is not one (NaN and infinities are not numbers a
/// setting can take).
fn number<T: FromStr>(s: &str) -> Result<T, String> {
    let lower = s.trim().to_ascii_lowercase();
    if lower.contains("nan") || lower.contains("inf") {
        return Err("must be a finite number".into());
    }
    s.trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))
}

/// A storage dtype: f32, f16 or bf16.
pub fn dtype(s: &str) -> Result<Dtype, String> {
    Dtype::from_name(&s.trim().to_ascii_lowercase())
        .ok_or_else(|| "must be f32, f16 or bf16".into())
}

/// A count of at least one (batch, sequence length, steps, top-k, ...).
pub fn at_least_one<T: FromStr + PartialOrd + From<u8>>(s: &str) -> Result<T, String> {
    let n: T = number(s)?;
    if n >= T::from(1) {
        Ok(n)
    } else {
        Err("must be at least 1".into())
    }
}

/// A number above zero (learning rate, epsilon).
pub fn positive<T: FromStr + PartialOrd + From<u8>>(s: &str) -> Result<T, String> {
    let x: T = number(s)?;
    if x > T::from(0) {
        Ok(x)
    } else {
        Err("must be above 0".into())
    }
}

/// A number of at least zero (minimum learning rate, weight decay, gradient clip, temperature).
pub fn non_negative<T: FromStr + PartialOrd + From<u8>>(s: &str) -> Result<T, String> {
    let x: T = number(s)?;
    if x >= T::from(0) {
        Ok(x)
    } else {
        Err("must be at least 0".into())
    }
}

/// A fraction in [0, 1) (dropout, Adam's betas).
pub fn below_one<T: FromStr + PartialOrd + From<u8>>(s: &str) -> Result<T, String> {
    let x: T = number(s)?;
    if x >= T::from(0) && x < T::from(1) {
        Ok(x)
    } else {
        Err("must be at least 0 and below 1".into())
    }
}

/// A probability mass in (0, 1] (top-p).
pub fn probability<T: FromStr + PartialOrd + From<u8>>(s: &str) -> Result<T, String> {
    let x: T = number(s)?;
    if x > T::from(0) && x <= T::from(1) {
        Ok(x)
    } else {
        Err("must be above 0 and at most 1".into())
    }
}

/// A model directory as users name it: the directory itself, or a training output directory
/// (`wgpt train --out`, the examples' `--out`) whose `model/` holds the latest checkpoint.
pub fn model_dir(s: &str) -> Result<PathBuf, String> {
    Ok(resolve_model_dir(Path::new(s)))
}

/// `dir`, or `dir/model` when `dir` has no config.json but `dir/model` is a model directory (or the
/// `model.old` an interrupted save leaves).
pub fn resolve_model_dir(dir: &Path) -> PathBuf {
    let inner = dir.join("model");
    let is_model = |d: &Path| d.join(CONFIG_FILE).is_file();
    if !is_model(dir) && (is_model(&inner) || is_model(&dir.join("model.old"))) {
        inner
    } else {
        dir.to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_values_are_refused_with_the_reason() {
        assert_eq!(at_least_one::<usize>("0"), Err("must be at least 1".into()));
        assert_eq!(at_least_one::<u32>("12"), Ok(12));
        assert_eq!(positive::<f64>("0"), Err("must be above 0".into()));
        assert_eq!(positive::<f64>("-1e-3"), Err("must be above 0".into()));
        assert_eq!(
            positive::<f64>("NaN"),
            Err("must be a finite number".into())
        );
        assert_eq!(
            non_negative::<f64>("inf"),
            Err("must be a finite number".into())
        );
        assert_eq!(non_negative::<f32>("-1"), Err("must be at least 0".into()));
        assert_eq!(non_negative::<f32>("0"), Ok(0.0));
        assert!(below_one::<f32>("1").is_err() && below_one::<f64>("0.99").is_ok());
        assert!(probability::<f32>("0").is_err() && probability::<f32>("1.5").is_err());
        assert_eq!(probability::<f32>("1"), Ok(1.0));
        assert_eq!(
            at_least_one::<usize>("x"),
            Err("\"x\" is not a number".into())
        );
    }

    #[test]
    fn an_output_directory_resolves_to_its_model() {
        let dir = std::env::temp_dir().join(format!("wgpt-values-{}", std::process::id()));
        let model = dir.join("model");
        std::fs::create_dir_all(&model).unwrap();
        std::fs::write(model.join(CONFIG_FILE), "{}").unwrap();
        assert_eq!(resolve_model_dir(&dir), model);
        assert_eq!(resolve_model_dir(&model), model);
        let missing = dir.join("missing");
        assert_eq!(
            resolve_model_dir(&missing),
            missing,
            "errors name what was given"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// `--recompute`'s values (train and info): clap stays in the CLI, the model's [`Recompute`] knows
/// nothing of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RecomputeFlag {
    /// Keep every activation the backward reads.
    #[default]
    None,
    /// Keep the MLP's pre-activation, not its GELU; the backward applies GELU again (a pass per layer)
    Gelu,
    /// Keep only each block's input; the backward runs each block's forward again (activation
    /// checkpointing: about a third more compute, a fraction of the activation memory, the same bits).
    Block,
}

impl From<RecomputeFlag> for Recompute {
    fn from(flag: RecomputeFlag) -> Self {
        match flag {
            RecomputeFlag::None => Recompute::None,
            RecomputeFlag::Gelu => Recompute::Gelu,
            RecomputeFlag::Block => Recompute::Block,
        }
    }
}
