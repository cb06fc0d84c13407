//! matvec rows: a GPT-2 decode step's products (one row) for every weight dtype, memory-bound, so in GB/s
//! of the bytes actually read and written (the weights as stored, x, the bias, y) beside the copy row,
//! with the weights read from memory as the copy row's are; `vs_cpu` is against `matrixmultiply`'s
//! multithreaded sgemm of the same f32 product. The block's transposed products also read their weights
//! interleaved (`matvec/transposed_interleaved/..`), as a decode step's copies are laid out, and so do
//! the rows of the transposed product's epilogues (GELU, the residual add), beside the product followed
//! by the epilogue's own kernel.

use std::time::Duration;

use wgpt::dtype::Dtype;
use wgpt::kernels::matvec::{self, Epilogue, Layout, Weights};
use wgpt::kernels::{gelu, residual};
use wgpt::{Dispatch, Gpu, Tensor};

use crate::copy::memory_row;
use crate::harness::Bench;

/// (M, K, N) of `forward`: GPT-2 124M's attention in (768 → 2304), attention out (768 → 768), MLP up
/// (768 → 3072) and MLP down (3072 → 768) for one token, and attention out and MLP down for 8 tokens
/// (`--num-samples 8`).
const FORWARD: [(usize, usize, usize); 6] = [
    (1, 768, 2304),
    (1, 768, 768),
    (1, 768, 3072),
    (1, 3072, 768),
    (8, 768, 768),
    (8, 3072, 768),
];

/// (M, C, V) of `transposed`: GPT-2's output head, its 50257 × 768 token embedding read for one token
/// and for 8, and the block's products of one token with their weights stored transposed.
const TRANSPOSED: [(usize, usize, usize); 6] = [
    (1, 768, 50257),
    (8, 768, 50257),
    (1, 768, 2304),
    (1, 768, 768),
    (1, 768, 3072),
    (1, 3072, 768),
];

pub fn run(bench: &mut Bench) {
    // The block's products also read interleaved weights, as a decode step's copies are laid out.
    for (product, shapes) in [
        ("forward", &FORWARD[..]),
        ("transposed", &TRANSPOSED[..]),
        ("transposed_interleaved", &TRANSPOSED[2..]),
    ] {
        for &(m, k, n) in shapes {
            let ids: Vec<(Dtype, String)> = Dtype::ALL
                .iter()
                .map(|&d| (d, format!("matvec/{product}/{}/{m}x{k}x{n}", d.name())))
                .filter(|(_, id)| bench.wants(id))
                .collect();
            if ids.is_empty() {
                continue;
            }
            let cpu = cpu_baseline(bench, product, (m, k, n));
            // Each pipeline's compile time is reported with the first shape that builds it.
            let compile = (m, k, n) == shapes[0];
            for (dtype, id) in ids {
                let (dispatches, bytes, copies) = match product {
                    "forward" => forward(bench, dtype, (m, k, n), compile),
                    "transposed" => transposed(bench, (dtype, Layout::Rows), (m, k, n), compile),
                    _ => transposed(bench, (dtype, Layout::Interleaved), (m, k, n), compile),
                };
                // The CPU does the products as many times (from cache: a lower bound).
                memory_row(bench, id, &dispatches, bytes, cpu * copies);
            }
        }
    }
    epilogue_rows(bench);
}

/// The transposed product with its epilogue applied as it stores (`matvec/transposed_<epilogue>/..`)
/// beside the product followed by the epilogue's own kernel (`../unfused/..`): GELU after MLP in
/// (768 → 3072), the residual add after MLP out (3072 → 768), one token, over copies of the weights.
fn epilogue_rows(bench: &mut Bench) {
    for (name, (m, c, v)) in [("gelu", (1, 768, 3072)), ("residual", (1, 3072, 768))] {
        for dtype in Dtype::ALL {
            let shape = format!("{}/{m}x{c}x{v}", dtype.name());
            let fused_id = format!("matvec/transposed_{name}/{shape}");
            let unfused_id = format!("matvec/transposed_{name}/unfused/{shape}");
            if !bench.wants(&fused_id) && !bench.wants(&unfused_id) {
                continue;
            }
            let gpu = &bench.gpu;
            let (x, side, y) = (
                activations(gpu, &[m, c]),
                activations(gpu, &[m, v]),
                activations(gpu, &[m, v]),
            );
            let copies = FORWARD_BYTES.div_ceil(4 * dtype.words(c * v));
            let es: Vec<Tensor> = (0..copies).map(|_| weights(gpu, dtype, c * v)).collect();
            let (mut fused, mut unfused) = (Vec::new(), Vec::new());
            for et in &es {
                let e = Weights::packed(et, dtype, v, c).unwrap();
                let e = e.laid_out(Layout::Interleaved).unwrap();
                let epilogue = match name {
                    "gelu" => Epilogue::Gelu { pre: &side },
                    _ => Epilogue::Residual { stream: &side },
                };
                let product =
                    |epilogue, y| matvec::transposed(gpu, &x, e, None, epilogue, y, 0).unwrap();
                fused.push(product(epilogue, &y));
                unfused.push(product(
                    Epilogue::None,
                    if name == "gelu" { &side } else { &y },
                ));
                unfused.push(match name {
                    "gelu" => gelu::forward(gpu, &side, &y).unwrap(),
                    _ => residual::accumulate(gpu, &side, &y).unwrap(),
                });
            }
            let cpu = cpu_baseline(bench, "transposed", (m, c, v)) * copies as u32;
            // Weights, x, y written, and pre written or the stream read.
            let bytes = copies * 4 * (dtype.words(c * v) + m * c + 2 * m * v);
            for (id, dispatches) in [(fused_id, fused), (unfused_id, unfused)] {
                if bench.wants(&id) {
                    memory_row(bench, id, &dispatches, bytes, cpu);
                }
            }
        }
    }
}

/// Deterministic weights in [-0.05, 0.05), rounded and packed as `dtype` stores them.
fn weights(gpu: &Gpu, dtype: Dtype, len: usize) -> Tensor {
    let values: Vec<f32> = (0..len).map(|i| (i % 23) as f32 * 0.004 - 0.05).collect();
    let words = dtype.pack(&values);
    gpu.upload("weights", &[words.len()], &words).unwrap()
}

fn activations(gpu: &Gpu, shape: &[usize]) -> Tensor {
    let len: usize = shape.iter().product();
    let data: Vec<f32> = (0..len).map(|i| (i % 7) as f32 * 0.1).collect();
    gpu.upload("bench", shape, &data).unwrap()
}

/// The weights a forward row cycles through: at least 64 MiB in all, like the copy row, so each product
/// reads its weights from memory as a decode step does (every matrix once per token), not from a cache
/// that holds a single 2-9 MiB matrix between repetitions (which would read 20-40% faster).
const FORWARD_BYTES: usize = 64 << 20;

/// `y = x·w + b` over copies of `w` read in turn; bytes: the weights as stored, x, b and y, per product
/// (not the partial sums of a product split over K: they are its overhead, in the time).
fn forward(
    bench: &Bench,
    dtype: Dtype,
    (m, k, n): (usize, usize, usize),
    compile: bool,
) -> (Vec<Dispatch>, usize, u32) {
    let gpu = &bench.gpu;
    let words = dtype.words(k * n);
    let copies = FORWARD_BYTES.div_ceil(4 * words);
    let (x, b, y) = (
        activations(gpu, &[m, k]),
        activations(gpu, &[n]),
        activations(gpu, &[m, n]),
    );
    let mut part = None;
    let dispatches = (0..copies)
        .flat_map(|i| {
            let w = weights(gpu, dtype, k * n);
            let weights = Weights::packed(&w, dtype, k, n).unwrap();
            let part = part.get_or_insert_with(|| {
                let len = matvec::part_len(gpu, m, &weights).max(1);
                gpu.zeros("part", &[len]).unwrap()
            });
            let build = || matvec::forward(gpu, &x, weights, Some(&b), &y, part).unwrap();
            if compile && i == 0 {
                bench.compile(&format!("matvec/forward/{}", dtype.name()), build)
            } else {
                build()
            }
        })
        .collect();
    (
        dispatches,
        copies * 4 * (words + m * k + n + m * n),
        copies as u32,
    )
}

/// `y = x·eᵀ`, with `e` split by rows into pieces of at most one storage binding (as the model splits
/// GPT-2's embedding on adapters whose bindings are smaller than it), each writing its columns of y;
/// over copies of `e` read in turn when one is smaller than [`FORWARD_BYTES`], as the forward rows.
fn transposed(
    bench: &Bench,
    (dtype, layout): (Dtype, Layout),
    (m, c, v): (usize, usize, usize),
    compile: bool,
) -> (Vec<Dispatch>, usize, u32) {
    let gpu = &bench.gpu;
    let (x, y) = (activations(gpu, &[m, c]), activations(gpu, &[m, v]));
    let row_bytes = 4 * dtype.words(c) as u64;
    let binding = gpu.limits().max_storage_buffer_binding_size;
    let piece = ((binding / row_bytes) as usize).min(v);
    let copies = FORWARD_BYTES.div_ceil(4 * dtype.words(c * v));
    let mut dispatches = Vec::new();
    let mut bytes = 0;
    for copy in 0..copies {
        bytes += 4 * (m * c + m * v);
        for first in (0..v).step_by(piece) {
            let rows = piece.min(v - first);
            let e = weights(gpu, dtype, rows * c);
            let weights = Weights::packed(&e, dtype, rows, c).unwrap();
            let weights = weights.laid_out(layout).unwrap();
            let build =
                || matvec::transposed(gpu, &x, weights, None, Epilogue::None, &y, first).unwrap();
            dispatches.push(if compile && copy == 0 && first == 0 {
                let product = match layout {
                    Layout::Rows => "transposed",
                    Layout::Interleaved => "transposed_interleaved",
                };
                bench.compile(&format!("matvec/{product}/{}", dtype.name()), build)
            } else {
                build()
            });
            bytes += 4 * e.len();
        }
    }
    (dispatches, bytes, copies as u32)
}

/// The same f32 product with `matrixmultiply::sgemm` (all cores), reading the weights as stored
/// through strides, as the kernel does.
fn cpu_baseline(bench: &Bench, product: &str, (m, k, n): (usize, usize, usize)) -> Duration {
    let x = vec![0.5f32; m * k];
    let w = vec![0.25f32; k * n];
    let mut y = vec![0.0f32; m * n];
    // forward: w is [k, n]; transposed: w is e [n, k], read as its transpose [k, n].
    let (rsw, csw) = if product == "forward" {
        (n as isize, 1)
    } else {
        (1, k as isize)
    };
    let median = bench.time_cpu(|| unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            x.as_ptr(),
            k as isize,
            1,
            w.as_ptr(),
            rsw,
            csw,
            0.0,
            y.as_mut_ptr(),
            n as isize,
            1,
        )
    });
    std::hint::black_box(&y);
    median
}
