//! layernorm rows (with a bias, as GPT-2): forward, backward (dx) and parameter gradients at the
//! activation shapes, beside the CPU reference.

use wgpt::kernels::layernorm;
use wgpt::reference::layernorm as reference;

use crate::copy::{fill, memory_row, ACTIVATIONS};
use crate::harness::Bench;

pub fn run(bench: &mut Bench) {
    for (i, &(r, c)) in ACTIVATIONS.iter().enumerate() {
        let gpu = &bench.gpu;
        let (x, xt) = fill(gpu, &[r, c]);
        let (dy, dyt) = fill(gpu, &[r, c]);
        let (gain, gt) = fill(gpu, &[c]);
        let (bias, bt) = fill(gpu, &[c]);
        let yt = gpu.zeros("y", &[r, c]).unwrap();
        let (mt, rt) = (
            gpu.zeros("mean", &[r]).unwrap(),
            gpu.zeros("rstd", &[r]).unwrap(),
        );
        let (dgt, dbt) = (
            gpu.zeros("dgain", &[c]).unwrap(),
            gpu.zeros("dbias", &[c]).unwrap(),
        );
        let f = reference::forward(&x, &gain, Some(&bias), c, 1e-5);
        gpu.write(&mt, &f.mean).unwrap();
        gpu.write(&rt, &f.rstd).unwrap();
        let (n, rows) = (r * c, r);

        // The reference computes dx and the parameter gradients in one pass: it is the CPU time of
        // both backward rows.
        let cpu_backward = bench.time_cpu(|| {
            std::hint::black_box(reference::backward(&x, &gain, &f.mean, &f.rstd, &dy, c));
        });
        for variant in layernorm::Variant::ALL {
            let name = variant.name();
            let id = format!("layernorm/forward/{name}/{r}x{c}");
            if bench.wants(&id) {
                let build = || {
                    layernorm::forward(
                        &bench.gpu,
                        variant,
                        &xt,
                        &gt,
                        Some(&bt),
                        &yt,
                        &mt,
                        &rt,
                        1e-5,
                    )
                    .unwrap()
                };
                let d = if i == 0 {
                    bench.compile(&format!("layernorm/forward/{name}"), build)
                } else {
                    build()
                };
                let cpu = bench.time_cpu(|| {
                    std::hint::black_box(reference::forward(&x, &gain, Some(&bias), c, 1e-5));
                });
                memory_row(bench, id, &[d], 4 * (2 * n + 2 * c + 2 * rows), cpu);
            }
            let id = format!("layernorm/backward/{name}/{r}x{c}");
            if bench.wants(&id) {
                let build = || {
                    layernorm::backward(&bench.gpu, variant, &xt, &gt, &mt, &rt, &dyt, &yt).unwrap()
                };
                let d = if i == 0 {
                    bench.compile(&format!("layernorm/backward/{name}"), build)
                } else {
                    build()
                };
                memory_row(bench, id, &[d], 4 * (3 * n + c + 2 * rows), cpu_backward);
            }
        }
        let id = format!("layernorm/backward_params/{r}x{c}");
        if bench.wants(&id) {
            let build = || {
                layernorm::backward_params(&bench.gpu, &xt, &mt, &rt, &dyt, &dgt, Some(&dbt))
                    .unwrap()
            };
            let d = if i == 0 {
                bench.compile("layernorm/backward_params", build)
            } else {
                build()
            };
            memory_row(
                bench,
                id,
                &[d],
                4 * (2 * n + 2 * rows + 4 * c),
                cpu_backward,
            );
        }
    }
}
