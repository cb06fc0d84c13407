//! A compiled graph: every tensor placed, every dispatch built once. A step uploads the batch, records one
//! command encoder (clear the gradients, one compute pass with every dispatch), submits once, and reads
//! the loss back only when asked. A step accumulated over N micro-batches submits N times: each adds its
//! gradients, the last also runs the gradient norm and AdamW.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::{Mutex, OnceLock};

use crate::contract::{
    adamw_hyper, check_token_ids, AdamWConfig, Segment, HYPER_LEN, RANDOM_STATE_LEN,
};
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuTimer, Readback, Submission, Tensor, Timeline};
use crate::graph::autodiff::{BUCKETS, POSITIONS};
use crate::graph::ops::{ArenaChunk, Arenas, Lowering, TransposedWeights};
use crate::graph::planner::{peak_live_len, ArenaLayout, Lifetime, SlotLayout};
use crate::graph::{Graph, Op, Piece, Storage, Work};
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
    /// `[seed, step, micro]` (u32) for dropout masks.
    pub random_state: Tensor,
    /// AdamW's per-step hyperparameters.
    pub hyper: Tensor,
    /// Gradient norm, clip scale and the running sum of norms ([`gradnorm`]'s output).
    pub norm: Tensor,
    /// A mixed-precision model's 16-bit working copy of its weights: per piece, the words a 16-bit
    /// piece of its training graphs reads ([`Op::WorkingCopy`] packs them from `params`); made by
    /// [`Shared::working_copy`] when first needed.
    pub working: OnceLock<WorkingCopy>,
    /// Weights transposed for the matrix-vector products, made by the plans that read them.
    pub transposed: TransposedWeights,
}

/// The 16-bit working copy of a model's weights: its chunks (of at most one binding each) and one
/// view per piece (empty for a piece kept in f32).
pub struct WorkingCopy {
    pub chunks: Vec<Tensor>,
    pub views: Vec<Option<Tensor>>,
}

impl WorkingCopy {
    pub fn bytes(&self) -> u64 {
        self.chunks.iter().map(|c| c.bytes()).sum()
    }
}

/// Where the working copy of `pieces`' 16-bit ones goes, in words: an arena of chunks of at most
/// `max_binding` words, and each 16-bit piece's place in it.
pub fn working_layout(pieces: &[Piece], max_binding: usize) -> Result<(ArenaLayout, Vec<usize>)> {
    let half: Vec<usize> = (0..pieces.len())
        .filter(|&p| pieces[p].dtype != Dtype::F32)
        .collect();
    let words: Vec<usize> = half.iter().map(|&p| pieces[p].words()).collect();
    Ok((ArenaLayout::pack(&words, max_binding)?, half))
}

/// One parameter tensor (or piece of one) as the arenas hold it: its length and whether AdamW decays it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArenaTensor {
    pub len: usize,
    pub decay: bool,
}

impl Shared {
    /// Zeroed arenas for `tensors` placed as `layout` says (one place per tensor), with AdamW's segment
    /// table per chunk, and the per-step state. A model that never `trains` (its weights in 16 bits)
    /// gets the parameter arena alone: its gradient and moment arenas are that same buffer, which no
    /// plan of it writes (it has no training plan).
    pub fn new(
        gpu: &Gpu,
        layout: &ArenaLayout,
        tensors: &[ArenaTensor],
        trains: bool,
    ) -> Result<Self> {
        gpu.allocating("the parameters, gradients and AdamW moments", || {
            Self::allocate(gpu, layout, tensors, trains)
        })
    }

    fn allocate(
        gpu: &Gpu,
        layout: &ArenaLayout,
        tensors: &[ArenaTensor],
        trains: bool,
    ) -> Result<Self> {
        let mut chunks = Vec::with_capacity(layout.chunks.len());
        for (c, &len) in layout.chunks.iter().enumerate() {
            let params = gpu.zeros(&format!("params chunk {c}"), &[len])?;
            let arena = |name: &str| match trains {
                true => gpu.zeros(&format!("{name} chunk {c}"), &[len]),
                false => Ok(params.clone()),
            };
            let segments: Vec<Segment> = (layout.places.iter().zip(tensors))
                .filter(|((chunk, _), _)| *chunk == c)
                .map(|(&(_, offset), t)| Segment {
                    offset,
                    len: t.len,
                    decay: t.decay,
                })
                .collect();
            chunks.push(ArenaChunk {
                grads: arena("grads")?,
                m: arena("adam m")?,
                v: arena("adam v")?,
                params,
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
            random_state: gpu.zeros("random state", &[RANDOM_STATE_LEN])?,
            hyper: gpu.zeros("adamw hyper", &[HYPER_LEN])?,
            norm: gpu.zeros("gradient norm", &[gradnorm::OUT_LEN])?,
            working: OnceLock::new(),
            transposed: TransposedWeights::default(),
        })
    }

    /// The working copy of `pieces`' 16-bit ones, made on first use (in chunks of at most
    /// `max_binding` words); its words are written by each step's [`Op::WorkingCopy`].
    pub fn working_copy(
        &self,
        gpu: &Gpu,
        pieces: &[Piece],
        max_binding: usize,
    ) -> Result<&WorkingCopy> {
        if let Some(copy) = self.working.get() {
            return Ok(copy);
        }
        let (layout, half) = working_layout(pieces, max_binding)?;
        let copy = gpu.allocating("the 16-bit working copy of the weights", || {
            let chunks = (layout.chunks.iter().enumerate())
                .map(|(c, &len)| gpu.zeros(&format!("working copy chunk {c}"), &[len]))
                .collect::<Result<Vec<_>>>()?;
            let mut views = vec![None; pieces.len()];
            for (&p, &(c, offset)) in half.iter().zip(&layout.places) {
                views[p] = Some(chunks[c].view(offset, &[pieces[p].words()])?);
            }
            Ok(WorkingCopy { chunks, views })
        })?;
        Ok(self.working.get_or_init(|| copy))
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
    /// Copies of the weights that plans read instead of the parameters: a mixed-precision model's
    /// 16-bit working copy, and the transposed weights of decode steps on CPU adapters.
    pub working: u64,
    /// Activations alive at once at the worst op: the analytical minimum for them.
    pub activations_min: u64,
}

impl MemoryReport {
    pub fn total(&self) -> u64 {
        self.params
            + self.grads
            + self.moments
            + self.activations
            + self.scratch
            + self.caches
            + self.working
    }

    /// The total with the activations at their analytical minimum.
    pub fn minimum(&self) -> u64 {
        self.total() - self.activations + self.activations_min
    }
}

/// The batch a step trains or evaluates on, row-major `[B, T]`.
pub struct StepInputs<'a> {
    pub tokens: &'a [u32],
    pub targets: &'a [u32],
}

/// What a training step reads back when asked: each micro-batch's mean loss, and the gradient norm of
/// the step with the running sum of every step's norm (non-finite once any step's norm was).
#[derive(Clone, Debug, PartialEq)]
pub struct StepReadout {
    pub losses: Vec<f32>,
    pub grad_norm: f32,
    pub norm_sum: f32,
}

impl StepReadout {
    /// The step's loss: the mean over its (equal) micro-batches.
    pub fn loss(&self) -> f32 {
        let sum: f64 = self.losses.iter().map(|&l| l as f64).sum();
        (sum / self.losses.len().max(1) as f64) as f32
    }
}

/// A training plan's staging buffers: micro-batch k's loss at element k, then the head of the gradient
/// norm's output ([`gradnorm::NORM`], [`gradnorm::SCALE`], [`gradnorm::NORM_SUM`]). Two, so one step's
/// read can wait while the next step is queued; `requested` lists the ones awaiting a read, oldest
/// first.
struct StepReadback {
    staging: [Readback; 2],
    requested: Mutex<VecDeque<usize>>,
    micros: usize,
    loss: Tensor,
    norm: Tensor,
    /// With a gradient exchange: the staging buffer of the step whose update is yet to be submitted
    /// (`Some(None)`: no read asked for).
    awaiting_update: Mutex<Option<Option<usize>>>,
}

/// Where one gradient exchange ([`Plan::exchange_gradients`]) spent its CPU time.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ExchangeTimes {
    /// Waiting for the backward and copying the gradients out of the staging buffers.
    pub readback: std::time::Duration,
    /// The reduction across processes (an MPI all-reduce).
    pub reduce: std::time::Duration,
    /// Queueing the summed gradients back to the GPU.
    pub upload: std::time::Duration,
}

impl ExchangeTimes {
    pub fn plus(self, other: ExchangeTimes) -> ExchangeTimes {
        ExchangeTimes {
            readback: self.readback + other.readback,
            reduce: self.reduce + other.reduce,
            upload: self.upload + other.upload,
        }
    }
}

/// One op's share of a plan's dispatches, for profiles.
struct OpDispatches {
    kind: &'static str,
    work: Work,
    /// Whether `range` is of the plan's `update` dispatches (else of `dispatches`).
    updates: bool,
    range: Range<usize>,
}

impl StepReadback {
    /// A staging buffer with no read outstanding.
    fn free_staging(&self) -> Result<usize> {
        (0..2)
            .find(|&k| !self.staging[k].is_pending())
            .ok_or_else(|| {
                Error::Invalid("two steps' reads are outstanding: collect one first".into())
            })
    }

    fn awaiting(&self) -> std::sync::MutexGuard<'_, Option<Option<usize>>> {
        self.awaiting_update
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, VecDeque<usize>>> {
        (self.requested.lock())
            .map_err(|_| Error::gpu("reading a step's loss", "a reader panicked"))
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

pub struct Plan {
    /// Forward and backward (and the forward of plans that do not train).
    dispatches: Vec<Dispatch>,
    /// A training plan's gradient norm and AdamW, run once per step after its last micro-batch.
    update: Vec<Dispatch>,
    /// Each op's kernel family, work and dispatches (a range of `dispatches`, or of `update` for the
    /// optimizer's ops), for profiles.
    ops: Vec<OpDispatches>,
    /// When set, each submitted pass writes its GPU begin and end here (profiling).
    timeline: Option<Timeline>,
    tensors: Vec<Tensor>,
    inputs: HashMap<String, Tensor>,
    /// The first kept tensor (the loss, or a decode step's logits) and the buffer it is read back
    /// through.
    readback: Option<(Tensor, Readback)>,
    /// A training plan's readback of losses and gradient norm ([`Plan::run_micro`]).
    step_readback: Option<StepReadback>,
    /// The tensors kept (captured) for reading after a step; every other activation's buffer is reused.
    kept: Vec<crate::graph::TensorId>,
    /// The gradient arena's chunks when this plan trains (cleared at the start of each step).
    grads: Vec<Tensor>,
    /// With [`Plan::with_gradient_exchange`]: one staging buffer per gradient chunk (a bucket of the
    /// exchange), and the update waits for [`Plan::exchange_gradients`].
    exchange: Vec<Readback>,
    /// The host copy a gradient chunk is read into, summed across processes and written back from:
    /// one allocation, reused by every chunk of every step.
    exchanged: std::sync::Mutex<Vec<f32>>,
    /// Per gradient chunk, how many of `dispatches` run before its gradients are final (the end of
    /// the last one writing it): where a step with an exchange sends the chunk off.
    grads_done: Vec<usize>,
    /// How many of `dispatches`, from the first, only a step's first micro-batch records (the 16-bit
    /// working copy of the weights).
    refresh: usize,
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
    /// Inside [`Gpu::allocating`]: a buffer the device refuses is [`Error::OutOfMemory`].
    pub fn compile(
        gpu: &Gpu,
        graph: &Graph,
        shared: &Shared,
        caches: &[Tensor],
        keep: &[crate::graph::TensorId],
        vocab: usize,
    ) -> Result<Self> {
        gpu.allocating("a step's activations", || {
            Self::place(gpu, graph, shared, caches, keep, vocab)
        })
    }

    fn place(
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
                // A 16-bit piece is its words (a training model's working copy, or an inference model's
                // parameters); the ops that read it take its shape from the graph.
                Storage::Param(p) => match graph.pieces[p].dtype {
                    Dtype::F32 => reshape(&shared.params[p], &def.shape)?,
                    _ => {
                        let working = shared.working.get().and_then(|w| w.views[p].as_ref());
                        reshape(
                            working.unwrap_or(&shared.params[p]),
                            &[graph.pieces[p].words()],
                        )?
                    }
                },
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
                    let mut shape = def.shape.clone();
                    if let Some(last) = shape.last_mut() {
                        *last = graph.cache_dtype.words(*last);
                    }
                    let cache = caches.get(c).filter(|t| t.shape == shape);
                    let t = cache.ok_or_else(|| {
                        Error::shape(&def.name, format!("no cache {c} of shape {shape:?}"))
                    })?;
                    cache_bytes += t.bytes();
                    t.clone()
                }
            };
            tensors.push(t);
        }

        let cx = Lowering {
            gpu,
            graph,
            tensors: &tensors,
            random_state: &shared.random_state,
            hyper: &shared.hyper,
            norm: &shared.norm,
            arenas: &shared.arenas,
            masters: &shared.params,
            matmul: matmul::Variant::best(gpu),
            transposed: &shared.transposed,
        };
        cx.transpose_weights()?;
        let (mut dispatches, mut update) = (Vec::new(), Vec::new());
        let mut ops = Vec::with_capacity(graph.ops.len());
        let param_len = (shared.arenas.bytes() / 4) as usize;
        // The distinct pipelines compile on worker threads while the ops lower.
        gpu.build_parallel(|| -> Result<()> {
            for op in &graph.ops {
                let updates = matches!(op, Op::GradNorm { .. } | Op::AdamW { .. });
                let list = if updates {
                    &mut update
                } else {
                    &mut dispatches
                };
                let start = list.len();
                list.extend(op.lower(&cx)?);
                ops.push(OpDispatches {
                    kind: op.kind(),
                    work: op.work(graph, param_len),
                    updates,
                    range: start..list.len(),
                });
            }
            Ok(())
        })?;
        for d in dispatches.iter().chain(&update) {
            d.ready()?;
        }
        let trains = graph
            .tensors
            .iter()
            .any(|t| matches!(t.storage, Storage::Grad(_)));
        let grads_done = grads_done(graph, &tensors, &ops, &shared.arenas);
        // The working copy of the weights (the first op when there is one) changes only with the
        // update: the first micro-batch of a step packs it for all of them.
        let refresh = (graph.ops.first())
            .filter(|op| matches!(op, Op::WorkingCopy))
            .map_or(0, |_| ops[0].range.end);
        let state = shared.random_state.bytes() + shared.hyper.bytes() + shared.norm.bytes();
        let memory = MemoryReport {
            caches: cache_bytes,
            working: shared.working.get().map_or(0, WorkingCopy::bytes) + shared.transposed.bytes(),
            ..placement.report(graph, shared.arenas.bytes(), scratch + state)
        };
        let readback = keep.first().map(|id| {
            let t = tensors[id.0].clone();
            let label = format!("{} readback", graph.def(*id).name);
            let staging = Readback::new(gpu, &label, t.bytes());
            (t, staging)
        });
        Ok(Plan {
            dispatches,
            update,
            ops,
            timeline: None,
            readback,
            step_readback: None,
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
            exchange: Vec::new(),
            exchanged: Default::default(),
            grads_done,
            refresh,
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

    /// A training plan whose steps run as `micros` micro-batches ([`Plan::run_micro`]), with the
    /// staging buffer their losses and the gradient norm come back through. Built once, with the plan.
    pub fn with_micro_batches(mut self, gpu: &Gpu, micros: usize, shared: &Shared) -> Result<Self> {
        let Some((loss, _)) = self.readback.as_ref().filter(|_| micros > 0) else {
            return Err(Error::Invalid(format!(
                "{micros} micro-batches of a plan {} a loss",
                if self.readback.is_some() {
                    "with"
                } else {
                    "without"
                }
            )));
        };
        let bytes = 4 * (micros + gradnorm::HEAD_LEN) as u64;
        self.step_readback = Some(StepReadback {
            staging: [0, 1].map(|_| Readback::new(gpu, "step readback", bytes)),
            requested: Mutex::new(VecDeque::new()),
            micros,
            loss: loss.clone(),
            norm: shared.norm.clone(),
            awaiting_update: Mutex::new(None),
        });
        Ok(self)
    }

    /// A training plan of [`Plan::with_micro_batches`] whose gradients are summed with other
    /// processes' before the update: the last micro-batch's submit also copies each gradient chunk to
    /// a staging buffer (made here, once), and the gradient norm and AdamW wait for
    /// [`Plan::exchange_gradients`].
    pub fn with_gradient_exchange(mut self, gpu: &Gpu) -> Result<Self> {
        if self.step_readback.is_none() {
            return Err(Error::Invalid(
                "a gradient exchange needs a plan built for micro-batches".into(),
            ));
        }
        self.exchange = (self.grads.iter())
            .map(|chunk| Readback::new(gpu, "gradient exchange", chunk.bytes()))
            .collect();
        Ok(self)
    }

    /// Writes what changes per step, before [`Plan::run`]: the dropout state `[seed, step, 0]` and, for
    /// a training plan, AdamW's per-step values for learning rate `lr` at `step` (counted from 1) with
    /// the settings the plan was built with.
    pub fn set_step(&self, gpu: &Gpu, seed: u32, step: u32, lr: f64) -> Result<()> {
        self.set_micro_step(gpu, [seed, step, 0], lr)
    }

    /// [`Plan::set_step`] for micro-batch `state[2]` of an accumulated step (`state = [seed, step,
    /// micro]`), before [`Plan::run_micro`].
    pub fn set_micro_step(&self, gpu: &Gpu, state: [u32; RANDOM_STATE_LEN], lr: f64) -> Result<()> {
        let step = state[1];
        gpu.write(&self.random_state, &state)?;
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
        self.dispatches.len() + self.update.len()
    }

    /// Each dispatch's kernel as `shader/entry point`, in the order a step records them (the forward
    /// and backward, then a training plan's update): which kernels a lowering chose.
    pub fn kernels(&self) -> Vec<&str> {
        (self.dispatches.iter().chain(&self.update))
            .map(|d| d.label.as_str())
            .collect()
    }

    /// Where a step's GPU time goes, per kernel family, slowest first: each op's dispatches timed alone
    /// (so the total exceeds a step's, which pays no per-op submission), the median of `rounds`. Runs
    /// the step's dispatches `rounds` more times; for profiling, not for training.
    pub fn profile(&self, gpu: &Gpu, rounds: usize) -> Result<Vec<ProfileRow>> {
        let timer = GpuTimer::new(gpu);
        let mut times = vec![Vec::with_capacity(rounds); self.ops.len()];
        for _ in 0..rounds.max(1) {
            for (op, samples) in self.ops.iter().zip(&mut times) {
                let list = if op.updates {
                    &self.update
                } else {
                    &self.dispatches
                };
                samples.push(timer.time(gpu, &list[op.range.clone()], 1)?);
            }
        }
        let mut rows: Vec<ProfileRow> = Vec::new();
        for (op, mut samples) in self.ops.iter().zip(times) {
            samples.sort();
            let time = samples[samples.len() / 2];
            match rows.iter_mut().find(|r| r.kind == op.kind) {
                Some(row) => {
                    row.time += time;
                    row.dispatches += op.range.len();
                    row.work = row.work.plus(op.work);
                }
                None => rows.push(ProfileRow {
                    kind: op.kind,
                    time,
                    dispatches: op.range.len(),
                    work: op.work,
                }),
            }
        }
        rows.sort_by_key(|r| std::cmp::Reverse(r.time));
        Ok(rows)
    }

    /// From now on, each submitted pass's GPU begin and end go to `timeline` (`None`: stop).
    pub fn set_timeline(&mut self, timeline: Option<Timeline>) {
        self.timeline = timeline;
    }

    pub fn timeline(&self) -> Option<&Timeline> {
        self.timeline.as_ref()
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

    /// Runs micro-batch `micro` of a step of [`Plan::with_micro_batches`] and, after the last with
    /// `read`, returns every loss and the gradient norm (waiting for the GPU). See
    /// [`Plan::submit_micro`].
    pub fn run_micro(&self, gpu: &Gpu, micro: usize, read: bool) -> Result<Option<StepReadout>> {
        let last = self.submit_micro(gpu, micro, read)?.is_some();
        match read && last {
            true => self.collect_step(gpu).map(Some),
            false => Ok(None),
        }
    }

    /// Submits micro-batch `micro` of a step of [`Plan::with_micro_batches`] (one submit): clears the
    /// gradients before the first micro-batch, adds this one's into them, and after the last runs the
    /// gradient norm and AdamW. With `read` (the same for every micro-batch of a step) its loss goes
    /// to a staging buffer, whose read [`Plan::collect_step`] finishes after the last micro-batch,
    /// without waiting for later steps. Returns the submission of the step's last micro-batch.
    pub fn submit_micro(&self, gpu: &Gpu, micro: usize, read: bool) -> Result<Option<Submission>> {
        let Some(out) = &self.step_readback else {
            return Err(Error::Invalid(
                "the plan was not built for micro-batches".into(),
            ));
        };
        let last = micro + 1 == out.micros;
        let exchanges = !self.exchange.is_empty();
        gpu.check("a training step")?;
        let staging = match read {
            true => Some(out.free_staging()?),
            false => None,
        };
        let mut commands = gpu.commands("micro-batch");
        if micro == 0 {
            for grads in &self.grads {
                commands.clear(grads);
            }
        }
        let first = if micro == 0 { 0 } else { self.refresh };
        if last && exchanges && self.timeline.is_none() {
            return Ok(Some(self.submit_exchanging(gpu, commands, staging, first)?));
        }
        let update: &[Dispatch] = if last && !exchanges {
            &self.update
        } else {
            &[]
        };
        commands.dispatch_timed(&[&self.dispatches[first..], update], self.timeline.as_ref());
        if let Some(k) = staging {
            out.staging[k].copy_range(&mut commands, &out.loss, 1, micro);
        }
        if last && exchanges {
            for (bucket, grads) in self.exchange.iter().zip(&self.grads) {
                bucket.copy(&mut commands, grads);
            }
            let submission = gpu.submit(commands);
            for bucket in &self.exchange {
                bucket.request(Some(submission.clone()));
            }
            *out.awaiting() = Some(staging);
            return Ok(Some(submission));
        }
        if let (Some(k), true) = (staging, last) {
            let norm = (&out.norm, gradnorm::HEAD_LEN, out.micros);
            out.staging[k].copy_range(&mut commands, norm.0, norm.1, norm.2);
        }
        let submission = gpu.submit(commands);
        if !last {
            return Ok(None);
        }
        if let Some(k) = staging {
            out.staging[k].request(Some(submission.clone()));
            out.lock()?.push_back(k);
        }
        Ok(Some(submission))
    }

    /// The last micro-batch of a step with a gradient exchange, `commands` begun: each gradient chunk
    /// is copied out and its read requested in a submission of its own as soon as the backward has
    /// finished writing it, so that on a GPU its exchange overlaps the rest of the backward. (Profiled
    /// steps keep one submission, whose GPU time the timeline records.) Records `dispatches` from
    /// `first` on.
    fn submit_exchanging(
        &self,
        gpu: &Gpu,
        mut commands: crate::gpu::Commands,
        staging: Option<usize>,
        first: usize,
    ) -> Result<Submission> {
        let mut recorded = first;
        for c in self.exchange_order() {
            let done = self.grads_done[c];
            commands.dispatch(&self.dispatches[recorded..done]);
            recorded = done;
            self.exchange[c].copy(&mut commands, &self.grads[c]);
            let submission = gpu.submit(commands);
            self.exchange[c].request(Some(submission));
            commands = gpu.commands("micro-batch");
        }
        commands.dispatch(&self.dispatches[recorded..]);
        let out = (self.step_readback.as_ref()).expect("exchanging plans have micro-batches");
        if let Some(k) = staging {
            out.staging[k].copy_range(&mut commands, &out.loss, 1, out.micros - 1);
        }
        *out.awaiting() = Some(staging);
        Ok(gpu.submit(commands))
    }

    /// The gradient chunks in the order the backward finishes them.
    fn exchange_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.grads_done.len()).collect();
        order.sort_by_key(|&c| self.grads_done[c]);
        order
    }

    /// After the last micro-batch of a plan [`Plan::with_gradient_exchange`]: reads each gradient chunk
    /// back, lets `reduce` sum it with the other processes' (in place), uploads the sum and submits the
    /// gradient norm and AdamW. Returns that submission and where the time went.
    pub fn exchange_gradients(
        &self,
        gpu: &Gpu,
        mut reduce: impl FnMut(&mut [f32]) -> Result<()>,
    ) -> Result<(Submission, ExchangeTimes)> {
        let out = (self.step_readback.as_ref())
            .filter(|_| !self.exchange.is_empty())
            .ok_or_else(|| Error::Invalid("the plan exchanges no gradients".into()))?;
        let staging = (out.awaiting().take())
            .ok_or_else(|| Error::Invalid("no step awaits its gradient exchange".into()))?;
        let mut times = ExchangeTimes::default();
        let mut values = (self.exchanged.lock())
            .map_err(|_| Error::Invalid("a gradient exchange panicked".into()))?;
        for c in self.exchange_order() {
            let (bucket, grads) = (&self.exchange[c], &self.grads[c]);
            let start = std::time::Instant::now();
            bucket.finish_into(gpu, "reading gradients back", &mut values)?;
            let reduced = std::time::Instant::now();
            reduce(&mut values)?;
            let uploaded = std::time::Instant::now();
            gpu.write(grads, &values)?;
            times.readback += reduced - start;
            times.reduce += uploaded - reduced;
            times.upload += uploaded.elapsed();
        }
        let mut commands = gpu.commands("update");
        commands.dispatch(&self.update);
        if let Some(k) = staging {
            let norm = (&out.norm, gradnorm::HEAD_LEN, out.micros);
            out.staging[k].copy_range(&mut commands, norm.0, norm.1, norm.2);
        }
        let submission = gpu.submit(commands);
        if let Some(k) = staging {
            out.staging[k].request(Some(submission.clone()));
            out.lock()?.push_back(k);
        }
        Ok((submission, times))
    }

    /// The losses and gradient norm of the oldest submitted step that asked for them (waiting only for
    /// that step).
    pub fn collect_step(&self, gpu: &Gpu) -> Result<StepReadout> {
        let out = (self.step_readback.as_ref())
            .ok_or_else(|| Error::Invalid("the plan was not built for micro-batches".into()))?;
        let k = (out.lock()?.pop_front())
            .ok_or_else(|| Error::Invalid("no step result was asked for".into()))?;
        let values: Vec<f32> = out.staging[k].finish(gpu, "reading a step's loss")?;
        let norm = &values[out.micros..];
        Ok(StepReadout {
            losses: values[..out.micros].to_vec(),
            grad_norm: norm[gradnorm::NORM],
            norm_sum: norm[gradnorm::NORM_SUM],
        })
    }

    fn step(&self, gpu: &Gpu, read: bool) -> Result<Option<Vec<f32>>> {
        let mut commands = gpu.commands("step");
        for grads in &self.grads {
            commands.clear(grads);
        }
        commands.dispatch(&self.dispatches);
        commands.dispatch(&self.update);
        let readback = self.readback.as_ref().filter(|_| read);
        if let Some((t, staging)) = readback {
            staging.copy(&mut commands, t);
        }
        gpu.submit(commands);
        readback
            .map(|(_, staging)| staging.read(gpu, "reading a step's result"))
            .transpose()
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
            working: 0,
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
    let state = RANDOM_STATE_LEN + HYPER_LEN + gradnorm::OUT_LEN;
    let max_binding = crate::gpu::default_max_binding() as usize / 4;
    let working = working_layout(&graph.pieces, max_binding).map_or(0, |(l, _)| l.total_len());
    MemoryReport {
        working: 4 * working as u64,
        ..Placement::new(graph, keep).report(
            graph,
            4 * param_len as u64,
            4 * (inputs + state) as u64,
        )
    }
}

/// The same bytes with the graph's shape (a parameter view is created flat).
/// Per gradient chunk of `arenas`, the end of the last of `ops`' dispatches (not the update's) that
/// writes into it; 0 for a chunk no op writes.
fn grads_done(
    graph: &Graph,
    tensors: &[Tensor],
    ops: &[OpDispatches],
    arenas: &Arenas,
) -> Vec<usize> {
    let mut done = vec![0; arenas.chunks.len()];
    for (op, dispatches) in graph.ops.iter().zip(ops).filter(|(_, d)| !d.updates) {
        for id in op.uses().1 {
            if !matches!(graph.def(graph.root(id)).storage, Storage::Grad(_)) {
                continue;
            }
            let chunk = (arenas.chunks.iter()).position(|c| c.grads.same_buffer(&tensors[id.0]));
            if let Some(c) = chunk {
                done[c] = done[c].max(dispatches.range.end);
            }
        }
    }
    done
}

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
