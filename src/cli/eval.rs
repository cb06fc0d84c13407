//! `wgpt eval`: a saved model's mean loss on held-out data.

use std::path::PathBuf;

use clap::Args;

use crate::checkpoint;
use crate::cli::progress::Task;
use crate::cli::values::{at_least_one, model_dir};
use crate::cli::{saved_tokenizer, Corpus, DeviceArgs, DtypeArgs};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::train::{validation_loss, Settings};

/// The flags of `wgpt eval`.
#[derive(Args, Clone, Debug)]
#[command(allow_negative_numbers = true)]
pub struct EvalArgs {
    /// The model directory to evaluate (or a training output directory: its model/).
    #[arg(long, value_parser = model_dir)]
    pub model: PathBuf,
    /// Text to evaluate on (encoded with the model's tokenizer).
    #[arg(long, conflicts_with = "tokens")]
    pub data: Option<PathBuf>,
    /// A uint16 token file, or a `wgpt prepare` directory (its val.bin is evaluated).
    #[arg(long)]
    pub tokens: Option<PathBuf>,
    /// Sequences per batch.
    #[arg(long, visible_alias = "batch_size", default_value_t = 8, value_parser = at_least_one::<usize>)]
    pub batch: usize,
    /// Tokens per sequence, at most the model's context [default: the model's context length]
    #[arg(long, visible_alias = "block_size", value_parser = at_least_one::<usize>)]
    pub seq: Option<usize>,
    /// Batches drawn from the validation split (the last 10% of the data).
    #[arg(long, visible_alias = "eval_iters", default_value_t = 50, value_parser = at_least_one::<u32>)]
    pub eval_steps: u32,
    /// Seed of the batches drawn.
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
    /// Print {"val_loss":..} on stdout instead of a sentence (and no progress bar).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub weights: DtypeArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// Mean loss of a saved model over batches of the data's validation split.
pub fn eval(gpu: &Gpu, args: &EvalArgs) -> Result<f32> {
    if args.data.is_none() && args.tokens.is_none() {
        return Err(Error::Invalid(
            "no evaluation data: give --data FILE (text) or --tokens FILE.bin|DIR".into(),
        ));
    }
    let config = checkpoint::load_config(&args.model)?;
    let corpus = Corpus::load(
        args.data.as_deref(),
        args.tokens.as_deref(),
        None,
        saved_tokenizer(&args.model)?,
    )?;
    let model = args.weights.load(gpu, &args.model)?;
    let settings = Settings {
        batch: args.batch,
        seq: args.seq.unwrap_or(config.n_positions),
        steps: 1,
        eval_steps: args.eval_steps,
        seed: args.seed,
        ..Settings::default()
    };
    let mut progress = Task::new("evaluating", args.eval_steps as u64, !args.json);
    let loss = validation_loss(gpu, &model, &settings, &corpus.val, |done| {
        progress.set(done as u64)
    });
    progress.finish();
    loss
}
