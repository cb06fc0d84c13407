//! Training: the loop (schedule, batches, one submit per step or per micro-batch, loss read back only
//! when logged, stopped by NaN or a signal), evaluation on held-out data, checkpoints that resume
//! exactly, and the run's output directory.

mod output;
mod plot;
mod run;
mod schedule;
mod settings;
mod state;
mod stop;
mod trainer;

pub use output::Output;
pub use plot::loss_curves_svg;
pub use schedule::{learning_rate, Schedule};
pub use settings::Settings;
pub use state::{
    checkpoint_files, latest_checkpoint, resume, saved_moments, saved_state, LATEST_DIR,
};
pub use stop::Stop;
pub use trainer::{validation_loss, Exchange, StepTimeline, Trainer};

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
    pub fn step(&self) -> u32 {
        match *self {
            Event::Step { step, .. } | Event::Eval { step, .. } => step,
        }
    }

    /// An event from one line of [`Event::to_json`] (`None` for anything else).
    pub fn from_json(line: &str) -> Option<Event> {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let step = u32::try_from(v["step"].as_u64()?).ok()?;
        let f = |key: &str| v[key].as_f64();
        Some(match (f("loss"), f("train_loss"), f("val_loss")) {
            (Some(loss), _, _) => Event::Step {
                step,
                loss: loss as f32,
                lr: f("lr")?,
                tokens_per_s: f("tokens_per_s")?,
            },
            (None, Some(train), Some(val)) => Event::Eval {
                step,
                train_loss: train as f32,
                val_loss: val as f32,
            },
            _ => return None,
        })
    }

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
