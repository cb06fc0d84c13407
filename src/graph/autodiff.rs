//! Reverse-mode differentiation of a graph: walk the forward ops backwards, each op supplying its own
//! backward op. Activation gradients are written into fresh tensors, never updated in place, so one
//! gradient may serve several tensors (the two inputs of a residual add) without copies; where two
//! paths meet, an `Add` sums them into a new tensor. Parameter gradients are views of the gradient arena
//! that backward ops add into (the tied embedding receives two contributions that way). A tensor read
//! through row-chunk views gets its gradient assembled from theirs by copies.

use std::collections::HashMap;
use std::ops::Range;

use crate::graph::{Epilogue, Graph, Op, Storage, TensorId};

/// The batch inputs the embedding's backward needs, named for the plan's uploads.
pub const POSITIONS: &str = "positions";
pub const BUCKETS: &str = "buckets";

/// The gradient tensor of each tensor found so far in a backward walk.
#[derive(Debug, Default)]
pub struct Gradients(HashMap<TensorId, TensorId>);

impl Gradients {
    /// Gives `to` the gradient found for `from` (`to` a recomputed copy of `from`).
    pub fn share(&mut self, to: TensorId, from: TensorId) {
        if let Some(&g) = self.0.get(&from) {
            self.0.insert(to, g);
        }
    }
}

impl Graph {
    /// Appends the backward of the forward ops `range`, walked in reverse, starting from the
    /// cross-entropy's `dlogits` and the gradients `grads` already holds (and adding what it finds).
    /// Several calls split a backward: the head and loss of a row chunk right after its forward, so its
    /// logits and their gradient live briefly, then the rest.
    pub fn backward_ops(&mut self, range: Range<usize>, grads: &mut Gradients) {
        let forward = self.ops[range].to_vec();
        self.backward_of(&forward, grads);
    }

    /// [`Graph::backward_ops`] of the forward ops `forward`, which need not be the graph's own (a copy
    /// of some reading a recomputed tensor instead).
    pub fn backward_of(&mut self, forward: &[Op], grads: &mut Gradients) {
        for op in forward.iter().rev() {
            for out in op.uses().1 {
                self.assemble_views(&mut grads.0, out);
            }
            self.backward_op(op, &mut grads.0);
        }
    }

    /// When `base` has no gradient yet but views of it do (row chunks that together cover it), gives
    /// it one: each view's gradient copied into its rows.
    fn assemble_views(&mut self, grads: &mut HashMap<TensorId, TensorId>, base: TensorId) {
        if grads.contains_key(&base) {
            return;
        }
        let parts: Vec<(TensorId, usize, TensorId)> = (self.tensors.iter().enumerate())
            .filter_map(|(i, t)| match t.storage {
                Storage::View { base: b, offset } if b == base => {
                    grads.get(&TensorId(i)).map(|&g| (TensorId(i), offset, g))
                }
                _ => None,
            })
            .collect();
        if parts.is_empty() {
            return;
        }
        let whole = self.grad_tensor(base);
        for (view, offset, g) in parts {
            let shape = self.shape(view).to_vec();
            let out = self.view(whole, offset, &shape);
            self.push(Op::Copy { x: g, out });
        }
        grads.insert(base, whole);
    }

    /// Appends `op`'s backward, given the gradients found so far. (One arm per op: a long match whose
    /// arms each read alone; every op is listed, so a new one cannot silently get no backward.)
    fn backward_op(&mut self, op: &Op, grads: &mut HashMap<TensorId, TensorId>) {
        let grad_out = |out: &TensorId| grads.get(out).copied();
        match *op {
            Op::CrossEntropy {
                logits,
                dlogits: Some(d),
                ..
            } => {
                grads.insert(logits, d);
            }
            Op::CrossEntropy { dlogits: None, .. } => {}
            Op::Head { x, w, out } => {
                let Some(dy) = grad_out(&out) else { return };
                let dx = self.grad_tensor(x);
                let dw = self.param_grad(w);
                self.push(Op::HeadBackward { x, w, dy, dx, dw });
                self.contribute(grads, x, dx);
            }
            Op::LayerNorm {
                x,
                gain,
                bias,
                out,
                mean,
                rstd,
                ..
            } => {
                let Some(dy) = grad_out(&out) else { return };
                let dx = self.grad_tensor(x);
                let dgain = self.param_grad(gain);
                let dbias = bias.map(|b| self.param_grad(b));
                self.push(Op::LayerNormBackward {
                    x,
                    gain,
                    mean,
                    rstd,
                    dy,
                    dx,
                    dgain,
                    dbias,
                });
                self.contribute(grads, x, dx);
            }
            Op::RmsNorm {
                x, gain, out, rstd, ..
            } => {
                let Some(dy) = grad_out(&out) else { return };
                let dx = self.grad_tensor(x);
                let dgain = self.param_grad(gain);
                self.push(Op::RmsNormBackward {
                    x,
                    gain,
                    rstd,
                    dy,
                    dx,
                    dgain,
                });
                self.contribute(grads, x, dx);
            }
            Op::Linear {
                x,
                w,
                b,
                out,
                epilogue,
            } => {
                let Some(mut dy) = grad_out(&out) else { return };
                match epilogue {
                    Epilogue::None => {}
                    // The ops an `Add { a: stream, b: dropout(branch) }` would give, in its order.
                    Epilogue::Residual { stream, p, site } => {
                        self.contribute(grads, stream, dy);
                        if p > 0.0 {
                            let dx = self.grad_tensor(out);
                            self.push(Op::DropoutBackward { p, site, dy, dx });
                            dy = dx;
                        }
                    }
                    // `pre` is read by nothing else: its gradient is the product's output gradient.
                    Epilogue::Gelu { pre } => dy = self.gelu_backward(pre, dy),
                }
                let dx = self.grad_tensor(x);
                let dw = self.param_grad(w);
                let db = b.map(|b| self.param_grad(b));
                self.push(Op::LinearBackward {
                    x,
                    w,
                    dy,
                    dx,
                    dw,
                    db,
                    gelu_pre: None,
                });
                self.contribute(grads, x, dx);
            }
            Op::Attention {
                shape,
                p,
                site,
                qkv,
                out,
                lse,
            } => {
                let Some(dout) = grad_out(&out) else { return };
                let delta = self.activation("attention delta", self.shape(lse).to_vec().as_slice());
                let dqkv = self.grad_tensor(qkv);
                self.push(Op::AttentionBackward {
                    shape,
                    p,
                    site,
                    qkv,
                    out,
                    lse,
                    dout,
                    delta,
                    dqkv,
                });
                self.contribute(grads, qkv, dqkv);
            }
            // An op-for-op graph keeps gelu' an op of its own: only a fused forward folds it
            // ([`Graph::gelu_backward`]), so a graph without epilogues has none in its backward either.
            Op::Gelu { x, out } => {
                let Some(dy) = grad_out(&out) else { return };
                let dx = self.unfused_gelu_backward(x, dy);
                self.contribute(grads, x, dx);
            }
            Op::Add { a, b, out } => {
                let Some(g) = grad_out(&out) else { return };
                self.contribute(grads, a, g);
                self.contribute(grads, b, g);
            }
            Op::Dropout { p, site, x, out } => {
                let Some(dy) = grad_out(&out) else { return };
                let dx = self.grad_tensor(x);
                self.push(Op::DropoutBackward { p, site, dy, dx });
                self.contribute(grads, x, dx);
            }
            Op::PlaceColumns { x, first, out } => {
                let Some(dout) = grad_out(&out) else { return };
                let dx = self.grad_tensor(x);
                self.push(Op::TakeColumns {
                    x: dout,
                    first,
                    out: dx,
                });
                self.contribute(grads, x, dx);
            }
            Op::Embedding {
                tokens,
                wte,
                first,
                wpe,
                out,
                ..
            } => {
                let Some(dout) = grad_out(&out) else { return };
                let rows = self.def(tokens).len();
                // Every piece's backward reads the same batch inputs.
                let positions = self.input(POSITIONS, &[rows]);
                let buckets = self.input(BUCKETS, &[rows, 3]);
                let dwte = self.param_grad(wte);
                let dwpe = self.param_grad(wpe);
                self.push(Op::EmbeddingBackward {
                    dout,
                    positions,
                    buckets,
                    dwte,
                    first,
                    dwpe,
                });
            }
            // The loss's gradient comes from the cross-entropy's `dlogits`, already divided by the
            // rows the mean is over.
            Op::Mean { .. } => {}
            // Storage: mixed precision packs what the backward keeps after differentiating
            // ([`Graph::keep_in`]).
            Op::Pack { .. } => {}
            // Prefill, decoding and inspection graphs are never differentiated.
            Op::CachedAttention { .. }
            | Op::FillCache { .. }
            | Op::AttentionProbabilities { .. } => {}
            // Ops of the backward itself and the optimizer.
            Op::EmbeddingBackward { .. }
            | Op::LayerNormBackward { .. }
            | Op::RmsNormBackward { .. }
            | Op::LinearBackward { .. }
            | Op::HeadBackward { .. }
            | Op::AttentionBackward { .. }
            | Op::GeluBackward { .. }
            | Op::DropoutBackward { .. }
            | Op::TakeColumns { .. }
            | Op::Copy { .. }
            | Op::Unpack { .. }
            | Op::WorkingCopy
            | Op::GradNorm { .. }
            | Op::AdamW { .. } => {}
        }
    }

    /// The gradient of `pre` from `dy`, the gradient of `gelu(pre)`. When the last op is the
    /// input-gradient product that wrote `dy` (so `dy` is read by nothing yet, and summed with nothing:
    /// a sum would be the last op), that product applies gelu' itself and `dy` becomes the gradient of
    /// `pre`: a dispatch and a pass fewer, the same bits. Else a [`Op::GeluBackward`].
    fn gelu_backward(&mut self, pre: TensorId, dy: TensorId) -> TensorId {
        let folded = match self.ops.last_mut() {
            Some(Op::LinearBackward {
                dx,
                gelu_pre: gelu_pre @ None,
                ..
            }) if *dx == dy => {
                *gelu_pre = Some(pre);
                true
            }
            _ => false,
        };
        if folded {
            self.tensors[dy.0].name = format!("d {}", self.def(pre).name);
            return dy;
        }
        self.unfused_gelu_backward(pre, dy)
    }

    /// The gradient of `pre` from `dy` by a [`Op::GeluBackward`] of its own.
    fn unfused_gelu_backward(&mut self, pre: TensorId, dy: TensorId) -> TensorId {
        let dx = self.grad_tensor(pre);
        self.push(Op::GeluBackward { x: pre, dy, dx });
        dx
    }

    /// The input tensor `name` (made on first use).
    fn input(&mut self, name: &str, shape: &[usize]) -> TensorId {
        match self.tensors.iter().position(|t| t.name == name) {
            Some(found) => TensorId(found),
            None => self.tensor(name, shape, Storage::Input),
        }
    }

    /// A new activation to hold the gradient of `x`.
    fn grad_tensor(&mut self, x: TensorId) -> TensorId {
        let def = self.def(x).clone();
        self.activation(format!("d {}", def.name), &def.shape)
    }

    /// The gradient-arena tensor of parameter tensor `p` (made on first use).
    fn param_grad(&mut self, p: TensorId) -> TensorId {
        let Storage::Param(i) = self.def(p).storage else {
            panic!("{} is not a parameter", self.def(p).name)
        };
        if let Some(found) = self
            .tensors
            .iter()
            .position(|t| t.storage == Storage::Grad(i))
        {
            return TensorId(found);
        }
        let def = self.def(p).clone();
        self.tensor(format!("d {}", def.name), &def.shape, Storage::Grad(i))
    }

    /// Records `g` as (part of) the gradient of `x`, summing with what is already there.
    fn contribute(&mut self, grads: &mut HashMap<TensorId, TensorId>, x: TensorId, g: TensorId) {
        let total = match grads.get(&x) {
            None => g,
            Some(&before) => {
                let sum = self.grad_tensor(x);
                self.push(Op::Add {
                    a: before,
                    b: g,
                    out: sum,
                });
                sum
            }
        };
        grads.insert(x, total);
    }
}
