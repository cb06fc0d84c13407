//! Matrix products of a linear layer, weights stored `[in, out]` as GPT-2 stores them.
//!
//! - [`forward`]: `x: [M, K], w: [K, N], b: [N] -> y: [M, N]`, `y = x·w + b` (writes `y`).
//! - [`backward_input`]: `dy: [M, N], w: [K, N] -> dx: [M, K]`, `dx = dy·wᵀ` (writes `dx`).
//! - [`backward_weight`]: `x: [M, K], dy: [M, N] -> dw: [K, N]`, `dw += xᵀ·dy` (adds into `dw`).
//! - [`backward_bias`]: `dy: [M, N] -> db: [N]`, `db += colsum(dy)` (adds into `db`).
//!
//! Fused with the graph's next elementwise ops (the same f32 expressions as the `gelu`, `dropout` and
//! `residual` kernels, so the same bits, with one or two dispatches and passes over the output fewer):
//! - [`forward_gelu`]: writes `pre = x·w + b` and `y = gelu(pre)` (an MLP's first product).
//! - [`forward_residual`]: `y = r + dropout(x·w + b)` (a projection into the residual stream `r`, with
//!   or without dropout on it; writes `y`).
//! - [`backward_input_gelu`]: `dpre = (dy·wᵀ) · gelu'(pre)`, the gradient of the GELU's input (writes it).
//!
//! `x` and `dy` may have any leading shape (`[B, T, C]`): their last dimension is the feature axis and the
//! rest are rows. Operands are read as stored; the transposes are in the indexing.
//!
//! [`forward_weights`] and [`backward_input_weights`] take the weights as [`Weights`], which may be
//! stored in 16 bits ([`crate::dtype`]; an inference model's matrices): they are widened to f32 as
//! they are read, and every sum accumulates in f32. Such products use the entry points without a vec4
//! view of B.

use bytemuck::{Pod, Zeroable};

use crate::contract::{dropout_scale, dropout_threshold};
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::gpu::{Binding, Dispatch, Gpu, Kernel, Shader, Tensor};
use crate::kernels::check::{expect_len, expect_shape, matrix_dims, rows, to_u32};
use crate::kernels::grid::lane_workgroup;

pub use crate::kernels::weights::Weights;

pub const SHADER: Shader = crate::shader!("matmul", ["dtype", "random", "gelu_math"]);
/// The subgroup entry points, apart because naga validates a whole module and subgroup operations need
/// the device's SUBGROUP feature.
pub const SUBGROUP_SHADER: Shader = crate::shader!(
    "matmul_subgroup",
    ["dtype", "random", "gelu_math", "matmul"],
    subgroups = 8
);

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct Params {
    m: u32,
    k: u32,
    n: u32,
    /// The dropout epilogue's site, threshold and scale (zero without it).
    site: u32,
    threshold: u32,
    scale: f32,
    _pad: [u32; 2],
}

/// How the product is computed; every variant gives the same result within rounding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// Workgroup-memory tiles, one output per invocation: the readable baseline, runs everywhere.
    Tiled,
    /// For CPU adapters: register blocks, vec4 loads, no workgroup memory or barriers. `lanes` lanes
    /// share the loads of A through `subgroupBroadcast` (4 or 8, on adapters whose subgroups all have at
    /// least that many lanes); 1 is the path without subgroup operations. On CPU adapters it refuses an
    /// inner dimension past about 262000, where llvmpipe would silently cut its loop short.
    Cpu { lanes: u32 },
    /// For real GPUs: workgroup-memory tiles of A and B, a 4×4 register block per invocation.
    Gpu,
}

impl Variant {
    pub const ALL: [Variant; 5] = [
        Variant::Tiled,
        Variant::Cpu { lanes: 1 },
        Variant::Cpu { lanes: 4 },
        Variant::Cpu { lanes: 8 },
        Variant::Gpu,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Tiled => "tiled",
            Variant::Cpu { lanes: 4 } => "cpu_sg4",
            Variant::Cpu { lanes: 8 } => "cpu_sg8",
            Variant::Cpu { .. } => "cpu",
            Variant::Gpu => "gpu",
        }
    }

    /// Whether this adapter can run the variant.
    pub fn supported(self, gpu: &Gpu) -> bool {
        match self {
            Variant::Cpu { lanes: 1 } => true,
            Variant::Cpu { lanes } => {
                (lanes == 4 || lanes == 8)
                    && gpu.subgroup_sizes().is_some_and(|(min, _)| min >= lanes)
            }
            _ => true,
        }
    }

    /// The variant the launcher uses on this adapter: `gpu` on GPUs; on CPU adapters `cpu` with the
    /// widest subgroup sharing the adapter's subgroups allow.
    pub fn best(gpu: &Gpu) -> Variant {
        if !gpu.is_cpu() {
            return Variant::Gpu;
        }
        [8, 4, 1]
            .into_iter()
            .map(|lanes| Variant::Cpu { lanes })
            .find(|v| v.supported(gpu))
            .unwrap_or(Variant::Cpu { lanes: 1 })
    }
}

/// The three operand arrangements of a linear layer, as the shader's switches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Product {
    Forward { bias: bool },
    InputGrad,
    WeightGrad,
}

/// What the store of C does besides adding the bias: the shader's `epilogue` switch and its tensor.
#[derive(Clone, Copy)]
enum Epilogue<'a> {
    None,
    /// C is the pre-activation; `out = gelu(C)`.
    Gelu {
        out: &'a Tensor,
    },
    /// C = `stream` + the product, through dropout when given.
    Residual {
        stream: &'a Tensor,
        dropout: Option<BranchDropout<'a>>,
    },
    /// C = the product · gelu'(`pre`).
    GeluGrad {
        pre: &'a Tensor,
    },
}

impl<'a> Epilogue<'a> {
    fn switch(self) -> u32 {
        match self {
            Epilogue::None => 0,
            Epilogue::Gelu { .. } => 1,
            Epilogue::Residual { dropout: None, .. } => 2,
            Epilogue::Residual {
                dropout: Some(_), ..
            } => 3,
            Epilogue::GeluGrad { .. } => 4,
        }
    }

    fn dropout(self) -> Option<BranchDropout<'a>> {
        match self {
            Epilogue::Residual { dropout, .. } => dropout,
            _ => None,
        }
    }

    /// The `state` binding's tensor, for dropout.
    fn state(self) -> Option<&'a Tensor> {
        self.dropout().map(|d| d.state)
    }

    /// The `aux` binding: the epilogue's tensor, if it has one.
    fn tensor(self) -> Option<&'a Tensor> {
        match self {
            Epilogue::None => None,
            Epilogue::Gelu { out } => Some(out),
            Epilogue::Residual { stream, .. } => Some(stream),
            Epilogue::GeluGrad { pre } => Some(pre),
        }
    }
}

/// Dropout on a branch before it joins the residual stream, as [`crate::kernels::dropout`] draws it:
/// probability `p` at `site`, the mask from the `[seed, step, micro]` tensor `state`.
#[derive(Clone, Copy, Debug)]
pub struct BranchDropout<'a> {
    pub state: &'a Tensor,
    pub site: u32,
    pub p: f32,
}

/// `y = x·w (+ b)`; writes `y`.
pub fn forward(
    gpu: &Gpu,
    variant: Variant,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    y: &Tensor,
) -> Result<Dispatch> {
    forward_with(gpu, variant, x, Weights::f32(w)?, b, y, Epilogue::None)
}

/// [`forward`] with `w: [K, N]` stored as [`Weights`] say; writes `y`.
pub fn forward_weights(
    gpu: &Gpu,
    variant: Variant,
    x: &Tensor,
    w: Weights,
    b: Option<&Tensor>,
    y: &Tensor,
) -> Result<Dispatch> {
    forward_with(gpu, variant, x, w, b, y, Epilogue::None)
}

/// `pre = x·w (+ b)` and `y = gelu(pre)`; writes both.
pub fn forward_gelu(
    gpu: &Gpu,
    variant: Variant,
    x: &Tensor,
    w: Weights,
    b: Option<&Tensor>,
    pre: &Tensor,
    y: &Tensor,
) -> Result<Dispatch> {
    expect_len("matmul forward gelu output", y, pre.len())?;
    forward_with(gpu, variant, x, w, b, pre, Epilogue::Gelu { out: y })
}

/// `y = r + dropout(x·w (+ b))`, without dropout when `None`; writes `y`.
#[allow(clippy::too_many_arguments)]
pub fn forward_residual(
    gpu: &Gpu,
    variant: Variant,
    x: &Tensor,
    w: Weights,
    b: Option<&Tensor>,
    dropout: Option<BranchDropout>,
    r: &Tensor,
    y: &Tensor,
) -> Result<Dispatch> {
    expect_len("matmul forward residual stream", r, y.len())?;
    if let Some(d) = dropout {
        crate::kernels::dropout::check(d.state, d.p)?;
    }
    let epilogue = Epilogue::Residual { stream: r, dropout };
    forward_with(gpu, variant, x, w, b, y, epilogue)
}

fn forward_with(
    gpu: &Gpu,
    variant: Variant,
    x: &Tensor,
    w: Weights,
    b: Option<&Tensor>,
    y: &Tensor,
    epilogue: Epilogue,
) -> Result<Dispatch> {
    w.expect_rows("matmul forward")?;
    let (k, n) = (w.rows, w.cols);
    let m = rows("matmul forward input", x, k)?;
    expect_shape("matmul forward output", y, m, n)?;
    if let Some(b) = b {
        expect_len("matmul forward bias", b, n)?;
    }
    let bias = b.unwrap_or(x);
    launch(
        gpu,
        variant,
        Product::Forward { bias: b.is_some() },
        [m, k, n],
        ([x, w.tensor, bias], w.dtype),
        y,
        epilogue,
    )
}

/// `dx = dy·wᵀ`; writes `dx`.
pub fn backward_input(
    gpu: &Gpu,
    variant: Variant,
    dy: &Tensor,
    w: &Tensor,
    dx: &Tensor,
) -> Result<Dispatch> {
    backward_input_with(gpu, variant, dy, Weights::f32(w)?, dx, Epilogue::None)
}

/// [`backward_input`] with `w: [K, N]` stored as [`Weights`] say (the output head `x·eᵀ` of a model in
/// 16 bits, `x` in the role of `dy`); writes `dx`.
pub fn backward_input_weights(
    gpu: &Gpu,
    variant: Variant,
    dy: &Tensor,
    w: Weights,
    dx: &Tensor,
) -> Result<Dispatch> {
    backward_input_with(gpu, variant, dy, w, dx, Epilogue::None)
}

/// `dpre = (dy·wᵀ) · gelu'(pre)`, where the layer's input was `gelu(pre)`, with `w` stored as
/// [`Weights`] say; writes `dpre`.
pub fn backward_input_gelu(
    gpu: &Gpu,
    variant: Variant,
    dy: &Tensor,
    w: Weights,
    pre: &Tensor,
    dpre: &Tensor,
) -> Result<Dispatch> {
    expect_len("matmul backward gelu pre-activation", pre, dpre.len())?;
    let epilogue = Epilogue::GeluGrad { pre };
    backward_input_with(gpu, variant, dy, w, dpre, epilogue)
}

fn backward_input_with(
    gpu: &Gpu,
    variant: Variant,
    dy: &Tensor,
    w: Weights,
    dx: &Tensor,
    epilogue: Epilogue,
) -> Result<Dispatch> {
    w.expect_rows("matmul backward")?;
    let (k, n) = (w.rows, w.cols);
    let m = rows("matmul backward output gradient", dy, n)?;
    expect_shape("matmul backward input gradient", dx, m, k)?;
    // dX[M, K] = dY[M, N] · Wᵀ: the product's inner dimension is N.
    let operands = ([dy, w.tensor, dy], w.dtype);
    launch(
        gpu,
        variant,
        Product::InputGrad,
        [m, n, k],
        operands,
        dx,
        epilogue,
    )
}

/// `dw += xᵀ·dy`; adds into `dw`.
pub fn backward_weight(
    gpu: &Gpu,
    variant: Variant,
    x: &Tensor,
    dy: &Tensor,
    dw: &Tensor,
) -> Result<Dispatch> {
    let (k, n) = matrix_dims("matmul weight gradient", dw)?;
    let m = rows("matmul backward input", x, k)?;
    let m_dy = rows("matmul backward output gradient", dy, n)?;
    if m != m_dy {
        return Err(Error::shape(
            "matmul weight gradient",
            format!("x has {m} rows but dy has {m_dy}"),
        ));
    }
    // dW[K, N] = Xᵀ[K, M] · dY[M, N]: the product's inner dimension is M.
    let operands = ([x, dy, x], Dtype::F32);
    let product = Product::WeightGrad;
    launch(
        gpu,
        variant,
        product,
        [k, m, n],
        operands,
        dw,
        Epilogue::None,
    )
}

/// `db += colsum(dy)`; adds into `db`.
pub fn backward_bias(gpu: &Gpu, dy: &Tensor, db: &Tensor) -> Result<Dispatch> {
    let n = db.len();
    let m = rows("matmul bias gradient", dy, n)?;
    let params = params([m, 0, n], None)?;
    let (entry, lanes) = if n.is_multiple_of(4) {
        ("matmul_bias_backward_vec4", n / 4)
    } else {
        ("matmul_bias_backward", n)
    };
    let columns = lane_workgroup(gpu);
    let kernel = Kernel {
        shader: SHADER,
        entry,
        constants: vec![("columns", columns as f64)],
    };
    Dispatch::new(
        gpu,
        &kernel,
        &[
            Binding::Read(dy),
            Binding::Read(dy),
            Binding::Read(dy),
            Binding::ReadWrite(db),
            Binding::ReadWrite(&gpu.unused(0)?),
            Binding::Read(dy),
        ],
        &params,
        [lanes.div_ceil(columns as usize) as u32, 1, 1],
    )
}

/// Products of at most this many rows take the cpu variant's thin kernels (4-row blocks): a 32-row
/// block would do 32/M times the useful work, and past 8 rows reading op(B) once per 4 rows costs more
/// than that.
const THIN_ROWS: usize = 8;

/// Builds the dispatch computing `c (+)= op(a)·op(b) (+ bias)`, then the epilogue, for the product's
/// `[m, k, n]`, `b` stored in `b_dtype`.
fn launch(
    gpu: &Gpu,
    variant: Variant,
    product: Product,
    [m, k, n]: [usize; 3],
    ([a, b, bias], b_dtype): ([&Tensor; 3], Dtype),
    c: &Tensor,
    epilogue: Epilogue,
) -> Result<Dispatch> {
    if !variant.supported(gpu) {
        return Err(Error::MissingFeature {
            what: format!("matmul variant {}", variant.name()),
            feature: "SUBGROUP (with large enough subgroups)",
            adapter: gpu.info().name.clone(),
        });
    }
    let switches = [
        ("trans_a", product == Product::WeightGrad),
        ("trans_b", product == Product::InputGrad),
        ("accumulate", product == Product::WeightGrad),
        ("has_bias", product == Product::Forward { bias: true }),
    ];
    let mut constants: Vec<(&'static str, f64)> = switches
        .iter()
        .map(|&(name, on)| (name, on as u32 as f64))
        .collect();
    constants.push(("dtype", b_dtype.code() as f64));
    constants.push(("epilogue", epilogue.switch() as f64));
    let (shader, entry, workgroups) = match variant {
        Variant::Tiled => {
            const TILE: usize = 16;
            constants.push(("tile", TILE as f64));
            (
                SHADER,
                "matmul_tiled",
                [n.div_ceil(TILE), m.div_ceil(TILE), 1],
            )
        }
        Variant::Cpu { lanes } => {
            cpu_kernel(gpu, variant, lanes, product, [m, k, n], &mut constants)?
        }
        Variant::Gpu => {
            const THREADS: usize = 16;
            const TILE_K: usize = 16;
            constants.push(("gpu_threads", THREADS as f64));
            constants.push(("gpu_tile_k", TILE_K as f64));
            let tile = 4 * THREADS;
            (
                SHADER,
                "matmul_gpu",
                [n.div_ceil(tile), m.div_ceil(tile), 1],
            )
        }
    };
    let kernel = Kernel {
        shader,
        entry,
        constants,
    };
    let workgroups = workgroups.map(|g| g as u32);
    // Without an epilogue, `aux` is a spare (binding `c` writable twice is refused by WebGPU).
    let spare;
    let aux = match epilogue.tensor() {
        Some(t) => t,
        None => {
            spare = gpu.unused(0)?;
            &spare
        }
    };
    Dispatch::new(
        gpu,
        &kernel,
        &[
            Binding::Read(a),
            Binding::Read(b),
            Binding::Read(bias),
            Binding::ReadWrite(c),
            Binding::ReadWrite(aux),
            Binding::Read(epilogue.state().unwrap_or(a)),
        ],
        &params([m, k, n], epilogue.dropout())?,
        workgroups,
    )
}

/// llvmpipe ends an invocation after 65535 loop iterations in all, silently; the cpu kernels make one
/// per 4 of K, plus at most about 300 storing their block and applying its epilogue.
const CPU_LOOP_LIMIT: usize = 65535 - 512;

/// Invocations per workgroup of the cpu kernels (not the thin ones), each 4 columns wide. Lavapipe runs a
/// workgroup's 8-lane SIMD vectors one after another on one thread, so four of them side by side (32)
/// find op(A)'s rows still in cache: up to 1.1-1.2× faster than one (8) for the forward and
/// input-gradient products at GPT shapes. One vector per workgroup where four would idle lanes past N
/// (more than an eighth of the columns), or leave lavapipe's threads (one per core) fewer than four
/// workgroups each to balance (a weight gradient of 128 rows ran up to 3× slower), and always for weight
/// gradients: their op(B) panel, K = B·T rows deep, outgrows the cache at 32 (1.2-1.5× slower).
fn cpu_group(product: Product, [m, n]: [usize; 2], rows: usize) -> usize {
    const WIDE: usize = 32;
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let columns = 4 * WIDE;
    let idle = n.next_multiple_of(columns) - n;
    let groups = m.div_ceil(rows) * n.div_ceil(columns);
    if product != Product::WeightGrad && 8 * idle <= n && groups >= 4 * threads {
        WIDE
    } else {
        8
    }
}

/// The cpu variant's entry point and workgroup grid for the product's `[m, k, n]`, pushing its constants.
fn cpu_kernel(
    gpu: &Gpu,
    variant: Variant,
    lanes: u32,
    product: Product,
    [m, k, n]: [usize; 3],
    constants: &mut Vec<(&'static str, f64)>,
) -> Result<(Shader, &'static str, [usize; 3])> {
    if gpu.is_cpu() && k.div_ceil(4) > CPU_LOOP_LIMIT {
        return Err(Error::Limit {
            what: format!("matmul variant {} (inner dimension {k})", variant.name()),
            limit: "loop iterations per invocation",
            needed: k.div_ceil(4) as u64,
            allowed: CPU_LOOP_LIMIT as u64,
            adapter: gpu.info().name.clone(),
        });
    }
    // The vec4 views need the contiguous axes of op(A), op(B) and C in fours (K and N then both are, so
    // a 16-bit B is whole vec4s of words); op(A)'s alone may take its vec4 view when the others cannot
    // (matmul_cpu_subgroup_a4).
    let a_axis = if product == Product::WeightGrad { m } else { k };
    let b_axis = if product == Product::InputGrad { k } else { n };
    let a_vec4 = a_axis.is_multiple_of(4);
    let vec4 = a_vec4 && [b_axis, n].iter().all(|d| d % 4 == 0);
    // Few rows (a decode step): blocks of 4 rows, op(A) not shared (see matmul_cpu_thin), up to 64
    // invocations of 4 columns per workgroup, spread evenly over the column blocks in whole 8-lane SIMD
    // vectors: idle lanes cost as much as busy ones on a CPU.
    if m <= THIN_ROWS && product != Product::WeightGrad {
        let width = n.div_ceil(4 * n.div_ceil(256)).next_multiple_of(8);
        constants.push(("cpu_width", width as f64));
        let entry = if vec4 {
            "matmul_cpu_thin_vec4"
        } else {
            "matmul_cpu_thin"
        };
        return Ok((SHADER, entry, [m.div_ceil(4), n.div_ceil(4 * width), 1]));
    }
    // An invocation covers 4 columns and 32 rows, or 64 rows (`cpu_rows`) when op(A) is shared across
    // lanes, read through the vec4 views, and M has at least two such blocks: 1.15-1.3× faster (a third
    // fewer loads per multiply-add), down to weight gradients of 128 rows, at twice the compile time
    // (about 0.5 s). Through the scalar views 64 rows run no faster and compile twice as long (their
    // loads are four times as many loops for llvmpipe).
    let rows = if lanes > 1 && vec4 && m >= 128 {
        64
    } else {
        32
    };
    let (shader, entry) = match (lanes > 1, vec4) {
        (false, false) => (SHADER, "matmul_cpu"),
        (false, true) => (SHADER, "matmul_cpu_vec4"),
        (true, false) if a_vec4 => (SUBGROUP_SHADER, "matmul_cpu_subgroup_a4"),
        (true, false) => (SUBGROUP_SHADER, "matmul_cpu_subgroup"),
        (true, true) => (SUBGROUP_SHADER, "matmul_cpu_subgroup_vec4"),
    };
    let group = cpu_group(product, [m, n], rows);
    constants.push(("cpu_width", group as f64));
    if lanes > 1 {
        constants.push(("cpu_lanes", lanes as f64));
        constants.push(("cpu_rows", rows as f64));
    }
    Ok((shader, entry, [m.div_ceil(rows), n.div_ceil(4 * group), 1]))
}

fn params([m, k, n]: [usize; 3], dropout: Option<BranchDropout>) -> Result<Params> {
    Ok(Params {
        m: to_u32("matmul", m)?,
        k: to_u32("matmul", k)?,
        n: to_u32("matmul", n)?,
        site: dropout.map_or(0, |d| d.site),
        threshold: dropout.map_or(0, |d| dropout_threshold(d.p)),
        scale: dropout.map_or(0.0, |d| dropout_scale(d.p)),
        _pad: [0; 2],
    })
}
