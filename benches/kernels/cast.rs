//! cast rows: f32 packed into 16 bits (plainly, and rounding the source in place) and unpacked again,
//! at the activation shapes, beside the CPU reference; read them against the copy rows (same bytes per second).

use wgpt::dtype::Dtype;
use wgpt::kernels::cast;
use wgpt::reference::cast as reference;

use crate::copy::{fill, memory_row, ACTIVATIONS};
use crate::harness::Bench;

pub fn run(bench: &mut Bench) {
    for dtype in [Dtype::Bf16, Dtype::F16] {
        for (i, &(r, c)) in ACTIVATIONS.iter().enumerate() {
            let n = r * c;
            let (x, xt) = fill(&bench.gpu, &[n]);
            let words = bench.gpu.zeros("words", &[dtype.words(n)]).unwrap();
            let first = |what: &str| (i == 0).then(|| format!("cast/{what}/{}", dtype.name()));
            let id = format!("cast/pack/{}/{r}x{c}", dtype.name());
            if bench.wants(&id) {
                let build = || cast::pack(&bench.gpu, &xt, &words, dtype).unwrap();
                let d = built(bench, first("pack"), build);
                let cpu = bench.time_cpu(|| {
                    std::hint::black_box(reference::pack(&x, dtype));
                });
                // Reads x, writes the half-size words.
                memory_row(bench, id, &[d], 6 * n, cpu);
            }
            let id = format!("cast/pack_rounding/{}/{r}x{c}", dtype.name());
            if bench.wants(&id) {
                let build = || cast::pack_rounding(&bench.gpu, &xt, &words, dtype).unwrap();
                let d = built(bench, first("pack_rounding"), build);
                let mut y = x.clone();
                let cpu = bench.time_cpu(|| {
                    std::hint::black_box(reference::pack_rounding(&mut y, dtype));
                });
                // Reads x, writes it back rounded and writes the half-size words.
                memory_row(bench, id, &[d], 10 * n, cpu);
            }
            let id = format!("cast/unpack/{}/{r}x{c}", dtype.name());
            if bench.wants(&id) {
                let build = || cast::unpack(&bench.gpu, &words, &xt, dtype).unwrap();
                let d = built(bench, first("unpack"), build);
                let packed = dtype.pack(&x);
                let cpu = bench.time_cpu(|| {
                    std::hint::black_box(reference::unpack(&packed, n, dtype));
                });
                memory_row(bench, id, &[d], 6 * n, cpu);
            }
        }
    }
}

/// The dispatch `build` makes, timed as the compile row `name` when there is one (a dtype's first shape).
fn built<T>(bench: &Bench, name: Option<String>, build: impl FnOnce() -> T) -> T {
    match name {
        Some(name) => bench.compile(&name, build),
        None => build(),
    }
}
