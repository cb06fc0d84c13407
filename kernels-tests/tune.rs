//! Autotuning through layernorm's launches with injected timings: the tuner takes the fastest
//! candidate, remembers it without timing again, in this context and through its file in the next,
//! never switches between variants that round differently, and with tuning off takes the heuristic.
//! Every launch it may choose gives the same bits. Each test has a GPU context of its own.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wgpt::gpu::{AdapterKey, Clock, Dispatch, Tuner};
use wgpt::kernels::layernorm::{self, Launch, Pass, Variant};
use wgpt::{Gpu, Result, Tensor};

use crate::common::random;

/// Times by candidate name (a name not listed takes a second), counting how often it is asked.
struct Injected {
    times: HashMap<&'static str, Duration>,
    asked: Arc<AtomicUsize>,
}

impl Clock for Injected {
    fn time(&self, _: &Gpu, name: &str, _: &[Dispatch], _: usize) -> Result<Duration> {
        self.asked.fetch_add(1, Ordering::Relaxed);
        Ok(self
            .times
            .get(name)
            .copied()
            .unwrap_or(Duration::from_secs(1)))
    }
}

/// A context tuning with `times` (in microseconds) into `file`, and its clock's count of timings.
fn tuned_gpu(times: &[(&'static str, u64)], file: &Path) -> (Gpu, Arc<AtomicUsize>) {
    let mut gpu = Gpu::new().expect("a GPU adapter");
    let asked = Arc::new(AtomicUsize::new(0));
    let clock = Injected {
        times: times
            .iter()
            .map(|&(n, us)| (n, Duration::from_micros(us)))
            .collect(),
        asked: asked.clone(),
    };
    let key = AdapterKey::of(gpu.info());
    let (tuner, problem) = Tuner::new(key, Some(file.to_path_buf()), Box::new(clock));
    assert_eq!(problem, None);
    gpu.set_tuner(tuner);
    (gpu, asked)
}

/// A file of its own for a test, in the temp dir (which each test removes again, so a run leaves
/// nothing behind), named for the process and the test.
fn scratch_file(name: &str) -> PathBuf {
    let file = format!("wgpt-kernels-tune-{}-{name}", std::process::id());
    let path = std::env::temp_dir().join(file);
    let _ = std::fs::remove_file(&path);
    path
}

fn shape(gpu: &Gpu, rows: usize, cols: usize) -> (Tensor, Tensor) {
    (
        gpu.zeros("x", &[rows, cols]).unwrap(),
        gpu.zeros("gain", &[cols]).unwrap(),
    )
}

/// The launch named `name` among `variant`'s candidates.
fn named(variant: Variant, name: &str) -> Launch {
    let candidates = Launch::candidates(variant);
    candidates.iter().find(|c| c.0 == name).unwrap().1
}

#[test]
fn the_tuner_picks_the_fastest_candidate_given_injected_timings() {
    for fastest in ["invocation/16", "invocation/64"] {
        let file = scratch_file(&format!("fastest-{}.json", fastest.replace('/', "-")));
        // The other variant is fastest of all, but rounds differently: never a candidate.
        let times = [("workgroup", 1), (fastest, 10), ("invocation/8", 30)];
        let (gpu, asked) = tuned_gpu(&times, &file);
        let variant = Variant::best(&gpu, 64);
        let want = match variant {
            Variant::Invocation => named(variant, fastest),
            Variant::Workgroup => Launch::from(variant),
        };
        let (x, gain) = shape(&gpu, 96, 64);
        for pass in [Pass::Forward, Pass::Backward] {
            assert_eq!(Variant::tuned(&gpu, pass, &x, &gain).unwrap(), want);
        }
        let timed = asked.load(Ordering::Relaxed);
        // A variant with one launch (workgroup, on GPUs) is taken untimed.
        assert_eq!(timed > 0, variant == Variant::Invocation, "{timed} timings");
        // Remembered: the same shape class (rows to a power of two) is not timed again.
        let (x, gain) = shape(&gpu, 100, 64);
        assert_eq!(
            Variant::tuned(&gpu, Pass::Forward, &x, &gain).unwrap(),
            want
        );
        assert_eq!(asked.load(Ordering::Relaxed), timed);
        if variant == Variant::Invocation {
            assert_eq!(
                gpu.tuner().choice("layernorm_forward/128x64").as_deref(),
                Some(fastest)
            );
        }
        let _ = std::fs::remove_file(file);
    }
}

#[test]
fn a_choice_persists_to_the_next_context_which_times_nothing() {
    let file = scratch_file("persist.json");
    let (gpu, _) = tuned_gpu(&[("invocation/16", 10), ("invocation/32", 30)], &file);
    let (x, gain) = shape(&gpu, 32, 48);
    let first = Variant::tuned(&gpu, Pass::Forward, &x, &gain).unwrap();
    drop(gpu);
    // The next run's clock would pick another launch; the file's choice stands.
    let (gpu, asked) = tuned_gpu(&[("invocation/16", 30), ("invocation/32", 10)], &file);
    let (x, gain) = shape(&gpu, 32, 48);
    assert_eq!(
        Variant::tuned(&gpu, Pass::Forward, &x, &gain).unwrap(),
        first
    );
    assert_eq!(asked.load(Ordering::Relaxed), 0);
    let _ = std::fs::remove_file(file);
}

#[test]
fn tuning_never_switches_between_variants_that_round_differently() {
    let file = scratch_file("variants.json");
    // Whatever the clock says, the variant is the heuristic's: for rows a row per invocation takes on
    // this adapter and rows longer than a CPU adapter's row-per-invocation loops allow.
    let times = [("workgroup", 1), ("invocation/8", 1)];
    let (gpu, _) = tuned_gpu(&times, &file);
    for cols in [64, 5000] {
        let (x, gain) = shape(&gpu, 2, cols);
        for pass in [Pass::Forward, Pass::Backward] {
            let chosen = Variant::tuned(&gpu, pass, &x, &gain).unwrap();
            assert_eq!(chosen.variant, Variant::best(&gpu, cols), "{cols} columns");
            assert!(chosen.variant.fits(&gpu, cols), "{chosen:?}");
        }
    }
    let _ = std::fs::remove_file(file);
}

#[test]
fn with_tuning_off_the_heuristic_stands() {
    let gpu = Gpu::new().expect("a GPU adapter");
    assert!(!gpu.tuner().is_on());
    let (x, gain) = shape(&gpu, 96, 64);
    for pass in [Pass::Forward, Pass::Backward] {
        let chosen = Variant::tuned(&gpu, pass, &x, &gain).unwrap();
        assert_eq!(chosen, Launch::from(Variant::best(&gpu, 64)));
    }
}

/// The bits of layernorm's forward (y, mean, rstd) and backward (dx) over `x` with `launch`.
fn layernorm_bits(gpu: &Gpu, launch: Launch, rows: usize, cols: usize) -> Vec<Vec<u32>> {
    let n = rows * cols;
    // Rows with a large offset, so that a change in reduction order would show.
    let x: Vec<f32> = random(1, n).iter().map(|v| v * 3.0 + 7.0).collect();
    let up = |name: &str, shape: &[usize], data: &[f32]| gpu.upload(name, shape, data).unwrap();
    let (xt, gain, bias) = (
        up("x", &[rows, cols], &x),
        up("gain", &[cols], &random(2, cols)),
        up("bias", &[cols], &random(3, cols)),
    );
    let dy = up("dy", &[rows, cols], &random(4, n));
    let zeros = |shape: &[usize]| gpu.zeros("out", shape).unwrap();
    let (y, mean, rstd, dx) = (
        zeros(&[rows, cols]),
        zeros(&[rows]),
        zeros(&[rows]),
        zeros(&[rows, cols]),
    );
    let forward = layernorm::forward(gpu, launch, &xt, &gain, Some(&bias), &y, &mean, &rstd, 1e-5);
    let backward = layernorm::backward(gpu, launch, &xt, &gain, &mean, &rstd, &dy, &dx);
    gpu.run_dispatches(&[forward.unwrap(), backward.unwrap()])
        .unwrap();
    [y, mean, rstd, dx]
        .iter()
        .map(|t| {
            let v: Vec<f32> = gpu.read(t).unwrap();
            v.iter().map(|f| f.to_bits()).collect()
        })
        .collect()
}

#[test]
fn every_launch_the_tuner_may_choose_gives_bit_identical_results() {
    let gpu = crate::common::gpu();
    // vec4 and scalar rows; row counts on both sides of every group size.
    for (rows, cols) in [(97, 64), (300, 67), (5, 48)] {
        for variant in Variant::ALL.into_iter().filter(|v| v.fits(gpu, cols)) {
            let candidates = Launch::candidates(variant);
            let first = layernorm_bits(gpu, candidates[0].1, rows, cols);
            for (name, launch) in &candidates[1..] {
                let got = layernorm_bits(gpu, *launch, rows, cols);
                for (i, what) in ["y", "mean", "rstd", "dx"].iter().enumerate() {
                    let differ = first[i].iter().zip(&got[i]).position(|(a, b)| a != b);
                    assert_eq!(
                        differ, None,
                        "{name} vs {}: {what} [{rows}, {cols}] differs",
                        candidates[0].0
                    );
                }
            }
        }
    }
}
