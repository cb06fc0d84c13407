//! `wgpt train` (and the examples' training): flags, building the model and trainer they describe,
//! running with a progress bar or JSON lines, saving.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use crate::checkpoint;
use crate::cli::info::group;
use crate::cli::progress::{clock, TrainProgress};
use crate::cli::resume::{check_agrees, check_vocabulary, output_dir, owned, run_name};
use crate::cli::signals::StopOnSignals;
use crate::cli::values::{
    self as values, at_least_one, below_one, model_dir, non_negative, positive, RecomputeFlag,
};
use crate::cli::{gpu_for, gpu_for_model, saved_tokenizer, Corpus, DeviceArgs};
use crate::data::tokenizer::TOKENIZER_FILE;
use crate::dist::{Collective, Single};
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::{Gpt, GptConfig};
use crate::train::{latest_checkpoint, resume, Event, Output, Schedule, Settings, Trainer};

/// The flags of `wgpt train` (and of the examples), with nanoGPT's names as aliases (`--max_iters`,
/// `--batch_size`, ...). Unset flags keep the resumed run's settings, or the defaults shown.
#[derive(Args, Clone, Debug, Default)]
#[command(allow_negative_numbers = true)]
pub struct TrainArgs {
    /// Model preset: gpt2, gpt2-medium, gpt2-large, gpt2-xl, shakespeare-char, baby, anatomy
    /// [default: baby]. With --resume it must agree with the checkpoint.
    #[arg(long, conflicts_with_all = ["config", "init"])]
    pub preset: Option<String>,
    /// A config.json (Hugging Face GPT2Config keys) to build a fresh model from. With --resume it
    /// must agree with the checkpoint.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Start from the weights of a model directory (or a training output directory's model/).
    #[arg(long, visible_alias = "init_from", value_parser = model_dir, conflicts_with = "resume")]
    pub init: Option<PathBuf>,
    /// Continue a run from its output directory's latest checkpoint (or a directory saved with --save):
    /// weights, AdamW moments, step and settings, exactly; flags given here override its settings.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// UTF-8 text to train on with a character vocabulary (split 90/10 into train and validation).
    #[arg(long, conflicts_with = "tokens")]
    pub data: Option<PathBuf>,
    /// A uint16 token file (.bin) to train on (needs --vocab-size unless the model fixes it), or a
    /// directory `wgpt prepare` wrote (train.bin, val.bin and the tokenizer.json that sets the vocabulary).
    #[arg(long)]
    pub tokens: Option<PathBuf>,
    /// Vocabulary size of a --tokens file without a tokenizer [default: the tokenizer's]
    #[arg(long, visible_alias = "vocab_size", value_parser = at_least_one::<usize>)]
    pub vocab_size: Option<usize>,
    /// Write the model directory (with optimizer state, for --resume) here at the end.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Output directory: model/ (latest checkpoint), best/ (lowest validation loss), log.jsonl and
    /// loss.svg [default: out/<preset or config name>; with --resume OUT, OUT]
    #[arg(long, visible_alias = "out_dir")]
    pub out: Option<PathBuf>,
    /// Save the checkpoint in OUT/model every N steps (0: only at the end) [default: the evaluation
    /// interval]
    #[arg(long)]
    pub save_every: Option<u32>,
    /// Micro-batches of --batch rows per step, gradients accumulated before one update: the step of
    /// one batch of N x --batch rows [default: 1]
    #[arg(long, visible_alias = "gradient_accumulation_steps", value_parser = at_least_one::<u32>)]
    pub grad_accum: Option<u32>,
    /// Sequences per step (per micro-batch with --grad-accum) [default: 12]
    #[arg(long, visible_alias = "batch_size", value_parser = at_least_one::<usize>)]
    pub batch: Option<usize>,
    /// Tokens per sequence, at most the model's context [default: 64, or the context if shorter]
    #[arg(long, visible_alias = "block_size", value_parser = at_least_one::<usize>)]
    pub seq: Option<usize>,
    /// Steps of the whole run; a resumed run continues to this count [default: 2000]
    #[arg(long, visible_alias = "max_iters", value_parser = at_least_one::<u32>)]
    pub steps: Option<u32>,
    /// Peak learning rate [default: 1e-3]
    #[arg(long, visible_alias = "learning_rate", value_parser = positive::<f64>)]
    pub lr: Option<f64>,
    /// Learning rate at the end of the cosine schedule [default: 1e-4]
    #[arg(long, visible_alias = "min_lr", value_parser = non_negative::<f64>)]
    pub min_lr: Option<f64>,
    /// Learning-rate schedule after warmup [default: cosine]
    #[arg(long, value_enum)]
    pub schedule: Option<ScheduleFlag>,
    /// Steps of linear warmup, at most --steps [default: 100]
    #[arg(long, visible_alias = "warmup_iters")]
    pub warmup: Option<u32>,
    /// AdamW's decoupled weight decay, on matrices and embeddings only [default: 0.1]
    #[arg(long, visible_alias = "weight_decay", value_parser = non_negative::<f64>)]
    pub weight_decay: Option<f64>,
    /// AdamW's first-moment decay [default: 0.9]
    #[arg(long, value_parser = below_one::<f64>)]
    pub beta1: Option<f64>,
    /// AdamW's second-moment decay [default: 0.99]
    #[arg(long, value_parser = below_one::<f64>)]
    pub beta2: Option<f64>,
    /// AdamW's epsilon [default: 1e-8]
    #[arg(long, value_parser = positive::<f64>)]
    pub eps: Option<f64>,
    /// Clip the global gradient norm to this; 0 turns clipping off [default: 1]
    #[arg(long, visible_alias = "grad_clip", value_parser = non_negative::<f32>)]
    pub grad_clip: Option<f32>,
    /// Dropout on embeddings, attention and residual branches [default: the model's]
    #[arg(long, value_parser = below_one::<f32>)]
    pub dropout: Option<f32>,
    /// Seed of the initial weights, the batches and the dropout masks [default: 1337]
    #[arg(long)]
    pub seed: Option<u64>,
    /// Evaluate every N steps and at the end; 0 never evaluates [default: 250]
    #[arg(long, visible_alias = "eval_interval")]
    pub eval_every: Option<u32>,
    /// Batches per evaluation of each split [default: 20]
    #[arg(long, visible_alias = "eval_iters", value_parser = at_least_one::<u32>)]
    pub eval_steps: Option<u32>,
    /// Read the loss back (and report it) every N steps [default: 10]
    #[arg(long, visible_alias = "log_interval", value_parser = at_least_one::<u32>)]
    pub log_every: Option<u32>,
    /// Train on one fixed batch (the first B·T tokens), to check that the model can overfit it.
    #[arg(long)]
    pub overfit_batch: bool,
    /// One JSON object per line on stdout instead of the progress bar.
    #[arg(long)]
    pub json: bool,
    /// After training, print the run's timeline and where a step's GPU time goes, per kernel.
    #[arg(long)]
    pub profile: bool,
    /// What the backward recomputes instead of keeping from the forward: `gelu` the MLP's GELU
    /// output, `block` everything but each block's input (a fraction of the activation memory for
    /// about a third more compute); the same results either way (`wgpt info --recompute` shows the
    /// plan)
    #[arg(long, value_enum, default_value_t)]
    pub recompute: RecomputeFlag,
    /// How the activations the backward keeps and the weights the products read are stored: f32, or
    /// f16/bf16 (half the activation memory; the forward computes with the rounded values, every sum
    /// stays f32; the master weights, gradients, AdamW and checkpoints stay f32) [default: f32]
    #[arg(long, value_parser = values::dtype)]
    pub precision: Option<Dtype>,
    /// The title of OUT/loss.svg (the examples name their data; not a flag).
    #[arg(skip)]
    pub plot_title: Option<String>,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// `--schedule`'s values: clap stays in the CLI, and the trainer's [`Schedule`] knows nothing of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ScheduleFlag {
    /// The peak learning rate throughout (after warmup).
    Constant,
    /// Cosine decay from the peak to --min-lr at the last step (nanoGPT's).
    Cosine,
}

impl From<ScheduleFlag> for Schedule {
    fn from(flag: ScheduleFlag) -> Self {
        match flag {
            ScheduleFlag::Constant => Schedule::Constant,
            ScheduleFlag::Cosine => Schedule::Cosine,
        }
    }
}

impl TrainArgs {
    /// Refuses flags that cannot make a run with these settings (whose values may come from a resumed
    /// run), naming the flags.
    fn check(&self, s: &Settings) -> Result<()> {
        match self.warmup {
            Some(warmup) if warmup > s.steps => Err(Error::Invalid(format!(
                "--warmup {warmup} is longer than the run (--steps {}); give at most --steps",
                s.steps
            ))),
            _ => Ok(()),
        }
    }

    /// `base` with every flag that was given applied.
    pub fn settings(&self, base: Settings) -> Settings {
        let s = base;
        Settings {
            batch: self.batch.unwrap_or(s.batch),
            seq: self.seq.unwrap_or(s.seq),
            steps: self.steps.unwrap_or(s.steps),
            lr: self.lr.unwrap_or(s.lr),
            min_lr: self.min_lr.unwrap_or(s.min_lr),
            schedule: self.schedule.map_or(s.schedule, Schedule::from),
            warmup: self.warmup.unwrap_or(s.warmup),
            weight_decay: self.weight_decay.unwrap_or(s.weight_decay),
            beta1: self.beta1.unwrap_or(s.beta1),
            beta2: self.beta2.unwrap_or(s.beta2),
            eps: self.eps.unwrap_or(s.eps),
            grad_clip: self.grad_clip.unwrap_or(s.grad_clip),
            seed: self.seed.unwrap_or(s.seed),
            eval_every: self.eval_every.unwrap_or(s.eval_every),
            eval_steps: self.eval_steps.unwrap_or(s.eval_steps),
            log_every: self.log_every.unwrap_or(s.log_every),
            overfit_batch: self.overfit_batch || s.overfit_batch,
            grad_accum: self.grad_accum.unwrap_or(s.grad_accum),
            precision: self.precision.unwrap_or(s.precision),
        }
    }
}

/// The configuration of a fresh model: `--config`, else `--preset`, else `preset`.
fn fresh_config(args: &TrainArgs, preset: &str) -> Result<GptConfig> {
    match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
            GptConfig::from_json(&text, &path.display().to_string())
        }
        None => GptConfig::preset(args.preset.as_deref().unwrap_or(preset)),
    }
}

/// [`gpu_for`] the model `wgpt train` would train with these flags (`preset` when none names one).
pub fn gpu_for_training(args: &TrainArgs, preset: &str) -> Result<Gpu> {
    let resume = args.resume.as_deref().map(latest_checkpoint);
    match resume.as_deref().or(args.init.as_deref()) {
        Some(dir) => gpu_for_model(&args.device, dir),
        None => gpu_for(&args.device, &fresh_config(args, preset)?),
    }
}

/// How a finished run went.
pub struct Summary {
    pub steps: u32,
    pub seconds: f64,
    pub tokens_per_s: f64,
    pub last_loss: Option<f32>,
    pub last_eval: Option<(f32, f32)>,
    pub events: Vec<Event>,
}

/// Builds the model and trainer the flags describe, trains, saves, and reports as it goes. `defaults`
/// are the settings before flags (the example picks them per adapter); `preset` the model when neither
/// flags nor a checkpoint give one.
pub fn train(gpu: &Gpu, args: &TrainArgs, defaults: Settings, preset: &str) -> Result<Summary> {
    train_on(gpu, &Single, args, defaults, preset)
}

/// [`train`] as one of the processes of `ranks` training together (under `mpirun`): `--batch` is the
/// global batch, split by rows across them; rank 0 alone prints, logs, plots and saves.
pub fn train_on(
    gpu: &Gpu,
    ranks: &dyn Collective,
    args: &TrainArgs,
    defaults: Settings,
    preset: &str,
) -> Result<Summary> {
    let lead = ranks.rank() == 0;
    let resumed = args.resume.as_deref().map(latest_checkpoint);
    let checkpoint_dir = resumed.as_deref().or(args.init.as_deref());
    let tokenizer = match checkpoint_dir {
        Some(dir) => saved_tokenizer(dir)?,
        None => None,
    };
    let corpus = Corpus::load(
        args.data.as_deref(),
        args.tokens.as_deref(),
        args.vocab_size,
        tokenizer,
    )?;
    let (model, base, step) = model_to_train(gpu, args, defaults, preset, &corpus)?;
    let model = model.with_recompute(args.recompute.into());
    let mut settings = args.settings(base);
    args.check(&settings)?;
    if args.seq.is_none() {
        settings.seq = settings.seq.min(model.config.n_positions);
    }
    check_vocabulary(args, &model.config, &corpus)?;
    let out = match lead {
        true => Some(output_dir(args, preset, resumed.as_deref())?),
        false => None,
    };
    let (train, val) = (&corpus.train, &corpus.val);
    let mut trainer = Trainer::on_ranks(gpu, ranks, model, settings, train, val, step)?;
    let extra: Vec<(&str, Vec<u8>)> = (corpus.tokenizer.iter())
        .map(|t| (TOKENIZER_FILE, t.to_json().into_bytes()))
        .collect();
    let title = (args.plot_title.clone())
        .unwrap_or_else(|| format!("wgpt train: {}", run_name(args, preset)));
    let save_every = args.save_every.unwrap_or(trainer.settings.eval_every);
    let mut output = match &out {
        Some(out) => Some(Output::open(out, &title, save_every, step)?.with_extra(owned(&extra))),
        None => None,
    };
    if !args.json && lead {
        print_header(gpu, &trainer, step);
    }
    if args.profile {
        let s = &trainer.settings;
        trainer.record_timeline(((s.steps - step) * s.grad_accum) as usize);
    }
    if let Some(out) = &out {
        let what = "model/, best/, log.jsonl, loss.svg";
        eprintln!("output: {} ({what})", out.display());
    }
    let start = Instant::now();
    let quiet = args.json || !lead;
    let events = run_reporting(
        &mut trainer,
        output.as_mut(),
        step,
        args.json && lead,
        quiet,
    )?;
    let seconds = start.elapsed().as_secs_f64();
    if let (Some(dir), true) = (&args.save, lead) {
        trainer.save(dir, &extra)?;
    }
    if args.profile && lead {
        let s = &trainer.settings;
        let timeline = trainer.timeline()?;
        crate::cli::profile::print_timeline(&timeline, step, s.eval_every, s.grad_accum);
        let what = format!("a training step at batch {} x {}", s.batch, s.seq);
        if ranks.size() > 1 {
            crate::cli::profile::print_exchange(trainer.exchanges(), ranks.size(), &what);
        }
        crate::cli::profile::print_profile(gpu, trainer.train_plan(), &what)?;
    }
    let summary = Summary::new(trainer.step - step, seconds, &trainer.settings, events);
    if let (false, Some(output)) = (args.json, &output) {
        eprintln!(
            "{} steps in {} ({:.0} tokens/s), saved to {}",
            summary.steps,
            clock(std::time::Duration::from_secs_f64(seconds)),
            summary.tokens_per_s,
            (args.save.as_ref().unwrap_or(&output.latest())).display()
        );
    }
    Ok(summary)
}

/// The model to train, the settings its flags apply to and the steps already done: a resumed run's,
/// a checkpoint's weights (`--init`), or a fresh model of `--config`/`--preset` (`preset` when neither)
/// sized to the corpus's vocabulary.
fn model_to_train(
    gpu: &Gpu,
    args: &TrainArgs,
    defaults: Settings,
    preset: &str,
    corpus: &Corpus,
) -> Result<(Gpt, Settings, u32)> {
    Ok(match (&args.resume, &args.init) {
        (Some(dir), _) => {
            let (model, settings, step) = resume(gpu, dir)?;
            if args.preset.is_some() || args.config.is_some() {
                let config = with_dropout(fresh_config(args, preset)?, args.dropout);
                check_agrees(&config, &model.config, &latest_checkpoint(dir), corpus)?;
            }
            (model, settings, step)
        }
        (None, Some(dir)) => {
            let saved = checkpoint::load(dir)?;
            let config = with_dropout(saved.config, args.dropout);
            (Gpt::new(gpu, &config, &saved.params)?, defaults, 0)
        }
        (None, None) => {
            let mut config = fresh_config(args, preset)?;
            if let Some(v) = corpus.vocab_size {
                config.vocab_size = v;
            }
            let config = with_dropout(config, args.dropout);
            let seed = args.seed.unwrap_or(defaults.seed);
            (Gpt::init(gpu, &config, seed)?, defaults, 0)
        }
    })
}

/// What is about to run: adapter, model, settings and the GPU memory of a step (on stderr), each line
/// within 80 columns.
fn print_header(gpu: &Gpu, trainer: &Trainer, step: u32) {
    let (config, s) = (&trainer.model.config, &trainer.settings);
    let memory = trainer.train_plan().memory();
    let adapter = gpu.summary();
    eprintln!(
        "adapter:  {} on {} ({})",
        adapter.name, adapter.backend, adapter.device_type
    );
    eprintln!(
        "model:    {} layers, {} heads, width {}, context {}, vocabulary {}",
        config.n_layer,
        config.n_head,
        config.n_embd,
        config.n_positions,
        group(config.vocab_size)
    );
    eprintln!(
        "          {} parameters; a step needs {:.1} MiB of GPU memory{}",
        group(config.parameter_count()),
        memory.total() as f64 / (1 << 20) as f64,
        trainer.model.options().memory_flags()
    );
    eprintln!(
        "training: steps {step}..{}, batch {} x {} tokens{}, dropout {}",
        s.steps,
        s.batch,
        s.seq,
        match trainer.ranks().size() {
            1 => String::new(),
            n => format!(" over {n} ranks ({} rows each)", s.batch / n),
        },
        config.dropout
    );
    let schedule = match s.schedule {
        Schedule::Constant => "constant".to_string(),
        Schedule::Cosine => format!("cosine decay to {:e}", s.min_lr),
    };
    eprintln!(
        "schedule: lr {:e}, warmup {} steps, then {schedule}",
        s.lr, s.warmup
    );
}

/// Trains to the end (or a signal), reporting each event as a JSON line (`json`) or, unless `quiet`,
/// on the progress bar, recording it in `output` (if any) with the checkpoints; returns the events.
fn run_reporting(
    trainer: &mut Trainer,
    output: Option<&mut Output>,
    step: u32,
    json: bool,
    quiet: bool,
) -> Result<Vec<Event>> {
    let mut progress = TrainProgress::new(step, &trainer.settings, !quiet);
    let mut events = Vec::new();
    let signals = StopOnSignals::install()?;
    let result = trainer.run_into(output, signals.stop(), |event| {
        if json {
            println!("{}", event.to_json());
        }
        progress.event(event);
        events.push(*event);
    });
    progress.finish();
    result.map(|()| events)
}

impl Summary {
    fn new(steps: u32, seconds: f64, settings: &Settings, events: Vec<Event>) -> Self {
        Summary {
            steps,
            seconds,
            tokens_per_s: (steps as usize * settings.tokens_per_step()) as f64 / seconds,
            last_loss: events.iter().rev().find_map(|e| match e {
                Event::Step { loss, .. } => Some(*loss),
                _ => None,
            }),
            last_eval: events.iter().rev().find_map(|e| match e {
                Event::Eval {
                    train_loss,
                    val_loss,
                    ..
                } => Some((*train_loss, *val_loss)),
                _ => None,
            }),
            events,
        }
    }
}

fn with_dropout(config: GptConfig, dropout: Option<f32>) -> GptConfig {
    GptConfig {
        dropout: dropout.unwrap_or(config.dropout),
        ..config
    }
}
