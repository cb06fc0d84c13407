//! The GPT as a graph: embeddings, pre-norm blocks (attention and MLP on a residual stream), the final
//! norm, the output head and the cross-entropy loss.

use std::ops::Range;

use crate::contract::AttentionShape;
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::gpu::Tensor;
use crate::graph::{Epilogue, Gradients, Graph, Op, Storage, TensorId};
use crate::model::{GptConfig, Norm};

/// What a graph is built for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// Forward, backward and the optimizer; dropout as configured.
    Train,
    /// Forward and loss only, no dropout.
    Eval,
    /// One generation step: a new token for each of `batch` sequences (seq 1) at the position held by
    /// the [`crate::graph::POSITION`] input (the same for all): their k and v are appended to the
    /// per-layer caches ([`cache_shape`], [`cache_index`]), their attention reads them; logits
    /// `[batch, 1, V]`, no loss.
    Decode,
    /// The forward of `batch` prompts of `seq` tokens at positions `0..` (no dropout) that writes each
    /// layer's keys and values into rows `0..seq` of the caches of `sequences` sequences (one prompt
    /// fills them all, or `batch = sequences` prompts one each), and computes the logits of each
    /// prompt's last token only, `[batch, 1, V]`. No loss.
    Prefill { sequences: usize },
    /// The forward of a prompt to its logits, no loss, no dropout, with every attention layer's
    /// probabilities recomputed (`[B, H, T, T]`, [`BlockTensors::probabilities`]) for looking at.
    Inspect,
}

/// A model graph and the tensors a caller needs by name.
pub struct ModelGraph {
    pub graph: Graph,
    /// The mean loss (none in [`Mode::Decode`], [`Mode::Prefill`] and [`Mode::Inspect`]).
    pub loss: Option<TensorId>,
    /// All the logits `[B, T, V]` (a prefill's last positions': `[B, 1, V]`); none when they are
    /// computed in row chunks (larger than one binding).
    pub logits: Option<TensorId>,
    /// The token embedding (plus positions) entering the first block.
    pub embedding: TensorId,
    /// The tensors of each block, in order.
    pub blocks: Vec<BlockTensors>,
}

/// Tensors of one block a caller may want to look at, all `[B, T, ·]`: the residual stream entering it,
/// after its attention and after its MLP, and each sublayer's contribution to it (stored on its own in
/// inspection graphs only: elsewhere `c_proj` adds it into the stream as it stores it, an
/// [`crate::graph::Epilogue::Residual`]).
#[derive(Clone, Copy, Debug)]
pub struct BlockTensors {
    pub input: TensorId,
    pub qkv: TensorId,
    /// The attention sublayer's output (after `c_proj`), added to the stream.
    pub attention: Option<TensorId>,
    /// The stream after the attention sublayer.
    pub residual: TensorId,
    /// The MLP sublayer's output (after `c_proj`), added to the stream.
    pub mlp: Option<TensorId>,
    /// The stream after the MLP sublayer (the next block's input).
    pub output: TensorId,
    /// [`Mode::Inspect`]: the attention probabilities `[B, H, T, T]`.
    pub probabilities: Option<TensorId>,
}

/// Builds the forward graph for batches of `[batch, seq]` tokens (and, in training, appends the
/// backward), for a device whose storage bindings hold `max_binding` elements: parameters larger than
/// that are split into pieces ([`GptConfig::pieces`]), each op reading one piece. [`Mode::Decode`] takes
/// `[N, 1]`. The graph reads as nanoGPT's `GPT.forward`: embeddings, the blocks, the final norm, then
/// the head (and loss). `options` say how: epilogues, recomputation (the same bits either way).
pub fn build(
    config: &GptConfig,
    batch: usize,
    seq: usize,
    mode: Mode,
    max_binding: usize,
    options: GraphOptions,
) -> Result<ModelGraph> {
    build_micro(config, batch, seq, 1, mode, max_binding, options)
}

/// How a model's graphs are laid out: none of it changes a bit of the results, except a 16-bit
/// `precision`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GraphOptions {
    /// Products apply the elementwise op after them as they store ([`Epilogue`]): fewer dispatches and
    /// passes over memory.
    pub epilogues: bool,
    /// What a training graph's backward recomputes instead of keeping from the forward.
    pub recompute: Recompute,
    /// How a training graph stores the activations its backward keeps from the forward and the
    /// weights its products read: f32, or 16 bits ([`Graph::keep_in`]: rounded where they are
    /// written, so the forward computes with the values the backward reads; half the memory; and a
    /// 16-bit working copy of the weights); arithmetic stays f32.
    pub precision: Dtype,
}

impl GraphOptions {
    /// The `wgpt train` flags that chose the step's memory layout, `, --precision bf16, --recompute
    /// block` say (empty for the defaults).
    pub fn memory_flags(&self) -> String {
        let mut flags = String::new();
        if self.precision != Dtype::F32 {
            flags += &format!(", --precision {}", self.precision.name());
        }
        if self.recompute != Recompute::None {
            flags += &format!(", --recompute {}", self.recompute.name());
        }
        flags
    }
}

/// What a training graph recomputes in its backward instead of keeping it from the forward: less
/// memory for more work, the same bits (every recomputed op runs the same kernel on the same inputs;
/// dropout masks are a function of the step's random state and the op's site).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Recompute {
    /// Keep every activation the backward reads.
    #[default]
    None,
    /// Keep the MLP's pre-activation but not its GELU: the backward applies GELU again just before
    /// the product that reads it (one elementwise pass per layer for `n_inner` values per token).
    Gelu,
    /// Keep only each block's input (the residual stream between blocks): the backward runs each
    /// block's forward again, just before its backward, so one block's activations are alive at a
    /// time (as activation checkpointing does; about a third more compute).
    Block,
}

impl Recompute {
    pub fn name(self) -> &'static str {
        match self {
            Recompute::None => "none",
            Recompute::Gelu => "gelu",
            Recompute::Block => "block",
        }
    }
}

/// [`build`] for one of `micros` equal micro-batches of a batch of `micros · batch` rows: the loss's
/// gradient is averaged over the whole batch (the micro-batches' gradients then add up to the batch's),
/// while the loss tensor is this micro-batch's mean.
pub fn build_micro(
    config: &GptConfig,
    batch: usize,
    seq: usize,
    micros: usize,
    mode: Mode,
    max_binding: usize,
    options: GraphOptions,
) -> Result<ModelGraph> {
    let mut b = Builder::new(config, batch, seq, mode, max_binding)?;
    b.micros = micros;
    b.epilogues = options.epilogues;
    let embedding = b.embeddings();
    let mut x = b.dropout(embedding, 0, "embedding dropout".into());
    // The first op of each block, then of the final norm.
    let mut starts = Vec::new();
    let mut blocks = Vec::new();
    for layer in 0..config.n_layer {
        starts.push(b.g.ops.len());
        let block = b.block(layer, x);
        x = block.output;
        blocks.push(block);
    }
    starts.push(b.g.ops.len());
    let final_norm = b.norm(x, "transformer.ln_f");
    let (loss, logits) = match mode {
        Mode::Decode | Mode::Inspect => (None, Some(b.logits(final_norm)?)),
        Mode::Prefill { .. } => {
            let last = b.last_position(final_norm);
            (None, Some(b.logits(last)?))
        }
        Mode::Eval => {
            let (loss, logits, _) = b.loss(final_norm)?;
            (loss, logits)
        }
        Mode::Train => {
            let body = b.g.ops.len();
            let (loss, logits, mut grads) = b.loss(final_norm)?;
            let backward = b.g.ops.len();
            b.backward_body(options.recompute, &blocks, &starts, body, &mut grads);
            b.g.keep_in(options.precision, backward, &b.wide);
            read_weights_in(&mut b.g, options.precision);
            (loss, logits)
        }
    };
    Ok(ModelGraph {
        graph: b.g,
        loss,
        logits,
        embedding,
        blocks,
    })
}

/// Makes a training graph read its matrices (every piece of two or more dimensions: the embeddings
/// and the weights) from a 16-bit working copy in `precision`, which [`Op::WorkingCopy`], its first op,
/// packs from the f32 master values each step; the gradients and AdamW stay on the f32 parameters.
/// Nothing for f32.
fn read_weights_in(g: &mut Graph, precision: Dtype) {
    if precision == Dtype::F32 {
        return;
    }
    for piece in g.pieces.iter_mut().filter(|p| p.shape.len() >= 2) {
        piece.dtype = precision;
    }
    g.ops.insert(0, Op::WorkingCopy);
}

/// The shape of each key and value cache of `sequences` sequences: `[N, ctx, Hkv·D]`.
pub fn cache_shape(config: &GptConfig, sequences: usize) -> [usize; 3] {
    let width = config.n_kv_head * config.head_dim();
    [sequences, config.n_positions, width]
}

/// Which of the caches a plan is given ([`crate::graph::Storage::Cache`]) holds layer `layer`'s keys
/// (`values = false`) or values: `2·layer` and `2·layer + 1`.
pub fn cache_index(layer: usize, values: bool) -> usize {
    2 * layer + values as usize
}

/// The graph under construction and what every layer needs: the parameters' graph ids by name, the
/// batch shape and the mode.
struct Builder<'a> {
    g: Graph,
    config: &'a GptConfig,
    specs: Vec<crate::model::ParamSpec>,
    /// Per parameter (in [`GptConfig::params`] order), its pieces' graph ids and first rows.
    params: Vec<Vec<(TensorId, usize)>>,
    batch: usize,
    seq: usize,
    mode: Mode,
    max_binding: usize,
    /// Dropout probability of this graph (0 unless training).
    p: f32,
    /// The micro-batches of this size the loss averages over ([`build_micro`]).
    micros: usize,
    /// Whether products may take the elementwise ops after them as epilogues ([`Builder::fuse`]).
    epilogues: bool,
    /// [`Mode::Decode`]: the position input.
    position: Option<TensorId>,
    tokens: TensorId,
    /// The `[B, T, width]` activations, in order: what a 16-bit precision may keep in 16 bits (not
    /// the rows' statistics, which stay f32).
    wide: Vec<TensorId>,
}

impl<'a> Builder<'a> {
    fn new(
        config: &'a GptConfig,
        batch: usize,
        seq: usize,
        mode: Mode,
        max_binding: usize,
    ) -> Result<Self> {
        let mut g = Graph::default();
        let specs = config.params();
        let pieces = config.pieces(max_binding)?;
        let mut params: Vec<Vec<(TensorId, usize)>> = vec![Vec::new(); specs.len()];
        for (i, piece) in pieces.iter().enumerate() {
            let spec = &specs[piece.param];
            let name = if piece.len() == spec.len() {
                spec.name.clone()
            } else {
                let end = piece.first_row + piece.shape[0];
                format!("{} rows {}..{end}", spec.name, piece.first_row)
            };
            let id = g.tensor(name, &piece.shape, Storage::Param(i));
            params[piece.param].push((id, piece.first_row));
        }
        g.pieces = pieces;
        let tokens = g.tensor(crate::graph::TOKENS, &[batch, seq], Storage::Input);
        let position =
            (mode == Mode::Decode).then(|| g.tensor(crate::graph::POSITION, &[1], Storage::Input));
        Ok(Builder {
            g,
            config,
            specs,
            params,
            batch,
            seq,
            mode,
            max_binding,
            p: if mode == Mode::Train {
                config.dropout
            } else {
                0.0
            },
            micros: 1,
            epilogues: true,
            position,
            tokens,
            wide: Vec::new(),
        })
    }

    /// The pieces of parameter `name`, if the model has it.
    fn pieces_of(&self, name: &str) -> Option<&[(TensorId, usize)]> {
        let i = self.specs.iter().position(|s| s.name == name)?;
        Some(&self.params[i])
    }

    /// Parameter `name` (never split: [`GptConfig::pieces`] splits only the embeddings), if the model
    /// has it (biases are optional).
    fn maybe(&self, name: &str) -> Option<TensorId> {
        self.pieces_of(name).map(|p| p[0].0)
    }

    fn param(&self, name: &str) -> TensorId {
        self.maybe(name)
            .unwrap_or_else(|| panic!("a GPT has a parameter {name}"))
    }

    fn rows(&self) -> usize {
        self.batch * self.seq
    }

    /// A new `[B, T, width]` activation.
    fn activation(&mut self, name: String, width: usize) -> TensorId {
        let shape = [self.batch, self.seq, width];
        let id = self.g.activation(name, &shape);
        self.wide.push(id);
        id
    }

    /// `wte[tokens] + wpe[positions]`, one op per piece of the token embedding.
    fn embeddings(&mut self) -> TensorId {
        let wte = self
            .pieces_of("transformer.wte.weight")
            .expect("a GPT has a token embedding")
            .to_vec();
        let wpe = self.param("transformer.wpe.weight");
        let out = self.activation("embedding".into(), self.config.n_embd);
        for (piece, first) in wte {
            self.g.push(Op::Embedding {
                tokens: self.tokens,
                start: self.position,
                wte: piece,
                first,
                wpe,
                out,
            });
        }
        out
    }

    /// Dropout at `site` (the identity when the graph has none). Sites: 0 the embedding, then per layer
    /// 1 + 3l (attention probabilities), 2 + 3l (attention output), 3 + 3l (MLP output).
    fn dropout(&mut self, x: TensorId, site: u32, name: String) -> TensorId {
        if self.p == 0.0 {
            return x;
        }
        let out = self.activation(name, self.config.n_embd);
        let p = self.p;
        self.g.push(Op::Dropout { p, site, x, out });
        out
    }

    /// The model's norm (LayerNorm or RMSNorm) with the parameters under `prefix`.
    fn norm(&mut self, x: TensorId, prefix: &str) -> TensorId {
        let (c, rows, eps) = (
            self.config.n_embd,
            self.rows(),
            self.config.layer_norm_epsilon,
        );
        let out = self.activation(format!("{prefix} out"), c);
        let rstd = self.g.activation(format!("{prefix} rstd"), &[rows]);
        let gain = self.param(&format!("{prefix}.weight"));
        let op = match self.config.norm {
            Norm::LayerNorm => Op::LayerNorm {
                x,
                gain,
                bias: self.maybe(&format!("{prefix}.bias")),
                out,
                mean: self.g.activation(format!("{prefix} mean"), &[rows]),
                rstd,
                eps,
            },
            Norm::RmsNorm => Op::RmsNorm {
                x,
                gain,
                out,
                rstd,
                eps,
            },
        };
        self.g.push(op);
        out
    }

    /// `x·w (+ b)` with the parameters under `prefix`, `width` outputs.
    fn linear(&mut self, x: TensorId, prefix: &str, width: usize) -> TensorId {
        let out = self.activation(format!("{prefix} out"), width);
        self.linear_into(x, prefix, out, Epilogue::None);
        out
    }

    /// `out = epilogue(x·w (+ b))` with the parameters under `prefix`.
    fn linear_into(&mut self, x: TensorId, prefix: &str, out: TensorId, epilogue: Epilogue) {
        let w = self.param(&format!("{prefix}.weight"));
        let b = self.maybe(&format!("{prefix}.bias"));
        self.g.push(Op::Linear {
            x,
            w,
            b,
            out,
            epilogue,
        });
    }

    /// The stream after a sublayer: `stream + dropout(x·w (+ b))` with the projection under `prefix`
    /// and dropout at `site`, as `(the branch, the new stream)`. The projection applies the dropout and
    /// adds the stream as it stores its product (up to two dispatches and passes fewer, the same bits),
    /// so the branch is never stored on its own, except for inspection, which looks at it.
    fn add_to_stream(
        &mut self,
        stream: TensorId,
        x: TensorId,
        prefix: &str,
        site: u32,
        name: String,
    ) -> (Option<TensorId>, TensorId) {
        let out = self.activation(name, self.config.n_embd);
        if self.fuse() {
            let p = self.p;
            self.linear_into(x, prefix, out, Epilogue::Residual { stream, p, site });
            return (None, out);
        }
        let branch = self.linear(x, prefix, self.config.n_embd);
        let dropped = self.dropout(branch, site, format!("{prefix} dropout"));
        self.g.push(Op::Add {
            a: stream,
            b: dropped,
            out,
        });
        (Some(branch), out)
    }

    /// Block `layer`: `x + attn(ln_1(x))`, then `+ mlp(ln_2(·))`.
    fn block(&mut self, layer: usize, x: TensorId) -> BlockTensors {
        let h = format!("transformer.h.{layer}");
        let site = 1 + 3 * layer as u32;
        let ln1 = self.norm(x, &format!("{h}.ln_1"));
        let (qkv, attended, probabilities) = self.attention(layer, ln1, site);
        let c_proj = format!("{h}.attn.c_proj");
        let name = format!("{h} residual 1");
        let (attention, residual) = self.add_to_stream(x, attended, &c_proj, site + 1, name);
        let ln2 = self.norm(residual, &format!("{h}.ln_2"));
        let hidden = self.mlp_hidden(&h, ln2);
        let c_proj = format!("{h}.mlp.c_proj");
        let name = format!("{h} residual 2");
        let (mlp, output) = self.add_to_stream(residual, hidden, &c_proj, site + 2, name);
        BlockTensors {
            input: x,
            qkv,
            attention,
            residual,
            mlp,
            output,
            probabilities,
        }
    }

    /// Causal self-attention of block `layer` before its output projection: `(qkv, out,
    /// probabilities)`. Decoding attends over the key/value caches; a prefill also writes its keys and
    /// values into them; inspection also recomputes the probabilities.
    fn attention(
        &mut self,
        layer: usize,
        x: TensorId,
        site: u32,
    ) -> (TensorId, TensorId, Option<TensorId>) {
        let config = self.config;
        let h = &format!("transformer.h.{layer}");
        let qkv = self.linear(x, &format!("{h}.attn.c_attn"), config.qkv_width());
        let out = self.activation(format!("{h}.attn out"), config.n_embd);
        let shape = AttentionShape {
            batch: self.batch,
            seq: self.seq,
            heads: config.n_head,
            kv_heads: config.n_kv_head,
            head_dim: config.head_dim(),
        };
        if let Some(position) = self.position {
            let (k_cache, v_cache) = self.caches(layer, self.batch);
            self.g.push(Op::CachedAttention {
                shape,
                qkv,
                position,
                k_cache,
                v_cache,
                out,
            });
            return (qkv, out, None);
        }
        let (heads, batch, seq) = (config.n_head, self.batch, self.seq);
        let lse = self
            .g
            .activation(format!("{h}.attn lse"), &[batch, heads, seq]);
        let p = self.p;
        self.g.push(Op::Attention {
            shape,
            p,
            site,
            qkv,
            out,
            lse,
        });
        if let Mode::Prefill { sequences } = self.mode {
            let (k_cache, v_cache) = self.caches(layer, sequences);
            self.g.push(Op::FillCache {
                shape,
                qkv,
                k_cache,
                v_cache,
            });
        }
        if self.mode != Mode::Inspect {
            return (qkv, out, None);
        }
        let probs_shape = [batch, heads, seq, seq];
        let probs = (self.g).activation(format!("{h}.attn probabilities"), &probs_shape);
        self.g.push(Op::AttentionProbabilities {
            shape,
            qkv,
            out,
            lse,
            probs,
        });
        (qkv, out, Some(probs))
    }

    /// Layer `layer`'s key and value caches for `sequences` sequences.
    fn caches(&mut self, layer: usize, sequences: usize) -> (TensorId, TensorId) {
        let shape = cache_shape(self.config, sequences);
        let [k, v] = [false, true].map(|values| {
            let name = format!(
                "transformer.h.{layer}.attn {} cache",
                ["k", "v"][values as usize]
            );
            let storage = Storage::Cache(cache_index(layer, values));
            self.g.tensor(name, &shape, storage)
        });
        (k, v)
    }

    /// The MLP of block `h` up to its `c_proj`: `gelu(c_fc(x))`, the GELU applied by the product as it
    /// stores the pre-activation (kept for the backward) where [`Builder::fuse`] allows.
    fn mlp_hidden(&mut self, h: &str, x: TensorId) -> TensorId {
        let c_fc = format!("{h}.mlp.c_fc");
        let pre = self.activation(format!("{c_fc} out"), self.config.n_inner);
        let activated = self.activation(format!("{h}.mlp gelu"), self.config.n_inner);
        if self.fuse() {
            self.linear_into(x, &c_fc, activated, Epilogue::Gelu { pre });
        } else {
            self.linear_into(x, &c_fc, pre, Epilogue::None);
            self.g.push(Op::Gelu {
                x: pre,
                out: activated,
            });
        }
        activated
    }

    /// Whether products apply the elementwise op after them as they store (`Epilogue`): where the
    /// model asks for epilogues, but not in inspection graphs, which are built op for op so that every
    /// sublayer's output exists to be looked at.
    fn fuse(&self) -> bool {
        self.epilogues && self.mode != Mode::Inspect
    }

    /// The head's pieces: the untied `lm_head`, else the token embedding.
    fn head(&self) -> Vec<(TensorId, usize)> {
        self.pieces_of("lm_head.weight")
            .or_else(|| self.pieces_of("transformer.wte.weight"))
            .expect("a GPT has a token embedding")
            .to_vec()
    }

    /// Row `T - 1` of each sequence of `x: [B, T, C]`, as `[B, 1, C]`: a prefill's last positions.
    fn last_position(&mut self, x: TensorId) -> TensorId {
        let (batch, seq, c) = (self.batch, self.seq, self.config.n_embd);
        // The columns of the last position in each sequence's row of a [B, T·C] view.
        let rows = self.g.view(x, 0, &[batch, seq * c]);
        let out = self.g.activation("last position", &[batch, 1, c]);
        self.g.push(Op::TakeColumns {
            x: rows,
            first: (seq - 1) * c,
            out,
        });
        out
    }

    /// All the logits `[.., V]` of `x: [.., C]` at once (decoding, a prefill's last positions and
    /// inspection: no loss).
    fn logits(&mut self, x: TensorId) -> Result<TensorId> {
        let mut shape = self.g.shape(x).to_vec();
        let rows = shape.iter().product::<usize>() / self.config.n_embd;
        let vocab = self.config.vocab_size;
        if logit_rows(rows, vocab, self.max_binding)? < rows {
            return Err(Error::Invalid(format!(
                "the logits of {rows} tokens over {vocab} exceed one storage binding ({} \
                 elements); give fewer tokens",
                self.max_binding
            )));
        }
        *shape.last_mut().expect("activations have a feature axis") = vocab;
        let logits = self.g.activation("logits", &shape);
        let head = self.head();
        head_logits(&mut self.g, x, &head, logits);
        Ok(logits)
    }

    /// The head and the mean cross-entropy loss of `x` (and in training the backward down to `x`):
    /// `(loss, logits, the gradients found)`, the logits only when they were computed whole. The logits
    /// go in row chunks of at most one binding: each chunk's head, loss and (in training) head
    /// backward before the next chunk's, so one chunk's logits and their gradient are alive at a time.
    fn loss(&mut self, x: TensorId) -> Result<(Option<TensorId>, Option<TensorId>, Gradients)> {
        let (batch, seq, c) = (self.batch, self.seq, self.config.n_embd);
        let (rows, vocab, train) = (
            self.rows(),
            self.config.vocab_size,
            self.mode == Mode::Train,
        );
        let head = self.head();
        let g = &mut self.g;
        let targets = g.tensor(crate::graph::TARGETS, &[rows], Storage::Input);
        let losses = g.activation("losses", &[rows]);
        let chunk = logit_rows(rows, vocab, self.max_binding)?;
        let mut grads = Gradients::default();
        let mut whole_logits = None;
        for first in (0..rows).step_by(chunk) {
            let n = chunk.min(rows - first);
            let (mut part, mut xs, mut t, mut l) = ([n, vocab].to_vec(), x, targets, losses);
            if n == rows {
                part = vec![batch, seq, vocab];
            } else {
                xs = g.view(x, first * c, &[n, c]);
                t = g.view(targets, first, &[n]);
                l = g.view(losses, first, &[n]);
            }
            let start = g.ops.len();
            let logits = g.activation(format!("logits {first}.."), &part);
            head_logits(g, xs, &head, logits);
            let dlogits = train.then(|| g.activation("d logits", &part));
            g.push(Op::CrossEntropy {
                logits,
                targets: t,
                losses: l,
                dlogits,
                mean_over: rows * self.micros,
            });
            if train {
                g.backward_ops(start..g.ops.len(), &mut grads);
            }
            whole_logits = (n == rows).then_some(logits);
        }
        let loss = g.activation("loss", &[1]);
        g.push(Op::Mean {
            x: losses,
            out: loss,
        });
        Ok((Some(loss), whole_logits, grads))
    }

    /// Removes the ops of `range` whose outputs no later op reads, from the last: recomputed ops whose
    /// values the backward does not need (a block's output, whose gradient is the kept output's, and in
    /// an op-for-op graph the branch added into it).
    fn drop_unread(&mut self, range: Range<usize>) {
        for i in range.rev() {
            let written = self.g.ops[i].uses().1;
            let read = |op: &Op| op.uses().0.iter().any(|t| written.contains(t));
            if !self.g.ops[i + 1..].iter().any(read) {
                self.g.ops.remove(i);
            }
        }
    }

    /// The backward of the body (the ops before the head): the final norm's, then each block's from
    /// the last (recomputing `recompute`), then the embeddings'. `starts`: the first op of each block,
    /// then of the final norm; `body`: the first op of the head.
    fn backward_body(
        &mut self,
        recompute: Recompute,
        blocks: &[BlockTensors],
        starts: &[usize],
        body: usize,
        grads: &mut Gradients,
    ) {
        self.g.backward_ops(starts[blocks.len()]..body, grads);
        for (layer, kept) in blocks.iter().enumerate().rev() {
            let ops = starts[layer]..starts[layer + 1];
            match recompute {
                Recompute::None => self.g.backward_ops(ops, grads),
                Recompute::Gelu => self.backward_recomputing_gelu(ops, grads),
                Recompute::Block => self.backward_recomputing_block(layer, kept, grads),
            }
        }
        self.g.backward_ops(0..starts[0], grads);
    }

    /// The backward of the block whose forward is `range` when its GELU output is not kept: the
    /// product that read it (`c_proj`) is differentiated as if it read a new tensor, which the GELU
    /// fills again from the kept pre-activation just before; the gradient found for the new tensor is
    /// the kept one's.
    fn backward_recomputing_gelu(&mut self, range: Range<usize>, grads: &mut Gradients) {
        let ops = self.g.ops[range].to_vec();
        let (pre, activated) = ops.iter().find_map(gelu_of).expect("a block has a GELU");
        let reader = (ops.iter())
            .position(|op| matches!(op, Op::Linear { x, .. } if *x == activated))
            .expect("a product reads the GELU's output");
        self.g.backward_of(&ops[reader + 1..], grads);
        let name = format!("{} again", self.g.def(activated).name);
        let shape = self.g.shape(activated).to_vec();
        let again = self.g.activation(name, &shape);
        self.g.push(Op::Gelu { x: pre, out: again });
        let mut product = ops[reader].clone();
        if let Op::Linear { x, .. } = &mut product {
            *x = again;
        }
        self.g.backward_of(&[product], grads);
        grads.share(activated, again);
        self.g.backward_of(&ops[..reader], grads);
    }

    /// The backward of block `layer` when only its input is kept: its forward built again from
    /// `kept.input`, then the backward of that copy.
    fn backward_recomputing_block(
        &mut self,
        layer: usize,
        kept: &BlockTensors,
        grads: &mut Gradients,
    ) {
        let first = self.g.ops.len();
        let again = self.block(layer, kept.input);
        grads.share(again.output, kept.output);
        let end = self.g.ops.len();
        self.g.backward_ops(first..end, grads);
        self.drop_unread(first..end);
    }
}

/// `(pre-activation, output)` of `op` when it applies GELU (on its own or as a product's epilogue).
fn gelu_of(op: &Op) -> Option<(TensorId, TensorId)> {
    match *op {
        Op::Gelu { x, out } => Some((x, out)),
        Op::Linear {
            out,
            epilogue: Epilogue::Gelu { pre },
            ..
        } => Some((pre, out)),
        _ => None,
    }
}

/// Rows of logits `[rows, vocab]` per chunk so that a chunk fits one binding of `max_binding`
/// elements: all of them when they fit, else the largest multiple of 64 (so every chunk's views start
/// at a multiple of [`crate::gpu::Tensor::ALIGN`]) that fits.
fn logit_rows(rows: usize, vocab: usize, max_binding: usize) -> Result<usize> {
    if rows * vocab <= max_binding {
        return Ok(rows);
    }
    let chunk = max_binding / vocab / Tensor::ALIGN * Tensor::ALIGN;
    if chunk == 0 {
        return Err(Error::Invalid(format!(
            "{} rows of logits over {vocab} tokens exceed one storage binding ({max_binding} \
             elements); use a smaller vocabulary or batch",
            Tensor::ALIGN
        )));
    }
    Ok(chunk)
}

/// `logits = x·headᵀ` from the head's pieces `(tensor, first row)`: one product when whole, else a
/// product per piece placed into the piece's columns of the logits.
fn head_logits(g: &mut Graph, x: TensorId, head: &[(TensorId, usize)], logits: TensorId) {
    if let [(w, _)] = head {
        g.push(Op::Head {
            x,
            w: *w,
            out: logits,
        });
        return;
    }
    let mut shape = g.shape(logits).to_vec();
    for &(w, first) in head {
        *shape.last_mut().expect("logits have a vocabulary axis") = g.shape(w)[0];
        let part = g.activation(format!("logits {first}.."), &shape);
        g.push(Op::Head { x, w, out: part });
        g.push(Op::PlaceColumns {
            x: part,
            first,
            out: logits,
        });
    }
}
