//! A run's settings (nanoGPT's knobs) and the checks that refuse impossible values before anything runs.

use serde::{Deserialize, Serialize};

use crate::contract::AdamWConfig;
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::model::Optimizer;
use crate::train::Schedule;

/// Everything that fixes a run besides the model: nanoGPT's knobs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Rows of one micro-batch (of the whole batch without accumulation).
    pub batch: usize,
    pub seq: usize,
    /// Steps of the whole run (a resumed run continues to this count).
    pub steps: u32,
    pub lr: f64,
    pub min_lr: f64,
    pub schedule: Schedule,
    pub warmup: u32,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Clip the global gradient norm to this; 0 turns clipping off.
    pub grad_clip: f32,
    pub seed: u64,
    /// Evaluate every this many steps (0: never) over `eval_steps` batches of each split.
    pub eval_every: u32,
    pub eval_steps: u32,
    /// Read the loss back every this many steps (and at the last).
    pub log_every: u32,
    /// Train on one fixed batch (the first B·T tokens), to check that the model can overfit it.
    pub overfit_batch: bool,
    /// Micro-batches of `batch` rows per step, their gradients added before one update (nanoGPT's
    /// `gradient_accumulation_steps`): a step over `grad_accum · batch` rows.
    #[serde(default = "one")]
    pub grad_accum: u32,
    /// How the step stores the activations its backward keeps and the weights its products read: f32,
    /// or f16/bf16 (the forward computes with the rounded values; the master weights, gradients and
    /// AdamW stay f32).
    #[serde(default)]
    pub precision: Dtype,
}

fn one() -> u32 {
    1
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            batch: 12,
            seq: 64,
            steps: 2000,
            lr: 1e-3,
            min_lr: 1e-4,
            schedule: Schedule::Cosine,
            warmup: 100,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            grad_clip: 1.0,
            seed: 1337,
            eval_every: 250,
            eval_steps: 20,
            log_every: 10,
            overfit_batch: false,
            grad_accum: 1,
            precision: Dtype::F32,
        }
    }
}

impl Settings {
    pub fn optimizer(&self) -> Optimizer {
        Optimizer {
            adamw: AdamWConfig {
                beta1: self.beta1,
                beta2: self.beta2,
                eps: self.eps,
                weight_decay: self.weight_decay,
            },
            max_norm: (self.grad_clip > 0.0).then_some(self.grad_clip),
        }
    }

    /// Tokens one step trains on: every micro-batch's.
    pub fn tokens_per_step(&self) -> usize {
        self.grad_accum as usize * self.batch * self.seq
    }

    /// Refuses settings no run can use (a NaN or infinite number, a probability outside its range, a
    /// zero count), naming the setting, before anything is built or written.
    pub fn validate(&self) -> Result<()> {
        let counts = [
            ("batch", self.batch),
            ("seq", self.seq),
            ("steps", self.steps as usize),
            ("grad_accum", self.grad_accum as usize),
        ];
        if let Some((name, _)) = counts.iter().find(|(_, n)| *n == 0) {
            return Err(invalid(name, "0", "a positive count"));
        }
        let numbers = [
            ("lr", self.lr, 0.0, f64::MAX, false),
            ("min_lr", self.min_lr, 0.0, f64::MAX, true),
            ("weight_decay", self.weight_decay, 0.0, f64::MAX, true),
            ("beta1", self.beta1, 0.0, 1.0, true),
            ("beta2", self.beta2, 0.0, 1.0, true),
            ("eps", self.eps, 0.0, f64::MAX, false),
            ("grad_clip", self.grad_clip as f64, 0.0, f64::MAX, true),
        ];
        for (name, value, low, high, zero_ok) in numbers {
            let above = if zero_ok { value >= low } else { value > low };
            if !(value.is_finite() && above && value < high) {
                let range = match (zero_ok, high == f64::MAX) {
                    (true, true) => "a finite number >= 0".to_string(),
                    (false, true) => "a finite number > 0".to_string(),
                    _ => format!("in [{low}, {high})"),
                };
                return Err(invalid(name, &value.to_string(), &range));
            }
        }
        Ok(())
    }
}

fn invalid(name: &str, value: &str, wanted: &str) -> Error {
    Error::Invalid(format!(
        "training setting {name} = {value} is not {wanted}; nothing was run"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_infinite_and_out_of_range_settings_are_refused_by_name() {
        assert!(Settings::default().validate().is_ok());
        let cases = [
            (
                Settings {
                    lr: f64::NAN,
                    ..Default::default()
                },
                "lr = NaN",
            ),
            (
                Settings {
                    lr: 0.0,
                    ..Default::default()
                },
                "lr = 0",
            ),
            (
                Settings {
                    min_lr: f64::INFINITY,
                    ..Default::default()
                },
                "min_lr = inf",
            ),
            (
                Settings {
                    beta2: 1.0,
                    ..Default::default()
                },
                "beta2 = 1",
            ),
            (
                Settings {
                    eps: -1.0,
                    ..Default::default()
                },
                "eps = -1",
            ),
            (
                Settings {
                    grad_clip: f32::NAN,
                    ..Default::default()
                },
                "grad_clip = NaN",
            ),
            (
                Settings {
                    weight_decay: f64::NEG_INFINITY,
                    ..Default::default()
                },
                "weight_decay = -inf",
            ),
            (
                Settings {
                    grad_accum: 0,
                    ..Default::default()
                },
                "grad_accum = 0",
            ),
        ];
        for (settings, expect) in cases {
            let err = settings.validate().unwrap_err().to_string();
            assert!(err.contains(expect), "{err}");
        }
    }
}
