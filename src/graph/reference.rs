//! The graph run on the CPU with nothing but the `reference` twins of the kernels: the specification a
//! GPU step is tested against (loss, every gradient, the parameters and moments after AdamW). Slow and
//! plain; for tests and small models only.

use crate::contract::{AttentionDropout, Segment, HYPER_LEN};
use crate::graph::{Epilogue, Graph, Op, Storage, TensorId, TOKENS};
use crate::reference::{
    adamw as ref_adamw, attention, cast, copy, crossentropy, dropout, embedding, gelu, gradnorm,
    kvcache, layernorm, matmul, residual, rmsnorm,
};

/// A model's state on the CPU, in [`crate::model::GptConfig::params`] order.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuModel {
    pub params: Vec<Vec<f32>>,
    pub m: Vec<Vec<f32>>,
    pub v: Vec<Vec<f32>>,
    /// Whether weight decay applies to each parameter.
    pub decays: Vec<bool>,
}

/// What one step computes.
pub struct CpuStep {
    pub loss: f32,
    /// Gradients in parameter order (before clipping).
    pub grads: Vec<Vec<f32>>,
    /// Every tensor's value (empty for tensors the step never wrote).
    pub values: Vec<Vec<f32>>,
}

/// The per-step inputs: the batch, a decode step's position, the dropout state and AdamW's per-step
/// hyperparameters.
pub struct CpuInputs<'a> {
    pub tokens: &'a [u32],
    pub targets: &'a [u32],
    /// The position a decode graph's embedding starts at and its caches are written at (0 otherwise).
    pub position: u32,
    /// `[seed, step, micro]` (see [`crate::contract::RANDOM_STATE_LEN`]).
    pub random_state: [u32; 3],
    pub hyper: [f32; HYPER_LEN],
}

/// Runs every op of `graph` in order, updating `model` when the graph ends with AdamW.
pub fn run(graph: &Graph, model: &mut CpuModel, inputs: &CpuInputs) -> CpuStep {
    let mut values: Vec<Vec<f32>> = graph
        .tensors
        .iter()
        .map(|t| match t.storage {
            // A 16-bit piece computes with its values rounded as the GPU stores them.
            Storage::Param(i) => {
                let piece = &graph.pieces[i];
                piece
                    .dtype
                    .round(&model.params[piece.param][piece.offset()..][..piece.len()])
            }
            Storage::Grad(_) => vec![0.0; t.len()],
            // One step from empty caches: a generator's later steps need the GPU plans.
            Storage::Cache(_) => vec![0.0; t.len()],
            _ => Vec::new(),
        })
        .collect();
    let mut clip_scale = 1.0f32;
    let mut loss = f32::NAN;
    for op in &graph.ops {
        let (reads, writes) = op.uses();
        // Views are read from their base before the op and written back to it after.
        for &id in &reads {
            if let (Storage::View { .. }, Some((base, range))) =
                (graph.def(id).storage, span(graph, id))
            {
                if !values[base.0].is_empty() {
                    values[id.0] = values[base.0][range].to_vec();
                }
            }
        }
        step_op(
            graph,
            op,
            &mut values,
            model,
            inputs,
            &mut clip_scale,
            &mut loss,
        );
        for &id in &writes {
            if let Some((base, range)) = span(graph, id).filter(|(b, _)| *b != id) {
                let part = std::mem::take(&mut values[id.0]);
                let whole = &mut values[base.0];
                whole.resize(graph.def(base).len(), 0.0);
                whole[range].copy_from_slice(&part);
                values[id.0] = part;
            }
        }
    }
    CpuStep {
        loss,
        grads: grads(graph, &values, model.params.len()),
        values,
    }
}

/// Where tensor `id` lives: its root tensor and its element range there.
fn span(graph: &Graph, id: TensorId) -> Option<(TensorId, std::ops::Range<usize>)> {
    match graph.def(id).storage {
        Storage::View { base, offset } => {
            let (root, range) = span(graph, base)?;
            let start = range.start + offset;
            Some((root, start..start + graph.def(id).len()))
        }
        _ => Some((id, 0..graph.def(id).len())),
    }
}

/// The targets a cross-entropy reads: the batch's, or the rows of them a view takes.
fn targets<'a>(graph: &Graph, id: TensorId, inputs: &CpuInputs<'a>) -> &'a [u32] {
    match span(graph, id) {
        Some((_, range)) => &inputs.targets[range],
        None => inputs.targets,
    }
}

/// Runs one op on the CPU values. (One arm per op: a long match whose arms each read alone, every one a
/// call of the op's reference twin.)
fn step_op(
    graph: &Graph,
    op: &Op,
    values: &mut [Vec<f32>],
    model: &mut CpuModel,
    inputs: &CpuInputs,
    clip_scale: &mut f32,
    loss: &mut f32,
) {
    let state = inputs.random_state;
    {
        let shape = |id: TensorId| graph.shape(id).to_vec();
        let last = |id: TensorId| *graph.shape(id).last().unwrap_or(&1);
        let v = |values: &[Vec<f32>], id: TensorId| values[id.0].clone();
        match *op {
            Op::Embedding {
                start,
                wte,
                first,
                wpe,
                out,
                ..
            } => {
                let seq = shape(out)[1];
                let position = start.map_or(0, |_| inputs.position as usize);
                let mut result = std::mem::take(&mut values[out.0]);
                result.resize(graph.def(out).len(), 0.0);
                embedding::forward_piece(
                    inputs.tokens,
                    &values[wte.0],
                    first,
                    &values[wpe.0],
                    position,
                    seq,
                    last(wte),
                    &mut result,
                );
                values[out.0] = result;
            }
            Op::EmbeddingBackward {
                dout,
                dwte,
                first,
                dwpe,
                ..
            } => {
                let tokens_shape = graph
                    .tensors
                    .iter()
                    .find(|t| t.name == TOKENS)
                    .map(|t| t.shape.clone())
                    .unwrap_or_default();
                let (rows, ctx) = (shape(dwte)[0], shape(dwpe)[0]);
                let (dte, dpe) = embedding::backward_piece(
                    inputs.tokens,
                    &values[dout.0],
                    (first, rows, ctx),
                    tokens_shape[1],
                    last(dwte),
                );
                add_into(&mut values[dwte.0], &dte);
                add_into(&mut values[dwpe.0], &dpe);
            }
            Op::LayerNorm {
                x,
                gain,
                bias,
                out,
                mean,
                rstd,
                eps,
            } => {
                let bias = bias.map(|b| v(values, b));
                let f = layernorm::forward(
                    &values[x.0],
                    &values[gain.0],
                    bias.as_deref(),
                    last(x),
                    eps,
                );
                values[out.0] = f.y;
                values[mean.0] = f.mean;
                values[rstd.0] = f.rstd;
            }
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
                let b = layernorm::backward(
                    &values[x.0],
                    &values[gain.0],
                    &values[mean.0],
                    &values[rstd.0],
                    &values[dy.0],
                    last(x),
                );
                values[dx.0] = b.dx;
                add_into(&mut values[dgain.0], &b.dgain);
                if let Some(db) = dbias {
                    add_into(&mut values[db.0], &b.dbias);
                }
            }
            Op::RmsNorm {
                x,
                gain,
                out,
                rstd,
                eps,
            } => {
                let (y, r) = rmsnorm::forward(&values[x.0], &values[gain.0], last(x), eps);
                values[out.0] = y;
                values[rstd.0] = r;
            }
            Op::RmsNormBackward {
                x,
                gain,
                rstd,
                dy,
                dx,
                dgain,
            } => {
                let (d, dg) = rmsnorm::backward(
                    &values[x.0],
                    &values[gain.0],
                    &values[rstd.0],
                    &values[dy.0],
                    last(x),
                );
                values[dx.0] = d;
                add_into(&mut values[dgain.0], &dg);
            }
            Op::Linear {
                x,
                w,
                b,
                out,
                epilogue,
            } => {
                let (k, n) = (shape(w)[0], shape(w)[1]);
                let m = values[x.0].len() / k;
                let bias = b.map(|b| v(values, b));
                let (x, w, bias) = (&values[x.0], &values[w.0], bias.as_deref());
                match epilogue {
                    Epilogue::None => values[out.0] = matmul::forward(x, w, bias, m, k, n),
                    Epilogue::Gelu { pre } => {
                        (values[pre.0], values[out.0]) = matmul::forward_gelu(x, w, bias, m, k, n)
                    }
                    Epilogue::Residual { stream, p, site } => {
                        let r = &values[stream.0];
                        let dropout = (p > 0.0).then_some((state, site, p));
                        values[out.0] = matmul::forward_residual(x, w, bias, dropout, r, m, k, n)
                    }
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
            } => {
                let (k, n) = (shape(w)[0], shape(w)[1]);
                let m = values[x.0].len() / k;
                let (d, wv) = (&values[dy.0], &values[w.0]);
                values[dx.0] = match gelu_pre {
                    None => matmul::backward_input(d, wv, m, k, n),
                    Some(pre) => matmul::backward_input_gelu(d, wv, &values[pre.0], m, k, n),
                };
                let inc = matmul::backward_weight(&values[x.0], &values[dy.0], m, k, n);
                add_into(&mut values[dw.0], &inc);
                if let Some(db) = db {
                    let inc = matmul::backward_bias(&values[dy.0], m, n);
                    add_into(&mut values[db.0], &inc);
                }
            }
            Op::Head { x, w, out } => {
                let (vocab, c) = (shape(w)[0], shape(w)[1]);
                let m = values[x.0].len() / c;
                values[out.0] = matmul::backward_input(&values[x.0], &values[w.0], m, vocab, c);
            }
            Op::HeadBackward { x, w, dy, dx, dw } => {
                let (vocab, c) = (shape(w)[0], shape(w)[1]);
                let m = values[x.0].len() / c;
                values[dx.0] = matmul::forward(&values[dy.0], &values[w.0], None, m, vocab, c);
                let inc = matmul::backward_weight(&values[dy.0], &values[x.0], m, vocab, c);
                add_into(&mut values[dw.0], &inc);
            }
            Op::PlaceColumns { x, first, out } => {
                let (w, cols) = (last(x), last(out));
                let mut result = std::mem::take(&mut values[out.0]);
                result.resize(graph.def(out).len(), 0.0);
                copy::columns((&values[x.0], w, 0), (&mut result, cols, first), w);
                values[out.0] = result;
            }
            Op::TakeColumns { x, first, out } => {
                let (cols, w) = (last(x), last(out));
                let mut result = vec![0.0; graph.def(out).len()];
                copy::columns((&values[x.0], cols, first), (&mut result, w, 0), w);
                values[out.0] = result;
            }
            Op::Attention {
                shape: sh,
                p,
                site,
                qkv,
                out,
                lse,
            } => {
                let (o, l) =
                    attention::forward(&values[qkv.0], &sh, AttentionDropout { p, site }, state);
                values[out.0] = o;
                values[lse.0] = l;
            }
            Op::CachedAttention {
                shape: sh,
                qkv,
                k_cache,
                v_cache,
                out,
                ..
            } => {
                let pos = inputs.position as usize;
                let (mut keys, mut vals) = (v(values, k_cache), v(values, v_cache));
                kvcache::append(&values[qkv.0], &sh, pos, &mut keys, &mut vals);
                let (keys, vals) = (stored(graph, &keys), stored(graph, &vals));
                values[out.0] = kvcache::attention(&values[qkv.0], &sh, pos, &keys, &vals);
                values[k_cache.0] = keys;
                values[v_cache.0] = vals;
            }
            Op::FillCache {
                shape: sh,
                qkv,
                k_cache,
                v_cache,
            } => {
                let sequences = shape(k_cache)[0];
                let (mut keys, mut vals) = (v(values, k_cache), v(values, v_cache));
                kvcache::fill(&values[qkv.0], &sh, sequences, &mut keys, &mut vals);
                values[k_cache.0] = stored(graph, &keys);
                values[v_cache.0] = stored(graph, &vals);
            }
            Op::AttentionProbabilities {
                shape: sh,
                qkv,
                probs,
                ..
            } => values[probs.0] = attention::probability_matrix(&values[qkv.0], &sh),
            Op::AttentionBackward {
                shape: sh,
                p,
                site,
                qkv,
                dout,
                dqkv,
                ..
            } => {
                values[dqkv.0] = attention::backward(
                    &values[qkv.0],
                    &values[dout.0],
                    &sh,
                    AttentionDropout { p, site },
                    state,
                );
            }
            Op::Gelu { x, out } => values[out.0] = gelu::forward(&values[x.0]),
            Op::GeluBackward { x, dy, dx } => {
                values[dx.0] = gelu::backward(&values[x.0], &values[dy.0])
            }
            Op::Add { a, b, out } => values[out.0] = residual::forward(&values[a.0], &values[b.0]),
            Op::Dropout { p, site, x, out } => {
                values[out.0] = dropout::forward(&values[x.0], state, site, p)
            }
            Op::DropoutBackward { p, site, dy, dx } => {
                values[dx.0] = dropout::backward(&values[dy.0], state, site, p)
            }
            Op::CrossEntropy {
                logits,
                targets: t,
                losses,
                dlogits,
                mean_over,
            } => {
                let vocab = last(logits);
                let t = targets(graph, t, inputs);
                values[losses.0] = crossentropy::forward(&values[logits.0], t, vocab);
                if let Some(d) = dlogits {
                    values[d.0] = crossentropy::backward(&values[logits.0], t, vocab, mean_over);
                }
            }
            Op::Mean { x, out } => {
                *loss = crossentropy::mean(&values[x.0]);
                values[out.0] = vec![*loss];
            }
            Op::Copy { x, out } => values[out.0] = copy::forward(&values[x.0]),
            // The executor holds a packed tensor as the values its words hold.
            Op::Pack { x, out, dtype } => {
                cast::pack_rounding(&mut values[x.0], dtype);
                values[out.0] = values[x.0].clone();
            }
            Op::Unpack { x, out, .. } => values[out.0] = values[x.0].clone(),
            // The executor computes a 16-bit piece from its master values rounded (see `run`).
            Op::WorkingCopy => {}
            Op::GradNorm { max_norm } => {
                let all: Vec<f32> = grads(graph, values, model.params.len()).concat();
                *clip_scale = gradnorm::scale(gradnorm::norm(&all), max_norm) as f32;
            }
            Op::AdamW { config, clip } => {
                let grads = grads(graph, values, model.params.len());
                let scale = if clip { *clip_scale } else { 1.0 };
                for (i, g) in grads.iter().enumerate() {
                    let segment = Segment {
                        offset: 0,
                        len: g.len(),
                        decay: model.decays[i],
                    };
                    ref_adamw::step(
                        &config,
                        &mut model.params[i],
                        g,
                        &mut model.m[i],
                        &mut model.v[i],
                        &[segment],
                        &inputs.hyper,
                        scale,
                    );
                }
            }
        }
    }
}

/// The gradient-arena tensors' values in parameter order, each assembled from its pieces (zeros where
/// a piece has no gradient).
fn grads(graph: &Graph, values: &[Vec<f32>], count: usize) -> Vec<Vec<f32>> {
    let mut out: Vec<Vec<f32>> = vec![Vec::new(); count];
    for (i, piece) in graph.pieces.iter().enumerate() {
        let grad = graph
            .tensors
            .iter()
            .position(|t| t.storage == Storage::Grad(i))
            .map(|id| values[id].clone())
            .unwrap_or_else(|| vec![0.0; piece.len()]);
        out[piece.param].extend(grad);
    }
    out
}

/// Cache values as the graph's caches store them (rounded to a 16-bit cache dtype).
fn stored(graph: &Graph, cache: &[f32]) -> Vec<f32> {
    graph.cache_dtype.round(cache)
}

fn add_into(acc: &mut [f32], inc: &[f32]) {
    for (a, b) in acc.iter_mut().zip(inc) {
        *a += b;
    }
}
