//! `wgpt train --profile`: where a training step's GPU time goes, per kernel family.

use crate::error::Result;
use crate::gpu::Gpu;
use crate::model::{Plan, ProfileRow, Work};

/// Rounds each op is timed, the median kept.
const ROUNDS: usize = 3;

/// Times every op of `plan` alone and prints the table: ms per step, share of the summed time,
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

fn rate(row: &ProfileRow, seconds: f64) -> String {
    match row.work {
        _ if seconds <= 0.0 => String::new(),
        Work::Flops(f) => format!("{:.1} GFLOP/s", f / seconds / 1e9),
        Work::Bytes(b) => format!("{:.2} GB/s", b / seconds / 1e9),
        Work::Unknown => String::new(),
    }
}
