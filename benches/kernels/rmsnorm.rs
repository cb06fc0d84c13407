//! rmsnorm rows: forward, backward (dx) and gain gradient at the activation shapes, beside the CPU
//! reference.

use wgpt::kernels::rmsnorm;
use wgpt::reference::rmsnorm as reference;

use crate::copy::{fill, memory_row, ACTIVATIONS};
use crate::harness::Bench;

pub fn run(bench: &mut Bench) {
    for (i, &(r, c)) in ACTIVATIONS.iter().enumerate() {
        let gpu = &bench.gpu;
        let (x, xt) = fill(gpu, &[r, c]);
        let (dy, dyt) = fill(gpu, &[r, c]);
        let (gain, gt) = fill(gpu, &[c]);
        let yt = gpu.zeros("y", &[r, c]).unwrap();
        let dgt = gpu.zeros("dgain", &[c]).unwrap();
        let (_, rstd) = reference::forward(&x, &gain, c, 1e-5);
        let rt = gpu.upload("rstd", &[r], &rstd).unwrap();
        let (n, rows) = (r * c, r);

        let id = format!("rmsnorm/forward/{r}x{c}");
        if bench.wants(&id) {
            let build = || rmsnorm::forward(&bench.gpu, &xt, &gt, &yt, &rt, 1e-5).unwrap();
            let d = if i == 0 {
                bench.compile("rmsnorm/forward", build)
            } else {
                build()
            };
            let cpu = bench.time_cpu(|| {
                std::hint::black_box(reference::forward(&x, &gain, c, 1e-5));
            });
            memory_row(bench, id, &[d], 4 * (2 * n + c + rows), cpu);
        }
        // The reference computes dx and dgain in one pass: it is the CPU time of both rows.
        let cpu = bench.time_cpu(|| {
            std::hint::black_box(reference::backward(&x, &gain, &rstd, &dy, c));
        });
        let id = format!("rmsnorm/backward/{r}x{c}");
        if bench.wants(&id) {
            let build = || rmsnorm::backward(&bench.gpu, &xt, &gt, &rt, &dyt, &yt).unwrap();
            let d = if i == 0 {
                bench.compile("rmsnorm/backward", build)
            } else {
                build()
            };
            memory_row(bench, id, &[d], 4 * (3 * n + c + rows), cpu);
        }
        let id = format!("rmsnorm/backward_params/{r}x{c}");
        if bench.wants(&id) {
            let build = || rmsnorm::backward_params(&bench.gpu, &xt, &rt, &dyt, &dgt).unwrap();
            let d = if i == 0 {
                bench.compile("rmsnorm/backward_params", build)
            } else {
                build()
            };
            memory_row(bench, id, &[d], 4 * (2 * n + rows + 2 * c), cpu);
        }
    }
}
