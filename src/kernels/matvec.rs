//! Products of a few rows with a weight matrix that is read once: a decode step (M ≤ [`MAX_ROWS`]).
//! Memory-bound, so the weights may be stored in 16 bits ([`crate::dtype::Dtype`], packed two per word); `x`, `b`
//! and `y` are f32 and every sum accumulates in f32.
//!
//! - [`forward`]: `x: [M, K], w: [K, N], b: [N] -> y: [M, N]`, `y = x·w + b` (writes `y`): a linear
//!   layer over its weights as stored, `[in, out]` as GPT-2 stores them, without a transposed copy (the
//!   bench's baseline for the decode path, which reads one: see [`transposed`]). On CPU adapters a
//!   product with few columns and many rows (GPT-2's MLP out, 3072 → 768) splits K into pieces summed
//!   by a second pass, through a scratch of [`part_len`] floats that the caller provides.
//! - [`transposed`]: `x: [M, C], e: [V, C], b: [V] -> y: [M, Y]`, `y[:, first .. first + V] = x·eᵀ + b`
//!   (writes those columns of `y`, the others keep their values): the output head reading the token
//!   embedding, or a piece of it split by rows, straight into its columns of the logits; and a decode
//!   step's linear layers on CPU adapters, from a transposed copy of their weights (`[out, in]`, rows
//!   walked in order: 1.2-1.7x the GB/s of [`forward`] at GPT-2's shapes; interleaved by 8 rows,
//!   [`Layout::Interleaved`], 1.1-1.35x more), with GELU or the residual add applied as it stores
//!   ([`Epilogue`]).
//!
//! `x` may have any leading shape (`[B, T, C]`): its last dimension is the inner one and the rest are
//! rows. The weights come as [`Weights`]: a tensor, its dtype, its logical shape and its layout
//! (row-major but for [`transposed`]'s).

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::{Binding, Dispatch, Gpu, Kernel, Shader, Tensor};
use crate::kernels::check::{expect_len, rows, to_u32};
pub use crate::kernels::weights::{Layout, Weights};

pub const SHADER: Shader = crate::shader!("matvec", ["dtype", "gelu_math"]);
/// The vec4 products with x shared across lanes, apart because naga validates a whole module and
/// subgroup operations need the device's SUBGROUP feature.
pub const SUBGROUP_SHADER: Shader = crate::shader!(
    "matvec_subgroup",
    ["dtype", "gelu_math", "matvec"],
    subgroups = 8
);

/// The most rows a product may have: each invocation keeps every row's sums in registers. Larger
/// products belong to [`crate::kernels::matmul`].
pub const MAX_ROWS: usize = 8;

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct Params {
    /// The inner dimension: K or C.
    k: u32,
    /// The columns computed: N or V.
    n: u32,
    y_cols: u32,
    y_first: u32,
    /// The forward's rows of W per workgroup row.
    piece: u32,
    _pad: [u32; 3],
}

/// The f32 scratch [`forward`] needs for `m` rows of input and weights `w`: the partial sums of the
/// pieces of K it splits the product into, or none when it takes one piece.
pub fn part_len(gpu: &Gpu, m: usize, w: &Weights) -> usize {
    match pieces(gpu, w) {
        1 => 0,
        p => p * m * w.cols,
    }
}

/// Pieces of K the vec4 forward splits into on a CPU adapter: enough that about [`CPU_WORKGROUPS`]
/// workgroups stream the weights (a product 768 columns wide has only 6 workgroups of 16 columns a
/// lane, and ran at about 60% of the GB/s of one 3072 wide), each piece at least 768 rows (shorter
/// pieces cost their sum pass more than they gained). One piece for the value-by-value forward and on
/// GPUs, whose products have enough workgroups.
fn pieces(gpu: &Gpu, w: &Weights) -> usize {
    if !vec4_forward(w) || !gpu.is_cpu() {
        return 1;
    }
    let groups = w.cols.div_ceil(16 * workgroup(gpu));
    CPU_WORKGROUPS.div_ceil(groups).min(w.rows / 768).max(1)
}

/// Workgroups a CPU adapter's forward product aims for (GPT-2's widest, 3072 columns, has 24).
const CPU_WORKGROUPS: usize = 24;

fn vec4_forward(w: &Weights) -> bool {
    w.rows.is_multiple_of(4) && w.rows_in_vec4s()
}

/// `y = x·w (+ b)`, `w: [K, N]`; writes `y`. Where [`part_len`] is not zero, K is split into pieces
/// whose partial sums go to `part` (at least that many floats, written), and a second pass adds them up
/// (with the bias) into `y`; otherwise `part` is not read.
pub fn forward(
    gpu: &Gpu,
    x: &Tensor,
    w: Weights,
    b: Option<&Tensor>,
    y: &Tensor,
    part: &Tensor,
) -> Result<Vec<Dispatch>> {
    w.expect_rows("matvec forward")?;
    let (k, n) = (w.rows, w.cols);
    let m = rows("matvec forward input", x, k)?;
    let m_y = rows("matvec forward output", y, n)?;
    if m_y != m {
        return Err(Error::shape(
            "matvec forward output",
            format!("{m_y} rows for an input of {m}"),
        ));
    }
    if let Some(b) = b {
        expect_len("matvec forward bias", b, n)?;
    }
    let what = "matvec forward";
    let vec4 = vec4_forward(&w);
    let pieces = pieces(gpu, &w);
    let piece = k.div_ceil(4 * pieces) * 4;
    let params = Params {
        k: to_u32(what, k)?,
        n: to_u32(what, n)?,
        y_cols: n as u32,
        piece: to_u32(what, piece)?,
        ..Params::zeroed()
    };
    let product = |out: &Tensor, has_bias: bool| {
        Launch {
            entry: match (vec4, shares_x(gpu, m)) {
                (true, true) => "matvec_forward_shared_x",
                (true, false) => "matvec_forward_vec4",
                (false, _) => "matvec_forward",
            },
            m,
            w,
            tensors: [x, b.unwrap_or(x), out],
            has_bias,
            epilogue: Epilogue::None,
            params,
            // Invocations own 16 columns and walk their piece of K in steps of 4.
            invocations: n.div_ceil(16),
            groups: 1,
            pieces,
            loops: piece.div_ceil(4),
        }
        .dispatch(gpu)
    };
    if pieces == 1 {
        return Ok(vec![product(y, b.is_some())?]);
    }
    let needed = part_len(gpu, m, &w);
    if part.len() < needed {
        return Err(Error::shape(
            "matvec forward partial sums",
            format!("{needed} floats needed, got {}", part.describe()),
        ));
    }
    let sum = Launch {
        entry: "matvec_forward_sum",
        m,
        w,
        tensors: [part, b.unwrap_or(part), y],
        has_bias: b.is_some(),
        epilogue: Epilogue::None,
        params: Params {
            k: to_u32(what, pieces)?,
            ..params
        },
        // An invocation per vec4 of y, adding up the pieces.
        invocations: m * n / 4,
        groups: 1,
        pieces: 1,
        loops: pieces,
    };
    Ok(vec![product(part, false)?, sum.dispatch(gpu)?])
}

/// What [`transposed`] applies to each sum (with its bias) as it stores it: the same bits as the gelu
/// and residual kernels run after a plain product, in one dispatch instead of two. `pre` and `stream`
/// are shaped as `y`.
#[derive(Clone, Copy, Debug)]
pub enum Epilogue<'a> {
    /// `y = x·eᵀ + b`.
    None,
    /// `pre = x·eᵀ + b`, `y = gelu(pre)` (writes both).
    Gelu { pre: &'a Tensor },
    /// `y = x·eᵀ + b + stream` (the residual add into the stream's next value).
    Residual { stream: &'a Tensor },
}

impl Epilogue<'_> {
    /// `EPILOGUE_*` in matvec.wgsl.
    fn code(self) -> u32 {
        match self {
            Epilogue::None => 0,
            Epilogue::Gelu { .. } => 1,
            Epilogue::Residual { .. } => 2,
        }
    }
}

/// `y[:, first .. first + V] = x·eᵀ (+ b)`, `e: [V, C]`, `b: [V]`, `y: [M, Y]` with `first + V ≤ Y`,
/// through `epilogue`; writes those columns of `y` (and of an epilogue's `pre`).
pub fn transposed(
    gpu: &Gpu,
    x: &Tensor,
    e: Weights,
    b: Option<&Tensor>,
    epilogue: Epilogue,
    y: &Tensor,
    first: usize,
) -> Result<Dispatch> {
    let (v, c) = (e.rows, e.cols);
    if let Some(b) = b {
        expect_len("matvec transposed bias", b, v)?;
    }
    if let Epilogue::Gelu { pre: side } | Epilogue::Residual { stream: side } = epilogue {
        expect_len("matvec transposed epilogue", side, y.len())?;
    }
    let m = rows("matvec transposed input", x, c)?;
    let y_cols = y.shape.last().copied().unwrap_or(1);
    if y.len() != m * y_cols || first + v > y_cols {
        return Err(Error::shape(
            "matvec transposed output",
            format!(
                "{m} rows with columns {first}..{} (of {v} weight rows), got shape {}",
                first + v,
                y.describe()
            ),
        ));
    }
    let what = "matvec transposed";
    let vec4 = c.is_multiple_of(4) && e.rows_in_vec4s();
    let groups = transposed_groups(gpu, e.layout);
    Launch {
        entry: match (vec4, shares_x(gpu, m)) {
            (true, true) => "matvec_transposed_shared_x",
            (true, false) => "matvec_transposed_vec4",
            (false, _) => "matvec_transposed",
        },
        m,
        w: e,
        tensors: [x, b.unwrap_or(x), y],
        has_bias: b.is_some(),
        epilogue,
        params: Params {
            k: to_u32(what, c)?,
            n: to_u32(what, v)?,
            y_cols: to_u32(what, y_cols)?,
            y_first: first as u32,
            ..Params::zeroed()
        },
        // Invocations own groups of 8 rows of E and walk C in steps of 4 (or 8).
        invocations: v.div_ceil(8 * groups),
        groups,
        pieces: 1,
        loops: c.div_ceil(4),
    }
    .dispatch(gpu)
}

/// What both products dispatch.
struct Launch<'a> {
    entry: &'static str,
    /// Rows of x and y.
    m: usize,
    w: Weights<'a>,
    /// x, the bias (x when there is none) and y.
    tensors: [&'a Tensor; 3],
    has_bias: bool,
    /// What the transposed product's store applies.
    epilogue: Epilogue<'a>,
    params: Params,
    invocations: usize,
    /// The transposed product's groups of 8 rows of E an invocation (1 for the forward).
    groups: usize,
    /// Workgroup rows of the grid (pieces of K).
    pieces: usize,
    /// Iterations of an invocation's main loop.
    loops: usize,
}

impl Launch<'_> {
    fn dispatch(self, gpu: &Gpu) -> Result<Dispatch> {
        if self.m > MAX_ROWS {
            return Err(Error::shape(
                self.entry,
                format!(
                    "{} rows; matvec takes at most {MAX_ROWS} (matmul takes more)",
                    self.m
                ),
            ));
        }
        // llvmpipe ends an invocation after 65535 loop iterations in all, silently; the epilogue's
        // few dozen are left as margin (K or C up to about 262000).
        const CPU_LOOP_LIMIT: usize = 65535 - 64;
        if gpu.is_cpu() && self.loops > CPU_LOOP_LIMIT {
            return Err(Error::Limit {
                what: self.entry.to_string(),
                limit: "loop iterations per invocation",
                needed: self.loops as u64,
                allowed: CPU_LOOP_LIMIT as u64,
                adapter: gpu.info().name.clone(),
            });
        }
        let wg = workgroup(gpu);
        let kernel = Kernel {
            shader: if self.entry.ends_with("_shared_x") {
                SUBGROUP_SHADER
            } else {
                SHADER
            },
            entry: self.entry,
            constants: vec![
                ("rows", self.m.max(1) as f64),
                ("dtype", self.w.dtype.code() as f64),
                ("wg", wg as f64),
                ("has_bias", self.has_bias as u32 as f64),
                ("epilogue", self.epilogue.code() as f64),
                (
                    "interleaved",
                    (self.w.layout == Layout::Interleaved) as u32 as f64,
                ),
                ("groups", self.groups as f64),
            ],
        };
        let [x, bias, y] = self.tensors;
        let side = match self.epilogue {
            Epilogue::None => &gpu.unused(0)?,
            Epilogue::Gelu { pre: t } | Epilogue::Residual { stream: t } => t,
        };
        // No rows: nothing to compute, and a dispatch of no workgroups records nothing.
        let invocations = if self.m == 0 { 0 } else { self.invocations };
        Dispatch::new(
            gpu,
            &kernel,
            &[
                Binding::Read(x),
                Binding::Read(self.w.tensor),
                Binding::Read(bias),
                Binding::ReadWrite(y),
                Binding::ReadWrite(side),
            ],
            &self.params,
            // Past the dispatch limit (some million columns) Dispatch::new refuses, naming it.
            [
                to_u32(self.entry, invocations.div_ceil(wg))?,
                to_u32(self.entry, self.pieces)?,
                1,
            ],
        )
    }
}

/// Whether the vec4 products of `m` rows take the entry points that share x across lanes: with more
/// than one row, on CPU adapters whose subgroups hold a whole workgroup. On lavapipe every lane's load
/// of x costs as much as a load of weights, so with 8 rows the forward loaded 8 vec4s of x for its 16
/// of weights and the head 8 for 8; shared, the 8-row head ran 1.5-1.7x as fast and the forward
/// 1.2-1.3x. With one row there is nothing to share (about 3% slower).
fn shares_x(gpu: &Gpu, m: usize) -> bool {
    let wg = workgroup(gpu) as u32;
    m > 1 && gpu.is_cpu() && gpu.subgroup_sizes().is_some_and(|(min, _)| min >= wg)
}

/// The groups of 8 rows of E a transposed product's invocation owns: on CPU adapters 2 when E's rows are
/// in order (the output head), so that each vec4 of x loaded serves 16 rows (on lavapipe a load of x
/// costs as much as one of weights): GPT-2's head 1.05-1.19x as fast with one row of x, 1.19-1.28x with
/// 8 (two benches, medians of 5 interleaved runs each). Interleaved E stays at one group, which lavapipe
/// reads as one stream (two groups, two streams, ran 0.76-1.03x as fast). Elsewhere 1, for twice the
/// invocations.
fn transposed_groups(gpu: &Gpu, layout: Layout) -> usize {
    if gpu.is_cpu() && layout == Layout::Rows {
        2
    } else {
        1
    }
}

/// Invocations per workgroup: on CPU adapters one SIMD row of 8, each streaming its own strip of the
/// weights (lavapipe runs a workgroup's rows one after another); a few warps elsewhere.
fn workgroup(gpu: &Gpu) -> usize {
    if gpu.is_cpu() {
        8
    } else {
        64
    }
}
