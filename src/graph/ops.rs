//! The ops a GPT graph is made of, what each reads and writes (for buffer lifetimes), and how each lowers
//! to kernel dispatches. Backward ops ADD into parameter gradients and WRITE activation gradients.

use std::collections::HashMap;

use crate::contract::{AdamWConfig, AttentionDropout, AttentionShape};
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::graph::{Graph, Storage, TensorId};
use crate::kernels::weights::{Layout, Weights};
use crate::kernels::{
    adamw, attention, cast, copy, crossentropy, dropout, embedding, gelu, gradnorm, kvcache,
    layernorm, matmul, matvec, residual, rmsnorm,
};

#[derive(Clone, Debug)]
pub enum Op {
    /// `out[b, t] = wte[tokens[b, t]] + wpe[start + t]`, `start` read from the `[1]` u32 tensor
    /// `start` (a decode step's position) or 0. `wte` holds the rows of token ids `first ..`: the op of
    /// the piece at `first = 0` writes every row of `out`, the ops of later pieces add their tokens' rows
    /// (see [`embedding::forward_piece`]).
    Embedding {
        tokens: TensorId,
        start: Option<TensorId>,
        wte: TensorId,
        first: usize,
        wpe: TensorId,
        out: TensorId,
    },
    /// `dwte += scatter(dout)` for the piece's tokens, and at `first = 0` `dwpe += Σ_b dout`, from the
    /// batch's token buckets.
    EmbeddingBackward {
        dout: TensorId,
        positions: TensorId,
        buckets: TensorId,
        dwte: TensorId,
        first: usize,
        dwpe: TensorId,
    },
    /// LayerNorm over the last axis with a gain and (GPT-2) a bias; saves the rows' `mean` and `rstd`.
    LayerNorm {
        x: TensorId,
        gain: TensorId,
        bias: Option<TensorId>,
        out: TensorId,
        mean: TensorId,
        rstd: TensorId,
        eps: f32,
    },
    /// Writes `dx`, adds into `dgain` (and `dbias`).
    LayerNormBackward {
        x: TensorId,
        gain: TensorId,
        mean: TensorId,
        rstd: TensorId,
        dy: TensorId,
        dx: TensorId,
        dgain: TensorId,
        dbias: Option<TensorId>,
    },
    /// RMSNorm over the last axis with a gain; saves the rows' `rstd`.
    RmsNorm {
        x: TensorId,
        gain: TensorId,
        out: TensorId,
        rstd: TensorId,
        eps: f32,
    },
    /// Writes `dx`, adds into `dgain`.
    RmsNormBackward {
        x: TensorId,
        gain: TensorId,
        rstd: TensorId,
        dy: TensorId,
        dx: TensorId,
        dgain: TensorId,
    },
    /// `out = x·w (+ b)` with `w: [in, out]` (GPT-2's Conv1D layout), finished by `epilogue`.
    Linear {
        x: TensorId,
        w: TensorId,
        b: Option<TensorId>,
        out: TensorId,
        epilogue: Epilogue,
    },
    /// Writes `dx = dy·wᵀ`, adds `dw += xᵀ·dy` and `db += colsum(dy)`. With `gelu_pre`, the layer's
    /// input `x` was `gelu(pre)` and `dx` is the gradient of `pre` instead: `(dy·wᵀ)·gelu'(pre)`.
    LinearBackward {
        x: TensorId,
        w: TensorId,
        dy: TensorId,
        dx: TensorId,
        dw: TensorId,
        db: Option<TensorId>,
        gelu_pre: Option<TensorId>,
    },
    /// The output head `out = x·wᵀ` with `w: [vocab, C]` (`nn.Linear` layout; the token embedding when
    /// tied).
    Head {
        x: TensorId,
        w: TensorId,
        out: TensorId,
    },
    /// Writes `dx = dy·w`, adds `dw += dyᵀ·x`.
    HeadBackward {
        x: TensorId,
        w: TensorId,
        dy: TensorId,
        dx: TensorId,
        dw: TensorId,
    },
    /// Fused causal attention over `qkv: [B, T, (H + 2·Hkv)·D]`; saves `lse`.
    Attention {
        shape: AttentionShape,
        p: f32,
        site: u32,
        qkv: TensorId,
        out: TensorId,
        lse: TensorId,
    },
    /// One decode step of attention (one token for each of the caches' sequences, at the same
    /// position): appends each token's k and v at row `position` of its sequence's caches
    /// `[N, ctx, Hkv·D]`, then attends over rows `0..=position`. Writes the cache rows and `out`.
    CachedAttention {
        shape: AttentionShape,
        qkv: TensorId,
        position: TensorId,
        k_cache: TensorId,
        v_cache: TensorId,
        out: TensorId,
    },
    /// A prefill's keys and values (`qkv: [B, T, W]`, B = 1 or the caches' N) into rows `0..T` of
    /// the caches `[N, ctx, Hkv·D]`, cache `n` from prompt `n mod B`. Writes those rows.
    FillCache {
        shape: AttentionShape,
        qkv: TensorId,
        k_cache: TensorId,
        v_cache: TensorId,
    },
    /// The probabilities of an [`Op::Attention`] (its `qkv`, `out` and `lse`), recomputed for looking
    /// at: `probs: [B, H, T, T]`, 0 above the diagonal. Only inspection graphs have it.
    AttentionProbabilities {
        shape: AttentionShape,
        qkv: TensorId,
        out: TensorId,
        lse: TensorId,
        probs: TensorId,
    },
    /// Writes `delta` (scratch) and all of `dqkv`.
    AttentionBackward {
        shape: AttentionShape,
        p: f32,
        site: u32,
        qkv: TensorId,
        out: TensorId,
        lse: TensorId,
        dout: TensorId,
        delta: TensorId,
        dqkv: TensorId,
    },
    Gelu {
        x: TensorId,
        out: TensorId,
    },
    GeluBackward {
        x: TensorId,
        dy: TensorId,
        dx: TensorId,
    },
    /// `out[.., first .. first + w] = x` for `x: [.., w]` (a piece's logits into the whole); writes that
    /// block of `out` only.
    PlaceColumns {
        x: TensorId,
        first: usize,
        out: TensorId,
    },
    /// `out = x[.., first .. first + w]` for `out: [.., w]` (a piece's part of the logits' gradient; a
    /// prefill's last positions, from a `[B, T·C]` view of its `[B, T, C]` activations).
    TakeColumns {
        x: TensorId,
        first: usize,
        out: TensorId,
    },
    /// `out = a + b` (the residual stream, and where two gradient paths meet).
    Add {
        a: TensorId,
        b: TensorId,
        out: TensorId,
    },
    /// Dropout with probability `p > 0` at `site` (the mask is regenerated by the backward).
    Dropout {
        p: f32,
        site: u32,
        x: TensorId,
        out: TensorId,
    },
    DropoutBackward {
        p: f32,
        site: u32,
        dy: TensorId,
        dx: TensorId,
    },
    /// Per-row losses; with `dlogits`, also `(softmax - onehot) / mean_over` in the same pass
    /// (`mean_over` the rows of the whole batch, of which these logits may be a row chunk).
    CrossEntropy {
        logits: TensorId,
        targets: TensorId,
        losses: TensorId,
        dlogits: Option<TensorId>,
        mean_over: usize,
    },
    /// `out[0] = mean(x)` (the loss from the per-row losses).
    Mean {
        x: TensorId,
        out: TensorId,
    },
    /// `out = x` (a row chunk's gradient into its rows of the whole).
    Copy {
        x: TensorId,
        out: TensorId,
    },
    /// `out = pack(x)` in `dtype` (16 bits, `out: [⌈len / 2⌉]` words), and `x` rounded in place to
    /// what `out` holds: a tensor a mixed-precision step keeps for its backward. Writes `out` and `x`.
    Pack {
        x: TensorId,
        out: TensorId,
        dtype: Dtype,
    },
    /// `out = unpack(x)` from `dtype`: a kept tensor back in f32 just before the backward reads it.
    Unpack {
        x: TensorId,
        out: TensorId,
        dtype: Dtype,
    },
    /// The 16-bit working copy of the weights a mixed-precision step reads: each 16-bit piece's
    /// words ([`crate::graph::Piece::dtype`]) packed from its f32 master values in the parameter
    /// arena, before the step's first op.
    WorkingCopy,
    /// The global gradient norm and clip scale (`max_norm = None`: no clipping), into the plan's
    /// optimizer state.
    GradNorm {
        max_norm: Option<f32>,
    },
    /// AdamW over the parameter arena (one dispatch per chunk), reading the per-step hyperparameters
    /// and, with `clip`, the clip scale [`Op::GradNorm`] wrote.
    AdamW {
        config: AdamWConfig,
        clip: bool,
    },
}

/// The elementwise ops an [`Op::Linear`] applies to its product as it stores it, in place of ops of
/// their own (dispatches and passes over the product fewer; the same bits).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Epilogue {
    None,
    /// The product (plus bias) is written to `pre` and `out = gelu(pre)` (an MLP's first layer).
    Gelu {
        pre: TensorId,
    },
    /// `out = stream + dropout(product)`, dropout with probability `p` (none at 0) at `site`: a
    /// projection into the residual stream.
    Residual {
        stream: TensorId,
        p: f32,
        site: u32,
    },
}

impl Op {
    /// The tensors the op reads and the ones it writes (or adds into). (One arm per op: a long match
    /// whose arms each read alone.)
    pub fn uses(&self) -> (Vec<TensorId>, Vec<TensorId>) {
        let some = |o: &Option<TensorId>| o.iter().copied().collect::<Vec<_>>();
        match self {
            Op::Embedding {
                tokens,
                start,
                wte,
                first,
                wpe,
                out,
            } => {
                let mut reads = [vec![*tokens, *wte, *wpe], some(start)].concat();
                // A later piece's op adds into `out`: it reads it too.
                if *first > 0 {
                    reads.push(*out);
                }
                (reads, vec![*out])
            }
            Op::EmbeddingBackward {
                dout,
                positions,
                buckets,
                dwte,
                dwpe,
                ..
            } => (vec![*dout, *positions, *buckets], vec![*dwte, *dwpe]),
            Op::PlaceColumns { x, out, .. } | Op::TakeColumns { x, out, .. } => {
                (vec![*x], vec![*out])
            }
            Op::LayerNorm {
                x,
                gain,
                bias,
                out,
                mean,
                rstd,
                ..
            } => (
                [vec![*x, *gain], some(bias)].concat(),
                vec![*out, *mean, *rstd],
            ),
            Op::LayerNormBackward {
                x,
                gain,
                mean,
                rstd,
                dy,
                dx,
                dgain,
                dbias,
            } => (
                vec![*x, *gain, *mean, *rstd, *dy],
                [vec![*dx, *dgain], some(dbias)].concat(),
            ),
            Op::RmsNorm {
                x, gain, out, rstd, ..
            } => (vec![*x, *gain], vec![*out, *rstd]),
            Op::RmsNormBackward {
                x,
                gain,
                rstd,
                dy,
                dx,
                dgain,
            } => (vec![*x, *gain, *rstd, *dy], vec![*dx, *dgain]),
            Op::Linear {
                x,
                w,
                b,
                out,
                epilogue,
            } => match *epilogue {
                Epilogue::None => ([vec![*x, *w], some(b)].concat(), vec![*out]),
                Epilogue::Gelu { pre } => ([vec![*x, *w], some(b)].concat(), vec![pre, *out]),
                Epilogue::Residual { stream, .. } => {
                    ([vec![*x, *w, stream], some(b)].concat(), vec![*out])
                }
            },
            Op::LinearBackward {
                x,
                w,
                dy,
                dx,
                dw,
                db,
                gelu_pre,
            } => (
                [vec![*x, *w, *dy], some(gelu_pre)].concat(),
                [vec![*dx, *dw], some(db)].concat(),
            ),
            Op::Head { x, w, out } => (vec![*x, *w], vec![*out]),
            Op::HeadBackward { x, w, dy, dx, dw } => (vec![*x, *w, *dy], vec![*dx, *dw]),
            Op::Attention { qkv, out, lse, .. } => (vec![*qkv], vec![*out, *lse]),
            Op::CachedAttention {
                qkv,
                position,
                k_cache,
                v_cache,
                out,
                ..
            } => (
                vec![*qkv, *position, *k_cache, *v_cache],
                vec![*k_cache, *v_cache, *out],
            ),
            Op::FillCache {
                qkv,
                k_cache,
                v_cache,
                ..
            } => (vec![*qkv], vec![*k_cache, *v_cache]),
            Op::AttentionBackward {
                qkv,
                out,
                lse,
                dout,
                delta,
                dqkv,
                ..
            } => (vec![*qkv, *out, *lse, *dout], vec![*delta, *dqkv]),
            Op::AttentionProbabilities {
                qkv,
                out,
                lse,
                probs,
                ..
            } => (vec![*qkv, *out, *lse], vec![*probs]),
            Op::Gelu { x, out } => (vec![*x], vec![*out]),
            Op::GeluBackward { x, dy, dx } => (vec![*x, *dy], vec![*dx]),
            Op::Add { a, b, out } => (vec![*a, *b], vec![*out]),
            Op::Dropout { x, out, .. } => (vec![*x], vec![*out]),
            Op::DropoutBackward { dy, dx, .. } => (vec![*dy], vec![*dx]),
            Op::CrossEntropy {
                logits,
                targets,
                losses,
                dlogits,
                ..
            } => (
                vec![*logits, *targets],
                [vec![*losses], some(dlogits)].concat(),
            ),
            Op::Mean { x, out } | Op::Copy { x, out } | Op::Unpack { x, out, .. } => {
                (vec![*x], vec![*out])
            }
            Op::Pack { x, out, .. } => (vec![*x], vec![*x, *out]),
            Op::WorkingCopy | Op::GradNorm { .. } | Op::AdamW { .. } => (vec![], vec![]),
        }
    }
}

impl Op {
    /// Every tensor the op names, to rename one ([`Graph::keep_in`]). (One arm per op, as in
    /// [`Op::uses`].)
    pub fn tensors_mut(&mut self) -> Vec<&mut TensorId> {
        let mut ids = Vec::new();
        match self {
            Op::Embedding {
                tokens,
                start,
                wte,
                wpe,
                out,
                ..
            } => ids.extend([tokens, wte, wpe, out].into_iter().chain(start)),
            Op::EmbeddingBackward {
                dout,
                positions,
                buckets,
                dwte,
                dwpe,
                ..
            } => ids.extend([dout, positions, buckets, dwte, dwpe]),
            Op::LayerNorm {
                x,
                gain,
                bias,
                out,
                mean,
                rstd,
                ..
            } => ids.extend([x, gain, out, mean, rstd].into_iter().chain(bias)),
            Op::LayerNormBackward {
                x,
                gain,
                mean,
                rstd,
                dy,
                dx,
                dgain,
                dbias,
            } => ids.extend(
                [x, gain, mean, rstd, dy, dx, dgain]
                    .into_iter()
                    .chain(dbias),
            ),
            Op::RmsNorm {
                x, gain, out, rstd, ..
            } => ids.extend([x, gain, out, rstd]),
            Op::RmsNormBackward {
                x,
                gain,
                rstd,
                dy,
                dx,
                dgain,
            } => ids.extend([x, gain, rstd, dy, dx, dgain]),
            Op::Linear {
                x,
                w,
                b,
                out,
                epilogue,
            } => {
                ids.extend([x, w, out].into_iter().chain(b));
                match epilogue {
                    Epilogue::None => {}
                    Epilogue::Gelu { pre } => ids.push(pre),
                    Epilogue::Residual { stream, .. } => ids.push(stream),
                }
            }
            Op::LinearBackward {
                x,
                w,
                dy,
                dx,
                dw,
                db,
                gelu_pre,
            } => ids.extend([x, w, dy, dx, dw].into_iter().chain(db).chain(gelu_pre)),
            Op::Head { x, w, out } => ids.extend([x, w, out]),
            Op::HeadBackward { x, w, dy, dx, dw } => ids.extend([x, w, dy, dx, dw]),
            Op::Attention { qkv, out, lse, .. } => ids.extend([qkv, out, lse]),
            Op::CachedAttention {
                qkv,
                position,
                k_cache,
                v_cache,
                out,
                ..
            } => ids.extend([qkv, position, k_cache, v_cache, out]),
            Op::FillCache {
                qkv,
                k_cache,
                v_cache,
                ..
            } => ids.extend([qkv, k_cache, v_cache]),
            Op::AttentionProbabilities {
                qkv,
                out,
                lse,
                probs,
                ..
            } => ids.extend([qkv, out, lse, probs]),
            Op::AttentionBackward {
                qkv,
                out,
                lse,
                dout,
                delta,
                dqkv,
                ..
            } => ids.extend([qkv, out, lse, dout, delta, dqkv]),
            Op::GeluBackward { x, dy, dx } => ids.extend([x, dy, dx]),
            Op::Add { a, b, out } => ids.extend([a, b, out]),
            Op::DropoutBackward { dy, dx, .. } => ids.extend([dy, dx]),
            Op::CrossEntropy {
                logits,
                targets,
                losses,
                dlogits,
                ..
            } => ids.extend([logits, targets, losses].into_iter().chain(dlogits)),
            Op::Gelu { x, out }
            | Op::Dropout { x, out, .. }
            | Op::PlaceColumns { x, out, .. }
            | Op::TakeColumns { x, out, .. }
            | Op::Mean { x, out }
            | Op::Copy { x, out }
            | Op::Pack { x, out, .. }
            | Op::Unpack { x, out, .. } => ids.extend([x, out]),
            Op::WorkingCopy | Op::GradNorm { .. } | Op::AdamW { .. } => {}
        }
        ids
    }
}

/// What lowering needs besides the op: the placed tensors and the plan's shared state.
pub struct Lowering<'a> {
    pub gpu: &'a Gpu,
    pub graph: &'a Graph,
    pub tensors: &'a [Tensor],
    /// `[seed, step, micro]` (u32), written before each submit: dropout masks depend on it.
    pub random_state: &'a Tensor,
    /// The optimizer's per-step hyperparameters ([`adamw::hyper`]), written once per step.
    pub hyper: &'a Tensor,
    /// Gradient norm and clip scale ([`gradnorm::OUT_LEN`]).
    pub norm: &'a Tensor,
    pub arenas: &'a Arenas,
    /// The f32 parameter views, one per piece (the master values of a 16-bit working copy).
    pub masters: &'a [Tensor],
    pub matmul: matmul::Variant,
    /// The transposed copies of the weights the matrix-vector products read, by piece
    /// ([`Lowering::transpose_weights`] makes and fills them).
    pub transposed: &'a TransposedWeights,
}

/// Weights transposed to `[out, in]` for a decode step's matrix-vector products on CPU adapters
/// ([`matvec::transposed`] reads such rows in order, 1.2-1.7x as fast as [`matvec::forward`] reads
/// `[in, out]`; interleaved by 8 rows, [`Layout::Interleaved`], 1.1-1.35x faster again), one per
/// piece of the parameters, shared by every plan over them: the price is a second copy of those
/// weights.
#[derive(Default)]
pub struct TransposedWeights {
    copies: std::sync::Mutex<HashMap<usize, Tensor>>,
}

impl TransposedWeights {
    /// Bytes of every copy made.
    pub fn bytes(&self) -> u64 {
        let copies = self.copies.lock().unwrap_or_else(|e| e.into_inner());
        copies.values().map(Tensor::bytes).sum()
    }

    fn get(&self, piece: usize) -> Option<Tensor> {
        let copies = self.copies.lock().unwrap_or_else(|e| e.into_inner());
        copies.get(&piece).cloned()
    }
}

/// `copy`, the transposed copy of `w`, as it is laid out: interleaved where its rows are whole vec4s
/// of words (as the matrix-vector kernels read such copies fastest), else row-major.
fn copy_layout<'a>(copy: &'a Tensor, w: &Weights) -> Result<Weights<'a>> {
    let t = Weights::packed(copy, w.dtype, w.cols, w.rows)?;
    t.laid_out(match t.rows_in_vec4s() {
        true => Layout::Interleaved,
        false => Layout::Rows,
    })
}

/// The parameter, gradient and moment arenas (same layout), in chunks of at most one storage binding.
pub struct Arenas {
    pub chunks: Vec<ArenaChunk>,
}

/// One chunk of each arena (a buffer each; all four the parameters' in a model that does not train) and
/// AdamW's segment table for it.
pub struct ArenaChunk {
    pub params: Tensor,
    pub grads: Tensor,
    pub m: Tensor,
    pub v: Tensor,
    pub segments: adamw::Segments,
}

impl Arenas {
    /// Bytes of one arena (all its chunks).
    pub fn bytes(&self) -> u64 {
        self.chunks.iter().map(|c| c.params.bytes()).sum()
    }
}

impl Lowering<'_> {
    fn t(&self, id: TensorId) -> &Tensor {
        &self.tensors[id.0]
    }

    fn opt(&self, id: &Option<TensorId>) -> Option<&Tensor> {
        id.map(|id| self.t(id))
    }

    /// A layer's key and value caches, in the graph's cache dtype.
    fn caches(&self, k: TensorId, v: TensorId) -> kvcache::Caches<'_> {
        kvcache::Caches {
            k_cache: self.t(k),
            v_cache: self.t(v),
            dtype: self.graph.cache_dtype,
        }
    }

    /// A matrix the products and the embedding read: its words and dtype when it is a 16-bit piece
    /// of the parameters, else the f32 tensor.
    fn weights(&self, id: TensorId) -> Result<Weights<'_>> {
        let def = self.graph.def(id);
        match def.storage {
            Storage::Param(p) if self.graph.pieces[p].dtype != Dtype::F32 => {
                let (dtype, shape) = (self.graph.pieces[p].dtype, &def.shape);
                Weights::packed(self.t(id), dtype, shape[0], shape[1..].iter().product())
            }
            _ => Weights::f32(self.t(id)),
        }
    }

    /// Whether a forward product of input `x` goes to the matrix-vector kernels: at most
    /// [`matvec::MAX_ROWS`] rows (a decode step), on CPU adapters, where it reads the weights at 2-4x
    /// the speed of the matmul's thin path (one invocation per 16 columns is too few threads for a
    /// real GPU, where matmul stays).
    fn matvec(&self, x: TensorId) -> bool {
        let x = self.t(x);
        let rows = x.len() / x.shape.last().copied().unwrap_or(1).max(1);
        self.gpu.is_cpu() && rows <= matvec::MAX_ROWS
    }

    /// Whether an [`Op::Linear`] of input `x` goes to the matrix-vector kernels, reading a transposed
    /// copy of its weights: a [`Lowering::matvec`] product of a generation graph, whose plan runs with
    /// the weights it was built with. (A training or evaluation plan's weights change between its
    /// steps: its products of few rows take matmul's thin path.)
    fn reads_transposed(&self, x: TensorId) -> bool {
        self.matvec(x) && self.graph.generates()
    }

    /// Makes (on first use) and writes from the weights as they are now the transposed copy of every
    /// weight the graph's [`Lowering::reads_transposed`] products read, in one submit. A plan calls it
    /// when it is built.
    pub fn transpose_weights(&self) -> Result<()> {
        let mut dispatches = Vec::new();
        for op in &self.graph.ops {
            let Op::Linear { x, w, .. } = op else {
                continue;
            };
            let Storage::Param(piece) = self.graph.def(*w).storage else {
                continue;
            };
            if !self.reads_transposed(*x) {
                continue;
            }
            let weights = self.weights(*w)?;
            let mut copies = (self.transposed.copies.lock()).unwrap_or_else(|e| e.into_inner());
            let copy = match copies.get(&piece) {
                Some(t) => t.clone(),
                None => {
                    let words = weights.dtype.words(weights.rows * weights.cols);
                    let t = self.gpu.zeros("transposed weights", &[words])?;
                    copies.entry(piece).or_insert(t).clone()
                }
            };
            dispatches.push(copy::transpose(
                self.gpu,
                weights,
                copy_layout(&copy, &weights)?,
            )?);
        }
        match dispatches.is_empty() {
            true => Ok(()),
            false => self.gpu.run_dispatches(&dispatches),
        }
    }

    /// The transposed copy of weight `id` ([`Lowering::transpose_weights`] made it).
    fn transposed(&self, id: TensorId) -> Result<(Tensor, Weights<'_>)> {
        let w = self.weights(id)?;
        let copy = match self.graph.def(id).storage {
            Storage::Param(piece) => self.transposed.get(piece),
            _ => None,
        };
        let copy = copy.ok_or_else(|| {
            Error::Invalid(format!(
                "no transposed copy of {} (Lowering::transpose_weights makes them)",
                self.graph.def(id).name
            ))
        })?;
        Ok((copy, w))
    }
}

impl Op {
    /// The dispatches computing this op, in order. (One arm per op: a long match whose arms each read
    /// alone, every one a call of the op's launcher.)
    pub fn lower(&self, cx: &Lowering) -> Result<Vec<Dispatch>> {
        let gpu = cx.gpu;
        let mm = cx.matmul;
        Ok(match self {
            Op::Embedding {
                tokens,
                start,
                wte,
                first,
                wpe,
                out,
            } => vec![embedding::forward_piece(
                gpu,
                cx.t(*tokens),
                cx.opt(start),
                cx.weights(*wte)?,
                *first,
                cx.weights(*wpe)?,
                cx.t(*out),
            )?],
            Op::EmbeddingBackward {
                dout,
                positions,
                buckets,
                dwte,
                first,
                dwpe,
            } => vec![embedding::backward_piece(
                gpu,
                cx.t(*dout),
                cx.t(*positions),
                cx.t(*buckets),
                cx.t(*dwte),
                *first,
                cx.t(*dwpe),
            )?],
            Op::PlaceColumns { x, first, out } => {
                let (x, out) = (cx.t(*x), cx.t(*out));
                let width = *x.shape.last().unwrap_or(&0);
                vec![copy::columns(gpu, x, 0, out, *first, width)?]
            }
            Op::TakeColumns { x, first, out } => {
                let (x, out) = (cx.t(*x), cx.t(*out));
                let width = *out.shape.last().unwrap_or(&0);
                vec![copy::columns(gpu, x, *first, out, 0, width)?]
            }
            Op::LayerNorm {
                x,
                gain,
                bias,
                out,
                mean,
                rstd,
                eps,
            } => vec![layernorm::forward(
                gpu,
                layernorm::Variant::tuned(gpu, layernorm::Pass::Forward, cx.t(*x), cx.t(*gain))?,
                cx.t(*x),
                cx.t(*gain),
                cx.opt(bias),
                cx.t(*out),
                cx.t(*mean),
                cx.t(*rstd),
                *eps,
            )?],
            Op::LayerNormBackward {
                x,
                gain,
                mean,
                rstd,
                dy,
                dx,
                dgain,
                dbias,
            } => {
                let (x, mean, rstd, dy) = (cx.t(*x), cx.t(*mean), cx.t(*rstd), cx.t(*dy));
                let pass = layernorm::Pass::Backward;
                let variant = layernorm::Variant::tuned(gpu, pass, x, cx.t(*gain))?;
                vec![
                    layernorm::backward(gpu, variant, x, cx.t(*gain), mean, rstd, dy, cx.t(*dx))?,
                    layernorm::backward_params(
                        gpu,
                        x,
                        mean,
                        rstd,
                        dy,
                        cx.t(*dgain),
                        cx.opt(dbias),
                    )?,
                ]
            }
            Op::RmsNorm {
                x,
                gain,
                out,
                rstd,
                eps,
            } => vec![rmsnorm::forward(
                gpu,
                cx.t(*x),
                cx.t(*gain),
                cx.t(*out),
                cx.t(*rstd),
                *eps,
            )?],
            Op::RmsNormBackward {
                x,
                gain,
                rstd,
                dy,
                dx,
                dgain,
            } => {
                let (x, rstd, dy) = (cx.t(*x), cx.t(*rstd), cx.t(*dy));
                vec![
                    rmsnorm::backward(gpu, x, cx.t(*gain), rstd, dy, cx.t(*dx))?,
                    rmsnorm::backward_params(gpu, x, rstd, dy, cx.t(*dgain))?,
                ]
            }
            // The matrix-vector kernels read the weights' transposed copy and apply GELU or the
            // residual add as they store (with dropout, which they do not apply, a product takes
            // matmul's thin kernels instead).
            Op::Linear {
                x,
                w,
                b,
                out,
                epilogue,
            } if cx.reads_transposed(*x)
                && !matches!(epilogue, Epilogue::Residual { p, .. } if *p > 0.0) =>
            {
                let (copy, w) = cx.transposed(*w)?;
                let e = copy_layout(&copy, &w)?;
                let fused = match *epilogue {
                    Epilogue::None => matvec::Epilogue::None,
                    Epilogue::Gelu { pre } => matvec::Epilogue::Gelu { pre: cx.t(pre) },
                    Epilogue::Residual { stream, .. } => matvec::Epilogue::Residual {
                        stream: cx.t(stream),
                    },
                };
                let (x, b, out) = (cx.t(*x), cx.opt(b), cx.t(*out));
                vec![matvec::transposed(gpu, x, e, b, fused, out, 0)?]
            }
            Op::Linear {
                x,
                w,
                b,
                out,
                epilogue,
            } => {
                let (x, w, b, out) = (cx.t(*x), cx.weights(*w)?, cx.opt(b), cx.t(*out));
                vec![match *epilogue {
                    Epilogue::None => matmul::forward_weights(gpu, mm, x, w, b, out)?,
                    Epilogue::Gelu { pre } => {
                        matmul::forward_gelu(gpu, mm, x, w, b, cx.t(pre), out)?
                    }
                    Epilogue::Residual { stream, p, site } => {
                        let state = cx.random_state;
                        let dropout = (p > 0.0).then_some(matmul::BranchDropout { state, site, p });
                        matmul::forward_residual(gpu, mm, x, w, b, dropout, cx.t(stream), out)?
                    }
                }]
            }
            Op::LinearBackward {
                x,
                w,
                dy,
                dx,
                dw,
                db,
                gelu_pre,
            } => {
                let (dy_t, w_t, dx_t) = (cx.t(*dy), cx.weights(*w)?, cx.t(*dx));
                let input = match gelu_pre {
                    None => matmul::backward_input_weights(gpu, mm, dy_t, w_t, dx_t)?,
                    Some(pre) => matmul::backward_input_gelu(gpu, mm, dy_t, w_t, cx.t(*pre), dx_t)?,
                };
                let mut out = vec![
                    input,
                    matmul::backward_weight(gpu, mm, cx.t(*x), cx.t(*dy), cx.t(*dw))?,
                ];
                if let Some(db) = db {
                    out.push(matmul::backward_bias(gpu, cx.t(*dy), cx.t(*db))?);
                }
                out
            }
            // out[M, V] = x[M, C]·wᵀ: the input-gradient product with x in the role of dy.
            Op::Head { x, w, out } if cx.matvec(*x) => vec![matvec::transposed(
                gpu,
                cx.t(*x),
                cx.weights(*w)?,
                None,
                matvec::Epilogue::None,
                cx.t(*out),
                0,
            )?],
            Op::Head { x, w, out } => vec![matmul::backward_input_weights(
                gpu,
                mm,
                cx.t(*x),
                cx.weights(*w)?,
                cx.t(*out),
            )?],
            // dx[M, C] = dy[M, V]·w[V, C] (a forward product); dw[V, C] += dyᵀ·x (a weight gradient
            // with dy in the role of x).
            Op::HeadBackward { x, w, dy, dx, dw } => vec![
                matmul::forward_weights(gpu, mm, cx.t(*dy), cx.weights(*w)?, None, cx.t(*dx))?,
                matmul::backward_weight(gpu, mm, cx.t(*dy), cx.t(*x), cx.t(*dw))?,
            ],
            Op::Attention {
                shape,
                p,
                site,
                qkv,
                out,
                lse,
            } => vec![attention::forward(
                gpu,
                attention::Variant::best(gpu, *shape),
                *shape,
                attention_dropout(*p, *site),
                cx.t(*qkv),
                cx.random_state,
                cx.t(*out),
                cx.t(*lse),
            )?],
            Op::CachedAttention {
                shape,
                qkv,
                position,
                k_cache,
                v_cache,
                out,
            } => {
                let (qkv, position) = (cx.t(*qkv), cx.t(*position));
                let caches = cx.caches(*k_cache, *v_cache);
                let variant = kvcache::Variant::best(gpu, shape.head_dim, caches);
                kvcache::step(gpu, variant, *shape, qkv, position, caches, cx.t(*out))?
            }
            Op::FillCache {
                shape,
                qkv,
                k_cache,
                v_cache,
            } => vec![kvcache::fill(
                gpu,
                *shape,
                cx.t(*qkv),
                cx.caches(*k_cache, *v_cache),
            )?],
            Op::AttentionProbabilities {
                shape,
                qkv,
                out,
                lse,
                probs,
            } => vec![attention::probabilities(
                gpu,
                *shape,
                cx.t(*qkv),
                cx.random_state,
                cx.t(*out),
                cx.t(*lse),
                cx.t(*probs),
            )?],
            Op::AttentionBackward {
                shape,
                p,
                site,
                qkv,
                out,
                lse,
                dout,
                delta,
                dqkv,
            } => attention::backward(
                gpu,
                attention::Variant::best(gpu, *shape),
                *shape,
                attention_dropout(*p, *site),
                &attention::Backward {
                    qkv: cx.t(*qkv),
                    state: cx.random_state,
                    o: cx.t(*out),
                    lse: cx.t(*lse),
                    d_o: cx.t(*dout),
                    delta: cx.t(*delta),
                    dqkv: cx.t(*dqkv),
                },
            )?,
            Op::Gelu { x, out } => vec![gelu::forward(gpu, cx.t(*x), cx.t(*out))?],
            Op::GeluBackward { x, dy, dx } => {
                vec![gelu::backward(gpu, cx.t(*x), cx.t(*dy), cx.t(*dx))?]
            }
            Op::Add { a, b, out } => vec![residual::forward(gpu, cx.t(*a), cx.t(*b), cx.t(*out))?],
            Op::Dropout { p, site, x, out } => vec![dropout::forward(
                gpu,
                cx.t(*x),
                cx.random_state,
                *site,
                *p,
                cx.t(*out),
            )?],
            Op::DropoutBackward { p, site, dy, dx } => vec![dropout::backward(
                gpu,
                cx.t(*dy),
                cx.random_state,
                *site,
                *p,
                cx.t(*dx),
            )?],
            Op::CrossEntropy {
                logits,
                targets,
                losses,
                dlogits,
                mean_over,
            } => {
                let vocab = *cx.t(*logits).shape.last().unwrap_or(&0);
                let variant = crossentropy::Variant::best(gpu, vocab);
                let (l, t, r) = (cx.t(*logits), cx.t(*targets), cx.t(*losses));
                vec![match dlogits {
                    Some(d) => {
                        crossentropy::forward_backward(gpu, variant, l, t, r, cx.t(*d), *mean_over)?
                    }
                    None => crossentropy::forward(gpu, variant, l, t, r)?,
                }]
            }
            Op::Mean { x, out } => vec![crossentropy::mean(gpu, cx.t(*x), cx.t(*out))?],
            Op::Copy { x, out } => vec![copy::forward(gpu, cx.t(*x), cx.t(*out))?],
            Op::Pack { x, out, dtype } => {
                vec![cast::pack_rounding(gpu, cx.t(*x), cx.t(*out), *dtype)?]
            }
            Op::Unpack { x, out, dtype } => {
                vec![cast::unpack(gpu, cx.t(*x), cx.t(*out), *dtype)?]
            }
            Op::WorkingCopy => (cx.graph.tensors.iter().enumerate())
                .filter_map(|(id, def)| match def.storage {
                    Storage::Param(p) if cx.graph.pieces[p].dtype != Dtype::F32 => Some((id, p)),
                    _ => None,
                })
                .map(|(id, p)| {
                    let words = cx.t(TensorId(id));
                    cast::pack(gpu, &cx.masters[p], words, cx.graph.pieces[p].dtype)
                })
                .collect::<Result<_>>()?,
            Op::GradNorm { max_norm } => {
                let parts: Vec<_> = (cx.arenas.chunks.iter())
                    .map(|c| (&c.grads, 0..c.grads.len()))
                    .collect();
                gradnorm::norm(gpu, &parts, *max_norm, cx.norm)?
            }
            Op::AdamW { config, clip } => (cx.arenas.chunks.iter())
                .map(|c| {
                    adamw::step(
                        gpu,
                        config,
                        &c.params,
                        &c.grads,
                        &c.m,
                        &c.v,
                        &c.segments,
                        cx.hyper,
                        clip.then_some(cx.norm),
                    )
                })
                .collect::<Result<_>>()?,
        })
    }
}

/// The attention kernel's dropout description; seed and step come from the random state at run time.
fn attention_dropout(p: f32, site: u32) -> AttentionDropout {
    AttentionDropout { p, site }
}
