//! A model with its training and evaluation plans and its data: one step (its micro-batches, one
//! update) and one evaluation.

use std::time::{Duration, Instant};

use crate::data::{Batch, BatchSampler};
use crate::dist::{hash_params, Collective, Single};
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Submission, Timeline};
use crate::model::{ExchangeTimes, Gpt, Plan, StepInputs, StepReadout};
use crate::train::{checkpoint_files, learning_rate, Settings};

pub struct Trainer<'a> {
    gpu: &'a Gpu,
    /// The processes training together (data parallel), each on its share of every micro-batch.
    ranks: &'a dyn Collective,
    pub model: Gpt,
    pub settings: Settings,
    /// Batches of `grad_accum · batch` rows, cut into micro-batches.
    train: BatchSampler<'a>,
    /// Batches of `batch` rows of each split, for evaluation.
    train_eval: BatchSampler<'a>,
    val: BatchSampler<'a>,
    train_plan: Plan,
    eval_plan: Plan,
    /// Steps completed.
    pub step: u32,
    /// The last loss read back that was finite, with its step.
    last_finite: Option<(u32, f32)>,
    /// Steps completed when the gradient norm was last read back finite.
    checked: u32,
    /// While recording a timeline ([`Trainer::record_timeline`]), the CPU time of each step's
    /// preparation and of its recording and submits.
    cpu_times: Option<Vec<(Duration, Duration)>>,
    /// With more than one rank, while recording a timeline: each step's [`Exchange`].
    exchanges: Option<Vec<Exchange>>,
    step_started: Option<Instant>,
}

/// Where a step of ranks training together spent its time ([`Trainer::exchanges`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Exchange {
    /// Wall time from the step's start to the next step's (zero for the last step).
    pub step: Duration,
    /// Waiting for the slowest rank to finish its backward (a barrier before the exchange, only
    /// while profiling, so the all-reduce's time is its transfer alone).
    pub wait: Duration,
    /// The gradient exchange: readback, all-reduce, upload.
    pub times: ExchangeTimes,
}

/// One process alone: what [`Trainer::new`] trains with.
static SINGLE: Single = Single;

/// Where a run of steps spent its time on each side ([`Trainer::timeline`]).
pub struct StepTimeline {
    /// CPU time per step: preparing it (batch, token buckets, uploads), then recording and submitting
    /// it (on drivers that run work inside the submit call, such as lavapipe, the latter includes the
    /// step's execution).
    pub cpu: Vec<(Duration, Duration)>,
    /// The GPU's `(begin, end)` of each submitted pass, nanoseconds on its clock.
    pub gpu: Vec<(f64, f64)>,
}

impl<'a> Trainer<'a> {
    /// Builds the plans (every pipeline and buffer of the run) for `model` at `step` steps done, after
    /// checking the settings.
    pub fn new(
        gpu: &'a Gpu,
        model: Gpt,
        settings: Settings,
        train: &'a [u32],
        val: &'a [u32],
        step: u32,
    ) -> Result<Self> {
        Self::on_ranks(gpu, &SINGLE, model, settings, train, val, step)
    }

    /// [`Trainer::new`] for one of the processes of `ranks` that train together: `settings.batch` is
    /// the global batch; this rank computes rows `r·B/N .. (r+1)·B/N` of each micro-batch (with the
    /// dropout masks those rows get in the whole batch), the gradients are summed across ranks before
    /// every rank applies the same update, so N ranks compute the step one process would.
    pub fn on_ranks(
        gpu: &'a Gpu,
        ranks: &'a dyn Collective,
        model: Gpt,
        settings: Settings,
        train: &'a [u32],
        val: &'a [u32],
        step: u32,
    ) -> Result<Self> {
        settings.validate()?;
        let model = model.with_precision(settings.precision);
        let (b, t, micros) = (settings.batch, settings.seq, settings.grad_accum as usize);
        let n = ranks.size();
        if !b.is_multiple_of(n) {
            return Err(Error::Distributed(format!(
                "--batch {b} does not split over {n} processes: give a multiple of {n} (--batch is the global batch)"
            )));
        }
        let optimizer = settings.optimizer();
        let plans = (model.shard_train_plan(gpu, b / n, t, micros, n, &optimizer))
            .and_then(|(train, _)| Ok((train, model.eval_plan(gpu, b / n, t)?.0)));
        let (train_plan, eval_plan) =
            plans.map_err(|e| out_of_memory(e, gpu, &model, &settings))?;
        let seed = settings.seed;
        Ok(Trainer {
            gpu,
            ranks,
            train: BatchSampler::new(train, b * micros, t, seed)?,
            train_eval: BatchSampler::new(train, b, t, seed)?,
            val: BatchSampler::new(val, b, t, val_seed(seed))?,
            model,
            settings,
            train_plan,
            eval_plan,
            step,
            last_finite: None,
            checked: step,
            cpu_times: None,
            exchanges: None,
            step_started: None,
        })
    }

    /// The training plan (for its memory report and profile).
    pub fn train_plan(&self) -> &Plan {
        &self.train_plan
    }

    fn batch(&self, index: u64) -> Result<Batch> {
        if self.settings.overfit_batch {
            self.train.first_batch()
        } else {
            Ok(self.train.batch(index))
        }
    }

    /// The learning rate of step `it` (0-based).
    pub fn lr_at(&self, it: u32) -> f64 {
        let s = &self.settings;
        learning_rate(s.schedule, it, s.steps, s.warmup, s.lr, s.min_lr)
    }

    /// Runs one training step and returns its loss when `read_loss`: the step's batch as `grad_accum`
    /// micro-batches of `batch` rows (micro-batch k the rows `k·batch ..` of the batch, with the
    /// dropout masks those rows get in the whole batch), one submit each, the last also updating. An
    /// [`Error::Diverged`] when the loss or the gradient norm read back is NaN or infinite.
    pub fn train_step(&mut self, read_loss: bool) -> Result<Option<f32>> {
        self.submit_step(read_loss)?;
        if !read_loss {
            return Ok(None);
        }
        self.collect_loss(self.step).map(Some)
    }

    /// Uploads and submits the next step's micro-batches without waiting for the GPU (see
    /// [`Trainer::train_step`]); its loss, with `read_loss`, comes later from
    /// [`Trainer::collect_loss`]. Returns the submission of the step's last micro-batch.
    pub(crate) fn submit_step(&mut self, read_loss: bool) -> Result<Submission> {
        let it = self.step;
        let lr = self.lr_at(it);
        let batch = self.batch(it as u64)?;
        let micros = self.settings.grad_accum as usize;
        let (n, rank) = (self.ranks.size(), self.ranks.rank());
        // Micro-batch k of the step is parts k·n .. k·n + n, one per rank, each `len` tokens.
        let len = batch.inputs.len() / (micros * n);
        let seed = dropout_seed(self.settings.seed);
        let (mut submission, mut prepared, mut submitting) = (None, Duration::ZERO, Duration::ZERO);
        let started = Instant::now();
        for k in 0..micros {
            let start = Instant::now();
            let part = k * n + rank;
            let rows = part * len..(part + 1) * len;
            let inputs = StepInputs {
                tokens: &batch.inputs[rows.clone()],
                targets: &batch.targets[rows],
            };
            self.train_plan.set_batch(self.gpu, &inputs)?;
            (self.train_plan).set_micro_step(self.gpu, [seed, it + 1, part as u32], lr)?;
            prepared += start.elapsed();
            let submitted = Instant::now();
            submission = self.train_plan.submit_micro(self.gpu, k, read_loss)?;
            submitting += submitted.elapsed();
        }
        if let Some(times) = &mut self.cpu_times {
            times.push((prepared, submitting));
        }
        self.step += 1;
        let submission =
            submission.ok_or_else(|| Error::Invalid("a step of no micro-batches".into()))?;
        if n == 1 {
            return Ok(submission);
        }
        // Profiling waits for the backward and the slowest rank here, so the exchange's readback time
        // is the copy alone; otherwise each gradient chunk goes as soon as the backward finishes it.
        let ranks = self.ranks;
        let waited = Instant::now();
        if self.exchanges.is_some() {
            self.gpu.wait_for(&submission)?;
            ranks.gather_u64(0)?;
        }
        let wait = waited.elapsed();
        let (update, times) =
            (self.train_plan).exchange_gradients(self.gpu, |bucket| ranks.sum_f32(bucket))?;
        if let Some(exchanges) = &mut self.exchanges {
            if let Some(previous) = self.step_started.replace(started) {
                if let Some(last) = exchanges.last_mut() {
                    last.step = started - previous;
                }
            }
            let step = Duration::ZERO;
            exchanges.push(Exchange { step, wait, times });
        }
        Ok(update)
    }

    /// With more than one rank and a timeline recorded: where each step spent its time.
    pub fn exchanges(&self) -> &[Exchange] {
        self.exchanges.as_deref().unwrap_or(&[])
    }

    /// The processes training together.
    pub fn ranks(&self) -> &dyn Collective {
        self.ranks
    }

    /// Waits until `submission` has run (steps submitted after it may still run).
    pub(crate) fn wait_for(&self, submission: &Submission) -> Result<()> {
        self.gpu.wait_for(submission)
    }

    /// The loss of the oldest submitted step that asked for it (step `step`), waiting only for that
    /// step; an [`Error::Diverged`] when it or the gradient norm is NaN or infinite.
    pub(crate) fn collect_loss(&mut self, step: u32) -> Result<f32> {
        let readout = self.train_plan.collect_step(self.gpu)?;
        let readout = self.whole_step(readout)?;
        self.check(&readout, step)
    }

    /// The readout of the whole step from this rank's: every rank's micro-batch losses, in the order
    /// one process would run them (the gradient norm is the same on every rank already).
    fn whole_step(&self, readout: StepReadout) -> Result<StepReadout> {
        let (n, rank) = (self.ranks.size(), self.ranks.rank());
        if n == 1 {
            return Ok(readout);
        }
        let mut losses = vec![0.0f32; readout.losses.len() * n];
        for (k, loss) in readout.losses.iter().enumerate() {
            losses[k * n + rank] = *loss;
        }
        self.ranks.sum_f32(&mut losses)?;
        Ok(StepReadout { losses, ..readout })
    }

    /// Stops with an error when the ranks' parameters differ (they must stay identical: the same
    /// update of the same summed gradients). Nothing to check with one rank.
    pub fn check_ranks_agree(&self) -> Result<()> {
        if self.ranks.size() == 1 {
            return Ok(());
        }
        let hash = hash_params(&self.model.read_params(self.gpu)?);
        let hashes = self.ranks.gather_u64(hash)?;
        match hashes.iter().position(|&h| h != hashes[0]) {
            None => Ok(()),
            Some(rank) => Err(Error::Distributed(format!(
                "the ranks' parameters differ after step {}: rank {rank} holds {:016x}, rank 0 {:016x}; \
                 stopped (the last checkpoint stays as it was). The ranks must run the same build, \
                 settings and data",
                self.step, hashes[rank], hashes[0]
            ))),
        }
    }

    /// Whether to stop on a signal: on every rank alike, when any rank got one.
    pub(crate) fn stop_requested(&self, stop: &crate::train::Stop) -> Result<Option<i32>> {
        let signal = stop.requested();
        if self.ranks.size() == 1 {
            return Ok(signal);
        }
        let all = self.ranks.gather_u64(signal.map_or(0, |s| s as u64))?;
        Ok(all.into_iter().max().filter(|&s| s > 0).map(|s| s as i32))
    }

    /// From now on, records each step's CPU time and the GPU's begin and end of up to `passes`
    /// submitted passes (for `--profile`; nothing on the GPU side without timestamp queries).
    pub fn record_timeline(&mut self, passes: usize) {
        self.train_plan
            .set_timeline(Timeline::new(self.gpu, passes));
        self.cpu_times = Some(Vec::with_capacity(passes));
        if self.ranks.size() > 1 {
            self.exchanges = Some(Vec::with_capacity(passes));
        }
    }

    /// What [`Trainer::record_timeline`] recorded (waits for the GPU).
    pub fn timeline(&self) -> Result<StepTimeline> {
        let gpu = match self.train_plan.timeline() {
            Some(timeline) => timeline.read(self.gpu)?,
            None => Vec::new(),
        };
        let cpu = self.cpu_times.clone().unwrap_or_default();
        Ok(StepTimeline { cpu, gpu })
    }

    /// Step `step`'s loss, or [`Error::Diverged`] naming the step, the last finite loss and what to
    /// try.
    fn check(&mut self, readout: &StepReadout, step: u32) -> Result<f32> {
        let loss = readout.loss();
        let what = if !loss.is_finite() {
            format!("the loss became {loss} at step {step}")
        } else if !readout.grad_norm.is_finite() {
            format!(
                "the gradient norm became {} at step {step}",
                readout.grad_norm
            )
        } else if !readout.norm_sum.is_finite() {
            let steps = format!("{}..={step}", self.checked + 1);
            format!("the gradient norm became NaN or infinite at a step in {steps}")
        } else {
            self.last_finite = Some((step, loss));
            self.checked = step;
            return Ok(loss);
        };
        Err(Error::Diverged(format!(
            "training diverged: {what} ({}); stopped without saving over the last checkpoint. \
             Lower the learning rate (it was {:e} at this step), clip the gradient norm, or check the \
             data{}",
            self.last_finite(),
            self.lr_at(step - 1),
            self.range_hint()
        )))
    }

    /// What to try besides when the step keeps activations in f16, whose range ends at 65,504.
    fn range_hint(&self) -> &'static str {
        match self.settings.precision {
            Dtype::F16 => {
                "; with --precision f16, an activation past 65,504 becomes infinite: --precision \
                 bf16 has f32's range"
            }
            _ => "",
        }
    }

    /// The last finite loss read back, for messages.
    fn last_finite(&self) -> String {
        match self.last_finite {
            Some((step, loss)) => format!("the last finite loss was {loss:.4} at step {step}"),
            None => "no finite loss was read before".into(),
        }
    }

    /// Mean loss over `eval_steps` batches of the training (`val = false`) or validation split, with
    /// the evaluation plan (no dropout). The same batches at every evaluation, so curves compare.
    pub fn evaluate(&self, val: bool) -> Result<f32> {
        let sampler = if val { &self.val } else { &self.train_eval };
        let steps = self.settings.eval_steps;
        let loss = mean_loss(
            self.gpu,
            self.ranks,
            &self.eval_plan,
            sampler,
            steps,
            |_| {},
        )?;
        if !loss.is_finite() {
            return Err(Error::Diverged(format!(
                "training diverged: the {} loss became {loss} at step {} ({}); stopped without saving over the last checkpoint. Lower the learning rate, clip the gradient norm, or check the data",
                if val { "validation" } else { "training" },
                self.step,
                self.last_finite()
            )));
        }
        Ok(loss)
    }

    /// The files of a checkpoint of the run as it stands (model, `extra` such as the tokenizer, AdamW
    /// moments, step and settings); an error when a value is NaN or infinite.
    pub fn checkpoint_files(&self, extra: &[(&str, Vec<u8>)]) -> Result<Vec<(String, Vec<u8>)>> {
        let params = self.model.read_params(self.gpu)?;
        let moments = self.model.read_moments(self.gpu)?;
        let (config, s) = (&self.model.config, &self.settings);
        checkpoint_files(config, &params, &moments, self.step, s, extra).map_err(|e| match e {
            Error::Diverged(what) => Error::Diverged(format!("{what} ({})", self.last_finite())),
            e => e,
        })
    }

    /// Saves the checkpoint (see [`Trainer::checkpoint_files`]) to `dir`, atomically.
    pub fn save(&self, dir: &std::path::Path, extra: &[(&str, Vec<u8>)]) -> Result<()> {
        crate::checkpoint::write_dir(dir, &self.checkpoint_files(extra)?)
    }
}

/// An [`Error::OutOfMemory`] building the plans of `settings` made to name the model, the batch and the
/// planned bytes, with the largest smaller `--batch` whose plans build (probed, halving); other errors
/// as they are.
fn out_of_memory(error: Error, gpu: &Gpu, model: &Gpt, settings: &Settings) -> Error {
    let Error::OutOfMemory { adapter, .. } = error else {
        return error;
    };
    let (config, b, t) = (&model.config, settings.batch, settings.seq);
    let planned = (config.planned_memory(b, t, model.options())).map_or(0, |m| m.total());
    let fits = std::iter::successors(Some(b / 2), |&n| (n > 1).then_some(n / 2))
        .filter(|&n| n > 0)
        .find(|&n| {
            let train = model.train_plan(gpu, n, t, 1, &settings.optimizer());
            train.is_ok() && model.eval_plan(gpu, n, t).is_ok()
        });
    let hint = match fits {
        Some(n) => format!(
            "; --batch {n} fits (add --grad-accum {} to keep the batch of {} rows)",
            (b * settings.grad_accum as usize).div_ceil(n),
            b * settings.grad_accum as usize
        ),
        None => "; not even --batch 1 fits: give a shorter --seq or a smaller model".into(),
    };
    Error::OutOfMemory {
        what: format!(
            "training a {}-parameter model ({} layers, width {}) on batches of {b} x {t} tokens",
            config.parameter_count(),
            config.n_layer,
            config.n_embd
        ),
        planned_mib: planned as f64 / (1 << 20) as f64,
        adapter,
        hint,
    }
}

/// The dropout masks' 32-bit seed: the run's 64-bit seed folded, so seeds that differ only above bit 31
/// still draw different masks (and seeds below 2³² keep their own value).
fn dropout_seed(seed: u64) -> u32 {
    (seed ^ (seed >> 32)) as u32
}

/// The seed of the validation batches of a run seeded with `seed`.
fn val_seed(seed: u64) -> u64 {
    seed ^ 0x5eed
}

/// The mean loss of `plan` over `steps` (at least one) batches of `sampler`, the same batches at every
/// call: this rank's rows of each, the ranks' equal shares averaged. Calls `done` with the batches done
/// after each.
fn mean_loss(
    gpu: &Gpu,
    ranks: &dyn Collective,
    plan: &Plan,
    sampler: &BatchSampler,
    steps: u32,
    mut done: impl FnMut(u32),
) -> Result<f32> {
    let (n, rank) = (ranks.size(), ranks.rank());
    let mut total = [0.0f64];
    for i in 0..steps.max(1) {
        let batch = sampler.batch(u64::MAX - i as u64);
        // This rank's rows of the batch (all of it alone).
        let len = batch.inputs.len() / n;
        let rows = rank * len..(rank + 1) * len;
        plan.set_batch(
            gpu,
            &StepInputs {
                tokens: &batch.inputs[rows.clone()],
                targets: &batch.targets[rows],
            },
        )?;
        let loss = plan.run(gpu, true)?.unwrap_or(f32::NAN);
        total[0] += loss as f64;
        done(i + 1);
    }
    ranks.sum_f64(&mut total)?;
    Ok((total[0] / n as f64 / steps.max(1) as f64) as f32)
}

/// The mean validation loss of a saved `model` as a trainer with `settings` evaluates it (the same
/// batches of `val`), without a training plan: a model in any dtype, at the memory of its evaluation
/// plan alone. Calls `done` with the batches done after each.
pub fn validation_loss(
    gpu: &Gpu,
    model: &Gpt,
    settings: &Settings,
    val: &[u32],
    done: impl FnMut(u32),
) -> Result<f32> {
    settings.validate()?;
    let (b, t) = (settings.batch, settings.seq);
    let (plan, _) = model.eval_plan(gpu, b, t)?;
    let sampler = BatchSampler::new(val, b, t, val_seed(settings.seed))?;
    let loss = mean_loss(gpu, &SINGLE, &plan, &sampler, settings.eval_steps, done)?;
    if !loss.is_finite() {
        return Err(Error::Diverged(format!(
            "the validation loss is {loss}: the model's weights or the data are broken"
        )));
    }
    Ok(loss)
}
