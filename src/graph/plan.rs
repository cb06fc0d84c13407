//! A compiled graph: every tensor placed, every dispatch built once. A step uploads the batch, records one
//! command encoder (clear the gradients, one compute pass with every dispatch), submits once, and reads
//! the loss back only when asked.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuTimer, Tensor};
use crate::graph::autodiff::{BUCKETS, POSITIONS};
use crate::graph::ops::{Arenas, Lowering};
use crate::graph::planner::{peak_live_len, Lifetime, SlotLayout};
use crate::graph::{Graph, Storage};
use crate::kernels::{crossentropy, embedding, matmul};

/// Names of the per-step inputs a model graph declares.
pub const TOKENS: &str = "tokens";
pub const TARGETS: &str = "targets";

/// The state every plan of a model shares: parameters and optimizer arenas, and the small per-step
/// tensors the trainer writes before each submit.
pub struct Shared {
    pub arenas: Arenas,
    /// Views of the parameter and gradient arenas, one per parameter.
    pub params: Vec<Tensor>,
    pub grads: Vec<Tensor>,
    /// `[seed, step]` (u32) for dropout masks.
    pub random_state: Tensor,
    /// AdamW's per-step hyperparameters.
    pub hyper: Tensor,
    /// Gradient norm and clip scale.
    pub norm: Tensor,
}

/// Bytes a plan places, per class, beside the least any placement needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryReport {
    pub params: u64,
    pub grads: u64,
    pub moments: u64,
    pub activations: u64,
    /// Per-step inputs and small state.
    pub scratch: u64,
    /// Activations alive at once at the worst op: the analytical minimum for them.
    pub activations_min: u64,
}

impl MemoryReport {
    pub fn total(&self) -> u64 {
        self.params + self.grads + self.moments + self.activations + self.scratch
    }

    pub fn minimum(&self) -> u64 {
        self.params + self.grads + self.moments + self.activations_min + self.scratch
    }
}

/// The batch a step trains or evaluates on, row-major `[B, T]`.
pub struct StepInputs<'a> {
    pub tokens: &'a [u32],
    pub targets: &'a [u32],
}

pub struct Plan {
    dispatches: Vec<Dispatch>,
    tensors: Vec<Tensor>,
    inputs: HashMap<String, Tensor>,
    loss: Option<Tensor>,
    loss_staging: wgpu::Buffer,
    /// The gradient arena when this plan trains (cleared at the start of each step).
    grads: Option<Tensor>,
    vocab: usize,
    memory: MemoryReport,
}

impl Plan {
    /// Places the graph's tensors and builds every dispatch. `keep` are tensors read after a step, the
    /// first of them the loss a step may read back.
    pub fn compile(
        gpu: &Gpu,
        graph: &Graph,
        shared: &Shared,
        keep: &[crate::graph::TensorId],
        vocab: usize,
    ) -> Result<Self> {
        let mut lifetimes = lifetimes(graph);
        // Tensors read after the step (the loss, logits) stay alive to its end.
        let end = graph.ops.len();
        for id in keep {
            lifetimes[id.0].last = end;
        }
        let activation_ids: Vec<usize> = (0..graph.tensors.len())
            .filter(|&i| graph.tensors[i].storage == Storage::Activation)
            .collect();
        let activation_lives: Vec<Lifetime> =
            activation_ids.iter().map(|&i| lifetimes[i]).collect();
        let slots = SlotLayout::assign(&activation_lives);
        let buffers: Vec<Tensor> = slots
            .sizes
            .iter()
            .enumerate()
            .map(|(s, &len)| gpu.zeros(&format!("activation slot {s}"), &[len]))
            .collect::<Result<_>>()?;
        let mut slot_of = HashMap::new();
        for (k, &i) in activation_ids.iter().enumerate() {
            slot_of.insert(i, slots.slot[k]);
        }

        let mut inputs = HashMap::new();
        let mut scratch = 0u64;
        let tensors: Vec<Tensor> = graph
            .tensors
            .iter()
            .enumerate()
            .map(|(i, def)| match def.storage {
                Storage::Param(p) => reshape(&shared.params[p], &def.shape),
                Storage::Grad(p) => reshape(&shared.grads[p], &def.shape),
                Storage::Activation => buffers[slot_of[&i]].view(0, &def.shape),
                Storage::Input => {
                    let t = gpu.zeros(&def.name, &def.shape)?;
                    scratch += t.bytes();
                    inputs.insert(def.name.clone(), t.clone());
                    Ok(t)
                }
            })
            .collect::<Result<_>>()?;

        let cx = Lowering {
            gpu,
            tensors: &tensors,
            random_state: &shared.random_state,
            hyper: &shared.hyper,
            norm: &shared.norm,
            arenas: &shared.arenas,
            matmul: matmul::Variant::best(gpu),
        };
        let mut dispatches = Vec::new();
        for op in &graph.ops {
            dispatches.extend(op.lower(&cx)?);
        }
        let trains = graph
            .tensors
            .iter()
            .any(|t| matches!(t.storage, Storage::Grad(_)));
        let arena_bytes = shared.arenas.params.bytes();
        let memory = MemoryReport {
            params: arena_bytes,
            grads: if trains { arena_bytes } else { 0 },
            moments: if trains { 2 * arena_bytes } else { 0 },
            activations: 4 * slots.total_len() as u64,
            scratch: scratch
                + shared.random_state.bytes()
                + shared.hyper.bytes()
                + shared.norm.bytes(),
            activations_min: 4 * peak_live_len(&activation_lives) as u64,
        };
        let loss_staging = gpu.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("loss readback"),
            size: 4,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(Plan {
            dispatches,
            loss: keep.first().map(|id| tensors[id.0].clone()),
            tensors,
            inputs,
            loss_staging,
            grads: trains.then(|| shared.arenas.grads.clone()),
            vocab,
            memory,
        })
    }

    pub fn memory(&self) -> MemoryReport {
        self.memory
    }

    /// Dispatches per step.
    pub fn dispatch_count(&self) -> usize {
        self.dispatches.len()
    }

    /// GPU time of each kernel of a step, summed per kernel entry point and sorted by time: each
    /// dispatch is timed alone (so the total exceeds a step's, which overlaps nothing but pays no
    /// per-submit cost). Runs the step's dispatches once more; for profiling, not for training.
    pub fn profile(&self, gpu: &Gpu) -> Result<Vec<(String, std::time::Duration, usize)>> {
        let timer = GpuTimer::new(gpu);
        let mut totals: Vec<(String, std::time::Duration, usize)> = Vec::new();
        for d in &self.dispatches {
            let time = timer.time(gpu, std::slice::from_ref(d), 1)?;
            match totals.iter_mut().find(|t| t.0 == d.label) {
                Some(t) => {
                    t.1 += time;
                    t.2 += 1;
                }
                None => totals.push((d.label.clone(), time, 1)),
            }
        }
        totals.sort_by_key(|b| std::cmp::Reverse(b.1));
        Ok(totals)
    }

    /// The placed tensor of graph tensor `id` (for reading activations back, outside the hot path).
    pub fn tensor(&self, id: crate::graph::TensorId) -> &Tensor {
        &self.tensors[id.0]
    }

    /// Uploads a batch: tokens and targets (checked against the vocabulary first) and, for a training
    /// plan, the embedding backward's token buckets.
    pub fn set_batch(&self, gpu: &Gpu, batch: &StepInputs) -> Result<()> {
        crossentropy::check_targets(batch.targets, self.vocab)?;
        crossentropy::check_targets(batch.tokens, self.vocab)?;
        gpu.write(self.input(TOKENS)?, batch.tokens)?;
        if let Some(targets) = self.inputs.get(TARGETS) {
            gpu.write(targets, batch.targets)?;
        }
        if let (Some(positions), Some(buckets)) =
            (self.inputs.get(POSITIONS), self.inputs.get(BUCKETS))
        {
            let grouped = embedding::TokenBuckets::new(batch.tokens, self.vocab)?;
            gpu.write(positions, &grouped.positions)?;
            gpu.write(buckets, &grouped.buckets)?;
        }
        Ok(())
    }

    fn input(&self, name: &str) -> Result<&Tensor> {
        self.inputs
            .get(name)
            .ok_or_else(|| Error::Invalid(format!("the plan has no input {name}")))
    }

    /// Runs one step (one submit) and returns the loss when `read_loss`.
    pub fn run(&self, gpu: &Gpu, read_loss: bool) -> Result<Option<f32>> {
        let mut encoder = gpu
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("step"),
            });
        if let Some(grads) = &self.grads {
            encoder.clear_buffer(&grads.buffer, grads.offset, Some(grads.bytes()));
        }
        Dispatch::record_all(&mut encoder, &self.dispatches);
        let loss = self.loss.as_ref().filter(|_| read_loss);
        if let Some(loss) = loss {
            encoder.copy_buffer_to_buffer(&loss.buffer, loss.offset, &self.loss_staging, 0, 4);
        }
        gpu.queue().submit([encoder.finish()]);
        if loss.is_none() {
            return Ok(None);
        }
        let (sender, receiver) = std::sync::mpsc::channel();
        self.loss_staging
            .map_async(wgpu::MapMode::Read, .., move |r| {
                let _ = sender.send(r);
            });
        gpu.wait()?;
        receiver
            .recv()
            .map_err(|e| Error::gpu("reading the loss", e))?
            .map_err(|e| Error::gpu("reading the loss", e))?;
        let value = {
            let view = self
                .loss_staging
                .get_mapped_range(..)
                .map_err(|e| Error::gpu("reading the loss", e))?;
            f32::from_le_bytes([view[0], view[1], view[2], view[3]])
        };
        self.loss_staging.unmap();
        Ok(Some(value))
    }
}

/// The same bytes with the graph's shape (a parameter view is created flat).
fn reshape(t: &Tensor, shape: &[usize]) -> Result<Tensor> {
    t.view(0, shape)
}

/// First and last op touching each tensor (tensors no op touches get an empty life at 0).
fn lifetimes(graph: &Graph) -> Vec<Lifetime> {
    let mut lives: Vec<Option<(usize, usize)>> = vec![None; graph.tensors.len()];
    for (i, op) in graph.ops.iter().enumerate() {
        let (reads, writes) = op.uses();
        for id in reads.into_iter().chain(writes) {
            let life = lives[id.0].get_or_insert((i, i));
            life.1 = i;
        }
    }
    lives
        .iter()
        .zip(&graph.tensors)
        .map(|(life, def)| {
            let (first, last) = life.unwrap_or((0, 0));
            Lifetime {
                len: def.len(),
                first,
                last,
            }
        })
        .collect()
}
