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
/// A decode step's position (u32 `[1]`), written before each step.
pub const POSITION: &str = "position";

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
    /// Tensors kept from step to step (a decode plan's key/value caches).
    pub caches: u64,
    /// Activations alive at once at the worst op: the analytical minimum for them.
    pub activations_min: u64,
}

impl MemoryReport {
    pub fn total(&self) -> u64 {
        self.params + self.grads + self.moments + self.activations + self.scratch + self.caches
    }

    pub fn minimum(&self) -> u64 {
        self.params + self.grads + self.moments + self.activations_min + self.scratch + self.caches
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
    /// The first kept tensor (the loss, or a decode step's logits) and the buffer it is read back
    /// through.
    readback: Option<(Tensor, wgpu::Buffer)>,
    /// The tensors kept (captured) for reading after a step; every other activation's buffer is reused.
    kept: Vec<crate::graph::TensorId>,
    /// The gradient arena's chunks when this plan trains (cleared at the start of each step).
    grads: Vec<Tensor>,
    vocab: usize,
    memory: MemoryReport,
}

impl Plan {
    /// Places the graph's tensors and builds every dispatch. `keep` are tensors read after a step, the
    /// first of them the one a step may read back (the loss; a decode step's logits): the capture
    /// option. A kept tensor lives to the end of the step instead of giving its buffer to a later one;
    /// that is all it costs, so a plan captures only what it is asked to.
    pub fn compile(
        gpu: &Gpu,
        graph: &Graph,
        shared: &Shared,
        keep: &[crate::graph::TensorId],
        vocab: usize,
    ) -> Result<Self> {
        let placement = Placement::new(graph, keep);
        let slots = &placement.slots;
        let buffers: Vec<Tensor> = slots
            .sizes
            .iter()
            .enumerate()
            .map(|(s, &len)| gpu.zeros(&format!("activation slot {s}"), &[len]))
            .collect::<Result<_>>()?;
        let mut slot_of = HashMap::new();
        for (k, &i) in placement.activations.iter().enumerate() {
            slot_of.insert(i, slots.slot[k]);
        }

        let mut inputs = HashMap::new();
        let mut scratch = 0u64;
        let mut caches = 0u64;
        // In order: a view's base comes before it.
        let mut tensors: Vec<Tensor> = Vec::with_capacity(graph.tensors.len());
        for (i, def) in graph.tensors.iter().enumerate() {
            let t = match def.storage {
                Storage::Param(p) => reshape(&shared.params[p], &def.shape)?,
                Storage::Grad(p) => reshape(&shared.grads[p], &def.shape)?,
                Storage::Activation => buffers[slot_of[&i]].view(0, &def.shape)?,
                Storage::View { base, offset } => tensors[base.0].view(offset, &def.shape)?,
                Storage::Input => {
                    let t = gpu.zeros(&def.name, &def.shape)?;
                    scratch += t.bytes();
                    inputs.insert(def.name.clone(), t.clone());
                    t
                }
                Storage::Cache => {
                    let t = gpu.zeros(&def.name, &def.shape)?;
                    caches += t.bytes();
                    t
                }
            };
            tensors.push(t);
        }

        let cx = Lowering {
            gpu,
            tensors: &tensors,
            random_state: &shared.random_state,
            hyper: &shared.hyper,
            norm: &shared.norm,
            arenas: &shared.arenas,
            matmul: matmul::Variant::best(gpu),
        };
        // The distinct pipelines compile on worker threads while the ops lower.
        let dispatches = gpu.build_parallel(|| -> Result<Vec<Dispatch>> {
            let mut dispatches = Vec::new();
            for op in &graph.ops {
                dispatches.extend(op.lower(&cx)?);
            }
            Ok(dispatches)
        })?;
        for d in &dispatches {
            d.ready()?;
        }
        let trains = graph
            .tensors
            .iter()
            .any(|t| matches!(t.storage, Storage::Grad(_)));
        let state = shared.random_state.bytes() + shared.hyper.bytes() + shared.norm.bytes();
        let memory = MemoryReport {
            caches,
            ..placement.report(graph, shared.arenas.bytes(), scratch + state)
        };
        let readback = keep.first().map(|id| {
            let t = tensors[id.0].clone();
            let staging = gpu.buffer(
                &format!("{} readback", graph.def(*id).name),
                t.bytes(),
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            );
            (t, staging)
        });
        Ok(Plan {
            dispatches,
            readback,
            tensors,
            inputs,
            kept: keep.to_vec(),
            grads: if trains {
                shared
                    .arenas
                    .chunks
                    .iter()
                    .map(|c| c.grads.clone())
                    .collect()
            } else {
                Vec::new()
            },
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
        totals.sort_by_key(|t| std::cmp::Reverse(t.1));
        Ok(totals)
    }

    /// Reads back kept tensor `id` as of the last step (outside the hot path: it waits for the GPU).
    /// An error for a tensor the plan did not keep, whose buffer later ops reuse.
    pub fn read_kept(&self, gpu: &Gpu, id: crate::graph::TensorId) -> Result<Vec<f32>> {
        if !self.kept.contains(&id) {
            return Err(Error::Invalid(format!(
                "tensor {} was not kept by this plan (pass it in `keep` to capture it)",
                id.0
            )));
        }
        gpu.read(&self.tensors[id.0])
    }

    /// Uploads a batch: tokens and targets (checked against the vocabulary first) and, for a training
    /// plan, the embedding backward's token buckets.
    pub fn set_batch(&self, gpu: &Gpu, batch: &StepInputs) -> Result<()> {
        crossentropy::check_targets(batch.targets, self.vocab)?;
        crossentropy::check_token_ids("input", batch.tokens, self.vocab)?;
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

    /// Overwrites the per-step input `name` (e.g. a decode step's position), before [`Plan::run`].
    pub fn write_input(&self, gpu: &Gpu, name: &str, data: &[u32]) -> Result<()> {
        gpu.write(self.input(name)?, data)
    }

    fn input(&self, name: &str) -> Result<&Tensor> {
        self.inputs
            .get(name)
            .ok_or_else(|| Error::Invalid(format!("the plan has no input {name}")))
    }

    /// Runs one step (one submit) and returns the loss when `read_loss`.
    pub fn run(&self, gpu: &Gpu, read_loss: bool) -> Result<Option<f32>> {
        Ok(self.step(gpu, read_loss)?.map(|values| values[0]))
    }

    /// Runs one step (one submit) and reads back the whole first kept tensor (a decode step's logits)
    /// in the same submit.
    pub fn run_and_read(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        self.step(gpu, true)?
            .ok_or_else(|| Error::Invalid("the plan keeps no tensor to read back".into()))
    }

    fn step(&self, gpu: &Gpu, read: bool) -> Result<Option<Vec<f32>>> {
        let mut encoder = gpu
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("step"),
            });
        for grads in &self.grads {
            encoder.clear_buffer(&grads.buffer, grads.offset, Some(grads.bytes()));
        }
        Dispatch::record_all(&mut encoder, &self.dispatches);
        let readback = self.readback.as_ref().filter(|_| read);
        if let Some((t, staging)) = readback {
            encoder.copy_buffer_to_buffer(&t.buffer, t.offset, staging, 0, t.bytes());
        }
        gpu.submit(encoder);
        let Some((_, staging)) = readback else {
            return Ok(None);
        };
        let what = "reading a step's result";
        let (sender, receiver) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = sender.send(r);
        });
        gpu.wait()?;
        receiver
            .recv()
            .map_err(|e| Error::gpu(what, e))?
            .map_err(|e| Error::gpu(what, e))?;
        let values = {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| Error::gpu(what, e))?;
            bytemuck::cast_slice(&view).to_vec()
        };
        staging.unmap();
        Ok(Some(values))
    }
}

/// Where a graph's activations go: buffers assigned by lifetime.
struct Placement {
    /// Graph ids of the activation tensors, in order.
    activations: Vec<usize>,
    lives: Vec<Lifetime>,
    slots: SlotLayout,
}

impl Placement {
    /// Assigns buffers; `keep` tensors (read after the step) live to its end.
    fn new(graph: &Graph, keep: &[crate::graph::TensorId]) -> Self {
        let mut lifetimes = lifetimes(graph);
        let end = graph.ops.len();
        for id in keep {
            lifetimes[graph.root(*id).0].last = end;
        }
        let activations: Vec<usize> = (0..graph.tensors.len())
            .filter(|&i| graph.tensors[i].storage == Storage::Activation)
            .collect();
        let lives: Vec<Lifetime> = activations.iter().map(|&i| lifetimes[i]).collect();
        let slots = SlotLayout::assign(&lives);
        Placement {
            activations,
            lives,
            slots,
        }
    }

    /// Bytes per class for a parameter arena of `param_bytes` and `scratch` bytes of inputs and state.
    fn report(&self, graph: &Graph, param_bytes: u64, scratch: u64) -> MemoryReport {
        let trains = graph
            .tensors
            .iter()
            .any(|t| matches!(t.storage, Storage::Grad(_)));
        MemoryReport {
            params: param_bytes,
            grads: if trains { param_bytes } else { 0 },
            moments: if trains { 2 * param_bytes } else { 0 },
            activations: 4 * self.slots.total_len() as u64,
            scratch,
            caches: 0,
            activations_min: 4 * peak_live_len(&self.lives) as u64,
        }
    }
}

/// The memory a plan of `graph` would take, without a GPU: `param_len` elements per arena, and the
/// graph's inputs plus the small per-step state as scratch.
pub fn planned_memory(
    graph: &Graph,
    keep: &[crate::graph::TensorId],
    param_len: usize,
) -> MemoryReport {
    let inputs: usize = graph
        .tensors
        .iter()
        .filter(|t| t.storage == Storage::Input)
        .map(|t| t.len())
        .sum();
    let state = 2 + crate::kernels::adamw::HYPER_LEN + crate::kernels::gradnorm::OUT_LEN;
    Placement::new(graph, keep).report(graph, 4 * param_len as u64, 4 * (inputs + state) as u64)
}

/// The same bytes with the graph's shape (a parameter view is created flat).
fn reshape(t: &Tensor, shape: &[usize]) -> Result<Tensor> {
    t.view(0, shape)
}

/// First and last op touching each tensor, or a view of it (tensors no op touches get an empty life
/// at 0).
fn lifetimes(graph: &Graph) -> Vec<Lifetime> {
    let mut lives: Vec<Option<(usize, usize)>> = vec![None; graph.tensors.len()];
    for (i, op) in graph.ops.iter().enumerate() {
        let (reads, writes) = op.uses();
        for id in reads.into_iter().chain(writes) {
            let life = lives[graph.root(id).0].get_or_insert((i, i));
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
