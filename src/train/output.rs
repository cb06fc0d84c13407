//! A run's output directory: `model/` (the latest checkpoint), `best/` (the checkpoint of the lowest
//! validation loss so far), `log.jsonl` (every event, one JSON object a line, appended as they come)
//! and `loss.svg` (the loss curves, redrawn at every evaluation).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::error::{Error, Result};
use crate::train::state::{BEST_DIR, LATEST_DIR};
use crate::train::{loss_curves_svg, Event};

const LOG_FILE: &str = "log.jsonl";
const PLOT_FILE: &str = "loss.svg";

/// An open output directory.
pub struct Output {
    dir: PathBuf,
    title: String,
    /// Files saved into every checkpoint besides the model's own (the tokenizer).
    extra: Vec<(String, Vec<u8>)>,
    /// Save `model/` every this many steps (0: only at the end and when stopped).
    save_every: u32,
    events: Vec<Event>,
    /// The lowest validation loss of the run so far (what `best/` holds).
    best: Option<f32>,
    log: File,
}

impl Output {
    /// Opens (creating it) the output directory `dir` of a run at `step` steps done: the log keeps the
    /// events up to that step (a resumed run's; later ones, from after its checkpoint, are dropped so
    /// they are not logged twice) and the best validation loss among them. `title` heads the plot.
    pub fn open(dir: &Path, title: &str, save_every: u32, step: u32) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        let path = dir.join(LOG_FILE);
        let events: Vec<Event> = match std::fs::read_to_string(&path) {
            Ok(text) => text.lines().filter_map(Event::from_json).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io(&path)(e)),
        };
        let events: Vec<Event> = events.into_iter().filter(|e| e.step() <= step).collect();
        let lines: String = events.iter().map(|e| e.to_json() + "\n").collect();
        std::fs::write(&path, lines).map_err(Error::io(&path))?;
        let log = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(Error::io(&path))?;
        let best = (events.iter())
            .filter_map(|e| match e {
                Event::Eval { val_loss, .. } => Some(*val_loss),
                _ => None,
            })
            .reduce(f32::min);
        Ok(Output {
            dir: dir.to_path_buf(),
            title: title.into(),
            extra: Vec::new(),
            save_every,
            events,
            best,
            log,
        })
    }

    /// Saves `files` (the tokenizer) into every checkpoint too.
    pub fn with_extra(mut self, files: Vec<(String, Vec<u8>)>) -> Self {
        self.extra = files;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the latest checkpoint goes.
    pub fn latest(&self) -> PathBuf {
        self.dir.join(LATEST_DIR)
    }

    fn best(&self) -> PathBuf {
        self.dir.join(BEST_DIR)
    }

    pub fn extra(&self) -> Vec<(&str, Vec<u8>)> {
        (self.extra.iter())
            .map(|(n, b)| (n.as_str(), b.clone()))
            .collect()
    }

    /// Appends `event` to the log, and at an evaluation redraws the plot.
    pub fn record(&mut self, event: &Event) -> Result<()> {
        let path = self.dir.join(LOG_FILE);
        writeln!(self.log, "{}", event.to_json()).map_err(Error::io(&path))?;
        self.events.push(*event);
        if matches!(event, Event::Eval { .. }) {
            self.draw()?;
        }
        Ok(())
    }

    /// Writes the plot of every event so far (a resumed run's from its start).
    fn draw(&self) -> Result<()> {
        let path = self.dir.join(PLOT_FILE);
        let svg = loss_curves_svg(&self.events, &self.title);
        std::fs::write(&path, svg).map_err(Error::io(&path))
    }

    /// Whether `model/` is saved after `step` of `steps`: every `save_every` steps and at the last.
    pub fn saves_at(&self, step: u32, steps: u32) -> bool {
        step == steps || (self.save_every > 0 && step.is_multiple_of(self.save_every))
    }

    /// Whether a validation loss of `val_loss` is the run's best so far (and so `best/` gets it).
    pub fn improves(&mut self, val_loss: f32) -> bool {
        let better = val_loss.is_finite() && self.best.is_none_or(|b| val_loss < b);
        if better {
            self.best = Some(val_loss);
        }
        better
    }

    /// Writes a checkpoint's `files` to `model/` (`latest`) and `best/` (`best`), each atomically.
    pub fn save(&self, files: &[(String, Vec<u8>)], latest: bool, best: bool) -> Result<()> {
        if latest {
            checkpoint::write_dir(&self.latest(), files)?;
        }
        if best {
            checkpoint::write_dir(&self.best(), files)?;
        }
        Ok(())
    }
}
