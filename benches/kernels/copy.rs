//! copy rows: the adapter's achievable bandwidth, the yardstick for every memory-bound row (which read as
//! a fraction of it), beside the host's own memcpy of the same bytes. Also the helpers the other
//! memory-bound row groups share. And `copy/transpose/..`: a weight matrix transposed in each dtype
//! (`copy/transpose_interleaved/..`: laid out as decode reads it).

use std::time::Duration;

use wgpt::dtype::Dtype;
use wgpt::kernels::copy;
use wgpt::kernels::matvec::{Layout, Weights};
use wgpt::reference::copy as reference;
use wgpt::{Dispatch, Gpu, Tensor};

use crate::harness::{Bench, Row};

/// The activation shapes of the memory-bound rows: B·T = 768 rows (B = 12, T = 64) at C = 128 and 768.
pub const ACTIVATIONS: [(usize, usize); 2] = [(768, 128), (768, 768)];

/// Deterministic data in [-1, 1) and the tensor holding it.
pub fn fill(gpu: &Gpu, shape: &[usize]) -> (Vec<f32>, Tensor) {
    let len: usize = shape.iter().product();
    let data: Vec<f32> = (0..len).map(|i| (i % 17) as f32 / 8.5 - 1.0).collect();
    let tensor = gpu.upload("bench", shape, &data).unwrap();
    (data, tensor)
}

/// Reports a memory-bound row: `dispatches` moving `bytes` (read + written) against `cpu`, the
/// reference doing the same work, timed in the same run.
pub fn memory_row(
    bench: &mut Bench,
    id: String,
    dispatches: &[Dispatch],
    bytes: usize,
    cpu: Duration,
) {
    let median = bench.time_gpu(dispatches);
    bench.report(Row {
        id,
        median,
        flops: None,
        bytes: Some(bytes as f64),
        cpu: Some(cpu),
    });
}

pub fn run(bench: &mut Bench) {
    // The activation shapes, then 64 MiB, far past any cache: the memory's own bandwidth. Each size
    // has a `copy/host/...` row first: the host's own memcpy of the same bytes into a buffer allocated
    // beforehand (`copy_from_slice`, one thread), the yardstick for the GPU row after it, whose
    // `vs_cpu` is against that memcpy.
    let sizes = ACTIVATIONS
        .iter()
        .map(|&(r, c)| (format!("{r}x{c}"), r * c))
        .chain([("16777216".to_string(), 1 << 24)]);
    for (i, (shape, n)) in sizes.enumerate() {
        let (host_id, id) = (format!("copy/host/{shape}"), format!("copy/{shape}"));
        if !bench.wants(&id) && !bench.wants(&host_id) {
            continue;
        }
        let (x, xt) = fill(&bench.gpu, &[n]);
        let mut y = vec![0.0f32; n];
        let memcpy = bench.time_cpu(|| {
            y.copy_from_slice(&x);
            std::hint::black_box(&mut y);
        });
        if bench.wants(&host_id) {
            bench.report(Row {
                id: host_id,
                median: memcpy,
                flops: None,
                bytes: Some(8.0 * n as f64),
                cpu: None,
            });
        }
        if !bench.wants(&id) {
            continue;
        }
        let yt = bench.gpu.zeros("y", &[n]).unwrap();
        let build = || copy::forward(&bench.gpu, &xt, &yt).unwrap();
        let d = if i == 0 {
            bench.compile("copy", build)
        } else {
            build()
        };
        memory_row(bench, id, &[d], 8 * n, memcpy);
    }
    // A GPT-2 head piece's logits placed into the logits of a 640-row chunk.
    let (rows, wide, narrow) = (640, 50257, 25129);
    let id = format!("copy/columns/{rows}x{narrow}in{wide}");
    if bench.wants(&id) {
        let (x, xt) = fill(&bench.gpu, &[rows, narrow]);
        let yt = bench.gpu.zeros("y", &[rows, wide]).unwrap();
        let d = copy::columns(&bench.gpu, &xt, 0, &yt, 0, narrow).unwrap();
        let mut y = vec![0.0; rows * wide];
        let cpu = bench.time_cpu(|| {
            reference::columns((&x, narrow, 0), (&mut y, wide, 0), narrow);
            std::hint::black_box(&y);
        });
        memory_row(bench, id, &[d], 8 * rows * narrow, cpu);
    }
    transpose_rows(bench);
}

/// GPT-2's MLP-in weights transposed in each dtype and layout, as a decode step's copy of them is made
/// (`copy/transpose/..` row-major, `copy/transpose_interleaved/..` as decode lays them out).
fn transpose_rows(bench: &mut Bench) {
    let (rows, cols) = (768, 3072);
    for (name, layout) in [
        ("transpose", Layout::Rows),
        ("transpose_interleaved", Layout::Interleaved),
    ] {
        for dtype in Dtype::ALL {
            let id = format!("copy/{name}/{}/{rows}x{cols}", dtype.name());
            if !bench.wants(&id) {
                continue;
            }
            let w: Vec<f32> = (0..rows * cols)
                .map(|i| (i % 17) as f32 / 8.5 - 1.0)
                .collect();
            let words = dtype.pack(&w);
            let wt = bench.gpu.upload("w", &[words.len()], &words).unwrap();
            let tt = bench.gpu.zeros("t", &[words.len()]).unwrap();
            let weights = Weights::packed(&wt, dtype, rows, cols).unwrap();
            let t = Weights::packed(&tt, dtype, cols, rows).unwrap();
            let t = t.laid_out(layout).unwrap();
            let build = || copy::transpose(&bench.gpu, weights, t).unwrap();
            let d = bench.compile(&format!("copy/{name}/{}", dtype.name()), build);
            let cpu = bench.time_cpu(|| {
                let t = reference::transpose(&w, rows, cols);
                if layout == Layout::Interleaved {
                    std::hint::black_box(reference::interleave(
                        &t,
                        cols,
                        rows,
                        4 * dtype.per_word(),
                    ));
                }
                std::hint::black_box(t);
            });
            memory_row(bench, id, &[d], 2 * 4 * words.len(), cpu);
        }
    }
}
