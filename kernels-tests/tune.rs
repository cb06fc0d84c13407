//! Autotuning through a kernel's variants (layernorm's) with injected timings: the tuner takes the
//! fastest candidate that fits, remembers it without timing again, in this context and through its
//! file in the next, and with tuning off takes the heuristic. Each test has a GPU context of its own.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wgpt::gpu::{AdapterKey, Clock, Dispatch, Tuner};
use wgpt::kernels::layernorm::{Pass, Variant};
use wgpt::{Gpu, Result, Tensor};

/// Times by candidate name, counting how often it is asked.
struct Injected {
    times: HashMap<&'static str, Duration>,
    asked: Arc<AtomicUsize>,
}

impl Clock for Injected {
    fn time(&self, _: &Gpu, name: &str, _: &[Dispatch], _: usize) -> Result<Duration> {
        self.asked.fetch_add(1, Ordering::Relaxed);
        Ok(self.times[name])
    }
}

/// A context tuning with `times` (in microseconds) into `file`, and its clock's count of timings.
fn tuned_gpu(times: [(&'static str, u64); 2], file: &Path) -> (Gpu, Arc<AtomicUsize>) {
    let mut gpu = Gpu::new().expect("a GPU adapter");
    let asked = Arc::new(AtomicUsize::new(0));
    let clock = Injected {
        times: times
            .into_iter()
            .map(|(n, us)| (n, Duration::from_micros(us)))
            .collect(),
        asked: asked.clone(),
    };
    let key = AdapterKey::of(gpu.info());
    let (tuner, problem) = Tuner::new(key, Some(file.to_path_buf()), Box::new(clock));
    assert_eq!(problem, None);
    gpu.set_tuner(tuner);
    (gpu, asked)
}

fn scratch_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgpt-kernels-tune-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

fn shape(gpu: &Gpu, rows: usize, cols: usize) -> (Tensor, Tensor) {
    (
        gpu.zeros("x", &[rows, cols]).unwrap(),
        gpu.zeros("gain", &[cols]).unwrap(),
    )
}

#[test]
fn the_tuner_picks_the_fastest_candidate_given_injected_timings() {
    for (times, want) in [
        ([("workgroup", 10), ("invocation", 30)], Variant::Workgroup),
        ([("workgroup", 30), ("invocation", 10)], Variant::Invocation),
    ] {
        let file = scratch_file(&format!("fastest-{}.json", want.name()));
        let (gpu, asked) = tuned_gpu(times, &file);
        let (x, gain) = shape(&gpu, 96, 64);
        for pass in [Pass::Forward, Pass::Backward] {
            assert_eq!(Variant::tuned(&gpu, pass, &x, &gain).unwrap(), want);
        }
        let timed = asked.load(Ordering::Relaxed);
        assert!(timed > 0);
        // Remembered: the same shape class (rows to a power of two) is not timed again.
        let (x, gain) = shape(&gpu, 100, 64);
        assert_eq!(
            Variant::tuned(&gpu, Pass::Forward, &x, &gain).unwrap(),
            want
        );
        assert_eq!(asked.load(Ordering::Relaxed), timed);
        assert_eq!(
            gpu.tuner().choice("layernorm_forward/128x64").as_deref(),
            Some(want.name())
        );
        std::fs::remove_file(file).unwrap();
    }
}

#[test]
fn a_choice_persists_to_the_next_context_which_times_nothing() {
    let file = scratch_file("persist.json");
    let (gpu, _) = tuned_gpu([("workgroup", 10), ("invocation", 30)], &file);
    let (x, gain) = shape(&gpu, 32, 48);
    assert_eq!(
        Variant::tuned(&gpu, Pass::Forward, &x, &gain).unwrap(),
        Variant::Workgroup
    );
    drop(gpu);
    // The next run's clock would pick the other variant; the file's choice stands.
    let (gpu, asked) = tuned_gpu([("workgroup", 30), ("invocation", 10)], &file);
    let (x, gain) = shape(&gpu, 32, 48);
    assert_eq!(
        Variant::tuned(&gpu, Pass::Forward, &x, &gain).unwrap(),
        Variant::Workgroup
    );
    assert_eq!(asked.load(Ordering::Relaxed), 0);
    std::fs::remove_file(file).unwrap();
}

#[test]
fn only_variants_that_fit_the_shape_are_candidates() {
    let file = scratch_file("fits.json");
    let (gpu, _) = tuned_gpu([("workgroup", 30), ("invocation", 10)], &file);
    // Rows longer than a CPU adapter's row-per-invocation loops allow.
    let (x, gain) = shape(&gpu, 2, 5000);
    let chosen = Variant::tuned(&gpu, Pass::Forward, &x, &gain).unwrap();
    assert!(chosen.fits(&gpu, 5000), "{chosen:?}");
    std::fs::remove_file(file).unwrap();
}

#[test]
fn with_tuning_off_the_heuristic_stands() {
    let gpu = Gpu::new().expect("a GPU adapter");
    assert!(!gpu.tuner().is_on());
    let (x, gain) = shape(&gpu, 96, 64);
    for pass in [Pass::Forward, Pass::Backward] {
        let chosen = Variant::tuned(&gpu, pass, &x, &gain).unwrap();
        assert_eq!(chosen, Variant::best(&gpu, 64));
    }
}
