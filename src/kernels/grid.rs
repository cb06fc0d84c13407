//! Dispatch shapes shared by the kernels that walk their work with a loop (a grid-stride loop, or each
//! workgroup through its own run), so a tensor larger than one dispatch dimension needs no second
//! dispatch.

use bytemuck::{Pod, Zeroable};

use crate::error::Result;
use crate::gpu::{Binding, Dispatch, Gpu, Kernel, Shader};
use crate::kernels::check::to_u32;

/// Workgroups covering `items` at `per_group` each, capped at the device's dimension limit (the shader's
/// loop does the rest). Zero items give zero workgroups, which records nothing.
pub(crate) fn groups(gpu: &Gpu, items: usize, per_group: usize) -> u32 {
    let max = gpu.limits().max_compute_workgroups_per_dimension as usize;
    items.div_ceil(per_group).min(max) as u32
}

/// Invocations per workgroup of the kernels that give a workgroup to each row (`rowsum.wgsl`'s `wg`) or
/// an invocation to each column (`columns`): on CPU adapters one SIMD row, so that a few hundred columns
/// still spread over every thread (a workgroup runs on one) and a row's reduction needs no barrier-heavy
/// tree (8 beat 1, 4, 32, 64 and 128 on lavapipe); a few warps elsewhere.
pub(crate) fn lane_workgroup(gpu: &Gpu) -> u32 {
    if gpu.is_cpu() {
        8
    } else {
        64
    }
}

/// The workgroup size (`wg`) and workgroup count of an elementwise dispatch over `items`, as
/// `shaders/elementwise.wgsl` spreads them: each workgroup walks its own contiguous run.
///
/// On CPU adapters one SIMD row of 8 per workgroup and at least 2048 items (256 per invocation) per
/// workgroup: lavapipe runs the rows of a workgroup one after another through the whole loop, so only a
/// one-row workgroup streams through contiguous memory, and each workgroup has a fixed cost that short
/// runs do not repay. On lavapipe this moves 64 MiB at ~6 GB/s against ~3.9 for one 256-wide workgroup
/// per 256 items, and beats 16-wide workgroups (~2), 4 vec4s per invocation and every workgroup count
/// from 8 to 2048. On GPUs 256 per workgroup and one item per invocation up to the dispatch limit.
/// An invocation loops at most 2048 / wg + 1 times, or ⌈items / (65535 · wg)⌉ + 1 once the workgroups
/// reach the dispatch limit: far below llvmpipe's 65535 for any tensor that fits a binding (< 2³⁰
/// items).
pub(crate) fn elementwise_shape(gpu: &Gpu, items: usize) -> (u32, u32) {
    if gpu.is_cpu() {
        (8, groups(gpu, items, 2048))
    } else {
        (256, groups(gpu, items, 256))
    }
}

/// The uniform of the elementwise shaders whose only parameter is the count they loop over, padded to
/// 16 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct Count {
    n: u32,
    _pad: [u32; 3],
}

pub(crate) fn count(n: u32) -> Count {
    Count { n, _pad: [0; 3] }
}

/// The dispatch of an elementwise kernel over `n` elements, shaped by [`elementwise_shape`]. `[scalar,
/// vec4]` name its two entry points: the vec4 one (16-byte loads and stores: 3-5x faster on lavapipe,
/// the usual wide accesses on GPUs) when `n` is a multiple of 4, else the element-by-element one.
/// `params` builds the uniform from the count the entry point loops over (vec4s or elements).
pub(crate) fn elementwise<P: Pod>(
    gpu: &Gpu,
    shader: Shader,
    [scalar, vec4]: [&'static str; 2],
    bindings: &[Binding],
    n: usize,
    params: impl FnOnce(u32) -> P,
) -> Result<Dispatch> {
    let (entry, items) = if n.is_multiple_of(4) {
        (vec4, n / 4)
    } else {
        (scalar, n)
    };
    let (wg, workgroups) = elementwise_shape(gpu, items);
    let kernel = Kernel {
        shader,
        entry,
        constants: vec![("wg", wg as f64)],
    };
    let workgroups = [workgroups, 1, 1];
    let params = params(to_u32(entry, items)?);
    Dispatch::new(gpu, &kernel, bindings, &params, workgroups)
}

/// The uniform of the row kernels (layernorm, rmsnorm): matrix shape and epsilon, padded to 16 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct RowShape {
    rows: u32,
    cols: u32,
    eps: f32,
    _pad: u32,
}

/// How a row kernel's entry point spreads over a `[rows, cols]` matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Spread {
    /// One workgroup of [`lane_workgroup`] invocations per row (`rowsum.wgsl`).
    Rows,
    /// One invocation per row, `wg` of them per workgroup, with `row_cols` = cols (the `_row` entry
    /// points). `wg` changes only which invocation takes which row, never a row's arithmetic.
    Invocations(u32),
    /// One invocation per column (or vec4 of columns), summing over rows, [`lane_workgroup`] per
    /// workgroup (`columns`).
    Columns,
}

/// The dispatch of a row kernel over `[rows, cols]` with the given override constants. `[scalar, vec4]`
/// name its two entry points: the vec4 one (rows read as vec4s) when `cols` is a multiple of 4, else the
/// element-by-element one.
#[allow(clippy::too_many_arguments)]
pub(crate) fn per_row(
    gpu: &Gpu,
    shader: Shader,
    [scalar, vec4]: [&'static str; 2],
    spread: Spread,
    mut constants: Vec<(&'static str, f64)>,
    bindings: &[Binding],
    (rows, cols): (usize, usize),
    eps: f32,
) -> Result<Dispatch> {
    let (entry, lanes) = if cols.is_multiple_of(4) {
        (vec4, cols / 4)
    } else {
        (scalar, cols)
    };
    let workgroups = match spread {
        Spread::Rows => {
            constants.push(("wg", lane_workgroup(gpu) as f64));
            [groups(gpu, rows, 1), 1, 1]
        }
        Spread::Invocations(wg) => {
            constants.extend([("wg", wg as f64), ("row_cols", cols as f64)]);
            [groups(gpu, rows, wg as usize), 1, 1]
        }
        Spread::Columns => {
            let columns = lane_workgroup(gpu);
            constants.push(("columns", columns as f64));
            [groups(gpu, lanes, columns as usize), 1, 1]
        }
    };
    let kernel = Kernel {
        shader,
        entry,
        constants,
    };
    let params = RowShape {
        rows: to_u32(entry, rows)?,
        cols: to_u32(entry, cols)?,
        eps,
        _pad: 0,
    };
    Dispatch::new(gpu, &kernel, bindings, &params, workgroups)
}
