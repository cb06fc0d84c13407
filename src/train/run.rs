//! The training loop: steps to the end, evaluations, and with an [`Output`] the log, the plot and the
//! checkpoints; a [`Stop`] request ends it after the current step with a checkpoint saved.

use std::time::Instant;

use crate::error::{Error, Result};
use crate::train::{Event, Output, Stop, Trainer};

impl Trainer<'_> {
    /// Trains to `settings.steps`, reporting steps (every `log_every`) and evaluations to `on`.
    pub fn run(&mut self, on: impl FnMut(&Event)) -> Result<()> {
        self.run_into(None, &Stop::default(), on)
    }

    /// [`Trainer::run`] that also records every event in `output` (log and plot) and saves its
    /// checkpoints: `model/` when [`Output::saves_at`] says and at the end, `best/` at each evaluation
    /// that lowers the validation loss. When `stop` is requested, the loop ends after the current step:
    /// it saves `model/` and returns [`Error::Interrupted`]. An error (a NaN loss, a lost device)
    /// returns at once and saves nothing, so the last checkpoint stays as it was.
    pub fn run_into(
        &mut self,
        mut output: Option<&mut Output>,
        stop: &Stop,
        mut on: impl FnMut(&Event),
    ) -> Result<()> {
        let steps = self.settings.steps;
        let log_every = self.settings.log_every.max(1);
        let mut since = (Instant::now(), self.step);
        while self.step < steps {
            if let Some(signal) = stop.requested() {
                return Err(self.interrupted(output, signal));
            }
            let next = self.step + 1;
            let log = next.is_multiple_of(log_every) || next == steps || next == 1;
            let lr = self.lr_at(self.step);
            let mut events = Vec::with_capacity(2);
            if let Some(loss) = self.train_step(log)? {
                let tokens = (self.step - since.1) as usize * self.settings.tokens_per_step();
                let tokens_per_s = tokens as f64 / since.0.elapsed().as_secs_f64();
                events.push(Event::Step {
                    step: self.step,
                    loss,
                    lr,
                    tokens_per_s,
                });
                since = (Instant::now(), self.step);
            }
            let every = self.settings.eval_every;
            if every > 0 && (self.step.is_multiple_of(every) || self.step == steps) {
                events.push(Event::Eval {
                    step: self.step,
                    train_loss: self.evaluate(false)?,
                    val_loss: self.evaluate(true)?,
                });
                since = (Instant::now(), self.step);
            }
            for event in &events {
                on(event);
            }
            if let Some(output) = output.as_deref_mut() {
                self.record(output, &events)?;
            }
        }
        Ok(())
    }

    /// Logs `events` of the step just done and saves the checkpoints it calls for.
    fn record(&self, output: &mut Output, events: &[Event]) -> Result<()> {
        let mut best = false;
        for event in events {
            output.record(event)?;
            if let Event::Eval { val_loss, .. } = *event {
                best = output.improves(val_loss);
            }
        }
        let latest = output.saves_at(self.step, self.settings.steps);
        if latest || best {
            output.save(&self.checkpoint_files(&output.extra())?, latest, best)?;
        }
        Ok(())
    }

    /// Saves `model/` after a stop request and says so in the error (or what went wrong saving).
    fn interrupted(&self, output: Option<&mut Output>, signal: i32) -> Error {
        let saved = match output {
            None => "nothing saved (no output directory)".to_string(),
            Some(output) => match self.checkpoint_files(&output.extra()) {
                Ok(files) => match output.save(&files, true, false) {
                    Ok(()) => format!(
                        "saved to {} (continue with --resume {})",
                        output.latest().display(),
                        output.dir().display()
                    ),
                    Err(e) => format!("saving failed ({e}); the last checkpoint stays as it was"),
                },
                Err(e) => format!("not saved ({e})"),
            },
        };
        Error::Interrupted {
            signal,
            step: self.step,
            saved,
        }
    }
}
