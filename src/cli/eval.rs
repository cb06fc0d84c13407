//! `wgpt eval`: a saved model's mean loss on held-out data.

use std::path::PathBuf;

use clap::Args;

use crate::checkpoint;
use crate::cli::{saved_tokenizer, Corpus};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::model::Gpt;
use crate::train::{Settings, Trainer};

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
