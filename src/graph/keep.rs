//! Mixed-precision storage of what a training graph keeps: the tensors its forward writes and its
//! backward reads, alive across the whole step, stored in 16 bits in between.

use crate::dtype::Dtype;
use crate::graph::{Graph, Op, Storage, TensorId};

impl Graph {
    /// Keeps each of `candidates` (activations, no views of them) that ops before `backward` write
    /// and ops from `backward` on only read, in `dtype`: a [`Op::Pack`] after its last forward write
    /// (rounding it in place, so the forward's later readers see what the backward will), and a
    /// [`Op::Unpack`] into a fresh f32 tensor just before its first backward read, which the backward
    /// reads instead. The f32 tensor then dies after the forward's last read and the unpacked one
    /// lives only while the backward needs it. Nothing changes for f32.
    pub fn keep_in(&mut self, dtype: Dtype, backward: usize, candidates: &[TensorId]) {
        if dtype == Dtype::F32 {
            return;
        }
        let mut packs: Vec<Vec<Op>> = vec![Vec::new(); self.ops.len() + 1];
        let mut unpacks: Vec<Vec<Op>> = vec![Vec::new(); self.ops.len() + 1];
        for &t in candidates {
            let Some((written, readers)) = self.kept_span(t, backward) else {
                continue;
            };
            let def = self.def(t).clone();
            let words = self.activation(
                format!("{} ({})", def.name, dtype.name()),
                &[dtype.words(def.len())],
            );
            let back = self.activation(format!("{} (unpacked)", def.name), &def.shape);
            for &i in &readers {
                for id in self.ops[i].tensors_mut() {
                    if *id == t {
                        *id = back;
                    }
                }
            }
            packs[written + 1].push(Op::Pack {
                x: t,
                out: words,
                dtype,
            });
            unpacks[readers[0]].push(Op::Unpack {
                x: words,
                out: back,
                dtype,
            });
        }
        let ops = std::mem::take(&mut self.ops);
        for (i, op) in ops.into_iter().map(Some).chain([None]).enumerate() {
            self.ops.append(&mut packs[i]);
            self.ops.append(&mut unpacks[i]);
            self.ops.extend(op);
        }
    }

    /// The last op before `backward` that writes `t` and the ops from `backward` on that read it, when
    /// `t` is an activation kept that way: written in the forward only, read in the backward, with no
    /// view of it anywhere.
    fn kept_span(&self, t: TensorId, backward: usize) -> Option<(usize, Vec<usize>)> {
        let viewed = self
            .tensors
            .iter()
            .any(|d| matches!(d.storage, Storage::View { base, .. } if base == t));
        if viewed || self.def(t).storage != Storage::Activation {
            return None;
        }
        let (forward, later) = self.ops.split_at(backward);
        let written = forward.iter().rposition(|op| op.uses().1.contains(&t))?;
        if later.iter().any(|op| op.uses().1.contains(&t)) {
            return None;
        }
        let readers: Vec<usize> = (later.iter().enumerate())
            .filter(|(_, op)| op.uses().0.contains(&t))
            .map(|(i, _)| backward + i)
            .collect();
        (!readers.is_empty()).then_some((written, readers))
    }
}
