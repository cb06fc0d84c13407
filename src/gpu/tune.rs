//! Autotuning: choosing among a kernel's variants (or tile sizes) by timing them on this adapter.
//!
//! On first use of a key (a kernel and a shape class: `"layernorm_forward/1024x768"`), [`Gpu::tune`]
//! builds each candidate's dispatches, runs each once untimed (drivers such as lavapipe compile on first
//! use), times each in a few interleaved rounds of about a millisecond (a few milliseconds in all), and
//! keeps the fastest: in memory, and in `<cache>/wgpt/autotune-<adapter>-<backend>.json` beside the
//! adapter, driver and wgpu version it was measured on. Later uses, in this run or a later one, take the
//! choice without timing. A stale file (another driver or wgpu version) or a corrupt one is ignored
//! with a one-line warning and rewritten.
//!
//! Candidates must give bit-identical results: training losses stay the same with or without
//! tuning, from run to run and across a resume, whatever the timings say. Variants of a kernel that
//! round differently are chosen by the kernel's fixed heuristic, and only their launch shapes are
//! tuned (layernorm: the rows per workgroup of its row-per-invocation variant).
//!
//! A context starts with tuning off ([`Tuner::off`]): each key takes the caller's heuristic, so results
//! are the same from run to run, as tests need. Programs turn it on with [`Gpu::autotuned`], unless
//! `WGPT_AUTOTUNE=off`. The timing source is a [`Clock`], so tests can inject timings.
//!
//! A kernel module offers its variants like this (the heuristic is what it would choose untimed):
//!
//! ```no_run
//! # use wgpt::gpu::{Dispatch, Gpu};
//! # fn launch_on_scratch(gpu: &Gpu, tile: u32) -> wgpt::Result<Vec<Dispatch>> { todo!() }
//! # fn tile(gpu: &Gpu, m: usize, n: usize, k: usize) -> wgpt::Result<u32> {
//! let tiles = [("tile32", 32), ("tile64", 64)];
//! let heuristic = if gpu.is_cpu() { 32 } else { 64 };
//! let key = format!("matmul/{}x{n}x{k}", m.next_power_of_two());
//! gpu.tune(&key, &tiles, heuristic, |&tile| launch_on_scratch(gpu, tile))
//! # }
//! ```
//!
//! `build` runs only when a key is timed. Its dispatches run several times, so they should write
//! scratch tensors of the shape, not a plan's. A candidate whose dispatches fail to build or compile is
//! left out; with none left, the heuristic stands.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::gpu::user_cache::{self, AdapterKey};
use crate::gpu::{Dispatch, Gpu, GpuTimer};

/// Where a candidate's time comes from.
pub trait Clock: Send + Sync {
    /// The time of one run of `dispatches` (of candidate `name`) when they run `repeat` times back to
    /// back, the GPU done.
    fn time(
        &self,
        gpu: &Gpu,
        name: &str,
        dispatches: &[Dispatch],
        repeat: usize,
    ) -> Result<Duration>;
}

/// [`GpuTimer`]'s time: timestamps around the pass where the adapter has them, else the wall clock
/// around submit and wait.
#[derive(Default)]
pub struct GpuClock {
    timer: OnceLock<GpuTimer>,
}

impl Clock for GpuClock {
    fn time(&self, gpu: &Gpu, _: &str, dispatches: &[Dispatch], repeat: usize) -> Result<Duration> {
        let timer = self.timer.get_or_init(|| GpuTimer::new(gpu));
        timer.time(gpu, dispatches, repeat)
    }
}

/// Timed rounds per candidate (the least of them counts: interference only adds time).
const ROUNDS: usize = 3;
/// The time one round aims at, by repeating short dispatches.
const ROUND: Duration = Duration::from_millis(1);
const MAX_REPEAT: usize = 64;

/// Choices of one context: off, or timing with a clock and remembering in a file.
pub struct Tuner {
    tuning: Option<Tuning>,
}

struct Tuning {
    made_on: AdapterKey,
    /// Where choices persist; `None`: in memory only.
    file: Option<PathBuf>,
    clock: Box<dyn Clock>,
    /// Choice (candidate name) by key; held while a key is timed, so that each key is timed once and
    /// no two timings overlap.
    choices: Mutex<BTreeMap<String, String>>,
    /// A failed save is reported once.
    warned: AtomicBool,
}

/// The autotune file: where it was measured, and the choices.
#[derive(Serialize, Deserialize)]
struct ChoiceFile {
    #[serde(flatten)]
    made_on: AdapterKey,
    choices: BTreeMap<String, String>,
}

impl Tuner {
    /// Every key takes its heuristic.
    pub fn off() -> Self {
        Tuner { tuning: None }
    }

    /// Timing with `clock` on the adapter of `made_on`, remembering choices in `file` (read now). A
    /// stale or corrupt file is ignored; its problem is returned for the caller to report.
    pub fn new(
        made_on: AdapterKey,
        file: Option<PathBuf>,
        clock: Box<dyn Clock>,
    ) -> (Self, Option<String>) {
        let (choices, problem) = match &file {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => match parse(&text, &made_on) {
                    Ok(choices) => (choices, None),
                    Err(problem) => (BTreeMap::new(), Some(problem)),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => (BTreeMap::new(), None),
                Err(e) => (
                    BTreeMap::new(),
                    Some(format!("unreadable autotune cache ({e})")),
                ),
            },
            None => (BTreeMap::new(), None),
        };
        let tuning = Tuning {
            made_on,
            file,
            clock,
            choices: Mutex::new(choices),
            warned: AtomicBool::new(false),
        };
        let problem = problem.map(|p| format!("{p}; ignored, tuning afresh"));
        (
            Tuner {
                tuning: Some(tuning),
            },
            problem,
        )
    }

    pub fn is_on(&self) -> bool {
        self.tuning.is_some()
    }

    /// The candidate chosen for `key`, if one was.
    pub fn choice(&self, key: &str) -> Option<String> {
        let choices = self.tuning.as_ref()?.choices.lock().ok()?;
        choices.get(key).cloned()
    }
}

/// The choices in an autotune file's `text` for adapter `key`, or why they do not serve.
fn parse(text: &str, key: &AdapterKey) -> std::result::Result<BTreeMap<String, String>, String> {
    let file: ChoiceFile =
        serde_json::from_str(text).map_err(|e| format!("corrupt autotune cache ({e})"))?;
    match file.made_on.stale_for(key) {
        Some(why) => Err(format!("stale autotune cache ({why})")),
        None => Ok(file.choices),
    }
}

impl Tuning {
    /// The fastest of `built` by [`ROUNDS`] interleaved timings after an untimed run of each, with
    /// each candidate's repeat count set so that a round takes about [`ROUND`].
    fn fastest<'a, T>(
        &self,
        gpu: &Gpu,
        built: &'a [(&'static str, T, Vec<Dispatch>)],
    ) -> Result<Option<&'a (&'static str, T, Vec<Dispatch>)>> {
        let mut repeats = Vec::with_capacity(built.len());
        for (name, _, dispatches) in built {
            self.clock.time(gpu, name, dispatches, 1)?;
            let once = self.clock.time(gpu, name, dispatches, 1)?.as_secs_f64();
            let repeat = ROUND.as_secs_f64() / once.max(1e-7);
            repeats.push(repeat.clamp(1.0, MAX_REPEAT as f64) as usize);
        }
        let mut best = vec![Duration::MAX; built.len()];
        for _ in 0..ROUNDS {
            for (i, (name, _, dispatches)) in built.iter().enumerate() {
                let time = self.clock.time(gpu, name, dispatches, repeats[i])?;
                best[i] = best[i].min(time);
            }
        }
        Ok(built
            .iter()
            .zip(&best)
            .min_by_key(|(_, t)| **t)
            .map(|(b, _)| b))
    }

    /// Writes `choices` over the file's (another process may have added some), atomically.
    fn save(&self, choices: &BTreeMap<String, String>) {
        let Some(path) = &self.file else {
            return;
        };
        let mut all = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| parse(&text, &self.made_on).ok())
            .unwrap_or_default();
        all.extend(choices.iter().map(|(k, v)| (k.clone(), v.clone())));
        let file = ChoiceFile {
            made_on: self.made_on.clone(),
            choices: all,
        };
        let written = serde_json::to_vec_pretty(&file)
            .map_err(|e| Error::Invalid(e.to_string()))
            .and_then(|bytes| user_cache::write_atomically(path, &bytes));
        if let Err(e) = written {
            if !self.warned.swap(true, Ordering::Relaxed) {
                user_cache::warn(path, &format!("autotune choices not saved: {e}"));
            }
        }
    }
}

impl Gpu {
    /// This context with autotuning on, unless `WGPT_AUTOTUNE=off` (or `0`, `false`): timed on the
    /// GPU, remembered in the user's cache directory. A stale or corrupt file there is one warning.
    pub fn autotuned(mut self) -> Self {
        let off = std::env::var("WGPT_AUTOTUNE")
            .is_ok_and(|v| ["off", "0", "false"].contains(&v.to_lowercase().as_str()));
        if !off {
            let made_on = AdapterKey::of(self.info());
            let file = user_cache::dir().map(|d| d.join(made_on.file_name("autotune", "json")));
            let (tuner, problem) = Tuner::new(made_on, file.clone(), Box::<GpuClock>::default());
            if let (Some(problem), Some(path)) = (problem, &file) {
                user_cache::warn(path, &problem);
            }
            self.tuner = tuner;
        }
        self
    }

    /// Replaces the tuner (tests inject one with a clock of their own).
    pub fn set_tuner(&mut self, tuner: Tuner) {
        self.tuner = tuner;
    }

    pub fn tuner(&self) -> &Tuner {
        &self.tuner
    }

    /// The candidate for `key`: `heuristic` when tuning is off, else the remembered choice, else the
    /// fastest of the candidates whose dispatches `build` makes (see the module's documentation); a
    /// single candidate is taken untimed.
    ///
    /// The candidates must compute bit-identical results (another workgroup size, another spread of
    /// the same per-element arithmetic), so that a run's numbers never depend on timings or on what a
    /// cache file says: variants that round differently are the caller's fixed choice, not candidates.
    pub fn tune<T: Copy>(
        &self,
        key: &str,
        candidates: &[(&'static str, T)],
        heuristic: T,
        build: impl Fn(&T) -> Result<Vec<Dispatch>>,
    ) -> Result<T> {
        let Some(tuning) = &self.tuner.tuning else {
            return Ok(heuristic);
        };
        if let [(_, only)] = candidates {
            return Ok(*only);
        }
        let mut choices = tuning
            .choices
            .lock()
            .map_err(|_| Error::gpu("autotuning", "poisoned by an earlier panic"))?;
        let remembered = choices.get(key);
        if let Some(&(_, c)) = remembered.and_then(|r| candidates.iter().find(|c| c.0 == r)) {
            return Ok(c);
        }
        let built: Vec<_> = candidates
            .iter()
            .filter_map(|&(name, c)| {
                let dispatches = build(&c).ok()?;
                dispatches
                    .iter()
                    .all(|d| d.ready().is_ok())
                    .then_some((name, c, dispatches))
            })
            .collect();
        let Some(&(name, choice, _)) = tuning.fastest(self, &built)? else {
            return Ok(heuristic);
        };
        choices.insert(key.to_string(), name.to_string());
        tuning.save(&choices);
        Ok(choice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::user_cache::WGPU_VERSION;

    fn key() -> AdapterKey {
        AdapterKey {
            adapter: "llvmpipe".into(),
            backend: "vulkan".into(),
            driver: "Mesa 22.3.6".into(),
            wgpu: WGPU_VERSION.into(),
        }
    }

    /// A clock that must not be asked: these tests time nothing.
    struct NoClock;

    impl Clock for NoClock {
        fn time(&self, _: &Gpu, name: &str, _: &[Dispatch], _: usize) -> Result<Duration> {
            panic!("timed {name}")
        }
    }

    /// A file of its own for a test, in the temp dir (which each test removes again, so a run leaves
    /// nothing behind), named for the process and the test.
    fn scratch_file(name: &str) -> PathBuf {
        let file = format!("wgpt-tune-{}-{name}", std::process::id());
        let path = std::env::temp_dir().join(file);
        let _ = std::fs::remove_file(&path);
        path
    }

    #[test]
    fn choices_round_trip_through_the_file() {
        let path = scratch_file("round-trip.json");
        let (tuner, problem) = Tuner::new(key(), Some(path.clone()), Box::new(NoClock));
        assert_eq!(problem, None, "no file yet is no problem");
        let choices = BTreeMap::from([("layernorm_forward/1024x128".into(), "invocation".into())]);
        tuner.tuning.as_ref().unwrap().save(&choices);
        let (again, problem) = Tuner::new(key(), Some(path.clone()), Box::new(NoClock));
        assert_eq!(problem, None);
        let remembered = again.choice("layernorm_forward/1024x128");
        assert_eq!(remembered.as_deref(), Some("invocation"));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_corrupt_file_is_ignored_with_a_warning() {
        let path = scratch_file("corrupt.json");
        std::fs::write(&path, "{\"adapter\": \"llvmpipe\", \"choi").unwrap();
        let (tuner, problem) = Tuner::new(key(), Some(path.clone()), Box::new(NoClock));
        let problem = problem.expect("a warning");
        assert!(problem.starts_with("corrupt autotune cache"), "{problem}");
        assert!(!problem.contains('\n'), "one line: {problem}");
        assert!(tuner.is_on() && tuner.choice("anything").is_none());
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_file_of_another_driver_or_wgpu_is_stale_and_ignored() {
        let path = scratch_file("stale.json");
        for made_on in [
            AdapterKey {
                driver: "Mesa 21.0".into(),
                ..key()
            },
            AdapterKey {
                wgpu: "29".into(),
                ..key()
            },
        ] {
            let file = ChoiceFile {
                made_on,
                choices: BTreeMap::from([("k".into(), "v".into())]),
            };
            std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
            let (tuner, problem) = Tuner::new(key(), Some(path.clone()), Box::new(NoClock));
            let problem = problem.expect("a warning");
            assert!(problem.starts_with("stale autotune cache"), "{problem}");
            assert_eq!(tuner.choice("k"), None);
        }
        std::fs::remove_file(path).unwrap();
    }
}
