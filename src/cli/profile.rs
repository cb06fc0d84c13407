//! `wgpt train --profile` and `wgpt sample --profile`: whether the GPU ever waited for the CPU during a
//! training run, and where a training or decode step's GPU time goes, per kernel family.

use std::time::Duration;

use crate::error::Result;
use crate::gpu::Gpu;
use crate::model::{Plan, ProfileRow, Work};
use crate::train::{Exchange, StepTimeline};

/// Rounds each op is timed, the median kept.
const ROUNDS: usize = 3;

/// Times every op of `plan` (a training or decode step) alone and prints the table: ms per step, share of the summed time,
/// dispatches, and the rate (GFLOP/s for products and attention, GB/s for the rest).
pub fn print_profile(gpu: &Gpu, plan: &Plan, what: &str) -> Result<()> {
    let rows = plan.profile(gpu, ROUNDS)?;
    let total: f64 = rows.iter().map(|r| r.time.as_secs_f64()).sum();
    eprintln!(
        "profile of {what}: {} dispatches per step; each op timed alone, median of {ROUNDS}",
        plan.dispatch_count()
    );
    eprintln!(
        "{:<24} {:>10} {:>7} {:>10} {:>14}",
        "kernel", "ms/step", "share", "dispatches", "rate"
    );
    for row in &rows {
        let seconds = row.time.as_secs_f64();
        eprintln!(
            "{:<24} {:>10.2} {:>6.1}% {:>10} {:>14}",
            row.kind,
            seconds * 1e3,
            100.0 * seconds / total.max(f64::MIN_POSITIVE),
            row.dispatches,
            rate(row, seconds)
        );
    }
    eprintln!("{:<24} {:>10.2}", "total", total * 1e3);
    Ok(())
}

/// Prints how a step of `ranks` processes training together splits (medians over the steps, the first
/// left out as warm-up): compute (everything but the exchange: forward, backward, update, batch),
/// waiting for the slowest rank, gradient readback, all-reduce and upload.
pub fn print_exchange(steps: &[Exchange], ranks: usize, what: &str) {
    // The last step has no wall time (no next step started).
    let steps = &steps[1.min(steps.len())..steps.len().saturating_sub(1)];
    if steps.is_empty() {
        return;
    }
    let median = |f: &dyn Fn(&Exchange) -> Duration| {
        let mut v: Vec<f64> = steps.iter().map(|s| f(s).as_secs_f64() * 1e3).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let communication = |s: &Exchange| s.wait + s.times.readback + s.times.reduce + s.times.upload;
    let step = median(&|s| s.step);
    let wait = median(&|s| s.wait);
    let readback = median(&|s| s.times.readback);
    let reduce = median(&|s| s.times.reduce);
    let upload = median(&|s| s.times.upload);
    let compute = median(&|s| s.step.saturating_sub(communication(s)));
    eprintln!(
        "{what} on {ranks} ranks, median of {} steps (ms): step {step:.2} = compute {compute:.2} \
         + wait {wait:.2} + readback {readback:.2} + all-reduce {reduce:.2} + upload {upload:.2}",
        steps.len()
    );
}

fn rate(row: &ProfileRow, seconds: f64) -> String {
    match row.work {
        _ if seconds <= 0.0 => String::new(),
        Work::Flops(f) => format!("{:.1} GFLOP/s", f / seconds / 1e9),
        Work::Bytes(b) => format!("{:.2} GB/s", b / seconds / 1e9),
        Work::Unknown => String::new(),
    }
}

/// Prints CPU time per step against GPU time per pass (`micros` passes a step, one per micro-batch) and
/// the GPU's idle gaps between consecutive passes (the time it waited for the CPU), leaving out the
/// gaps that hold an evaluation (every `eval_every` steps from `first`, the steps done before the run).
pub fn print_timeline(timeline: &StepTimeline, first: u32, eval_every: u32, micros: u32) {
    let ms = |d: f64| d / 1e6;
    let cpu = &timeline.cpu;
    let prepare: Vec<f64> = (timeline.cpu.iter())
        .map(|t| t.0.as_secs_f64() * 1e3)
        .collect();
    let submit: Vec<f64> = (timeline.cpu.iter())
        .map(|t| t.1.as_secs_f64() * 1e3)
        .collect();
    let gpu: Vec<f64> = timeline.gpu.iter().map(|(b, e)| ms(e - b)).collect();
    // The gap after pass i ends step `first + (i + 1) / micros` when `(i + 1) % micros == 0`.
    let evaluated = |i: usize| {
        let (done, ends_step) = (
            (i + 1) as u32 / micros,
            ((i + 1) as u32).is_multiple_of(micros),
        );
        ends_step && eval_every > 0 && (first + done).is_multiple_of(eval_every)
    };
    let gaps: Vec<f64> = (timeline.gpu.windows(2).enumerate())
        .filter(|(i, _)| !evaluated(*i))
        .map(|(_, w)| ms(w[1].0 - w[0].1).max(0.0))
        .collect();
    if gpu.is_empty() {
        eprintln!("timeline: the adapter has no timestamp queries");
        return;
    }
    let busy: f64 = gpu.iter().sum();
    let idle: f64 = gaps.iter().sum();
    eprintln!("timeline of {} steps ({} passes):", cpu.len(), gpu.len());
    eprintln!(
        "  CPU preparing a step (batch, uploads): {}",
        summary(&prepare)
    );
    eprintln!(
        "  CPU recording and submitting a step:   {}",
        summary(&submit)
    );
    eprintln!("  GPU running a pass (a micro-batch):    {}", summary(&gpu));
    eprintln!(
        "  GPU idle between steps:                {} ({:.2}% of its time; {} of {} gaps over 1 ms)",
        summary(&gaps),
        100.0 * idle / (busy + idle).max(f64::MIN_POSITIVE),
        gaps.iter().filter(|&&g| g > 1.0).count(),
        gaps.len()
    );
}

/// `median 1.23 ms, max 4.56 ms` of `values` in milliseconds.
fn summary(values: &[f64]) -> String {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match (sorted.get(sorted.len() / 2), sorted.last()) {
        (Some(median), Some(max)) => format!("median {median:.2} ms, max {max:.2} ms"),
        _ => "no steps".into(),
    }
}
