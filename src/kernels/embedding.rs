//! Token plus position embeddings.
//!
//! - [`forward`]: `tokens: [B, T] u32, wte: [V, C], wpe: [ctx, C] -> out: [B, T, C]`,
//!   `out[b, t] = wte[tokens[b, t]] + wpe[t]` (writes `out`).
//! - [`forward_at`]: the same from position `start` on, `out[b, t] = wte[tokens[b, t]] + wpe[start + t]`,
//!   with `start: [1]` u32 read on the GPU (a decode step's position, written before each step).
//! - [`backward`]: `dx: [B, T, C] -> dwte: [V, C], dwpe: [ctx, C]`, `dwte[v] += Σ_{tokens[b,t] = v} dx[b, t]`
//!   and `dwpe[t] += Σ_b dx[b, t]` (adds into both).
//!
//! `wte` may be a piece of the embedding, its rows for token ids `first .. first + rows` (when the whole
//! exceeds one storage binding): [`forward_piece`] and [`backward_piece`]. The piece at `first = 0`
//! writes every output row and sums `dwpe`; later pieces add their own tokens' rows. One piece from 0 is
//! the plain embedding.
//!
//! The forward reads `wte` and `wpe` as [`Weights`]: f32, or both in the same 16-bit dtype (an
//! inference model's, [`crate::dtype`]), widened as they are read; `out` is f32.
//!
//! The backward is deterministic (bit-identical run to run) without float atomics: when a batch is
//! prepared, [`TokenBuckets::new`] groups its positions by token on the CPU, and the trainer uploads
//! its two arrays with the batch; the kernel then sums each token's rows in a fixed order.

use bytemuck::{Pod, Zeroable};

use crate::contract::check_token_ids;
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::gpu::{Binding, Dispatch, Gpu, Kernel, Shader, Tensor};
use crate::kernels::check::{expect_len, expect_shape, matrix_dims, to_u32};
use crate::kernels::grid::groups;

pub use crate::kernels::weights::Weights;

pub const SHADER: Shader = crate::shader!("embedding", ["dtype"]);

/// Invocations per workgroup of the forward and of the backward (`WG` and `COLUMNS` in the shader).
const WG: usize = 256;
const COLUMNS: usize = 64;

/// The entry point for width `c` (its vec4 twin when `c` is a multiple of 4) and the lanes per row.
fn entry([scalar, vec4]: [&'static str; 2], c: usize) -> (&'static str, usize) {
    if c.is_multiple_of(4) {
        (vec4, c / 4)
    } else {
        (scalar, c)
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct Params {
    rows: u32,
    seq: u32,
    cols: u32,
    vocab: u32,
    first: u32,
    _pad: [u32; 3],
}

/// A batch's positions grouped by token id, the input of [`backward`]. Upload `positions` as a `[B·T]`
/// u32 tensor and `buckets` as `[B·T, 3]`; both have fixed sizes for a given batch shape, so the same
/// tensors and dispatch serve every batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBuckets {
    /// Row indices `b·T + t`, ordered by token id, then by row.
    pub positions: Vec<u32>,
    /// `(start, count, token)` per distinct token: its rows are `positions[start .. start + count]`.
    /// Then zeros (empty buckets) up to `B·T` entries.
    pub buckets: Vec<u32>,
}

impl TokenBuckets {
    /// Groups the rows of `tokens` (`[B, T]` row-major) by id; an id outside `0..vocab` is an error.
    pub fn new(tokens: &[u32], vocab: usize) -> Result<Self> {
        let rows = to_u32("embedding batch", tokens.len())?;
        check_token_ids("embedding batch", tokens, vocab)?;
        let mut positions: Vec<u32> = (0..rows).collect();
        positions.sort_by_key(|&r| tokens[r as usize]);
        let mut buckets = vec![0; 3 * tokens.len()];
        let mut start = 0;
        for (slot, run) in positions
            .chunk_by(|&a, &b| tokens[a as usize] == tokens[b as usize])
            .enumerate()
        {
            let token = tokens[run[0] as usize];
            buckets[3 * slot..3 * slot + 3].copy_from_slice(&[start, run.len() as u32, token]);
            start += run.len() as u32;
        }
        Ok(TokenBuckets { positions, buckets })
    }
}

/// `[B, T]` of a token batch.
fn batch_dims(tokens: &Tensor) -> Result<(usize, usize)> {
    matrix_dims("embedding tokens [B, T]", tokens)
}

fn params(rows: usize, seq: usize, cols: usize, vocab: usize, first: usize) -> Result<Params> {
    Ok(Params {
        rows: to_u32("embedding rows", rows)?,
        seq: to_u32("embedding sequence", seq)?,
        cols: to_u32("embedding width", cols)?,
        vocab: to_u32("embedding vocabulary", vocab)?,
        first: to_u32("embedding first token", first)?,
        _pad: [0; 3],
    })
}

/// Checks `wpe: [ctx, C]` against the sequence length and width.
fn check_positions(wpe: Weights, seq: usize, cols: usize) -> Result<()> {
    let (ctx, c) = (wpe.rows, wpe.cols);
    if c != cols || seq > ctx {
        return Err(Error::shape(
            "embedding wpe",
            format!("need [ctx >= {seq}, {cols}], got [{ctx}, {c}]"),
        ));
    }
    Ok(())
}

/// `out[b, t] = wte[tokens[b, t]] + wpe[t]`; writes `out`. An id outside the vocabulary contributes
/// zeros instead of reading out of bounds.
pub fn forward(
    gpu: &Gpu,
    tokens: &Tensor,
    wte: &Tensor,
    wpe: &Tensor,
    out: &Tensor,
) -> Result<Dispatch> {
    forward_piece(
        gpu,
        tokens,
        None,
        Weights::f32(wte)?,
        0,
        Weights::f32(wpe)?,
        out,
    )
}

/// `out[b, t] = wte[tokens[b, t]] + wpe[start + t]` with `start: [1]` u32 read when the dispatch runs;
/// writes `out`. The caller keeps `start + T <= ctx` (a position past `wpe` reads zeros).
pub fn forward_at(
    gpu: &Gpu,
    tokens: &Tensor,
    start: &Tensor,
    wte: &Tensor,
    wpe: &Tensor,
    out: &Tensor,
) -> Result<Dispatch> {
    let (wte, wpe) = (Weights::f32(wte)?, Weights::f32(wpe)?);
    forward_piece(gpu, tokens, Some(start), wte, 0, wpe, out)
}

/// [`forward`] (or, with `start`, [`forward_at`]) for `wte`, the rows of token ids `first ..` of the
/// embedding: at `first = 0` writes `out` (every row), later pieces add into their tokens' rows.
/// `wte` and `wpe` are stored in the same dtype.
pub fn forward_piece(
    gpu: &Gpu,
    tokens: &Tensor,
    start: Option<&Tensor>,
    wte: Weights,
    first: usize,
    wpe: Weights,
    out: &Tensor,
) -> Result<Dispatch> {
    if let Some(start) = start {
        expect_len("embedding start", start, 1)?;
    }
    wte.expect_rows("embedding wte")?;
    wpe.expect_rows("embedding wpe")?;
    if wte.dtype != wpe.dtype {
        return Err(Error::shape(
            "embedding wpe",
            format!(
                "stored in {}, wte in {}",
                wpe.dtype.name(),
                wte.dtype.name()
            ),
        ));
    }
    let (b, t) = batch_dims(tokens)?;
    let (vocab, c) = (wte.rows, wte.cols);
    check_positions(wpe, t, c)?;
    expect_shape("embedding output", out, b * t, c)?;
    let entries = match start {
        None => ["embedding_forward", "embedding_forward_vec4"],
        Some(_) => ["embedding_forward_at", "embedding_forward_at_vec4"],
    };
    // The vec4 views are of f32 values.
    let (entry, lanes) = match wte.dtype {
        Dtype::F32 => entry(entries, c),
        _ => (entries[0], c),
    };
    let kernel = Kernel {
        shader: SHADER,
        entry,
        constants: vec![("dtype", wte.dtype.code() as f64)],
    };
    let mut bindings = vec![
        Binding::Read(tokens),
        Binding::Read(wte.tensor),
        Binding::Read(wpe.tensor),
        Binding::ReadWrite(out),
    ];
    bindings.extend(start.map(Binding::Read));
    let workgroups = [groups(gpu, b * t * lanes, WG), 1, 1];
    Dispatch::new(
        gpu,
        &kernel,
        &bindings,
        &params(b * t, t, c, vocab, first)?,
        workgroups,
    )
}

/// `dwte[v] += Σ_{tokens[b,t] = v} dx[b, t]`, `dwpe[t] += Σ_b dx[b, t]`; adds into both.
/// `positions` and `buckets` hold [`TokenBuckets`] of the batch (`[B·T]` and `[B·T, 3]` u32).
pub fn backward(
    gpu: &Gpu,
    dx: &Tensor,
    positions: &Tensor,
    buckets: &Tensor,
    dwte: &Tensor,
    dwpe: &Tensor,
) -> Result<Dispatch> {
    backward_piece(gpu, dx, positions, buckets, dwte, 0, dwpe)
}

/// [`backward`] for `dwte`, the gradient of the rows of token ids `first ..`: adds its tokens' rows,
/// and `dwpe` only at `first = 0`.
pub fn backward_piece(
    gpu: &Gpu,
    dx: &Tensor,
    positions: &Tensor,
    buckets: &Tensor,
    dwte: &Tensor,
    first: usize,
    dwpe: &Tensor,
) -> Result<Dispatch> {
    let [b, t, c] = dx.shape[..] else {
        return Err(Error::shape(
            "embedding output gradient",
            format!("expected [B, T, C], got {}", dx.describe()),
        ));
    };
    let rows = b * t;
    let (vocab, cw) = matrix_dims("embedding dwte", dwte)?;
    if cw != c {
        return Err(Error::shape(
            "embedding dwte",
            format!("expected width {c}, got {}", dwte.describe()),
        ));
    }
    check_positions(Weights::f32(dwpe)?, t, c)?;
    expect_len("embedding positions", positions, rows)?;
    expect_shape("embedding buckets", buckets, rows, 3)?;
    let (entry, lanes) = entry(["embedding_backward", "embedding_backward_vec4"], c);
    let kernel = Kernel {
        shader: SHADER,
        entry,
        constants: vec![],
    };
    let bindings = [
        Binding::Read(dx),
        Binding::Read(positions),
        Binding::Read(buckets),
        Binding::ReadWrite(dwte),
        Binding::ReadWrite(dwpe),
    ];
    // One workgroup row per bucket slot, then (for the first piece) one per position.
    let ys = rows + if first == 0 { t } else { 0 };
    let workgroups = [groups(gpu, lanes, COLUMNS), groups(gpu, ys, 1), 1];
    Dispatch::new(
        gpu,
        &kernel,
        &bindings,
        &params(rows, t, c, vocab, first)?,
        workgroups,
    )
}
