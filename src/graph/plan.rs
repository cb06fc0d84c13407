//! A compiled graph: every tensor placed, every dispatch built once. A step uploads the batch, records one
//! command encoder (clear the gradients, one compute pass with every dispatch), submits once, and reads
//! the loss back only when asked.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::Mutex;

use crate::contract::{adamw_hyper, check_token_ids, AdamWConfig, Segment, HYPER_LEN};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuTimer, Readback, Submission, Tensor, Timeline};
use crate::graph::autodiff::{BUCKETS, POSITIONS};
use crate::graph::ops::{ArenaChunk, Arenas, Lowering};
use crate::graph::planner::{peak_live_len, ArenaLayout, Lifetime, SlotLayout};
use crate::graph::{Graph, Op, Storage, Work};
use crate::kernels::{adamw, embedding, gradnorm, matmul};

/// Names of the per-step inputs a model graph declares.
pub const TOKENS: &str = "tokens";
pub const TARGETS: &str = "targets";
/// A decode step's position (u32 `[1]`), written before each step.
pub const POSITION: &str = "position";

/// The state every plan of a model shares: parameters and optimizer arenas, and the small per-step
/// tensors the trainer writes before each submit.
pub struct Shared {
    pub arenas: Arenas,
    /// Views of the parameter, gradient and AdamW moment (`[m, v]`) arenas, one per piece.
    pub params: Vec<Tensor>,
    pub grads: Vec<Tensor>,
    pub moments: [Vec<Tensor>; 2],
    /// `[seed, step]` (u32) for dropout masks.
    pub random_state: Tensor,
    /// AdamW's per-step hyperparameters.
    pub hyper: Tensor,
    /// Gradient norm and clip scale.
    pub norm: Tensor,
}

/// One parameter tensor (or piece of one) as the arenas hold it: its length and whether AdamW decays it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArenaTensor {
    pub len: usize,
    pub decay: bool,
}

impl Shared {
    /// Zeroed arenas for `tensors` placed as `layout` says (one place per tensor), with AdamW's segment
    /// table per chunk, and the per-step state.
    pub fn new(gpu: &Gpu, layout: &ArenaLayout, tensors: &[ArenaTensor]) -> Result<Self> {
        let mut chunks = Vec::with_capacity(layout.chunks.len());
        for (c, &len) in layout.chunks.iter().enumerate() {
            let arena = |name: &str| gpu.zeros(&format!("{name} chunk {c}"), &[len]);
            let segments: Vec<Segment> = (layout.places.iter().zip(tensors))
                .filter(|((chunk, _), _)| *chunk == c)
                .map(|(&(_, offset), t)| Segment {
                    offset,
                    len: t.len,
                    decay: t.decay,
                })
                .collect();
            chunks.push(ArenaChunk {
                params: arena("params")?,
                grads: arena("grads")?,
                m: arena("adam m")?,
                v: arena("adam v")?,
                segments: adamw::Segments::new(gpu, &segments)?,
            });
        }
        let views = |arena: fn(&ArenaChunk) -> &Tensor| -> Result<Vec<Tensor>> {
            (layout.places.iter().zip(tensors))
                .map(|(&(c, offset), t)| arena(&chunks[c]).view(offset, &[t.len]))
                .collect()
        };
        Ok(Shared {
            params: views(|c| &c.params)?,
            grads: views(|c| &c.grads)?,
            moments: [views(|c| &c.m)?, views(|c| &c.v)?],
            arenas: Arenas { chunks },
            random_state: gpu.zeros("random state", &[2])?,
            hyper: gpu.zeros("adamw hyper", &[HYPER_LEN])?,
            norm: gpu.zeros("gradient norm", &[gradnorm::OUT_LEN])?,
        })
    }
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
    /// Tensors kept from step to step (a generator's key/value caches, shared by its plans).
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
    /// Each op's kernel family, work and dispatches (a range of `dispatches`), for profiles.
    ops: Vec<(&'static str, Work, Range<usize>)>,
    tensors: Vec<Tensor>,
    inputs: HashMap<String, Tensor>,
    /// The first kept tensor (the loss, or a decode step's logits) and the two buffers it is read back
    /// through, so one step's read can wait while the next step is queued.
    readback: Option<(Tensor, [Readback; 2])>,
    /// The staging buffers with a requested read, oldest first.
    requested: Mutex<VecDeque<usize>>,
    /// When set, each step's pass writes its GPU begin and end here (profiling).
    timeline: Option<Timeline>,
    /// The tensors kept (captured) for reading after a step; every other activation's buffer is reused.
    kept: Vec<crate::graph::TensorId>,
    /// The gradient arena's chunks when this plan trains (cleared at the start of each step).
    grads: Vec<Tensor>,
    vocab: usize,
    memory: MemoryReport,
    /// The per-step state every plan of the model reads ([`Shared::random_state`], [`Shared::hyper`]),
    /// and the AdamW settings this plan was built with, when it trains.
    random_state: Tensor,
    hyper: Tensor,
    optimizer: Option<AdamWConfig>,
}

impl Plan {
    /// Places the graph's tensors and builds every dispatch. `caches` are the tensors the graph's
    /// [`Storage::Cache`] tensors are (none for a graph without any), made by the caller so that several
    /// plans share them. `keep` are tensors read after a step, the first of them the one a step may
    /// read back (the loss; a decode step's logits): the capture option. A kept tensor lives to the end
    /// of the step instead of giving its buffer to a later one; that is all it costs, so a plan
    /// captures only what it is asked to.
    pub fn compile(
        gpu: &Gpu,
        graph: &Graph,
        shared: &Shared,
        caches: &[Tensor],
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
        let mut cache_bytes = 0u64;
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
                Storage::Cache(c) => {
                    let cache = caches.get(c).filter(|t| t.shape == def.shape);
                    let t = cache.ok_or_else(|| {
                        Error::shape(&def.name, format!("no cache {c} of shape {:?}", def.shape))
                    })?;
                    cache_bytes += t.bytes();
                    t.clone()
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
        let mut dispatches = Vec::new();
        let mut ops = Vec::with_capacity(graph.ops.len());
        let param_len = (shared.arenas.bytes() / 4) as usize;
        for op in &graph.ops {
            let start = dispatches.len();
            dispatches.extend(op.lower(&cx)?);
            ops.push((
                op.kind(),
                op.work(graph, param_len),
                start..dispatches.len(),
            ));
        }
        let trains = graph
            .tensors
            .iter()
            .any(|t| matches!(t.storage, Storage::Grad(_)));
        let state = shared.random_state.bytes() + shared.hyper.bytes() + shared.norm.bytes();
        let memory = MemoryReport {
            caches: cache_bytes,
            ..placement.report(graph, shared.arenas.bytes(), scratch + state)
        };
        let readback = keep.first().map(|id| {
            let t = tensors[id.0].clone();
            let label = format!("{} readback", graph.def(*id).name);
            let staging = [0, 1].map(|_| Readback::new(gpu, &label, t.bytes()));
            (t, staging)
        });
        Ok(Plan {
            dispatches,
            ops,
            readback,
            requested: Mutex::new(VecDeque::new()),
            timeline: None,
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
            random_state: shared.random_state.clone(),
            hyper: shared.hyper.clone(),
            optimizer: graph.ops.iter().find_map(|op| match op {
                Op::AdamW { config, .. } => Some(*config),
                _ => None,
            }),
        })
    }

    /// Writes what changes per step, before [`Plan::run`]: the dropout state `[seed, step]` and, for a
    /// training plan, AdamW's per-step values for learning rate `lr` at `step` (counted from 1) with the
    /// settings the plan was built with.
    pub fn set_step(&self, gpu: &Gpu, seed: u32, step: u32, lr: f64) -> Result<()> {
        gpu.write(&self.random_state, &[seed, step])?;
        match &self.optimizer {
            Some(config) => gpu.write(&self.hyper, &adamw_hyper(config, lr, step)),
            None => Ok(()),
        }
    }

    pub fn memory(&self) -> MemoryReport {
        self.memory
    }

    /// Dispatches per step.
    pub fn dispatch_count(&self) -> usize {
        self.dispatches.len()
    }

    /// Where a step's GPU time goes, per kernel family, slowest first: each op's dispatches timed alone
    /// (so the total exceeds a step's, which pays no per-op submission), the median of `rounds`. Runs
    /// the step's dispatches `rounds` more times; for profiling, not for training.
    pub fn profile(&self, gpu: &Gpu, rounds: usize) -> Result<Vec<ProfileRow>> {
        let timer = GpuTimer::new(gpu);
        let mut times = vec![Vec::with_capacity(rounds); self.ops.len()];
        for _ in 0..rounds.max(1) {
            for ((_, _, range), samples) in self.ops.iter().zip(&mut times) {
                samples.push(timer.time(gpu, &self.dispatches[range.clone()], 1)?);
            }
        }
        let mut rows: Vec<ProfileRow> = Vec::new();
        for ((kind, work, range), mut samples) in self.ops.iter().zip(times) {
            samples.sort();
            let time = samples[samples.len() / 2];
            match rows.iter_mut().find(|r| r.kind == *kind) {
                Some(row) => {
                    row.time += time;
                    row.dispatches += range.len();
                    row.work = row.work.plus(*work);
                }
                None => rows.push(ProfileRow {
                    kind,
                    time,
                    dispatches: range.len(),
                    work: *work,
                }),
            }
        }
        rows.sort_by_key(|r| std::cmp::Reverse(r.time));
        Ok(rows)
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
        check_token_ids("target", batch.targets, self.vocab)?;
        check_token_ids("input", batch.tokens, self.vocab)?;
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

    /// Runs one step (one submit) and returns the loss when `read_loss` (waiting for the GPU).
    pub fn run(&self, gpu: &Gpu, read_loss: bool) -> Result<Option<f32>> {
        self.submit(gpu, read_loss)?;
        if !read_loss {
            return Ok(None);
        }
        Ok(self.collect(gpu)?.first().copied())
    }

    /// Runs one step (one submit) and reads back the whole first kept tensor (a decode step's logits)
    /// in the same submit.
    pub fn run_and_read(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        self.submit(gpu, true)?;
        self.collect(gpu)
    }

    /// Submits one step without waiting: clear the gradients, every dispatch in one compute pass and,
    /// when `read`, the copy of the first kept tensor to a staging buffer whose read [`Plan::collect`]
    /// finishes later. At most two reads may be outstanding.
    pub fn submit(&self, gpu: &Gpu, read: bool) -> Result<Submission> {
        let mut commands = gpu.commands("step");
        for grads in &self.grads {
            commands.clear(grads);
        }
        match &self.timeline {
            Some(timeline) => commands.dispatch_timed(&self.dispatches, timeline),
            None => commands.dispatch(&self.dispatches),
        }
        let staging = match (&self.readback, read) {
            (_, false) => None,
            (None, true) => {
                return Err(Error::Invalid(
                    "the plan keeps no tensor to read back".into(),
                ))
            }
            (Some((t, buffers)), true) => {
                let free = (0..2).find(|&k| !buffers[k].is_pending()).ok_or_else(|| {
                    Error::Invalid(
                        "two reads are outstanding: collect one before asking more".into(),
                    )
                })?;
                buffers[free].copy(&mut commands, t);
                Some((free, &buffers[free]))
            }
        };
        let submission = gpu.submit(commands);
        if let Some((k, buffer)) = staging {
            buffer.request(Some(submission.clone()));
            self.lock_requested()?.push_back(k);
        }
        Ok(submission)
    }

    /// Waits for the oldest outstanding read of [`Plan::submit`] (not for steps queued after it) and
    /// returns the kept tensor's values.
    pub fn collect(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        let oldest = self.lock_requested()?.pop_front();
        match (oldest, &self.readback) {
            (Some(k), Some((_, buffers))) => buffers[k].finish(gpu, "reading a step's result"),
            _ => Err(Error::Invalid("no step result was asked for".into())),
        }
    }

    /// From now on, each step's GPU begin and end go to `timeline` (`None`: stop).
    pub fn set_timeline(&mut self, timeline: Option<Timeline>) {
        self.timeline = timeline;
    }

    pub fn timeline(&self) -> Option<&Timeline> {
        self.timeline.as_ref()
    }

    /// Whether a read of [`Plan::submit`] awaits [`Plan::collect`].
    pub fn has_outstanding_read(&self) -> bool {
        self.requested.lock().is_ok_and(|r| !r.is_empty())
    }

    fn lock_requested(&self) -> Result<std::sync::MutexGuard<'_, VecDeque<usize>>> {
        (self.requested.lock())
            .map_err(|_| Error::gpu("reading a step's result", "a reader panicked"))
    }
}

/// One kernel family's share of a step ([`Plan::profile`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileRow {
    pub kind: &'static str,
    pub time: std::time::Duration,
    pub dispatches: usize,
    pub work: Work,
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
    let state = 2 + HYPER_LEN + gradnorm::OUT_LEN;
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
