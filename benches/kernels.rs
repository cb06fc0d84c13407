//! Kernel throughput (`cargo bench --bench kernels [-- --json] [FILTER...]`).
//!
//! One row per kernel, variant and shape: median time, GFLOP/s (compute-bound rows) or GB/s
//! (memory-bound rows), and `vs_cpu`, the speed ratio against the row's CPU baseline measured in the same
//! run. Pipeline compile times are rows of their own (`compile/...`), apart from steady state.

// Row groups live in benches/kernels/, one file per kernel stem.
#[path = "kernels/attention.rs"]
mod attention;
#[path = "kernels/harness.rs"]
mod harness;
#[path = "kernels/matmul.rs"]
mod matmul;

fn main() {
    let mut bench = harness::Bench::from_args();
    attention::run(&mut bench);
    matmul::run(&mut bench);
    bench.finish();
}
