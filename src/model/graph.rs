//! The GPT as a graph: embeddings, pre-norm blocks (attention and MLP on a residual stream), the final
//! norm, the output head and the cross-entropy loss.

use crate::error::{Error, Result};
use crate::gpu::Tensor;
use crate::graph::{Gradients, Graph, Op, Storage, TensorId};
use crate::kernels::attention;
use crate::model::{GptConfig, Norm};

/// What a graph is built for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// Forward, backward and the optimizer; dropout as configured.
    Train,
    /// Forward and loss only, no dropout.
    Eval,
    /// One generation step for one new token (batch 1, seq 1) at the position held by the
    /// [`crate::graph::POSITION`] input: its k and v are appended to per-layer caches `[ctx, Hkv·D]`
    /// kept by the plan, its attention reads them; logits, no loss.
    Decode,
    /// The forward of a prompt to its logits, no loss, no dropout, with every attention layer's
    /// probabilities recomputed (`[B, H, T, T]`, [`BlockTensors::probabilities`]) for looking at.
    Inspect,
}

/// A model graph and the tensors a caller needs by name.
pub struct ModelGraph {
    pub graph: Graph,
    /// The mean loss (none in [`Mode::Decode`]).
    pub loss: Option<TensorId>,
    /// All the logits `[B, T, V]`; none when they are computed in row chunks (larger than one binding).
    pub logits: Option<TensorId>,
    /// The token embedding (plus positions) entering the first block.
    pub embedding: TensorId,
    /// The tensors of each block, in order.
    pub blocks: Vec<BlockTensors>,
}

/// Tensors of one block a caller may want to look at, all `[B, T, ·]`: the residual stream entering it,
/// after its attention and after its MLP, and each sublayer's contribution to it.
#[derive(Clone, Copy, Debug)]
pub struct BlockTensors {
    pub input: TensorId,
    pub qkv: TensorId,
    /// The attention sublayer's output (after `c_proj`), added to the stream.
    pub attention: TensorId,
    /// The stream after the attention sublayer.
    pub residual: TensorId,
    /// The MLP sublayer's output (after `c_proj`), added to the stream.
    pub mlp: TensorId,
    /// The stream after the MLP sublayer (the next block's input).
    pub output: TensorId,
    /// [`Mode::Inspect`]: the attention probabilities `[B, H, T, T]`.
    pub probabilities: Option<TensorId>,
}

/// Builds the forward graph for batches of `[batch, seq]` tokens (and, in training, appends the
/// backward), for a device whose storage bindings hold `max_binding` elements: parameters larger than
/// that are split into pieces ([`GptConfig::pieces`]), each op reading one piece. [`Mode::Decode`] takes
/// `[1, 1]`.
pub fn build(
    config: &GptConfig,
    batch: usize,
    seq: usize,
    mode: Mode,
    max_binding: usize,
) -> Result<ModelGraph> {
    let mut g = Graph::default();
    let specs = config.params();
    let pieces = config.pieces(max_binding)?;
    // Per parameter, its pieces' graph ids and first rows.
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
    let pieces_of = |name: &str| {
        specs
            .iter()
            .position(|s| s.name == name)
            .map(|i| &params[i])
    };
    // Parameters other than the embeddings are never split (GptConfig::pieces refuses).
    let maybe = |name: &str| pieces_of(name).map(|p| p[0].0);
    let param =
        |name: &str| -> TensorId { maybe(name).unwrap_or_else(|| panic!("no parameter {name}")) };
    let (c, rows) = (config.n_embd, batch * seq);
    let inspect = mode == Mode::Inspect;
    let p = if mode == Mode::Train {
        config.dropout
    } else {
        0.0
    };
    let eps = config.layer_norm_epsilon;
    // Dropout sites: 0 the embedding, then per layer 1 + 3l (attention probabilities), 2 + 3l
    // (attention output), 3 + 3l (MLP output).
    let dropout = |g: &mut Graph, x: TensorId, site: u32, name: String| -> TensorId {
        if p == 0.0 {
            return x;
        }
        let out = g.activation(name, &[batch, seq, c]);
        g.push(Op::Dropout { p, site, x, out });
        out
    };
    let norm = |g: &mut Graph, x: TensorId, prefix: &str| -> TensorId {
        let out = g.activation(format!("{prefix} out"), &[batch, seq, c]);
        let rstd = g.activation(format!("{prefix} rstd"), &[rows]);
        let mean = (config.norm == Norm::LayerNorm)
            .then(|| g.activation(format!("{prefix} mean"), &[rows]));
        g.push(Op::Norm {
            kind: config.norm,
            x,
            gain: param(&format!("{prefix}.weight")),
            bias: maybe(&format!("{prefix}.bias")),
            out,
            mean,
            rstd,
            eps,
        });
        out
    };
    let linear = |g: &mut Graph, x: TensorId, prefix: &str, width: usize| -> TensorId {
        let out = g.activation(format!("{prefix} out"), &[batch, seq, width]);
        g.push(Op::Linear {
            x,
            w: param(&format!("{prefix}.weight")),
            b: maybe(&format!("{prefix}.bias")),
            out,
        });
        out
    };

    let decode = mode == Mode::Decode;
    let tokens = g.tensor(crate::graph::TOKENS, &[batch, seq], Storage::Input);
    let position = decode.then(|| g.tensor(crate::graph::POSITION, &[1], Storage::Input));
    let wte = pieces_of("transformer.wte.weight").expect("a GPT has a token embedding");
    let embedded = g.activation("embedding", &[batch, seq, c]);
    for &(piece, first) in wte {
        g.push(Op::Embedding {
            tokens,
            start: position,
            wte: piece,
            first,
            wpe: param("transformer.wpe.weight"),
            out: embedded,
        });
    }
    let mut x = dropout(&mut g, embedded, 0, "embedding dropout".into());
    let shape = attention::Shape {
        batch,
        seq,
        heads: config.n_head,
        kv_heads: config.n_kv_head,
        head_dim: config.head_dim(),
    };
    let mut blocks = Vec::new();
    for l in 0..config.n_layer {
        let h = format!("transformer.h.{l}");
        let site = 1 + 3 * l as u32;
        let input = x;
        let ln1 = norm(&mut g, x, &format!("{h}.ln_1"));
        let qkv = linear(&mut g, ln1, &format!("{h}.attn.c_attn"), config.qkv_width());
        let mut probabilities = None;
        let attended = g.activation(format!("{h}.attn out"), &[batch, seq, c]);
        match position {
            Some(position) => {
                let cache = [config.n_positions, config.n_kv_head * config.head_dim()];
                let k_cache = g.tensor(format!("{h}.attn k cache"), &cache, Storage::Cache);
                let v_cache = g.tensor(format!("{h}.attn v cache"), &cache, Storage::Cache);
                g.push(Op::CachedAttention {
                    shape,
                    qkv,
                    position,
                    k_cache,
                    v_cache,
                    out: attended,
                });
            }
            None => {
                let lse = g.activation(format!("{h}.attn lse"), &[batch, config.n_head, seq]);
                g.push(Op::Attention {
                    shape,
                    p,
                    site,
                    qkv,
                    out: attended,
                    lse,
                });
                if inspect {
                    let probs = g.activation(
                        format!("{h}.attn probabilities"),
                        &[batch, config.n_head, seq, seq],
                    );
                    g.push(Op::AttentionProbabilities {
                        shape,
                        qkv,
                        out: attended,
                        lse,
                        probs,
                    });
                    probabilities = Some(probs);
                }
            }
        }
        let projected = linear(&mut g, attended, &format!("{h}.attn.c_proj"), c);
        let projected = dropout(&mut g, projected, site + 1, format!("{h}.attn dropout"));
        let after_attention = g.activation(format!("{h} residual 1"), &[batch, seq, c]);
        g.push(Op::Add {
            a: x,
            b: projected,
            out: after_attention,
        });
        x = after_attention;
        let ln2 = norm(&mut g, x, &format!("{h}.ln_2"));
        let up = linear(&mut g, ln2, &format!("{h}.mlp.c_fc"), config.n_inner);
        let activated = g.activation(format!("{h}.mlp gelu"), &[batch, seq, config.n_inner]);
        g.push(Op::Gelu {
            x: up,
            out: activated,
        });
        let down = linear(&mut g, activated, &format!("{h}.mlp.c_proj"), c);
        let down = dropout(&mut g, down, site + 2, format!("{h}.mlp dropout"));
        let after_mlp = g.activation(format!("{h} residual 2"), &[batch, seq, c]);
        g.push(Op::Add {
            a: x,
            b: down,
            out: after_mlp,
        });
        x = after_mlp;
        blocks.push(BlockTensors {
            input,
            qkv,
            attention: projected,
            residual: after_attention,
            mlp: down,
            output: after_mlp,
            probabilities,
        });
    }
    let final_norm = norm(&mut g, x, "transformer.ln_f");
    let head = pieces_of("lm_head.weight").unwrap_or(wte);
    let vocab = config.vocab_size;
    if decode || inspect {
        if logit_rows(rows, vocab, max_binding)? < rows {
            return Err(Error::Invalid(format!(
                "the logits of {rows} tokens over {vocab} exceed one storage binding ({max_binding} \
                 elements); give fewer tokens"
            )));
        }
        let logits = g.activation("logits", &[batch, seq, vocab]);
        head_logits(&mut g, final_norm, head, logits);
        return Ok(ModelGraph {
            graph: g,
            loss: None,
            logits: Some(logits),
            embedding: embedded,
            blocks,
        });
    }
    let body = g.ops.len();
    let targets = g.tensor(crate::graph::TARGETS, &[rows], Storage::Input);
    let losses = g.activation("losses", &[rows]);
    let chunk = logit_rows(rows, vocab, max_binding)?;
    let mut grads = Gradients::default();
    let mut whole_logits = None;
    // The logits in row chunks of at most one binding: each chunk's head, loss and (in training) head
    // backward before the next chunk's, so one chunk's logits and their gradient are alive at a time.
    for first in (0..rows).step_by(chunk) {
        let n = chunk.min(rows - first);
        let (mut part, mut x, mut t, mut l) = ([n, vocab].to_vec(), final_norm, targets, losses);
        if n == rows {
            part = vec![batch, seq, vocab];
        } else {
            x = g.view(final_norm, first * c, &[n, c]);
            t = g.view(targets, first, &[n]);
            l = g.view(losses, first, &[n]);
        }
        let start = g.ops.len();
        let logits = g.activation(format!("logits {first}.."), &part);
        head_logits(&mut g, x, head, logits);
        let dlogits = (mode == Mode::Train).then(|| g.activation("d logits", &part));
        g.push(Op::CrossEntropy {
            logits,
            targets: t,
            losses: l,
            dlogits,
            mean_over: rows,
        });
        if mode == Mode::Train {
            g.backward_ops(start..g.ops.len(), &mut grads);
        }
        whole_logits = (n == rows).then_some(logits);
    }
    let loss = g.activation("loss", &[1]);
    g.push(Op::Mean {
        x: losses,
        out: loss,
    });
    if mode == Mode::Train {
        g.backward_ops(0..body, &mut grads);
    }
    Ok(ModelGraph {
        graph: g,
        loss: Some(loss),
        logits: whole_logits,
        embedding: embedded,
        blocks,
    })
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
