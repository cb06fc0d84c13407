//! A one-line progress bar on stderr: step, loss, tokens/s and the time left.

use std::io::Write;
use std::time::{Duration, Instant};

pub struct Progress {
    total: u32,
    start: Instant,
    first: u32,
    enabled: bool,
}

impl Progress {
    /// A bar for steps `first + 1 ..= total`; `enabled = false` prints nothing (JSON output).
    pub fn new(first: u32, total: u32, enabled: bool) -> Self {
        Progress {
            total,
            start: Instant::now(),
            first,
            enabled,
        }
    }

    pub fn update(&self, step: u32, loss: f32, tokens_per_s: f64) {
        if !self.enabled {
            return;
        }
        let done = step.saturating_sub(self.first) as f64;
        let left = self.total.saturating_sub(step) as f64;
        let eta =
            Duration::from_secs_f64(self.start.elapsed().as_secs_f64() / done.max(1.0) * left);
        let width = 24;
        let filled = (width as f64 * step as f64 / self.total.max(1) as f64) as usize;
        eprint!(
            "\r\x1b[2Kstep {step:>6}/{} [{}{}] loss {loss:.4} | {:>7.0} tok/s | ETA {}",
            self.total,
            "#".repeat(filled.min(width)),
            "-".repeat(width - filled.min(width)),
            tokens_per_s,
            clock(eta)
        );
        let _ = std::io::stderr().flush();
    }

    /// Ends the bar's line so other output starts on a fresh one.
    pub fn break_line(&self) {
        if self.enabled {
            eprintln!();
        }
    }
}

/// `1h02m03s`, `2m03s` or `3s`.
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec:02}s"),
        (h, m, sec) => format!("{h}h{m:02}m{sec:02}s"),
    }
}
