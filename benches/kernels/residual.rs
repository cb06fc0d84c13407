//! residual rows: `y = a + b` and `acc += x` at the activation shapes, beside the CPU reference.

use wgpt::kernels::residual;
use wgpt::reference::residual as reference;

use crate::copy::{fill, memory_row, ACTIVATIONS};
use crate::harness::Bench;

pub fn run(bench: &mut Bench) {
    for (i, &(r, c)) in ACTIVATIONS.iter().enumerate() {
        let n = r * c;
        let (a, at) = fill(&bench.gpu, &[n]);
        let (b, bt) = fill(&bench.gpu, &[n]);
        let yt = bench.gpu.zeros("y", &[n]).unwrap();
        let id = format!("residual/forward/{r}x{c}");
        if bench.wants(&id) {
            let build = || residual::forward(&bench.gpu, &at, &bt, &yt).unwrap();
            let d = if i == 0 {
                bench.compile("residual/forward", build)
            } else {
                build()
            };
            let cpu = bench.time_cpu(|| {
                std::hint::black_box(reference::forward(&a, &b));
            });
            memory_row(bench, id, &[d], 12 * n, cpu);
        }
        let id = format!("residual/accumulate/{r}x{c}");
        if bench.wants(&id) {
            let build = || residual::accumulate(&bench.gpu, &at, &yt).unwrap();
            let d = if i == 0 {
                bench.compile("residual/accumulate", build)
            } else {
                build()
            };
            let cpu = bench.time_cpu(|| {
                std::hint::black_box(reference::forward(&a, &b));
            });
            memory_row(bench, id, &[d], 12 * n, cpu);
        }
    }
}
