//! Products of a few rows with a weight matrix that is read once: a decode step (M ≤ [`MAX_ROWS`]).
//! Memory-bound, so the weights may be stored in 16 bits ([`crate::dtype::Dtype`], packed two per word); `x`, `b`
//! and `y` are f32 and every sum accumulates in f32.
//!
//! - [`forward`]: `x: [M, K], w: [K, N], b: [N] -> y: [M, N]`, `y = x·w + b` (writes `y`): the linear
//!   layers, weights stored `[in, out]` as GPT-2 stores them.
//! - [`transposed`]: `x: [M, C], e: [V, C] -> y: [M, Y]`, `y[:, first .. first + V] = x·eᵀ` (writes those
//!   columns of `y`, the others keep their values): the output head reading the token embedding, or a
//!   piece of it split by rows, straight into its columns of the logits.
//!
//! `x` may have any leading shape (`[B, T, C]`): its last dimension is the inner one and the rest are
//! rows. The weights come as [`Weights`]: a tensor, its dtype and its logical shape.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::{Binding, Dispatch, Gpu, Kernel, Shader, Tensor};
use crate::kernels::check::{expect_len, rows, to_u32};
pub use crate::kernels::weights::Weights;

pub const SHADER: Shader = crate::shader!("matvec", ["dtype"]);

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
}

/// `y = x·w (+ b)`, `w: [K, N]`; writes `y`.
pub fn forward(
    gpu: &Gpu,
    x: &Tensor,
    w: Weights,
    b: Option<&Tensor>,
    y: &Tensor,
) -> Result<Dispatch> {
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
    let vec4 = k.is_multiple_of(4) && w.rows_in_vec4s();
    Launch {
        entry: if vec4 {
            "matvec_forward_vec4"
        } else {
            "matvec_forward"
        },
        m,
        w,
        tensors: [x, b.unwrap_or(x), y],
        has_bias: b.is_some(),
        params: Params {
            k: to_u32(what, k)?,
            n: to_u32(what, n)?,
            y_cols: n as u32,
            y_first: 0,
        },
        // Invocations own 16 columns and walk K in steps of 4.
        invocations: n.div_ceil(16),
        loops: k.div_ceil(4),
    }
    .dispatch(gpu)
}

/// `y[:, first .. first + V] = x·eᵀ`, `e: [V, C]`, `y: [M, Y]` with `first + V ≤ Y`; writes those
/// columns of `y`.
pub fn transposed(gpu: &Gpu, x: &Tensor, e: Weights, y: &Tensor, first: usize) -> Result<Dispatch> {
    let (v, c) = (e.rows, e.cols);
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
    Launch {
        entry: if vec4 {
            "matvec_transposed_vec4"
        } else {
            "matvec_transposed"
        },
        m,
        w: e,
        tensors: [x, x, y],
        has_bias: false,
        params: Params {
            k: to_u32(what, c)?,
            n: to_u32(what, v)?,
            y_cols: to_u32(what, y_cols)?,
            y_first: first as u32,
        },
        // Invocations own 8 rows of E and walk C in steps of 4 (or 8).
        invocations: v.div_ceil(8),
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
    params: Params,
    invocations: usize,
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
            shader: SHADER,
            entry: self.entry,
            constants: vec![
                ("rows", self.m.max(1) as f64),
                ("dtype", self.w.dtype.code() as f64),
                ("wg", wg as f64),
                ("has_bias", self.has_bias as u32 as f64),
            ],
        };
        let [x, bias, y] = self.tensors;
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
            ],
            &self.params,
            // Past the dispatch limit (some million columns) Dispatch::new refuses, naming it.
            [to_u32(self.entry, invocations.div_ceil(wg))?, 1, 1],
        )
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
