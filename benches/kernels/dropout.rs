//! dropout rows: the mask-and-scale pass (forward; the backward is the same dispatch on dy) at the
//! activation shapes with p = 0.1, beside the CPU reference.

use wgpt::kernels::dropout;
use wgpt::reference::dropout as reference;

use crate::copy::{fill, memory_row, ACTIVATIONS};
use crate::harness::Bench;

pub fn run(bench: &mut Bench) {
    let p = 0.1;
    for (i, &(r, c)) in ACTIVATIONS.iter().enumerate() {
        let n = r * c;
        let id = format!("dropout/forward/{r}x{c}");
        if !bench.wants(&id) {
            continue;
        }
        let (x, xt) = fill(&bench.gpu, &[n]);
        let yt = bench.gpu.zeros("y", &[n]).unwrap();
        let state = bench.gpu.upload("state", &[3], &[1u32, 2, 0]).unwrap();
        let build = || dropout::forward(&bench.gpu, &xt, &state, 0, p, &yt).unwrap();
        let d = if i == 0 {
            bench.compile("dropout/forward", build)
        } else {
            build()
        };
        let cpu = bench.time_cpu(|| {
            std::hint::black_box(reference::forward(&x, [1, 2, 0], 0, p));
        });
        memory_row(bench, id, &[d], 8 * n, cpu);
    }
}
