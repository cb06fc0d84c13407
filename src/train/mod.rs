//! Training: the loop (schedule, batches, one submit per step, loss read back only when logged),
//! evaluation on held-out data, and checkpoints that resume exactly.

mod plot;
mod schedule;

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use plot::loss_curves_svg;
pub use schedule::{learning_rate, Schedule};

use crate::checkpoint;
use crate::contract::AdamWConfig;
use crate::data::{Batch, BatchSampler};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::{Gpt, Optimizer, Plan, StepInputs};

/// Everything that fixes a run besides the model: nanoGPT's knobs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
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

    pub fn tokens_per_step(&self) -> usize {
        self.batch * self.seq
    }
}

/// What the loop reports as it goes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Event {
    Step {
        step: u32,
        loss: f32,
        lr: f64,
        tokens_per_s: f64,
    },
    Eval {
        step: u32,
        train_loss: f32,
        val_loss: f32,
    },
}

impl Event {
    /// The event as one JSON line (the `--json` contract).
    pub fn to_json(&self) -> String {
        match *self {
            Event::Step {
                step,
                loss,
                lr,
                tokens_per_s,
            } => format!(
                "{{\"step\":{step},\"loss\":{loss},\"lr\":{lr:e},\"tokens_per_s\":{tokens_per_s:.1}}}"
            ),
            Event::Eval {
                step,
                train_loss,
                val_loss,
            } => format!("{{\"step\":{step},\"train_loss\":{train_loss},\"val_loss\":{val_loss}}}"),
        }
    }
}

/// Saved beside a checkpoint so `--resume` continues exactly.
#[derive(Serialize, Deserialize)]
struct TrainerState {
    /// Steps completed.
    step: u32,
    settings: Settings,
}

const STATE_FILE: &str = "trainer_state.json";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// A model with its training and evaluation plans and its data.
pub struct Trainer<'a> {
    gpu: &'a Gpu,
    pub model: Gpt,
    pub settings: Settings,
    train: BatchSampler<'a>,
    val: BatchSampler<'a>,
    train_plan: Plan,
    eval_plan: Plan,
    /// Steps completed.
    pub step: u32,
}

impl<'a> Trainer<'a> {
    /// Builds the plans (every pipeline and buffer of the run) for `model` at `step` steps done.
    pub fn new(
        gpu: &'a Gpu,
        model: Gpt,
        settings: Settings,
        train: &'a [u32],
        val: &'a [u32],
        step: u32,
    ) -> Result<Self> {
        let (b, t) = (settings.batch, settings.seq);
        if b == 0 || settings.steps == 0 {
            return Err(Error::Invalid(
                "training settings: batch and steps must be positive".into(),
            ));
        }
        let (train_plan, _) = model.train_plan(gpu, b, t, &settings.optimizer())?;
        let (eval_plan, _) = model.eval_plan(gpu, b, t)?;
        Ok(Trainer {
            gpu,
            train: BatchSampler::new(train, b, t, settings.seed)?,
            val: BatchSampler::new(val, b, t, settings.seed ^ 0x5eed)?,
            model,
            settings,
            train_plan,
            eval_plan,
            step,
        })
    }

    /// The training plan (for its memory report and profile).
    pub fn train_plan(&self) -> &Plan {
        &self.train_plan
    }

    fn batch(&self, index: u64) -> Result<Batch> {
        if self.settings.overfit_batch {
            self.train.first_batch()
        } else {
            Ok(self.train.batch(index))
        }
    }

    /// The learning rate of step `it` (0-based).
    pub fn lr_at(&self, it: u32) -> f64 {
        let s = &self.settings;
        learning_rate(s.schedule, it, s.steps, s.warmup, s.lr, s.min_lr)
    }

    /// Runs one training step; returns the loss when `read_loss`.
    pub fn train_step(&mut self, read_loss: bool) -> Result<Option<f32>> {
        let it = self.step;
        let lr = self.lr_at(it);
        let s = &self.settings;
        let batch = self.batch(it as u64)?;
        self.train_plan.set_batch(
            self.gpu,
            &StepInputs {
                tokens: &batch.inputs,
                targets: &batch.targets,
            },
        )?;
        self.train_plan
            .set_step(self.gpu, dropout_seed(s.seed), it + 1, lr)?;
        let loss = self.train_plan.run(self.gpu, read_loss)?;
        self.step += 1;
        if let Some(loss) = loss.filter(|l| !l.is_finite()) {
            return Err(Error::Invalid(format!(
                "the loss became {loss} at step {}: lower the learning rate or clip the gradient norm",
                self.step
            )));
        }
        Ok(loss)
    }

    /// Mean loss over `eval_steps` batches of the training (`val = false`) or validation split, with
    /// the evaluation plan (no dropout). The same batches at every evaluation, so curves compare.
    pub fn evaluate(&self, val: bool) -> Result<f32> {
        self.evaluate_with(val, |_| {})
    }

    /// [`Trainer::evaluate`], calling `done` with the number of batches done after each one.
    pub fn evaluate_with(&self, val: bool, mut done: impl FnMut(u32)) -> Result<f32> {
        let sampler = if val { &self.val } else { &self.train };
        let mut total = 0.0f64;
        for i in 0..self.settings.eval_steps.max(1) {
            let batch = sampler.batch(u64::MAX - i as u64);
            self.eval_plan.set_batch(
                self.gpu,
                &StepInputs {
                    tokens: &batch.inputs,
                    targets: &batch.targets,
                },
            )?;
            let loss = self.eval_plan.run(self.gpu, true)?.unwrap_or(f32::NAN);
            total += loss as f64;
            done(i + 1);
        }
        Ok((total / self.settings.eval_steps.max(1) as f64) as f32)
    }

    /// Trains to `settings.steps`, reporting steps (every `log_every`) and evaluations to `on`.
    pub fn run(&mut self, mut on: impl FnMut(&Event)) -> Result<()> {
        let steps = self.settings.steps;
        let log_every = self.settings.log_every.max(1);
        let mut since = Instant::now();
        let mut since_step = self.step;
        while self.step < steps {
            let next = self.step + 1;
            let log = next.is_multiple_of(log_every) || next == steps || next == 1;
            let lr = self.lr_at(self.step);
            if let Some(loss) = self.train_step(log)? {
                let tokens = (self.step - since_step) as usize * self.settings.tokens_per_step();
                on(&Event::Step {
                    step: self.step,
                    loss,
                    lr,
                    tokens_per_s: tokens as f64 / since.elapsed().as_secs_f64(),
                });
                since = Instant::now();
                since_step = self.step;
            }
            let every = self.settings.eval_every;
            if every > 0 && (self.step.is_multiple_of(every) || self.step == steps) {
                on(&Event::Eval {
                    step: self.step,
                    train_loss: self.evaluate(false)?,
                    val_loss: self.evaluate(true)?,
                });
                since = Instant::now();
                since_step = self.step;
            }
        }
        Ok(())
    }

    /// Saves the model directory (config, weights, `extra` files such as the tokenizer) with the
    /// optimizer moments and the step, atomically.
    pub fn save(&self, dir: &Path, extra: &[(&str, Vec<u8>)]) -> Result<()> {
        let specs = self.model.config.params();
        let [m, v] = self.model.read_moments(self.gpu)?;
        let names: Vec<[String; 2]> = specs
            .iter()
            .map(|s| [format!("m.{}", s.name), format!("v.{}", s.name)])
            .collect();
        let mut moments: Vec<(&str, &[usize], &[f32])> = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            moments.push((&names[i][0], &spec.shape, &m[i]));
            moments.push((&names[i][1], &spec.shape, &v[i]));
        }
        let state = TrainerState {
            step: self.step,
            settings: self.settings.clone(),
        };
        let state = serde_json::to_vec_pretty(&state).map_err(Error::json("trainer state"))?;
        let mut files = vec![
            (OPTIMIZER_FILE, checkpoint::serialize(&moments)?),
            (STATE_FILE, state),
        ];
        files.extend(extra.iter().cloned());
        checkpoint::save(
            dir,
            &self.model.config,
            &self.model.read_params(self.gpu)?,
            &files,
        )
    }
}

/// The dropout masks' 32-bit seed: the run's 64-bit seed folded, so seeds that differ only above bit 31
/// still draw different masks (and seeds below 2³² keep their own value).
fn dropout_seed(seed: u64) -> u32 {
    (seed ^ (seed >> 32)) as u32
}

/// A saved run: the model (with its AdamW moments loaded), its settings and the steps done.
pub fn resume(gpu: &Gpu, dir: &Path) -> Result<(Gpt, Settings, u32)> {
    let saved = checkpoint::load(dir)?;
    let state_bytes = checkpoint::read_extra(dir, STATE_FILE)?.ok_or_else(|| {
        Error::Invalid(format!(
            "{}: no {STATE_FILE}: not a training checkpoint (start from its weights instead of resuming it)",
            dir.display()
        ))
    })?;
    let state: TrainerState = serde_json::from_slice(&state_bytes)
        .map_err(Error::json(format!("{}/{STATE_FILE}", dir.display())))?;
    let optimizer = checkpoint::read_extra(dir, OPTIMIZER_FILE)?
        .ok_or_else(|| Error::Invalid(format!("{}: no {OPTIMIZER_FILE}", dir.display())))?;
    let source = format!("{}/{OPTIMIZER_FILE}", dir.display());
    let specs = saved.config.params();
    let read = |prefix: &str| -> Result<Vec<Vec<f32>>> {
        specs
            .iter()
            .map(|s| {
                checkpoint::tensor(
                    &optimizer,
                    &source,
                    &format!("{prefix}.{}", s.name),
                    &s.shape,
                )
            })
            .collect()
    };
    let moments = [read("m")?, read("v")?];
    let model = Gpt::new(gpu, &saved.config, &saved.params)?;
    model.write_moments(gpu, &moments)?;
    Ok((model, state.settings, state.step))
}
