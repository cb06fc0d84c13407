//! A GPT on the GPU: its parameters, gradients and AdamW moments in arenas, and the plans that train and
//! evaluate it over those same buffers.

use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Tensor};
use crate::graph::planner::ArenaLayout;
use crate::graph::{Arenas, Op, Plan, Shared, TensorId};
use crate::kernels::{adamw, gradnorm};
use crate::model::graph::{build, Mode, ModelGraph};
use crate::model::{GptConfig, Init};

/// How the optimizer runs (fixed for a plan; the learning rate is set per step).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Optimizer {
    pub adamw: adamw::Config,
    /// Clip the global gradient norm to this (`None`: no clipping).
    pub max_norm: Option<f32>,
}

pub struct Gpt {
    pub config: GptConfig,
    shared: Shared,
}

impl Gpt {
    /// A model with GPT-2's initialization, reproducible from `seed`.
    pub fn init(gpu: &Gpu, config: &GptConfig, seed: u64) -> Result<Self> {
        // Refuse what the adapter cannot hold before drawing (possibly billions of) values.
        arena_layout(gpu, config)?;
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
        let layout = arena_layout(gpu, config)?;
        let specs = config.params();
        let len = layout.total_len();
        let arena = |name: &str| gpu.zeros(name, &[len]);
        let (p, g, m, v) = (
            arena("params")?,
            arena("grads")?,
            arena("adam m")?,
            arena("adam v")?,
        );
        let views = |t: &Tensor| -> Result<Vec<Tensor>> {
            layout
                .places
                .iter()
                .zip(&specs)
                .map(|(&(_, offset), spec)| t.view(offset, &[spec.len()]))
                .collect()
        };
        let param_views = views(&p)?;
        let grad_views = views(&g)?;
        for ((spec, view), data) in specs.iter().zip(&param_views).zip(params) {
            if data.len() != spec.len() {
                return Err(Error::shape(
                    &spec.name,
                    format!("{} values for shape {:?}", data.len(), spec.shape),
                ));
            }
            gpu.write(view, data)?;
        }
        let segments: Vec<adamw::Segment> = layout
            .places
            .iter()
            .zip(&specs)
            .map(|(&(_, offset), spec)| adamw::Segment {
                offset,
                len: spec.len(),
                decay: spec.decays(),
            })
            .collect();
        let shared = Shared {
            arenas: Arenas {
                segments: adamw::Segments::new(gpu, &segments)?,
                params: p,
                grads: g,
                m,
                v,
            },
            params: param_views,
            grads: grad_views,
            random_state: gpu.zeros("random state", &[2])?,
            hyper: gpu.zeros("adamw hyper", &[adamw::HYPER_LEN])?,
            norm: gpu.zeros("gradient norm", &[gradnorm::OUT_LEN])?,
        };
        Ok(Gpt {
            config: config.clone(),
            shared,
        })
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

    /// The plan of a training step: forward, backward, gradient norm (and clipping), AdamW.
    pub fn train_plan(
        &self,
        gpu: &Gpu,
        batch: usize,
        seq: usize,
        optimizer: &Optimizer,
    ) -> Result<(Plan, ModelGraph)> {
        self.check_seq(seq)?;
        let mut model = build(&self.config, batch, seq, Mode::Train);
        if let Some(max_norm) = optimizer.max_norm {
            model.graph.push(Op::GradNorm {
                max_norm: Some(max_norm),
            });
        }
        model.graph.push(Op::AdamW {
            config: optimizer.adamw,
            clip: optimizer.max_norm.is_some(),
        });
        let plan = Plan::compile(
            gpu,
            &model.graph,
            &self.shared,
            model.loss.as_slice(),
            self.config.vocab_size,
        )?;
        Ok((plan, model))
    }

    /// The plan of an evaluation: forward and loss, no dropout, over the same parameters.
    pub fn eval_plan(&self, gpu: &Gpu, batch: usize, seq: usize) -> Result<(Plan, ModelGraph)> {
        self.check_seq(seq)?;
        let model = build(&self.config, batch, seq, Mode::Eval);
        let plan = Plan::compile(
            gpu,
            &model.graph,
            &self.shared,
            &[model.loss.as_slice(), &[model.logits]].concat(),
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
        let model = build(&self.config, 1, seq, Mode::Inspect);
        let keep = capture(&model);
        let plan = Plan::compile(
            gpu,
            &model.graph,
            &self.shared,
            &keep,
            self.config.vocab_size,
        )?;
        Ok((plan, model))
    }

    /// The plan of a training step's forward and backward only (dropout as configured, no optimizer):
    /// the gradients of one batch, read with [`Gpt::read_grads`], the parameters untouched.
    pub fn gradient_plan(&self, gpu: &Gpu, batch: usize, seq: usize) -> Result<(Plan, ModelGraph)> {
        self.check_seq(seq)?;
        let model = build(&self.config, batch, seq, Mode::Train);
        let plan = Plan::compile(
            gpu,
            &model.graph,
            &self.shared,
            model.loss.as_slice(),
            self.config.vocab_size,
        )?;
        Ok((plan, model))
    }

    /// The plan of one generation step (batch 1): the new token's forward at the position written to
    /// the [`crate::graph::POSITION`] input, with per-layer key/value caches `[ctx, Hkv·D]` that the
    /// plan keeps from step to step. It reads back the logits `[1, 1, vocab]`
    /// ([`Plan::run_and_read`]).
    pub fn decode_plan(&self, gpu: &Gpu) -> Result<(Plan, ModelGraph)> {
        let model = build(&self.config, 1, 1, Mode::Decode);
        let plan = Plan::compile(
            gpu,
            &model.graph,
            &self.shared,
            &[model.logits],
            self.config.vocab_size,
        )?;
        Ok((plan, model))
    }

    /// Writes the per-step state every plan reads: the dropout seed and step, and AdamW's learning rate
    /// and bias corrections for step `step` (counted from 1). Once per step, before running a plan.
    pub fn set_step(
        &self,
        gpu: &Gpu,
        seed: u32,
        step: u32,
        lr: f64,
        optimizer: &adamw::Config,
    ) -> Result<()> {
        gpu.write(&self.shared.random_state, &[seed, step])?;
        gpu.write(&self.shared.hyper, &adamw::hyper(optimizer, lr, step))
    }

    /// The parameters, in [`GptConfig::params`] order.
    pub fn read_params(&self, gpu: &Gpu) -> Result<Vec<Vec<f32>>> {
        self.shared.params.iter().map(|t| gpu.read(t)).collect()
    }

    /// The gradients of the last step, in [`GptConfig::params`] order.
    pub fn read_grads(&self, gpu: &Gpu) -> Result<Vec<Vec<f32>>> {
        self.shared.grads.iter().map(|t| gpu.read(t)).collect()
    }

    /// AdamW's moments `[m, v]`, each in [`GptConfig::params`] order.
    pub fn read_moments(&self, gpu: &Gpu) -> Result<[Vec<Vec<f32>>; 2]> {
        let split = |arena: &Tensor| -> Result<Vec<Vec<f32>>> {
            self.shared
                .params
                .iter()
                .map(|p| {
                    let start = ((p.offset - self.shared.arenas.params.offset) / 4) as usize;
                    gpu.read(&arena.view(start, &p.shape)?)
                })
                .collect()
        };
        Ok([split(&self.shared.arenas.m)?, split(&self.shared.arenas.v)?])
    }

    /// Overwrites AdamW's moments `[m, v]` (each in [`GptConfig::params`] order), to resume a run.
    pub fn write_moments(&self, gpu: &Gpu, moments: &[Vec<Vec<f32>>; 2]) -> Result<()> {
        for (arena, values) in [&self.shared.arenas.m, &self.shared.arenas.v]
            .into_iter()
            .zip(moments)
        {
            for (p, data) in self.shared.params.iter().zip(values) {
                let start = ((p.offset - self.shared.arenas.params.offset) / 4) as usize;
                gpu.write(&arena.view(start, &p.shape)?, data)?;
            }
        }
        Ok(())
    }

    /// The gradient norm before clipping, as of the last training step.
    pub fn read_grad_norm(&self, gpu: &Gpu) -> Result<f32> {
        Ok(gpu.read::<f32>(&self.shared.norm)?[gradnorm::NORM])
    }
}

/// Where each parameter goes in the arenas; an error naming the limit when they do not fit one storage
/// binding of this device.
fn arena_layout(gpu: &Gpu, config: &GptConfig) -> Result<ArenaLayout> {
    config.validate()?;
    let lens: Vec<usize> = config.params().iter().map(|s| s.len()).collect();
    let max_binding = gpu.limits().max_storage_buffer_binding_size as usize / 4;
    let layout = ArenaLayout::pack(&lens, max_binding).map_err(|_| Error::Limit {
        what: "a parameter tensor".into(),
        limit: "max_storage_buffer_binding_size",
        needed: 4 * lens.iter().max().copied().unwrap_or(0) as u64,
        allowed: 4 * max_binding as u64,
        adapter: gpu.info().name.clone(),
    })?;
    if layout.chunks.len() > 1 {
        return Err(Error::Limit {
            what: format!("{} parameters in one arena", config.parameter_count()),
            limit: "max_storage_buffer_binding_size",
            needed: 4 * layout.total_len() as u64,
            allowed: 4 * max_binding as u64,
            adapter: gpu.info().name.clone(),
        });
    }
    Ok(layout)
}

/// A standard normal sample (Box–Muller), so initialization needs no distribution crate.
fn normal(rng: &mut impl Rng) -> f32 {
    let u1: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}
