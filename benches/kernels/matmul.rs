//! matmul rows: every supported variant and product at square sizes and the GPT layer shapes, beside
//! `matrixmultiply`'s multithreaded sgemm on the CPU for the same product; then, for the adapter's best
//! variant, the forward and head (`dx`) products of a 16-token prefill with the weights in each dtype
//! (`matmul/<variant>/<dtype>/..`; 16-bit weights are read through B's vec4 view where the shapes
//! allow, as f32 ones, else through its scalar view); then the fused epilogues at the layers that use
//! them, each beside the unfused dispatches it replaces.
//!
//! A row that is the first to use a pipeline also prints `compile/<row id>`: building the dispatch plus
//! its first run, less the steady run time. That includes the driver's own compile, which lavapipe
//! defers to the first dispatch; run with `MESA_SHADER_CACHE_DISABLE=true` for cold numbers.

use std::time::Instant;

use wgpt::dtype::Dtype;
use wgpt::kernels::matmul::{self, Variant, Weights};
use wgpt::kernels::{dropout, gelu, residual};
use wgpt::reference::matmul as reference;

use crate::copy::{fill, memory_row, ACTIVATIONS};

use crate::harness::{Bench, Row};

/// (M, K, N): squares, then a GPT block at B·T = 768 rows (the `baby` preset): (128 → 384) attention
/// in, (128 → 512) MLP up, (512 → 128) MLP down, (128 → 65) character-vocabulary head; the blocks of
/// `shakespeare-char` (B·T = 16·256 = 4096 rows, C = 384: attention in and out, MLP up and down) and
/// of GPT-2 124M (4096 rows, C = 768); then a GPT-2 decode step's one row through (768 → 768),
/// (768 → 3072) and (3072 → 768), memory-bound (the weights are read once).
const SHAPES: [(usize, usize, usize); 18] = [
    (256, 256, 256),
    (512, 512, 512),
    (1024, 1024, 1024),
    (768, 128, 384),
    (768, 128, 512),
    (768, 512, 128),
    (768, 128, 65),
    (4096, 384, 1152),
    (4096, 384, 384),
    (4096, 384, 1536),
    (4096, 1536, 384),
    (4096, 768, 2304),
    (4096, 768, 768),
    (4096, 768, 3072),
    (4096, 3072, 768),
    (1, 768, 768),
    (1, 768, 3072),
    (1, 3072, 768),
];

#[derive(Clone, Copy)]
enum Product {
    Forward,
    InputGrad,
    WeightGrad,
}

impl Product {
    const ALL: [Product; 3] = [Product::Forward, Product::InputGrad, Product::WeightGrad];

    /// Suffix of the row id; the forward product has none.
    fn suffix(self) -> &'static str {
        match self {
            Product::Forward => "",
            Product::InputGrad => "/dx",
            Product::WeightGrad => "/dw",
        }
    }
}

pub fn run(bench: &mut Bench) {
    for variant in Variant::ALL {
        if !variant.supported(&bench.gpu) {
            continue;
        }
        for product in Product::ALL {
            let ids: Vec<String> = SHAPES
                .iter()
                .map(|&(m, k, n)| {
                    format!("matmul/{}/{m}x{k}x{n}{}", variant.name(), product.suffix())
                })
                .filter(|id| bench.wants(id))
                .collect();
            if ids.is_empty() {
                continue;
            }
            for &(m, k, n) in &SHAPES {
                let id = format!("matmul/{}/{m}x{k}x{n}{}", variant.name(), product.suffix());
                if bench.wants(&id) {
                    row(bench, id, variant, (product, Dtype::F32), (m, k, n));
                }
            }
        }
    }
    dtype_rows(bench);
    bias_rows(bench);
    epilogue_rows(bench);
}

/// The MLP layers (M, K, N, forward sizes) of `baby`, `shakespeare-char` and GPT-2 124M: the up
/// projection C -> 4C and the down projection 4C -> C.
const MLP_UP: [(usize, usize, usize); 3] = [(768, 128, 512), (4096, 384, 1536), (4096, 768, 3072)];
const MLP_DOWN: [(usize, usize, usize); 3] =
    [(768, 512, 128), (4096, 1536, 384), (4096, 3072, 768)];

#[derive(Clone, Copy)]
enum Epilogue {
    Gelu,
    Residual,
    DropoutResidual,
    GeluGrad,
}

impl Epilogue {
    const ALL: [Epilogue; 4] = [
        Epilogue::Gelu,
        Epilogue::Residual,
        Epilogue::DropoutResidual,
        Epilogue::GeluGrad,
    ];

    /// The layers it serves: GELU the up projection; the residual add (through dropout in
    /// `shakespeare-char`) the down projections (the attention's has the same N, a smaller K); gelu'
    /// the down projection's input gradient.
    fn shapes(self) -> [(usize, usize, usize); 3] {
        match self {
            Epilogue::Gelu => MLP_UP,
            _ => MLP_DOWN,
        }
    }
}

/// `matmul/<variant>/<shape>/<epilogue>` for the launcher's variant, and `.../unfused`: the product,
/// then the `gelu`, `residual`, or `dropout` (p = 0.2) and `residual` kernels, as an unfused graph
/// runs them. Both count the product's flops and take its CPU sgemm as the baseline, so their rates
/// compare directly.
fn epilogue_rows(bench: &mut Bench) {
    let variant = Variant::best(&bench.gpu);
    for epilogue in Epilogue::ALL {
        let (name, product) = match epilogue {
            Epilogue::Gelu => ("gelu", Product::Forward),
            Epilogue::Residual => ("residual", Product::Forward),
            Epilogue::DropoutResidual => ("dropout_residual", Product::Forward),
            Epilogue::GeluGrad => ("dx_gelu", Product::InputGrad),
        };
        for (m, k, n) in epilogue.shapes() {
            for unfused in [false, true] {
                let id = format!(
                    "matmul/{}/{m}x{k}x{n}/{name}{}",
                    variant.name(),
                    if unfused { "/unfused" } else { "" }
                );
                if !bench.wants(&id) {
                    continue;
                }
                let operands = operands(bench, (m, k, n));
                let dispatches = epilogue_dispatches(bench, variant, epilogue, unfused, &operands);
                let median = bench.time_gpu(&dispatches);
                let cpu = cpu_baseline(bench, product, (m, k, n));
                bench.report(Row {
                    id,
                    median,
                    flops: Some(2.0 * (m * k * n) as f64),
                    bytes: None,
                    cpu: Some(cpu),
                });
            }
        }
    }
}

/// The fused dispatch, or the unfused pair, on `operands` plus a tensor shaped like the output.
fn epilogue_dispatches(
    bench: &Bench,
    variant: Variant,
    epilogue: Epilogue,
    unfused: bool,
    [x, w, y]: &[wgpt::Tensor; 3],
) -> Vec<wgpt::Dispatch> {
    let gpu = &bench.gpu;
    let out = match epilogue {
        Epilogue::GeluGrad => x,
        _ => y,
    };
    let (_, other) = fill(gpu, &out.shape);
    let state = gpu.upload("state", &[3], &[1u32, 2, 0]).unwrap();
    let (site, p) = (3, 0.2);
    let dropout = matmul::BranchDropout {
        state: &state,
        site,
        p,
    };
    let w4 = Weights::f32(w).unwrap();
    match (epilogue, unfused) {
        (Epilogue::Gelu, false) => vec![matmul::forward_gelu(gpu, variant, x, w4, None, y, &other)],
        (Epilogue::Gelu, true) => vec![
            matmul::forward(gpu, variant, x, w, None, y),
            gelu::forward(gpu, y, &other),
        ],
        (Epilogue::Residual, false) => {
            vec![matmul::forward_residual(
                gpu, variant, x, w4, None, None, &other, y,
            )]
        }
        (Epilogue::DropoutResidual, false) => vec![matmul::forward_residual(
            gpu,
            variant,
            x,
            w4,
            None,
            Some(dropout),
            &other,
            y,
        )],
        (Epilogue::DropoutResidual, true) => {
            let (_, stream) = fill(gpu, &y.shape);
            let (_, dropped) = fill(gpu, &y.shape);
            vec![
                matmul::forward(gpu, variant, x, w, None, y),
                dropout::forward(gpu, y, &state, site, p, &dropped),
                residual::forward(gpu, &stream, &dropped, &other),
            ]
        }
        (Epilogue::Residual, true) => {
            let (_, stream) = fill(gpu, &y.shape);
            vec![
                matmul::forward(gpu, variant, x, w, None, y),
                residual::forward(gpu, &stream, y, &other),
            ]
        }
        // x plays the pre-activation, `other` its gradient.
        (Epilogue::GeluGrad, false) => {
            let w = Weights::f32(w).unwrap();
            vec![matmul::backward_input_gelu(gpu, variant, y, w, x, &other)]
        }
        (Epilogue::GeluGrad, true) => {
            let (_, dx) = fill(gpu, &x.shape);
            vec![
                matmul::backward_input(gpu, variant, y, w, &dx),
                gelu::backward(gpu, x, &dx, &other),
            ]
        }
    }
    .into_iter()
    .collect::<wgpt::Result<_>>()
    .unwrap()
}

/// (M, K, N) of the rows with weights in each dtype: a GPT-2 prefill of 16 tokens through attention in
/// (768 → 2304) and MLP down (3072 → 768), and a head for the last token (the `dx` product against an
/// embedding of 16384 tokens: GPT-2's 50257 in f32 exceed lavapipe's 128 MiB binding).
const DTYPE_SHAPES: [(usize, usize, usize, Product); 3] = [
    (16, 768, 2304, Product::Forward),
    (16, 3072, 768, Product::Forward),
    (1, 16384, 768, Product::InputGrad),
];

fn dtype_rows(bench: &mut Bench) {
    let variant = Variant::best(&bench.gpu);
    for (m, k, n, product) in DTYPE_SHAPES {
        for dtype in Dtype::ALL {
            let (name, suffix) = (variant.name(), product.suffix());
            let id = format!("matmul/{name}/{}/{m}x{k}x{n}{suffix}", dtype.name());
            if bench.wants(&id) {
                row(bench, id, variant, (product, dtype), (m, k, n));
            }
        }
    }
}

/// `db += colsum(dy)` at the activation shapes, a memory-bound row beside the CPU reference.
fn bias_rows(bench: &mut Bench) {
    for (m, n) in ACTIVATIONS {
        let id = format!("matmul/bias_backward/{m}x{n}");
        if !bench.wants(&id) {
            continue;
        }
        let (dy, dy_gpu) = fill(&bench.gpu, &[m, n]);
        let (_, db) = fill(&bench.gpu, &[n]);
        let dispatch = matmul::backward_bias(&bench.gpu, &dy_gpu, &db).unwrap();
        let cpu = bench.time_cpu(|| {
            std::hint::black_box(reference::backward_bias(&dy, m, n));
        });
        memory_row(bench, id, &[dispatch], 4 * (m * n + 2 * n), cpu);
    }
}

/// Operands of the product at `(m, k, n)` (forward sizes): `x [m, k]`, `w [k, n]`, `y [m, n]`.
fn operands(bench: &Bench, (m, k, n): (usize, usize, usize)) -> [wgpt::Tensor; 3] {
    let fill = |shape: &[usize]| {
        let len: usize = shape.iter().product();
        let data: Vec<f32> = (0..len).map(|i| (i % 7) as f32 * 0.1).collect();
        bench.gpu.upload("bench", shape, &data).unwrap()
    };
    [fill(&[m, k]), fill(&[k, n]), fill(&[m, n])]
}

/// The dispatch computing `product` on `operands`, the weights `w` stored in `dtype` (`packed`: their
/// words).
fn build(
    bench: &Bench,
    variant: Variant,
    (product, dtype, packed): (Product, Dtype, &wgpt::Tensor),
    [x, w, y]: &[wgpt::Tensor; 3],
) -> wgpt::Dispatch {
    let gpu = &bench.gpu;
    let weights = Weights::packed(packed, dtype, w.shape[0], w.shape[1]).unwrap();
    match product {
        Product::Forward => matmul::forward_weights(gpu, variant, x, weights, None, y),
        Product::InputGrad => matmul::backward_input_weights(gpu, variant, y, weights, x),
        Product::WeightGrad => matmul::backward_weight(gpu, variant, x, y, w),
    }
    .unwrap()
}

fn row(
    bench: &mut Bench,
    id: String,
    variant: Variant,
    (product, dtype): (Product, Dtype),
    (m, k, n): (usize, usize, usize),
) {
    let operands = operands(bench, (m, k, n));
    let packed = match dtype {
        Dtype::F32 => operands[1].clone(),
        _ => {
            let words = dtype.pack(&bench.gpu.read::<f32>(&operands[1]).unwrap());
            bench.gpu.upload("w", &[words.len()], &words).unwrap()
        }
    };
    let pipelines = bench.gpu.counts().pipelines;
    let start = Instant::now();
    let dispatch = build(bench, variant, (product, dtype, &packed), &operands);
    let fresh = bench.gpu.counts().pipelines > pipelines;
    let first = std::slice::from_ref(&dispatch);
    bench.gpu.run_dispatches(first).unwrap();
    let first = start.elapsed();
    let median = bench.time_gpu(&[dispatch]);
    if fresh {
        bench.report_compile(&id, first.saturating_sub(median));
    }
    let cpu = cpu_baseline(bench, product, (m, k, n));
    bench.report(Row {
        id,
        median,
        flops: Some(2.0 * (m * k * n) as f64),
        bytes: None,
        cpu: Some(cpu),
    });
}

/// The same product with `matrixmultiply::sgemm` (all cores), reading the operands as stored through
/// strides, as the kernel does.
fn cpu_baseline(
    bench: &Bench,
    product: Product,
    (m, k, n): (usize, usize, usize),
) -> std::time::Duration {
    let x = vec![0.5f32; m * k];
    let w = vec![0.25f32; k * n];
    let dy = vec![0.125f32; m * n];
    let mut out = vec![0.0f32; (m * k).max(k * n).max(m * n)];
    let (ki, ni) = (k as isize, n as isize);
    let median = bench.time_cpu(|| unsafe {
        match product {
            // y[m,n] = x[m,k]·w[k,n]
            Product::Forward => matrixmultiply::sgemm(
                m,
                k,
                n,
                1.0,
                x.as_ptr(),
                ki,
                1,
                w.as_ptr(),
                ni,
                1,
                0.0,
                out.as_mut_ptr(),
                ni,
                1,
            ),
            // dx[m,k] = dy[m,n]·wᵀ, w read through strides as [n,k]
            Product::InputGrad => matrixmultiply::sgemm(
                m,
                n,
                k,
                1.0,
                dy.as_ptr(),
                ni,
                1,
                w.as_ptr(),
                1,
                ni,
                0.0,
                out.as_mut_ptr(),
                ki,
                1,
            ),
            // dw[k,n] += xᵀ·dy, x read through strides as [k,m]
            Product::WeightGrad => matrixmultiply::sgemm(
                k,
                m,
                n,
                1.0,
                x.as_ptr(),
                1,
                ki,
                dy.as_ptr(),
                ni,
                1,
                1.0,
                out.as_mut_ptr(),
                ni,
                1,
            ),
        }
    });
    std::hint::black_box(&out);
    median
}
