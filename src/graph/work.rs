//! What each op does per step, for profiles: its kernel family and its work, in floating-point
//! operations (the products and attention, compute-bound) or in bytes read and written (everything
//! else, memory-bound), so a profile can print GFLOP/s or GB/s beside each family's time.

use crate::dtype::Dtype;
use crate::graph::{Epilogue, Graph, Op, TensorId};

/// An op's work per step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Work {
    Flops(f64),
    Bytes(f64),
    /// Depends on state the plan does not know (a decode step's cache length).
    Unknown,
}

impl Work {
    /// The sum of two works of one kind (a profile row adds its ops).
    pub fn plus(self, other: Work) -> Work {
        match (self, other) {
            (Work::Flops(a), Work::Flops(b)) => Work::Flops(a + b),
            (Work::Bytes(a), Work::Bytes(b)) => Work::Bytes(a + b),
            _ => Work::Unknown,
        }
    }
}

impl Op {
    /// The kernel family that runs the op, as a profile names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Embedding { .. } => "embedding",
            Op::EmbeddingBackward { .. } => "embedding backward",
            Op::LayerNorm { .. } => "layernorm",
            Op::LayerNormBackward { .. } => "layernorm backward",
            Op::RmsNorm { .. } => "rmsnorm",
            Op::RmsNormBackward { .. } => "rmsnorm backward",
            Op::Linear {
                epilogue: Epilogue::Gelu { .. },
                ..
            } => "matmul forward + gelu",
            Op::Linear {
                epilogue: Epilogue::Residual { .. },
                ..
            } => "matmul forward + residual",
            Op::Linear { .. } | Op::Head { .. } => "matmul forward",
            Op::LinearBackward {
                gelu_pre: Some(_), ..
            } => "matmul backward + gelu",
            Op::LinearBackward { .. } | Op::HeadBackward { .. } => "matmul backward",
            Op::Attention { .. } => "attention",
            Op::AttentionBackward { .. } => "attention backward",
            Op::CachedAttention { .. } => "kv-cache attention",
            Op::FillCache { .. } => "kv-cache fill",
            Op::AttentionProbabilities { .. } => "attention probabilities",
            Op::Gelu { .. } => "gelu",
            Op::GeluBackward { .. } => "gelu backward",
            Op::Add { .. } => "residual add",
            Op::Dropout { .. } => "dropout",
            Op::DropoutBackward { .. } => "dropout backward",
            Op::CrossEntropy { .. } | Op::Mean { .. } => "cross-entropy",
            Op::PlaceColumns { .. } | Op::TakeColumns { .. } | Op::Copy { .. } => "copy",
            Op::Pack { .. } => "pack 16-bit",
            Op::Unpack { .. } => "unpack 16-bit",
            Op::WorkingCopy => "16-bit weights",
            Op::GradNorm { .. } => "gradient norm",
            Op::AdamW { .. } => "adamw",
        }
    }

    /// The op's work per step in `graph` (`params`: elements of the parameter arena, which the
    /// optimizer ops sweep).
    pub fn work(&self, graph: &Graph, params: usize) -> Work {
        let len = |id: TensorId| graph.def(id).len() as f64;
        let last = |id: TensorId| *graph.shape(id).last().unwrap_or(&1) as f64;
        // 4-byte elements read or written once each.
        let bytes = |ids: &[TensorId]| Work::Bytes(4.0 * ids.iter().map(|&i| len(i)).sum::<f64>());
        match *self {
            // y[M, N] = x[M, K]·w[K, N]: 2·M·K·N.
            Op::Linear { x, w, .. } => Work::Flops(2.0 * len(x) * last(w)),
            // dx and dw: twice the forward.
            Op::LinearBackward { x, w, .. } => Work::Flops(4.0 * len(x) * last(w)),
            // out[M, V] = x[M, C]·wᵀ (w: [V, C]).
            Op::Head { x, w, .. } => Work::Flops(2.0 * len(x) * graph.shape(w)[0] as f64),
            Op::HeadBackward { x, w, .. } => Work::Flops(4.0 * len(x) * graph.shape(w)[0] as f64),
            // Causal: half of the T×T scores; QKᵀ and PV forward, four products backward.
            Op::Attention { shape: s, .. } | Op::AttentionProbabilities { shape: s, .. } => {
                Work::Flops(attention_flops(s.batch, s.heads, s.seq, s.head_dim))
            }
            Op::AttentionBackward { shape: s, .. } => {
                Work::Flops(2.0 * attention_flops(s.batch, s.heads, s.seq, s.head_dim))
            }
            Op::CachedAttention { .. } => Work::Unknown,
            // Each written cache row read once and written once, keys and values.
            Op::FillCache {
                shape: s, k_cache, ..
            } => {
                let rows = (graph.shape(k_cache)[0] * s.seq) as f64;
                Work::Bytes(16.0 * rows * last(k_cache))
            }
            Op::Embedding { out, .. } => Work::Bytes(8.0 * len(out)),
            Op::EmbeddingBackward { dout, .. } => Work::Bytes(8.0 * len(dout)),
            Op::LayerNorm { x, out, .. } | Op::RmsNorm { x, out, .. } => bytes(&[x, out]),
            Op::LayerNormBackward { x, dy, dx, .. } | Op::RmsNormBackward { x, dy, dx, .. } => {
                bytes(&[x, dy, dx])
            }
            Op::Gelu { x, out } => bytes(&[x, out]),
            Op::GeluBackward { x, dy, dx } => bytes(&[x, dy, dx]),
            Op::Add { a, b, out } => bytes(&[a, b, out]),
            Op::Dropout { x, out, .. } => bytes(&[x, out]),
            Op::DropoutBackward { dy, dx, .. } => bytes(&[dy, dx]),
            Op::CrossEntropy {
                logits, dlogits, ..
            } => bytes(&[&[logits], dlogits.as_slice()].concat()),
            Op::Mean { x, .. } => bytes(&[x]),
            Op::PlaceColumns { x, .. } | Op::Copy { x, .. } => Work::Bytes(8.0 * len(x)),
            Op::TakeColumns { out, .. } => Work::Bytes(8.0 * len(out)),
            // x read and written back rounded, half its bytes written packed; and back.
            Op::Pack { x, .. } => Work::Bytes(10.0 * len(x)),
            Op::Unpack { out, .. } => Work::Bytes(6.0 * len(out)),
            // Each 16-bit piece read in f32, written in 16 bits.
            Op::WorkingCopy => {
                let half = graph.pieces.iter().filter(|p| p.dtype != Dtype::F32);
                Work::Bytes(6.0 * half.map(|p| p.len() as f64).sum::<f64>())
            }
            Op::GradNorm { .. } => Work::Bytes(4.0 * params as f64),
            // Reads parameters, gradients and both moments; writes parameters and moments.
            Op::AdamW { .. } => Work::Bytes(28.0 * params as f64),
        }
    }
}

/// Floating-point operations of causal attention's forward: `QKᵀ` and `PV`, `2·T·T·D` each, over half
/// the `T×T` scores.
fn attention_flops(batch: usize, heads: usize, seq: usize, head_dim: usize) -> f64 {
    2.0 * (batch * heads) as f64 * (seq * seq) as f64 * head_dim as f64
}
