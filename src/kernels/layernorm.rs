//! LayerNorm over the last dimension (`x: [rows, C]`, any leading shape; `gain, bias: [C]`;
//! `mean, rstd: [rows]`), eps inside the square root:
//!
//! - [`forward`]: `y = (x - mean)·rstd·gain (+ bias)`, `rstd = 1/√(var + eps)` (writes `y`, `mean`,
//!   `rstd`; the backward reads the last two).
//! - [`backward`]: `dx = rstd·(g - mean(g) - x̂·mean(g·x̂))`, `g = dy·gain`, `x̂ = (x - mean)·rstd`
//!   (writes `dx`).
//! - [`backward_params`]: `dgain += Σ_rows dy·x̂`, `dbias += Σ_rows dy` (adds into both), one invocation
//!   per column summing rows in order: deterministic without atomics.
//!
//! The bias is optional (the modern variant has none). Forward and backward come in two [`Variant`]s,
//! which round differently (another reduction order; the row variant shifts the variance), so the
//! adapter's kind picks one ([`Variant::best`]) and no timing ever switches between them. What
//! [`Variant::tuned`] lets the autotuner pick is a [`Launch`] of that variant: for a row per invocation,
//! how many rows share a workgroup, which changes no bit of the results.

use std::cell::OnceCell;

use crate::error::{Error, Result};
use crate::gpu::{Binding, Dispatch, Gpu, Shader, Tensor};
use crate::kernels::check::{expect_len, expect_shape, rows};
use crate::kernels::grid::{per_row, Spread};

pub const SHADER: Shader = crate::shader!("layernorm", ["rowsum"]);

/// How the forward and the backward spread rows over invocations; both give the same result within
/// rounding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// One workgroup per row, merging in workgroup memory: GPUs.
    Workgroup,
    /// One invocation per row with C as an override constant (unrolled loops, no barriers), and a
    /// one-pass shifted variance: CPUs, where invocations are SIMD lanes (2-3x faster on lavapipe).
    Invocation,
}

impl Variant {
    pub const ALL: [Variant; 2] = [Variant::Workgroup, Variant::Invocation];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Workgroup => "workgroup",
            Variant::Invocation => "invocation",
        }
    }

    /// Whether the variant takes rows of `cols` on this adapter: on CPU adapters a row per invocation
    /// stops at 4096 columns, where its loops near llvmpipe's per-invocation iteration limit.
    pub fn fits(self, gpu: &Gpu, cols: usize) -> bool {
        self == Variant::Workgroup || !gpu.is_cpu() || cols <= 4096
    }

    /// The variant for rows of `cols` on this adapter, untimed: a row per invocation on CPUs where it
    /// fits, a workgroup per row elsewhere.
    pub fn best(gpu: &Gpu, cols: usize) -> Variant {
        if gpu.is_cpu() && Variant::Invocation.fits(gpu, cols) {
            Variant::Invocation
        } else {
            Variant::Workgroup
        }
    }

    /// The launch of [`Variant::best`] for `pass` over `x: [rows, C]` (`gain: [C]`): [`Gpu::tune`]'s
    /// choice among [`Launch::candidates`] (all bit-identical), timed once per adapter and shape class
    /// (rows to the next power of two, C), or the variant's default launch when tuning is off.
    pub fn tuned(gpu: &Gpu, pass: Pass, x: &Tensor, gain: &Tensor) -> Result<Launch> {
        let cols = gain.len().max(1);
        let rows = x.len() / cols;
        let heuristic = Launch::from(Variant::best(gpu, cols));
        let candidates = Launch::candidates(heuristic.variant);
        let key = format!(
            "layernorm_{}/{}x{cols}",
            pass.name(),
            rows.next_power_of_two()
        );
        let scratch = OnceCell::new();
        gpu.tune(&key, &candidates, heuristic, |&launch| {
            if scratch.get().is_none() {
                let _ = scratch.set(Scratch::new(gpu, rows, cols)?);
            }
            let s = scratch
                .get()
                .ok_or_else(|| Error::Invalid("layernorm scratch".into()))?;
            s.dispatch(gpu, pass, launch)
        })
    }
}

/// A [`Variant`] and how its rows are grouped into workgroups: for [`Variant::Invocation`], the rows
/// (invocations) per workgroup. Each row is one invocation's loop whatever the grouping, so every
/// launch of a variant gives bit-identical results; only the speed differs (on a CPU adapter a
/// workgroup runs on one thread, so few rows per group spread small row counts over more threads).
/// A [`Variant`] converts to its default launch (64 rows per group).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Launch {
    pub variant: Variant,
    /// Rows per workgroup of [`Variant::Invocation`]; unused by [`Variant::Workgroup`], whose lanes per
    /// row change its reduction order and so stay fixed.
    pub rows_per_group: u32,
}

impl Launch {
    /// Rows per workgroup the tuner tries for [`Variant::Invocation`].
    pub const ROWS_PER_GROUP: [u32; 4] = [8, 16, 32, 64];

    /// The launches of `variant` the autotuner may choose among, named for the cache: all give the
    /// same bits.
    pub fn candidates(variant: Variant) -> Vec<(&'static str, Launch)> {
        match variant {
            Variant::Workgroup => vec![("workgroup", variant.into())],
            Variant::Invocation => Launch::ROWS_PER_GROUP
                .into_iter()
                .zip([
                    "invocation/8",
                    "invocation/16",
                    "invocation/32",
                    "invocation/64",
                ])
                .map(|(rows_per_group, name)| {
                    let launch = Launch {
                        variant,
                        rows_per_group,
                    };
                    (name, launch)
                })
                .collect(),
        }
    }

    fn spread(self) -> Spread {
        match self.variant {
            Variant::Workgroup => Spread::Rows,
            Variant::Invocation => Spread::Invocations(self.rows_per_group),
        }
    }
}

impl From<Variant> for Launch {
    fn from(variant: Variant) -> Launch {
        Launch {
            variant,
            rows_per_group: 64,
        }
    }
}

/// The entry points a variant is chosen for: forward, or backward (the input gradient).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    Forward,
    Backward,
}

impl Pass {
    pub fn name(self) -> &'static str {
        match self {
            Pass::Forward => "forward",
            Pass::Backward => "backward",
        }
    }
}

/// Zeroed tensors of one shape for timing the variants on, so that tuning writes none of a plan's.
struct Scratch {
    x: Tensor,
    gain: Tensor,
    y: Tensor,
    mean: Tensor,
    rstd: Tensor,
    dx: Tensor,
}

impl Scratch {
    fn new(gpu: &Gpu, rows: usize, cols: usize) -> Result<Self> {
        let tensor = |shape: &[usize]| gpu.zeros("layernorm tuning", shape);
        Ok(Scratch {
            x: tensor(&[rows, cols])?,
            gain: tensor(&[cols])?,
            y: tensor(&[rows, cols])?,
            mean: tensor(&[rows])?,
            rstd: tensor(&[rows])?,
            dx: tensor(&[rows, cols])?,
        })
    }

    /// `pass` of `variant` on the scratch tensors: the forward with a bias (`gain`), as GPT-2's, so that
    /// the pipeline timed is the one a plan then uses; the backward with `y` as output gradient.
    fn dispatch(&self, gpu: &Gpu, pass: Pass, launch: Launch) -> Result<Vec<Dispatch>> {
        let s = self;
        let bias = Some(&s.gain);
        Ok(vec![match pass {
            Pass::Forward => forward(
                gpu, launch, &s.x, &s.gain, bias, &s.y, &s.mean, &s.rstd, 1e-5,
            )?,
            Pass::Backward => backward(gpu, launch, &s.x, &s.gain, &s.mean, &s.rstd, &s.y, &s.dx)?,
        }])
    }
}

/// Checks the shapes shared by every entry point; returns `(rows, C)`.
fn dims(x: &Tensor, gain: &Tensor, mean: &Tensor, rstd: &Tensor) -> Result<(usize, usize)> {
    let c = gain.len();
    let r = rows("layernorm input", x, c)?;
    expect_len("layernorm mean", mean, r)?;
    expect_len("layernorm rstd", rstd, r)?;
    Ok((r, c))
}

/// `y = (x - mean)·rstd·gain (+ bias)`; writes `y`, `mean` and `rstd`.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    gpu: &Gpu,
    launch: impl Into<Launch>,
    x: &Tensor,
    gain: &Tensor,
    bias: Option<&Tensor>,
    y: &Tensor,
    mean: &Tensor,
    rstd: &Tensor,
    eps: f32,
) -> Result<Dispatch> {
    let (r, c) = dims(x, gain, mean, rstd)?;
    expect_shape("layernorm output", y, r, c)?;
    if let Some(bias) = bias {
        expect_len("layernorm bias", bias, c)?;
    }
    let bindings = [
        Binding::Read(x),
        Binding::Read(gain),
        // Without a bias the shader never reads this binding; any read-only tensor fills it.
        Binding::Read(bias.unwrap_or(gain)),
        Binding::ReadWrite(y),
        Binding::ReadWrite(mean),
        Binding::ReadWrite(rstd),
    ];
    let constants = vec![("has_bias", bias.is_some() as u32 as f64)];
    let launch = launch.into();
    let entries = match launch.variant {
        Variant::Workgroup => ["layernorm_forward", "layernorm_forward_vec4"],
        Variant::Invocation => ["layernorm_forward_row", "layernorm_forward_row_vec4"],
    };
    per_row(
        gpu,
        SHADER,
        entries,
        launch.spread(),
        constants,
        &bindings,
        (r, c),
        eps,
    )
}

/// `dx = rstd·(g - mean(g) - x̂·mean(g·x̂))` with `g = dy·gain`; writes `dx`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    gpu: &Gpu,
    launch: impl Into<Launch>,
    x: &Tensor,
    gain: &Tensor,
    mean: &Tensor,
    rstd: &Tensor,
    dy: &Tensor,
    dx: &Tensor,
) -> Result<Dispatch> {
    let (r, c) = dims(x, gain, mean, rstd)?;
    expect_shape("layernorm output gradient", dy, r, c)?;
    expect_shape("layernorm input gradient", dx, r, c)?;
    let bindings = [
        Binding::Read(x),
        Binding::Read(gain),
        Binding::Read(mean),
        Binding::Read(rstd),
        Binding::Read(dy),
        Binding::ReadWrite(dx),
    ];
    let launch = launch.into();
    let entries = match launch.variant {
        Variant::Workgroup => ["layernorm_backward", "layernorm_backward_vec4"],
        Variant::Invocation => ["layernorm_backward_row", "layernorm_backward_row_vec4"],
    };
    per_row(
        gpu,
        SHADER,
        entries,
        launch.spread(),
        vec![],
        &bindings,
        (r, c),
        0.0,
    )
}

/// `dgain += Σ_rows dy·x̂` and, with a bias, `dbias += Σ_rows dy`; adds into both.
pub fn backward_params(
    gpu: &Gpu,
    x: &Tensor,
    mean: &Tensor,
    rstd: &Tensor,
    dy: &Tensor,
    dgain: &Tensor,
    dbias: Option<&Tensor>,
) -> Result<Dispatch> {
    let (r, c) = dims(x, dgain, mean, rstd)?;
    expect_shape("layernorm output gradient", dy, r, c)?;
    let mut bindings = vec![
        Binding::Read(x),
        Binding::Read(mean),
        Binding::Read(rstd),
        Binding::Read(dy),
        Binding::ReadWrite(dgain),
    ];
    let entry = match dbias {
        Some(dbias) => {
            expect_len("layernorm bias gradient", dbias, c)?;
            bindings.push(Binding::ReadWrite(dbias));
            [
                "layernorm_backward_params",
                "layernorm_backward_params_vec4",
            ]
        }
        None => ["layernorm_backward_gain", "layernorm_backward_gain_vec4"],
    };
    per_row(
        gpu,
        SHADER,
        entry,
        Spread::Columns,
        vec![],
        &bindings,
        (r, c),
        0.0,
    )
}
