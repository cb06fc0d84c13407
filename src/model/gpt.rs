//! A GPT on the GPU: its parameters, gradients and AdamW moments in arenas, and the plans that train and
//! evaluate it over those same buffers.

use rand::{Rng, SeedableRng};

use crate::contract::{check_token_ids, AdamWConfig};
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Tensor};
use crate::graph::planner::ArenaLayout;
use crate::graph::{planned_memory, ArenaTensor, MemoryReport, Op, Piece, Plan, Shared, TensorId};
use crate::model::graph::{
    build, build_micro, cache_index, cache_shape, GraphOptions, Mode, ModelGraph, Recompute,
};
use crate::model::{GptConfig, Init};

/// How the optimizer runs (fixed for a plan; the learning rate is set per step).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Optimizer {
    pub adamw: AdamWConfig,
    /// Clip the global gradient norm to this (`None`: no clipping).
    pub max_norm: Option<f32>,
}

/// The key/value caches of sequences generated together ([`Gpt::kv_caches`]): the prefill plans write
/// them and the decode plan extends them, so they outlive every plan built over them.
pub struct KvCaches {
    sequences: usize,
    /// Layer `l`'s keys at [`cache_index`]`(l, false)`, its values at `(l, true)`.
    tensors: Vec<Tensor>,
    /// The dtype of their values.
    dtype: Dtype,
}

impl KvCaches {
    pub fn sequences(&self) -> usize {
        self.sequences
    }

    /// Layer `layer`'s `[keys, values]`, each `[N, ctx, Hkv·D]` values, in `[N, ctx, Hkv·D / 2]`
    /// words when the model is in 16 bits (for looking at, e.g. in tests).
    pub fn layer(&self, layer: usize) -> Option<[&Tensor; 2]> {
        let keys = self.tensors.get(cache_index(layer, false))?;
        Some([keys, self.tensors.get(cache_index(layer, true))?])
    }
}

pub struct Gpt {
    pub config: GptConfig,
    shared: Shared,
    /// How the parameters are split into pieces (see [`GptConfig::pieces`]), one per view of `shared`,
    /// and the dtype each is stored in.
    pieces: Vec<Piece>,
    /// The dtype of the matrices (f32: the model trains; 16 bits: inference only).
    dtype: Dtype,
    /// Elements of the largest storage binding the model's tensors may take.
    max_binding: usize,
    /// How its graphs are laid out: epilogues where they pay ([`epilogues_pay`]), what training
    /// recomputes.
    options: GraphOptions,
}

impl Gpt {
    /// A model with GPT-2's initialization, reproducible from `seed`.
    pub fn init(gpu: &Gpu, config: &GptConfig, seed: u64) -> Result<Self> {
        // Refuse what the adapter cannot hold before drawing (possibly billions of) values.
        config.validate()?;
        arena_layout(gpu, config, max_binding(gpu), Dtype::F32)?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let params: Vec<Vec<f32>> = config
            .params()
            .iter()
            .map(|spec| match spec.init {
                Init::Zeros => vec![0.0; spec.len()],
                Init::Ones => vec![1.0; spec.len()],
                Init::Normal { std } => (0..spec.len()).map(|_| std * normal(&mut rng)).collect(),
            })
            .collect();
        Self::new(gpu, config, &params)
    }

    /// A model holding `params` (in [`GptConfig::params`] order).
    pub fn new(gpu: &Gpu, config: &GptConfig, params: &[Vec<f32>]) -> Result<Self> {
        Self::with_max_binding(gpu, config, params, max_binding(gpu))
    }

    /// [`Gpt::new`] as if the device's storage bindings held at most `max_binding` elements (at most
    /// what it allows): parameters larger than that split into pieces, arenas into chunks, logits into
    /// row chunks. Tests use it to run a small model the way GPT-2 runs on a 128 MiB binding.
    pub fn with_max_binding(
        gpu: &Gpu,
        config: &GptConfig,
        params: &[Vec<f32>],
        max_binding: usize,
    ) -> Result<Self> {
        Self::stored(gpu, config, params, Dtype::F32, max_binding)
    }

    /// A model for inference holding `params` with its matrices (the parameters of two or more
    /// dimensions: embeddings and weights) stored in `dtype`, rounded to nearest: in 16 bits the GPU
    /// holds only their 16-bit words, and the products widen them as they read (f32 sums); its
    /// key/value caches ([`Gpt::kv_caches`]) are in `dtype` too. Norm gains and biases, a few thousand
    /// values, stay f32, and so do the activations. In 16 bits it evaluates, samples and inspects, and
    /// refuses to train.
    pub fn for_inference(
        gpu: &Gpu,
        config: &GptConfig,
        params: &[Vec<f32>],
        dtype: Dtype,
    ) -> Result<Self> {
        Self::stored(gpu, config, params, dtype, max_binding(gpu))
    }

    /// [`Gpt::for_inference`] as [`Gpt::with_max_binding`] splits it (for tests).
    pub fn stored(
        gpu: &Gpu,
        config: &GptConfig,
        params: &[Vec<f32>],
        dtype: Dtype,
        max_binding: usize,
    ) -> Result<Self> {
        config.validate()?;
        let max_binding = max_binding.min(self::max_binding(gpu));
        let (pieces, layout) = arena_layout(gpu, config, max_binding, dtype)?;
        let specs = config.params();
        if params.len() != specs.len() {
            return Err(Error::shape(
                "model parameters",
                format!("{} tensors for a model of {}", params.len(), specs.len()),
            ));
        }
        for (spec, data) in specs.iter().zip(params) {
            if data.len() != spec.len() {
                return Err(Error::shape(
                    &spec.name,
                    format!("{} values for shape {:?}", data.len(), spec.shape),
                ));
            }
            if spec.shape.len() >= 2 {
                check_range(&spec.name, data, dtype)?;
            }
        }
        let tensors: Vec<ArenaTensor> = (pieces.iter())
            .map(|piece| ArenaTensor {
                len: piece.words(),
                decay: specs[piece.param].decays(),
            })
            .collect();
        // Only f32 weights train (see `Gpt::trains`).
        let shared = Shared::new(gpu, &layout, &tensors, dtype == Dtype::F32)?;
        for (piece, view) in pieces.iter().zip(&shared.params) {
            let values = &params[piece.param][piece.offset()..][..piece.len()];
            match piece.dtype {
                Dtype::F32 => gpu.write(view, values)?,
                half => gpu.write(view, &half.pack(values))?,
            }
        }
        Ok(Gpt {
            config: config.clone(),
            shared,
            pieces,
            dtype,
            max_binding,
            options: GraphOptions {
                epilogues: epilogues_pay(gpu),
                recompute: Recompute::None,
                precision: Dtype::F32,
            },
        })
    }

    /// This model with its training, evaluation and prefill graphs' matmul epilogues on or off (the
    /// same results either way; tests compare the two). Decode steps take [`decode_epilogues`].
    pub fn with_epilogues(mut self, on: bool) -> Self {
        self.options.epilogues = on;
        self
    }

    /// This model with its training graphs recomputing `what` in the backward (the same results with
    /// less memory; tests compare them).
    pub fn with_recompute(mut self, what: Recompute) -> Self {
        self.options.recompute = what;
        self
    }

    /// This model with its training graphs keeping activations for the backward in `precision`
    /// (16 bits: half the memory, and results rounded accordingly).
    pub fn with_precision(mut self, precision: Dtype) -> Self {
        self.options.precision = precision;
        self
    }

    /// How its graphs are laid out and stored.
    pub fn options(&self) -> GraphOptions {
        self.options
    }

    /// Whether the model has training plans (its weights in f32).
    pub fn trains(&self) -> bool {
        self.dtype == Dtype::F32
    }

    /// The graph of `mode` over this model's pieces (their dtypes included).
    fn graph(&self, batch: usize, seq: usize, micros: usize, mode: Mode) -> Result<ModelGraph> {
        if mode == Mode::Train && !self.trains() {
            return Err(Error::Invalid(format!(
                "a model whose weights are stored in {} is for inference only; train in f32",
                self.dtype.name()
            )));
        }
        let (binding, mut options) = (self.max_binding, self.options);
        if mode == Mode::Decode {
            options.epilogues = decode_epilogues();
        }
        let mut model = build_micro(&self.config, batch, seq, micros, mode, binding, options)?;
        // An inference model's pieces are stored in its dtype; a training graph's carry their own
        // (a mixed-precision step's 16-bit working copy).
        if !self.trains() {
            model.graph.pieces.clone_from(&self.pieces);
        }
        Ok(model)
    }

    /// How many buffers each arena takes (more than one when the parameters exceed one binding).
    pub fn arena_chunks(&self) -> usize {
        self.shared.arenas.chunks.len()
    }

    /// Reads `views` (one per piece) back as whole parameters, in [`GptConfig::params`] order.
    fn read_pieces(&self, gpu: &Gpu, views: &[Tensor]) -> Result<Vec<Vec<f32>>> {
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); self.config.params().len()];
        for (piece, view) in self.pieces.iter().zip(views) {
            let words = gpu.read::<u32>(view)?;
            out[piece.param].extend(piece.dtype.unpack(&words, piece.len()));
        }
        Ok(out)
    }

    /// Checks a batch shape against the context length.
    fn check_seq(&self, seq: usize) -> Result<()> {
        if seq == 0 || seq > self.config.n_positions {
            return Err(Error::Invalid(format!(
                "sequence length {seq} is outside 1..={} (the model's context length)",
                self.config.n_positions
            )));
        }
        Ok(())
    }

    /// The plan of a training step: forward, backward, gradient norm (clipping with it when the
    /// optimizer says), AdamW. A step runs as `micros` micro-batches of `batch` rows
    /// ([`Plan::run_micro`]), their gradients added up before one update: the step of one batch of
    /// `micros · batch` rows.
    pub fn train_plan(
        &self,
        gpu: &Gpu,
        batch: usize,
        seq: usize,
        micros: usize,
        optimizer: &Optimizer,
    ) -> Result<(Plan, ModelGraph)> {
        self.shard_train_plan(gpu, batch, seq, micros, 1, optimizer)
    }

    /// [`Gpt::train_plan`] for one of `shards` processes that share each micro-batch (data parallel):
    /// each runs `micros` micro-batches of `batch` rows, its share of a step of `micros · shards`
    /// micro-batches, whose loss gradient averages over all of them. With more than one shard the
    /// gradients are summed across processes before the update ([`Plan::exchange_gradients`]).
    pub fn shard_train_plan(
        &self,
        gpu: &Gpu,
        batch: usize,
        seq: usize,
        micros: usize,
        shards: usize,
        optimizer: &Optimizer,
    ) -> Result<(Plan, ModelGraph)> {
        self.check_seq(seq)?;
        let all = micros * shards;
        let mut model = self.graph(batch, seq, all, Mode::Train)?;
        let pieces = &model.graph.pieces;
        if pieces.iter().any(|p| p.dtype != Dtype::F32) {
            self.shared.working_copy(gpu, pieces, self.max_binding)?;
        }
        // Also without clipping: the trainer checks the norm for NaN and infinity.
        model.graph.push(Op::GradNorm {
            max_norm: optimizer.max_norm,
        });
        model.graph.push(Op::AdamW {
            config: optimizer.adamw,
            clip: optimizer.max_norm.is_some(),
        });
        let plan = Plan::compile(
            gpu,
            &model.graph,
            &self.shared,
            &[],
            model.loss.as_slice(),
            self.config.vocab_size,
        )?
        .with_micro_batches(gpu, micros, &self.shared)?;
        let plan = match shards {
            1 => plan,
            _ => plan.with_gradient_exchange(gpu)?,
        };
        Ok((plan, model))
    }

    /// The plan of an evaluation: forward and loss, no dropout, over the same parameters.
    pub fn eval_plan(&self, gpu: &Gpu, batch: usize, seq: usize) -> Result<(Plan, ModelGraph)> {
        self.check_seq(seq)?;
        let model = self.graph(batch, seq, 1, Mode::Eval)?;
        let plan = Plan::compile(
            gpu,
            &model.graph,
            &self.shared,
            &[],
            &[model.loss.as_slice(), model.logits.as_slice()].concat(),
            self.config.vocab_size,
        )?;
        Ok((plan, model))
    }

    /// The plan of [`Mode::Inspect`] (batch 1, a prompt of `seq` tokens): the forward to the logits with
    /// every layer's attention probabilities, capturing the tensors `capture` picks from the graph (read
    /// them with [`Plan::read_kept`] after a run).
    pub fn inspect_plan(
        &self,
        gpu: &Gpu,
        seq: usize,
        capture: impl FnOnce(&ModelGraph) -> Vec<TensorId>,
    ) -> Result<(Plan, ModelGraph)> {
        self.check_seq(seq)?;
        let model = self.graph(1, seq, 1, Mode::Inspect)?;
        let keep = capture(&model);
        let plan = Plan::compile(
            gpu,
            &model.graph,
            &self.shared,
            &[],
            &keep,
            self.config.vocab_size,
        )?;
        Ok((plan, model))
    }

    /// The plan of a training step's forward and backward only (dropout as configured, no optimizer):
    /// the gradients of one batch, read with [`Gpt::read_grads`], the parameters untouched.
    pub fn gradient_plan(&self, gpu: &Gpu, batch: usize, seq: usize) -> Result<(Plan, ModelGraph)> {
        self.check_seq(seq)?;
        let model = self.graph(batch, seq, 1, Mode::Train)?;
        let plan = Plan::compile(
            gpu,
            &model.graph,
            &self.shared,
            &[],
            model.loss.as_slice(),
            self.config.vocab_size,
        )?;
        Ok((plan, model))
    }

    /// Zeroed key/value caches for `sequences` sequences generated together, each `[N, ctx, Hkv·D]`
    /// (a key and a value cache per layer), for the prefill and decode plans to share; an error naming
    /// the storage binding limit when one cache exceeds it (fewer sequences fit). They store their
    /// values in the model's dtype (f32 when a 16-bit row would be an odd Hkv·D values).
    pub fn kv_caches(&self, gpu: &Gpu, sequences: usize) -> Result<KvCaches> {
        if sequences == 0 {
            return Err(Error::Invalid(
                "generation needs at least one sequence".into(),
            ));
        }
        let mut shape = cache_shape(&self.config, sequences);
        let width = shape[2];
        let dtype = match width % 2 {
            0 => self.dtype,
            _ => Dtype::F32,
        };
        shape[2] = dtype.words(width);
        let len: usize = shape.iter().product();
        if len > self.max_binding {
            return Err(Error::Limit {
                what: format!("the key/value cache of one layer for {sequences} sequences"),
                limit: "max_storage_buffer_binding_size",
                needed: 4 * len as u64,
                allowed: 4 * self.max_binding as u64,
                adapter: gpu.info().name.clone(),
            });
        }
        let tensors = (0..2 * self.config.n_layer)
            .map(|i| gpu.zeros(&format!("kv cache {i}"), &shape))
            .collect::<Result<_>>()?;
        Ok(KvCaches {
            sequences,
            tensors,
            dtype,
        })
    }

    /// The plan of one generation step for the sequences of `caches`: each one's new token's forward
    /// at the position written to the [`crate::graph::POSITION`] input, appending its keys and values
    /// to `caches` and attending over them. It reads back the logits `[N, 1, vocab]`
    /// ([`Plan::run_and_read`]).
    pub fn decode_plan(&self, gpu: &Gpu, caches: &KvCaches) -> Result<(Plan, ModelGraph)> {
        let n = caches.sequences;
        let model = self.graph(n, 1, 1, Mode::Decode)?;
        self.generation_plan(gpu, model, caches)
    }

    /// The plan of a prefill: the forward of `prompts` prompts of `seq` tokens at positions `0..` in
    /// one pass, writing their keys and values into rows `0..seq` of `caches` (one prompt fills every
    /// sequence's; else `prompts` is the caches' sequence count, one each). It reads back the logits of
    /// each prompt's last token, `[prompts, 1, vocab]`.
    pub fn prefill_plan(
        &self,
        gpu: &Gpu,
        caches: &KvCaches,
        prompts: usize,
        seq: usize,
    ) -> Result<(Plan, ModelGraph)> {
        self.check_seq(seq)?;
        let sequences = caches.sequences;
        if prompts != 1 && prompts != sequences {
            return Err(Error::Invalid(format!(
                "a prefill takes one prompt or one for each of the {sequences} sequences, not \
                 {prompts}"
            )));
        }
        let mode = Mode::Prefill { sequences };
        let model = self.graph(prompts, seq, 1, mode)?;
        self.generation_plan(gpu, model, caches)
    }

    /// Compiles a graph over the parameters and `caches`, reading back its logits. On CPU adapters its
    /// matrix-vector products read transposed copies of the weights made as it is built (see
    /// [`crate::graph::ops::TransposedWeights`]): a generation plan runs with the weights of then.
    fn generation_plan(
        &self,
        gpu: &Gpu,
        mut model: ModelGraph,
        caches: &KvCaches,
    ) -> Result<(Plan, ModelGraph)> {
        model.graph.cache_dtype = caches.dtype;
        let plan = Plan::compile(
            gpu,
            &model.graph,
            &self.shared,
            &caches.tensors,
            model.logits.as_slice(),
            self.config.vocab_size,
        )?;
        Ok((plan, model))
    }

    /// The parameters, in [`GptConfig::params`] order.
    pub fn read_params(&self, gpu: &Gpu) -> Result<Vec<Vec<f32>>> {
        self.read_pieces(gpu, &self.shared.params)
    }

    /// The gradients of the last step, in [`GptConfig::params`] order.
    pub fn read_grads(&self, gpu: &Gpu) -> Result<Vec<Vec<f32>>> {
        self.read_pieces(gpu, &self.shared.grads)
    }

    /// AdamW's moments `[m, v]`, each in [`GptConfig::params`] order.
    pub fn read_moments(&self, gpu: &Gpu) -> Result<[Vec<Vec<f32>>; 2]> {
        Ok([
            self.read_pieces(gpu, &self.shared.moments[0])?,
            self.read_pieces(gpu, &self.shared.moments[1])?,
        ])
    }

    /// Overwrites AdamW's moments `[m, v]` (each in [`GptConfig::params`] order), to resume a run.
    pub fn write_moments(&self, gpu: &Gpu, moments: &[Vec<Vec<f32>>; 2]) -> Result<()> {
        for (views, values) in self.shared.moments.iter().zip(moments) {
            for (piece, view) in self.pieces.iter().zip(views) {
                let data = values.get(piece.param).map(|v| v.get(piece.offset()..));
                let Some(Some(data)) = data.filter(|d| d.is_some_and(|d| d.len() >= piece.len()))
                else {
                    return Err(Error::shape(
                        "AdamW moments",
                        format!(
                            "no values for {:?} of parameter {}",
                            piece.shape, piece.param
                        ),
                    ));
                };
                gpu.write(view, &data[..piece.len()])?;
            }
        }
        Ok(())
    }
}

impl GptConfig {
    /// The GPU memory a training step at `batch × seq` would take, planned without a GPU for a device
    /// with WebGPU's default storage binding (parameters larger than one binding split as
    /// [`GptConfig::pieces`] says) and no matmul epilogues (as on CPU adapters; a GPU's fused step
    /// stores a little less: the projections' outputs before the residual add), recomputing and
    /// storing as `options` say.
    pub fn planned_memory(
        &self,
        batch: usize,
        seq: usize,
        options: GraphOptions,
    ) -> Result<MemoryReport> {
        let max_binding = crate::gpu::default_max_binding() as usize / 4;
        let options = GraphOptions {
            epilogues: false,
            ..options
        };
        let model = build(self, batch, seq, Mode::Train, max_binding, options)?;
        let params: usize = (model.graph.pieces.iter())
            .map(|p| p.len().next_multiple_of(Tensor::ALIGN))
            .sum();
        Ok(planned_memory(&model.graph, model.loss.as_slice(), params))
    }

    /// An error naming the first of `ids` (`what`: "training data", ...) outside the vocabulary.
    pub fn check_tokens(&self, what: &str, ids: &[u32]) -> Result<()> {
        check_token_ids(what, ids, self.vocab_size)
    }
}

/// The matmul variant a model's plans use on this adapter (what `wgpt info` reports).
pub fn matmul_variant(gpu: &Gpu) -> &'static str {
    crate::kernels::matmul::Variant::best(gpu).name()
}

/// Whether matmul epilogues pay on this adapter: on GPUs (a dispatch and a pass over the product fewer
/// per fused op), not on CPU adapters, where lavapipe ran the fused steps no faster (within the noise
/// on `baby`) and compiling the fused specializations added 0.6–1.3 s to a 5–8 s cold first step.
/// `WGPT_EPILOGUES=on|off` overrides it.
fn epilogues_pay(gpu: &Gpu) -> bool {
    epilogues_set().unwrap_or(!gpu.is_cpu())
}

/// Whether a decode step's products apply the elementwise op after them as they store: on every
/// adapter, unless `WGPT_EPILOGUES=off`. On CPU adapters they are matrix-vector products, which apply
/// GELU and the residual add in their stores: 36 dispatches fewer a token for GPT-2, which decoded on
/// lavapipe at 42 instead of 46 ms per token in bf16, 68 instead of 72 in f32.
fn decode_epilogues() -> bool {
    epilogues_set().unwrap_or(true)
}

/// `WGPT_EPILOGUES`, when set to on or off.
fn epilogues_set() -> Option<bool> {
    match std::env::var("WGPT_EPILOGUES").as_deref() {
        Ok("on" | "1" | "true") => Some(true),
        Ok("off" | "0" | "false") => Some(false),
        _ => None,
    }
}

/// Elements of the largest storage binding this device allows.
fn max_binding(gpu: &Gpu) -> usize {
    gpu.limits().max_storage_buffer_binding_size as usize / 4
}

/// The parameters' pieces and where each goes in the arenas (chunks of at most `max_binding`
/// elements); an error naming the limit when a parameter cannot be split to fit.
fn arena_layout(
    gpu: &Gpu,
    config: &GptConfig,
    max_binding: usize,
    dtype: Dtype,
) -> Result<(Vec<Piece>, ArenaLayout)> {
    let limit = |what: String, needed: usize| Error::Limit {
        what,
        limit: "max_storage_buffer_binding_size",
        needed: 4 * needed as u64,
        allowed: 4 * max_binding as u64,
        adapter: gpu.info().name.clone(),
    };
    let mut pieces = config
        .pieces(max_binding)
        .map_err(|e| limit(e.to_string(), 0))?;
    let specs = config.params();
    for piece in &mut pieces {
        if specs[piece.param].shape.len() >= 2 {
            piece.dtype = dtype;
        }
    }
    let lens: Vec<usize> = pieces.iter().map(Piece::words).collect();
    let layout = ArenaLayout::pack(&lens, max_binding).map_err(|_| {
        let largest = lens.iter().max().copied().unwrap_or(0);
        limit("a parameter tensor".into(), largest)
    })?;
    Ok((pieces, layout))
}

/// An error when parameter `name` holds a finite value that `dtype` cannot (past f16's largest,
/// 65504: it would become infinite).
fn check_range(name: &str, values: &[f32], dtype: Dtype) -> Result<()> {
    const F16_MAX: f32 = 65504.0;
    let beyond = values.iter().find(|v| v.is_finite() && v.abs() > F16_MAX);
    match (dtype, beyond) {
        (Dtype::F16, Some(v)) => Err(Error::Invalid(format!(
            "{name} holds {v}, beyond f16's range (±{F16_MAX}); load the model with --dtype bf16 \
             or f32"
        ))),
        _ => Ok(()),
    }
}

/// A standard normal sample (Box–Muller), so initialization needs no distribution crate.
fn normal(rng: &mut impl Rng) -> f32 {
    let u1: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}
