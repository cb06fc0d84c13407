//! What long work shows while it runs, on stderr. On a terminal: an indicatif bar on one line that
//! fits the terminal's width, other lines (evaluations) printed above it. Anywhere else (a file, a
//! pipe): a plain line now and then, with no carriage return or escape code. The training bar's time
//! left comes from a smoothed rate ([`Eta`]), not from the average since the first step.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::train::{Event, Settings};

/// How often a plain progress line is printed when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(10);

/// The training bar: the step count, a bar, then the message, truncated to the terminal's width
/// (`wide_msg`) rather than wrapped. The message puts what matters most first.
const TRAIN_TEMPLATE: &str = "step {pos:>5}/{len} [{bar:16}] {wide_msg}";

/// A bar for other work of known size (evaluation batches, BPE merges).
const TASK_TEMPLATE: &str = "{prefix} [{bar:16}] {pos}/{len} {wide_msg}";

/// Where progress goes: an indicatif bar on a terminal, plain lines elsewhere (the time of the last
/// one), or nowhere (JSON output).
enum Display {
    Bar(ProgressBar),
    Plain(Option<Instant>),
    Quiet,
}

impl Display {
    /// A bar for `total` units with `template` when stderr is a terminal, else plain lines; nothing
    /// unless `show`.
    fn new(first: u64, total: u64, template: &str, show: bool) -> Self {
        let target = ProgressDrawTarget::stderr();
        match (show, target.is_hidden()) {
            (false, _) => Display::Quiet,
            (true, true) => Display::Plain(None),
            (true, false) => Self::bar(first, total, template, target),
        }
    }

    /// A bar drawn to `target`.
    fn bar(first: u64, total: u64, template: &str, target: ProgressDrawTarget) -> Self {
        let style = ProgressStyle::with_template(template)
            .expect("a valid template")
            .progress_chars("#>-");
        let bar = ProgressBar::with_draw_target(Some(total), target).with_style(style);
        bar.set_position(first);
        Display::Bar(bar)
    }

    /// Moves the bar to `pos` (with a new `message`, when there is one: setting one redraws); plain
    /// output prints `plain()` when it is time to.
    fn update(
        &mut self,
        pos: u64,
        message: Option<String>,
        plain: impl FnOnce() -> String,
        last: bool,
    ) {
        match self {
            Display::Bar(bar) => {
                bar.set_position(pos);
                if let Some(message) = message {
                    bar.set_message(message);
                }
            }
            Display::Plain(printed) => {
                if last || printed.is_none_or(|t| t.elapsed() >= PLAIN_EVERY) {
                    eprintln!("{}", plain());
                    *printed = Some(Instant::now());
                }
            }
            Display::Quiet => {}
        }
    }

    /// A line above the bar, or a plain line.
    fn println(&self, line: &str) {
        match self {
            Display::Bar(bar) => bar.println(line),
            Display::Plain(_) => eprintln!("{line}"),
            Display::Quiet => {}
        }
    }

    /// Leaves the bar's last state on screen (`clear`: removes it).
    fn finish(&self, clear: bool) {
        match self {
            Display::Bar(bar) if clear => bar.finish_and_clear(),
            Display::Bar(bar) => bar.abandon(),
            _ => {}
        }
    }
}

/// The training run's progress: a bar (or plain lines) from [`Event`]s, evaluations above it.
pub struct TrainProgress {
    display: Display,
    eta: Eta,
    start: Instant,
    total: u32,
    eval_every: u32,
}

impl TrainProgress {
    /// Progress of steps `first + 1 ..= settings.steps`; `show = false` prints nothing (JSON output).
    pub fn new(first: u32, settings: &Settings, show: bool) -> Self {
        let (first, total) = (first as u64, settings.steps as u64);
        Self::with_display(Display::new(first, total, TRAIN_TEMPLATE, show), settings)
    }

    fn with_display(display: Display, settings: &Settings) -> Self {
        TrainProgress {
            display,
            eta: Eta::default(),
            start: Instant::now(),
            total: settings.steps,
            eval_every: settings.eval_every,
        }
    }

    /// Shows a step's loss and speed, or prints an evaluation's line above the bar.
    pub fn event(&mut self, event: &Event) {
        let now = Instant::now();
        match *event {
            Event::Step {
                step,
                loss,
                tokens_per_s,
                ..
            } => {
                self.eta.step(step, now);
                let eta = self.eta_text(step);
                let message = format!("loss {loss:.4} | ETA {eta} | {tokens_per_s:.0} tok/s");
                let elapsed = clock(self.start.elapsed());
                let plain = || {
                    format!(
                        "step {step}/{} loss {loss:.4} | {tokens_per_s:.0} tok/s | {elapsed} elapsed, ETA {eta}",
                        self.total
                    )
                };
                self.display
                    .update(step as u64, Some(message), plain, step == self.total);
            }
            Event::Eval {
                step,
                train_loss,
                val_loss,
            } => {
                self.eta.eval(step, now);
                self.display.println(&format!(
                    "step {step}: train loss {train_loss:.4}, val loss {val_loss:.4}"
                ));
            }
        }
    }

    /// Leaves the bar's last state on screen; what follows starts on a fresh line.
    pub fn finish(&self) {
        self.display.finish(false);
    }

    fn eta_text(&self, step: u32) -> String {
        let evals = evaluations_left(step, self.total, self.eval_every);
        self.eta
            .left(step, self.total, evals)
            .map_or_else(|| "--".into(), clock)
    }
}

/// A bar for work of known size (evaluation batches, BPE merges): `label [####----] 12/50`, plain
/// lines `label: 12/50` every [`PLAIN_EVERY`] when stderr is not a terminal.
pub struct Task {
    display: Display,
    label: Cow<'static, str>,
    total: u64,
}

impl Task {
    /// A bar for `total` units of `label` (nothing unless `show`).
    pub fn new(label: impl Into<Cow<'static, str>>, total: u64, show: bool) -> Self {
        let label = label.into();
        let display = Display::new(0, total, TASK_TEMPLATE, show);
        if let Display::Bar(bar) = &display {
            bar.set_prefix(label.clone());
        }
        Task {
            display,
            label,
            total,
        }
    }

    pub fn set(&mut self, done: u64) {
        let (label, total) = (&self.label, self.total);
        let plain = || format!("{label}: {done}/{total}");
        self.display.update(done, None, plain, false);
    }

    /// Removes the bar (the caller prints the result).
    pub fn finish(&self) {
        self.display.finish(true);
    }
}

/// A spinner with the elapsed time for work of unknown length (encoding a corpus), on a terminal
/// only; `None` elsewhere. Finish it with `finish_and_clear`.
pub fn spinner(message: impl Into<Cow<'static, str>>) -> Option<ProgressBar> {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if bar.is_hidden() {
        return None;
    }
    let style =
        ProgressStyle::with_template("{spinner} {wide_msg} {elapsed}").expect("a valid template");
    bar.set_style(style);
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(100));
    Some(bar)
}

/// The time a run has left, from a smoothed rate: seconds per step as an exponential moving average
/// over the intervals between reported steps (the first report only starts the clock: its interval
/// includes building the pipelines), plus the evaluations still to come at the last one's duration.
#[derive(Default)]
struct Eta {
    last: Option<(u32, Instant)>,
    per_step: Option<f64>,
    per_eval: f64,
}

impl Eta {
    /// Weight of the newest interval in the moving average.
    const SMOOTHING: f64 = 0.3;

    /// `step` was reported at `now`.
    fn step(&mut self, step: u32, now: Instant) {
        if let Some((s0, t0)) = self.last.filter(|&(s0, _)| step > s0) {
            let rate = now.duration_since(t0).as_secs_f64() / (step - s0) as f64;
            self.per_step = Some(match self.per_step {
                Some(r) => r + Self::SMOOTHING * (rate - r),
                None => rate,
            });
        }
        self.last = Some((step, now));
    }

    /// An evaluation after `step` ended at `now` (its time is what the steps since the last report
    /// do not account for).
    fn eval(&mut self, step: u32, now: Instant) {
        if let Some((s0, t0)) = self.last {
            let steps = step.saturating_sub(s0) as f64 * self.per_step.unwrap_or(0.0);
            self.per_eval = (now.duration_since(t0).as_secs_f64() - steps).max(0.0);
        }
        self.last = Some((step, now));
    }

    /// Time left at `step` of `total` with `evals` evaluations to come; None before a rate is known.
    fn left(&self, step: u32, total: u32, evals: u32) -> Option<Duration> {
        let per_step = self.per_step?;
        let seconds = total.saturating_sub(step) as f64 * per_step + evals as f64 * self.per_eval;
        Some(Duration::from_secs_f64(seconds))
    }
}

/// Evaluations after `step` in a run of `total` steps evaluating every `every` (and at the end).
fn evaluations_left(step: u32, total: u32, every: u32) -> u32 {
    if every == 0 || step >= total {
        return 0;
    }
    total / every - step / every + u32::from(!total.is_multiple_of(every))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};

    /// A terminal `width` columns wide: what is drawn on it lands in rows, a line longer than the
    /// width wrapping onto the next row (after the last column, as terminals do).
    #[derive(Debug, Clone)]
    struct Screen {
        width: u16,
        cells: Arc<Mutex<Cells>>,
    }

    /// The screen's rows and the cursor.
    #[derive(Debug, Default)]
    struct Cells {
        rows: Vec<Vec<char>>,
        row: usize,
        col: usize,
    }

    impl Cells {
        fn move_to(&mut self, row: usize, col: usize) {
            if self.rows.len() <= row {
                self.rows.resize(row + 1, Vec::new());
            }
            (self.row, self.col) = (row, col);
        }

        fn put(&mut self, c: char, width: usize) {
            match c {
                '\r' => self.move_to(self.row, 0),
                '\n' => self.move_to(self.row + 1, 0),
                c => {
                    if self.col == width {
                        self.move_to(self.row + 1, 0);
                    }
                    let (row, col) = (self.row, self.col);
                    self.move_to(row, col);
                    let line = &mut self.rows[row];
                    line.resize(line.len().max(col + 1), ' ');
                    line[col] = c;
                    self.col += 1;
                }
            }
        }
    }

    impl Screen {
        fn new(width: u16) -> Self {
            Screen {
                width,
                cells: Arc::default(),
            }
        }

        /// The rows with text, trailing spaces removed.
        fn rows(&self) -> Vec<String> {
            let cells = self.cells.lock().unwrap();
            (cells.rows.iter())
                .map(|row| row.iter().collect::<String>().trim_end().to_string())
                .filter(|row| !row.is_empty())
                .collect()
        }

        fn move_rows(&self, by: impl FnOnce(usize) -> usize) {
            let mut cells = self.cells.lock().unwrap();
            let row = by(cells.row);
            cells.move_to(row, 0);
        }
    }

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            self.width
        }
        fn move_cursor_up(&self, n: usize) -> io::Result<()> {
            self.move_rows(|row| row.saturating_sub(n));
            Ok(())
        }
        fn move_cursor_down(&self, n: usize) -> io::Result<()> {
            self.move_rows(|row| row + n);
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> io::Result<()> {
            self.write_str(&format!("{s}\n"))
        }
        fn write_str(&self, s: &str) -> io::Result<()> {
            let mut cells = self.cells.lock().unwrap();
            s.chars().for_each(|c| cells.put(c, self.width as usize));
            Ok(())
        }
        fn clear_line(&self) -> io::Result<()> {
            let mut cells = self.cells.lock().unwrap();
            let row = cells.row;
            cells.move_to(row, 0);
            cells.rows[row].clear();
            Ok(())
        }
        fn flush(&self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A long run drawn on `screen` at its widest values: 99,999 steps, a loss above 10, ten million
    /// tokens/s and a time left of days.
    fn draw_widest(screen: &Screen) {
        let settings = Settings {
            steps: 99_999,
            eval_every: 0,
            ..Settings::default()
        };
        let target = ProgressDrawTarget::term_like(Box::new(screen.clone()));
        let display = Display::bar(0, 99_999, TRAIN_TEMPLATE, target);
        let mut progress = TrainProgress::with_display(display, &settings);
        progress.eta.per_step = Some(3.6);
        progress.eta.last = Some((99_990, Instant::now()));
        progress.event(&Event::Eval {
            step: 10,
            train_loss: 10.1234,
            val_loss: 10.2345,
        });
        progress.event(&Event::Step {
            step: 10,
            loss: 10.1234,
            lr: 1e-3,
            tokens_per_s: 9_999_999.0,
        });
        progress.finish();
    }

    #[test]
    fn the_training_bar_fits_an_80_column_terminal_and_evaluations_print_above_it() {
        let screen = Screen::new(80);
        draw_widest(&screen);
        let rows = screen.rows();
        assert_eq!(
            rows.len(),
            2,
            "one evaluation line, then one bar line: {rows:#?}"
        );
        assert_eq!(rows[0], "step 10: train loss 10.1234, val loss 10.2345");
        assert!(
            rows[1].starts_with("step    10/99999 [")
                && rows[1].ends_with("] loss 10.1234 | ETA 99h59m20s | 9999999 tok/s"),
            "{rows:#?}"
        );
    }

    #[test]
    fn on_a_narrow_terminal_the_bar_is_cut_rather_than_wrapped() {
        let screen = Screen::new(50);
        draw_widest(&screen);
        let rows = screen.rows();
        assert_eq!(rows.len(), 2, "{rows:#?}");
        assert!(
            rows[1].starts_with("step    10/99999 [") && rows[1].contains("loss"),
            "{rows:#?}"
        );
    }

    #[test]
    fn time_left_comes_from_recent_steps_and_counts_evaluations_to_come() {
        let t0 = Instant::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        let mut eta = Eta::default();
        // The first report comes after building the pipelines: a minute for one step.
        eta.step(1, at(60.0));
        assert_eq!(eta.left(1, 2000, 0), None);
        // Then 0.1 s per step.
        eta.step(10, at(60.9));
        eta.step(20, at(61.9));
        let left = eta.left(20, 2000, 0).unwrap().as_secs_f64();
        assert!((left - 198.0).abs() < 1.0, "{left}");
        // An evaluation of 5 s at step 250 (reported with step 250), then 7 more to come.
        eta.step(250, at(84.9));
        eta.eval(250, at(89.9));
        let evals = evaluations_left(250, 2000, 250);
        assert_eq!(evals, 7);
        let left = eta.left(250, 2000, evals).unwrap().as_secs_f64();
        assert!((left - (175.0 + 35.0)).abs() < 1.0, "{left}");
    }

    #[test]
    fn evaluations_left_include_the_final_one() {
        assert_eq!(evaluations_left(0, 2000, 250), 8);
        assert_eq!(evaluations_left(0, 100, 30), 4);
        assert_eq!(evaluations_left(99, 100, 30), 1);
        assert_eq!(evaluations_left(100, 100, 30), 0);
        assert_eq!(evaluations_left(0, 100, 0), 0);
    }

    #[test]
    fn clock_reads_hours_minutes_and_seconds() {
        assert_eq!(clock(Duration::from_secs(3)), "3s");
        assert_eq!(clock(Duration::from_secs(123)), "2m03s");
        assert_eq!(clock(Duration::from_secs(3723)), "1h02m03s");
    }
}
