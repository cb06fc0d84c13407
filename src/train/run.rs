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
    ///
    /// The CPU stays a step ahead of the GPU: step i+1 is prepared and submitted while step i runs,
    /// and a logged step's loss is read once the next step is queued (reported a step late; at an
    /// evaluation and at the end at once), so the GPU need not wait for the CPU; at most two steps are
    /// in flight.
    pub fn run_into(
        &mut self,
        mut output: Option<&mut Output>,
        stop: &Stop,
        mut on: impl FnMut(&Event),
    ) -> Result<()> {
        let steps = self.settings.steps;
        let log_every = self.settings.log_every.max(1);
        let mut rate = Rate::new(self.step);
        let mut previous = None;
        // A logged step whose loss is on its way: (step, lr).
        let mut logged: Option<(u32, f64)> = None;
        while self.step < steps {
            if let Some(signal) = self.stop_requested(stop)? {
                let events = self.reported(logged.take(), &mut rate)?;
                events.iter().for_each(&mut on);
                if let Some(output) = output.as_deref_mut() {
                    events.iter().try_for_each(|e| output.record(e))?;
                }
                return Err(self.interrupted(output, signal));
            }
            let next = self.step + 1;
            let log = next.is_multiple_of(log_every) || next == steps || next == 1;
            let lr = self.lr_at(self.step);
            let submission = self.submit_step(log)?;
            if let Some(before) = previous.replace(submission) {
                self.wait_for(&before)?;
            }
            let mut events = self.reported(logged.take(), &mut rate)?;
            let every = self.settings.eval_every;
            let evaluates = every > 0 && (self.step.is_multiple_of(every) || self.step == steps);
            // A step that ends the run, is evaluated or saved reports its loss at once: a NaN stops the
            // run before anything is saved.
            let saves = (output.as_deref()).is_some_and(|o| o.saves_at(self.step, steps));
            // Ranks training together read each logged loss at once (reading it is a collective,
            // which every rank must reach at the same point; their steps wait for each other anyway).
            let together = self.ranks().size() > 1;
            match log && (evaluates || saves || self.step == steps || together) {
                true => events.extend(self.reported(Some((self.step, lr)), &mut rate)?),
                false => logged = log.then_some((self.step, lr)),
            }
            if evaluates {
                self.check_ranks_agree()?;
                events.push(Event::Eval {
                    step: self.step,
                    train_loss: self.evaluate(false)?,
                    val_loss: self.evaluate(true)?,
                });
                rate = Rate::new(self.step);
            }
            events.iter().for_each(&mut on);
            if let Some(output) = output.as_deref_mut() {
                self.record(output, &events)?;
            }
        }
        Ok(())
    }

    /// The report of logged step `step` (if any), its loss collected now.
    fn reported(&mut self, logged: Option<(u32, f64)>, rate: &mut Rate) -> Result<Vec<Event>> {
        let Some((step, lr)) = logged else {
            return Ok(Vec::new());
        };
        let loss = self.collect_loss(step)?;
        let tokens_per_s = rate.tokens_per_s(step, self.settings.tokens_per_step());
        Ok(vec![Event::Step {
            step,
            loss,
            lr,
            tokens_per_s,
        }])
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

/// Tokens per second between reports.
struct Rate {
    since: Instant,
    since_step: u32,
}

impl Rate {
    fn new(step: u32) -> Self {
        Rate {
            since: Instant::now(),
            since_step: step,
        }
    }

    /// The rate over the steps since the last report, up to `step`; starts the next interval.
    fn tokens_per_s(&mut self, step: u32, tokens_per_step: usize) -> f64 {
        let tokens = (step - self.since_step) as usize * tokens_per_step;
        let rate = tokens as f64 / self.since.elapsed().as_secs_f64();
        *self = Rate::new(step);
        rate
    }
}
