//! gelu rows: forward and backward at the activation shapes, beside the CPU reference.

use wgpt::kernels::gelu;
use wgpt::reference::gelu as reference;

use crate::copy::{fill, memory_row, ACTIVATIONS};
use crate::harness::Bench;

pub fn run(bench: &mut Bench) {
    for (i, &(r, c)) in ACTIVATIONS.iter().enumerate() {
        let n = r * c;
        let (x, xt) = fill(&bench.gpu, &[n]);
        let (dy, dyt) = fill(&bench.gpu, &[n]);
        let yt = bench.gpu.zeros("y", &[n]).unwrap();
        let id = format!("gelu/forward/{r}x{c}");
        if bench.wants(&id) {
            let build = || gelu::forward(&bench.gpu, &xt, &yt).unwrap();
            let d = if i == 0 {
                bench.compile("gelu/forward", build)
            } else {
                build()
            };
            let cpu = bench.time_cpu(|| {
                std::hint::black_box(reference::forward(&x));
            });
            memory_row(bench, id, &[d], 8 * n, cpu);
        }
        let id = format!("gelu/backward/{r}x{c}");
        if bench.wants(&id) {
            let build = || gelu::backward(&bench.gpu, &xt, &dyt, &yt).unwrap();
            let d = if i == 0 {
                bench.compile("gelu/backward", build)
            } else {
                build()
            };
            let cpu = bench.time_cpu(|| {
                std::hint::black_box(reference::backward(&x, &dy));
            });
            memory_row(bench, id, &[d], 12 * n, cpu);
        }
    }
}
