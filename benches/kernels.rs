//! Kernel throughput (`cargo bench --bench kernels [-- --json] [FILTER...]`).
//!
//! One row per kernel, variant and shape: median time, GFLOP/s (compute-bound rows) or GB/s
//! (memory-bound rows), and `vs_cpu`, the speed ratio against the row's CPU baseline measured in the same
//! run. Pipeline compile times are rows of their own (`compile/...`), apart from steady state.

// Row groups live in benches/kernels/, one file per kernel stem.
#[path = "kernels/adamw.rs"]
mod adamw;
#[path = "kernels/attention.rs"]
mod attention;
#[path = "kernels/cast.rs"]
mod cast;
#[path = "kernels/copy.rs"]
mod copy;
#[path = "kernels/crossentropy.rs"]
mod crossentropy;
#[path = "kernels/dropout.rs"]
mod dropout;
#[path = "kernels/embedding.rs"]
mod embedding;
#[path = "kernels/gelu.rs"]
mod gelu;
#[path = "kernels/gradnorm.rs"]
mod gradnorm;
#[path = "kernels/harness.rs"]
mod harness;
#[path = "kernels/kvcache.rs"]
mod kvcache;
#[path = "kernels/layernorm.rs"]
mod layernorm;
#[path = "kernels/matmul.rs"]
mod matmul;
#[path = "kernels/matvec.rs"]
mod matvec;
#[path = "kernels/residual.rs"]
mod residual;
#[path = "kernels/rmsnorm.rs"]
mod rmsnorm;

fn main() {
    let mut bench = harness::Bench::from_args();
    copy::run(&mut bench);
    matmul::run(&mut bench);
    matvec::run(&mut bench);
    embedding::run(&mut bench);
    layernorm::run(&mut bench);
    rmsnorm::run(&mut bench);
    gelu::run(&mut bench);
    residual::run(&mut bench);
    cast::run(&mut bench);
    dropout::run(&mut bench);
    attention::run(&mut bench);
    kvcache::run(&mut bench);
    crossentropy::run(&mut bench);
    gradnorm::run(&mut bench);
    adamw::run(&mut bench);
    bench.finish();
}
