//! What `wgpt train`, `wgpt eval` and the train_shakespeare example share: their flags, loading data and
//! models from them, and running with a progress bar or JSON lines. `tokenizer` holds `wgpt prepare` and
//! `wgpt tokenizer`.

mod inspect;
mod tokenizer;

pub use inspect::{inspect, InspectArgs, ANATOMY_FILE};
pub use tokenizer::{prepare, tokenizer_command, PrepareArgs, TokenizerCommand};

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;

use crate::checkpoint;
use crate::data::tokenizer::TOKENIZER_FILE;
use crate::data::{read_tokens, split_train_val, TextStream, Tokenizer};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::{Gpt, GptConfig};
use crate::train::{clock, resume, Event, Progress, Schedule, Settings, Trainer};

/// The flags of `wgpt train` (and of the example), named as a nanoGPT user expects. Unset flags keep the
/// resumed run's settings, or the defaults.
#[derive(Args, Clone, Debug, Default)]
pub struct TrainArgs {
    /// Model preset: gpt2, gpt2-medium, gpt2-large, gpt2-xl, shakespeare-char, baby, anatomy.
    #[arg(long, conflicts_with_all = ["config", "init", "resume"])]
    pub preset: Option<String>,
    /// A config.json (Hugging Face GPT2Config keys) to build a fresh model from.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Start from the weights of a model directory.
    #[arg(long, conflicts_with = "resume")]
    pub init: Option<PathBuf>,
    /// Continue a run saved with --save (weights, AdamW moments, step and settings).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// UTF-8 text to train on with a character vocabulary (split 90/10 into train and validation).
    #[arg(long, conflicts_with = "tokens")]
    pub data: Option<PathBuf>,
    /// A uint16 token file (.bin) to train on (needs --vocab-size unless the model fixes it), or a
    /// directory `wgpt prepare` wrote (train.bin, val.bin and the tokenizer.json that sets the vocabulary).
    #[arg(long)]
    pub tokens: Option<PathBuf>,
    #[arg(long)]
    pub vocab_size: Option<usize>,
    /// Write the model directory (with optimizer state, for --resume) here at the end.
    #[arg(long)]
    pub save: Option<PathBuf>,
    #[arg(long)]
    pub batch: Option<usize>,
    /// Sequence length (at most the model's context).
    #[arg(long)]
    pub seq: Option<usize>,
    /// Steps of the whole run (a resumed run continues to this count).
    #[arg(long)]
    pub steps: Option<u32>,
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long)]
    pub min_lr: Option<f64>,
    #[arg(long, value_enum)]
    pub schedule: Option<Schedule>,
    #[arg(long)]
    pub warmup: Option<u32>,
    #[arg(long)]
    pub weight_decay: Option<f64>,
    #[arg(long)]
    pub beta1: Option<f64>,
    #[arg(long)]
    pub beta2: Option<f64>,
    #[arg(long)]
    pub eps: Option<f64>,
    /// Clip the global gradient norm (0 = off).
    #[arg(long)]
    pub grad_clip: Option<f32>,
    /// Dropout on embeddings, attention and residual branches (overrides the model's).
    #[arg(long)]
    pub dropout: Option<f32>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Evaluate every N steps (0 = never).
    #[arg(long)]
    pub eval_every: Option<u32>,
    /// Batches per evaluation of each split.
    #[arg(long)]
    pub eval_steps: Option<u32>,
    /// Read the loss back every N steps.
    #[arg(long)]
    pub log_every: Option<u32>,
    /// Train on one fixed batch (the first B·T tokens).
    #[arg(long)]
    pub overfit_batch: bool,
    /// One JSON object per line on stdout instead of the progress bar.
    #[arg(long)]
    pub json: bool,
}

impl TrainArgs {
    /// `base` with every flag that was given applied.
    pub fn settings(&self, base: Settings) -> Settings {
        let s = base;
        Settings {
            batch: self.batch.unwrap_or(s.batch),
            seq: self.seq.unwrap_or(s.seq),
            steps: self.steps.unwrap_or(s.steps),
            lr: self.lr.unwrap_or(s.lr),
            min_lr: self.min_lr.unwrap_or(s.min_lr),
            schedule: self.schedule.unwrap_or(s.schedule),
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
        }
    }
}

/// A corpus as token ids split into training and validation, with its tokenizer when known.
pub struct Corpus {
    pub train: Vec<u32>,
    pub val: Vec<u32>,
    pub tokenizer: Option<Tokenizer>,
    /// The vocabulary the ids come from (None: a token file without --vocab-size or tokenizer).
    pub vocab_size: Option<usize>,
}

impl Corpus {
    /// Reads `--data` (text, character vocabulary) or `--tokens` (uint16 ids: one file split 90/10, or a
    /// `wgpt prepare` directory). A model's own tokenizer, when given, encodes the text instead, so a
    /// resumed or fine-tuned model keeps its ids; a prepared directory's tokenizer must then be the same.
    pub fn load(
        data: Option<&Path>,
        tokens: Option<&Path>,
        vocab_size: Option<usize>,
        tokenizer: Option<Tokenizer>,
    ) -> Result<Self> {
        match (data, tokens) {
            (Some(path), _) => {
                let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
                let tokenizer = tokenizer.unwrap_or_else(|| Tokenizer::chars_of(&text));
                let tokens = tokenizer
                    .encode(&text)
                    .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
                Ok(Corpus::split(tokens, Some(tokenizer), None))
            }
            (None, Some(dir)) if dir.is_dir() => Self::prepared(dir, vocab_size, tokenizer),
            (None, Some(path)) => Ok(Corpus::split(read_tokens(path)?, tokenizer, vocab_size)),
            (None, None) => Err(Error::Invalid(
                "no training data: give --data FILE (text) or --tokens FILE.bin|DIR".into(),
            )),
        }
    }

    /// One token sequence split 90/10; the vocabulary is the tokenizer's unless `vocab_size` says.
    fn split(tokens: Vec<u32>, tokenizer: Option<Tokenizer>, vocab_size: Option<usize>) -> Self {
        let (train, val) = split_train_val(&tokens);
        Corpus {
            train: train.to_vec(),
            val: val.to_vec(),
            vocab_size: vocab_size.or(tokenizer.as_ref().map(Tokenizer::vocab_size)),
            tokenizer,
        }
    }

    /// A directory `wgpt prepare` wrote: train.bin, val.bin and (optionally) tokenizer.json.
    fn prepared(dir: &Path, vocab_size: Option<usize>, model: Option<Tokenizer>) -> Result<Self> {
        let path = dir.join(TOKENIZER_FILE);
        let tokenizer = match (path.exists().then(|| Tokenizer::load(&path)).transpose()?, model) {
            (Some(own), Some(model)) if own.to_json() != model.to_json() => {
                return Err(Error::Invalid(format!(
                    "{}: the data's tokenizer differs from the model's, so its ids mean other tokens; prepare the data with the model's tokenizer.json",
                    path.display()
                )))
            }
            (own, model) => own.or(model),
        };
        Ok(Corpus {
            train: read_tokens(&dir.join("train.bin"))?,
            val: read_tokens(&dir.join("val.bin"))?,
            vocab_size: vocab_size.or(tokenizer.as_ref().map(Tokenizer::vocab_size)),
            tokenizer,
        })
    }
}

/// The tokenizer of a model directory: its tokenizer.json (characters or BPE), or GPT-2's when there is
/// none and config.json says the vocabulary is GPT-2's 50,257 (see [`Tokenizer::from_model_dir`]).
pub fn saved_tokenizer(dir: &Path) -> Result<Option<Tokenizer>> {
    let vocab = checkpoint::read_extra(dir, checkpoint::CONFIG_FILE)?
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|config| config["vocab_size"].as_u64())
        .unwrap_or(0);
    Tokenizer::from_model_dir(dir, vocab as usize)
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

/// The device for a model of `config`: WebGPU's default limits, the storage binding raised toward the
/// largest parameter where the adapter allows (so it stays whole; the model splits it otherwise), and
/// kernel variants autotuned unless `WGPT_AUTOTUNE=off`.
pub fn gpu_for(config: &GptConfig) -> Result<Gpu> {
    Gpu::with_binding_room(config.largest_parameter_bytes()).map(Gpu::autotuned)
}

/// [`gpu_for`] the model a model directory holds (its config.json).
pub fn gpu_for_model(dir: &Path) -> Result<Gpu> {
    gpu_for(&checkpoint::load_config(dir)?)
}

/// [`gpu_for`] the model `wgpt train` would train with these flags (`preset` when none names one).
pub fn gpu_for_training(args: &TrainArgs, preset: &str) -> Result<Gpu> {
    match args.resume.as_deref().or(args.init.as_deref()) {
        Some(dir) => gpu_for_model(dir),
        None => gpu_for(&fresh_config(args, preset)?),
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
    let checkpoint_dir = args.resume.as_deref().or(args.init.as_deref());
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
    let (model, base, step) = match (&args.resume, &args.init) {
        (Some(dir), _) => resume(gpu, dir)?,
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
    };
    let mut settings = args.settings(base);
    if args.seq.is_none() {
        settings.seq = settings.seq.min(model.config.n_positions);
    }
    let vocab = model.config.vocab_size;
    if let Some(v) = corpus.vocab_size.filter(|&v| v > vocab) {
        return Err(Error::Invalid(format!(
            "the data's vocabulary ({v}) is larger than the model's ({vocab})"
        )));
    }
    crate::kernels::crossentropy::check_token_ids("training data", &corpus.train, vocab)?;
    crate::kernels::crossentropy::check_token_ids("validation data", &corpus.val, vocab)?;
    let config = model.config.clone();
    let mut trainer = Trainer::new(gpu, model, settings, &corpus.train, &corpus.val, step)?;
    let s = trainer.settings.clone();
    if !args.json {
        let memory = trainer.train_plan().memory();
        eprintln!("adapter: {}", gpu.summary());
        eprintln!(
            "model: {} layers, {} heads, width {}, context {}, vocabulary {}, {} parameters",
            config.n_layer,
            config.n_head,
            config.n_embd,
            config.n_positions,
            config.vocab_size,
            config.parameter_count()
        );
        eprintln!(
            "training: batch {} x {} tokens, steps {}..{}, lr {:e} ({:?} to {:e}, warmup {}), dropout {}, GPU memory {:.1} MiB",
            s.batch,
            s.seq,
            step,
            s.steps,
            s.lr,
            s.schedule,
            s.min_lr,
            s.warmup,
            config.dropout,
            memory.total() as f64 / (1 << 20) as f64
        );
    }
    let progress = Progress::new(step, s.steps, !args.json);
    let start = Instant::now();
    let mut events = Vec::new();
    let extra: Vec<(&str, Vec<u8>)> = corpus
        .tokenizer
        .iter()
        .map(|t| (TOKENIZER_FILE, t.to_json().into_bytes()))
        .collect();
    let save = args.save.clone();
    trainer.run(|event| {
        if args.json {
            println!("{}", event.to_json());
        }
        match *event {
            Event::Step {
                step,
                loss,
                tokens_per_s,
                ..
            } => progress.update(step, loss, tokens_per_s),
            Event::Eval {
                step,
                train_loss,
                val_loss,
            } => {
                progress.break_line();
                if !args.json {
                    eprintln!("step {step}: train loss {train_loss:.4}, val loss {val_loss:.4}");
                }
            }
        }
        events.push(*event);
    })?;
    progress.break_line();
    let seconds = start.elapsed().as_secs_f64();
    if let Some(dir) = &save {
        trainer.save(dir, &extra)?;
    }
    let done = trainer.step - step;
    let summary = Summary {
        steps: done,
        seconds,
        tokens_per_s: (done as usize * s.tokens_per_step()) as f64 / seconds,
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
    };
    if !args.json {
        eprintln!(
            "{} steps in {} ({:.0} tokens/s){}",
            summary.steps,
            clock(std::time::Duration::from_secs_f64(seconds)),
            summary.tokens_per_s,
            save.map(|d| format!(", saved to {}", d.display()))
                .unwrap_or_default()
        );
    }
    Ok(summary)
}

fn with_dropout(config: GptConfig, dropout: Option<f32>) -> GptConfig {
    GptConfig {
        dropout: dropout.unwrap_or(config.dropout),
        ..config
    }
}

/// The flags of `wgpt eval`.
#[derive(Args, Clone, Debug)]
pub struct EvalArgs {
    /// The model directory to evaluate.
    #[arg(long)]
    pub model: PathBuf,
    /// Text to evaluate on (encoded with the model's tokenizer).
    #[arg(long, conflicts_with = "tokens")]
    pub data: Option<PathBuf>,
    /// A uint16 token file, or a `wgpt prepare` directory (its val.bin is evaluated).
    #[arg(long)]
    pub tokens: Option<PathBuf>,
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Sequence length (default: the model's context).
    #[arg(long)]
    pub seq: Option<usize>,
    /// Batches drawn from the validation split (the last 10% of the data).
    #[arg(long, default_value_t = 50)]
    pub eval_steps: u32,
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
    #[arg(long)]
    pub json: bool,
}

/// Mean loss of a saved model over batches of the data's validation split.
pub fn eval(gpu: &Gpu, args: &EvalArgs) -> Result<f32> {
    let saved = checkpoint::load(&args.model)?;
    let corpus = Corpus::load(
        args.data.as_deref(),
        args.tokens.as_deref(),
        None,
        saved_tokenizer(&args.model)?,
    )?;
    let model = Gpt::new(gpu, &saved.config, &saved.params)?;
    let settings = Settings {
        batch: args.batch,
        seq: args.seq.unwrap_or(saved.config.n_positions),
        steps: 1,
        eval_steps: args.eval_steps,
        seed: args.seed,
        ..Settings::default()
    };
    let trainer = Trainer::new(gpu, model, settings, &corpus.train, &corpus.val, 0)?;
    trainer.evaluate(true)
}

/// The flags of `wgpt sample`.
#[derive(Args, Clone, Debug)]
pub struct SampleArgs {
    /// The model directory (its tokenizer.json, or GPT-2's tokenizer for a 50,257-token model).
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long, default_value = "\n")]
    pub prompt: String,
    #[arg(long, default_value_t = 500)]
    pub max_new_tokens: usize,
    /// 0 picks the most likely token every time.
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f32,
    #[arg(long)]
    pub top_k: Option<usize>,
    #[arg(long)]
    pub top_p: Option<f32>,
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
}

/// Generates from a saved model, streaming the text to `out` as it comes.
pub fn sample(gpu: &Gpu, args: &SampleArgs, out: &mut impl std::io::Write) -> Result<()> {
    let saved = checkpoint::load(&args.model)?;
    let tokenizer = saved_tokenizer(&args.model)?.ok_or_else(|| {
        Error::Invalid(format!(
            "{}: no tokenizer.json (and not GPT-2's vocabulary), so the prompt cannot be encoded",
            args.model.display()
        ))
    })?;
    let model = Gpt::new(gpu, &saved.config, &saved.params)?;
    let generator = crate::sample::Generator::new(gpu, &model)?;
    let sampling = crate::sample::Sampling {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
    };
    let prompt = tokenizer.encode(&args.prompt)?;
    let io = |e: std::io::Error| Error::Io {
        path: "standard output".into(),
        source: e,
    };
    write!(out, "{}", args.prompt).map_err(io)?;
    let mut failed = None;
    let mut stream = TextStream::new(&tokenizer);
    // When the first and the last token came: the steady per-token time excludes the prompt's prefill.
    let mut times: Option<(Instant, Instant)> = None;
    let mut count = 0usize;
    generator.generate(&prompt, args.max_new_tokens, &sampling, args.seed, |t| {
        let now = Instant::now();
        times = Some((times.map_or(now, |(first, _)| first), now));
        count += 1;
        if failed.is_none() {
            failed = write!(out, "{}", stream.push(t))
                .and_then(|_| out.flush())
                .err();
        }
    })?;
    if let Some(e) = failed {
        return Err(io(e));
    }
    writeln!(out, "{}", stream.finish()).map_err(io)?;
    if let Some((first, last)) = times.filter(|_| count > 1) {
        let per_token = (last - first).as_secs_f64() * 1e3 / (count - 1) as f64;
        eprintln!("{count} tokens, {per_token:.1} ms per token after the first (KV cache)");
    }
    Ok(())
}
