//! `wgpt sample`: generation from a saved model, streamed as it comes.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use crate::checkpoint;
use crate::cli::values::{at_least_one, model_dir, non_negative, probability};
use crate::cli::{saved_tokenizer, DeviceArgs};
use crate::data::TextStream;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::Gpt;

/// The flags of `wgpt sample`, with nanoGPT's `sample.py` names as aliases.
#[derive(Args, Clone, Debug)]
#[command(allow_negative_numbers = true)]
pub struct SampleArgs {
    /// The model directory, or a training output directory (its model/). The model's tokenizer.json
    /// encodes the prompt (GPT-2's for a 50,257-token model without one).
    #[arg(long, visible_alias = "out_dir", value_parser = model_dir)]
    pub model: PathBuf,
    /// The text to continue.
    #[arg(long, visible_alias = "start", default_value = "\n")]
    pub prompt: String,
    /// Tokens to generate.
    #[arg(long, visible_alias = "max_new_tokens", default_value_t = 500)]
    pub max_new_tokens: usize,
    /// Divides the logits before sampling; 0 picks the most likely token every time.
    #[arg(long, default_value_t = 0.8, value_parser = non_negative::<f32>)]
    pub temperature: f32,
    /// Sample among the K most likely tokens only [default: all]
    #[arg(long, visible_alias = "top_k", value_parser = at_least_one::<usize>)]
    pub top_k: Option<usize>,
    /// Sample among the most likely tokens whose probabilities add up to P, in (0, 1] [default: 1, off]
    #[arg(long, visible_alias = "top_p", value_parser = probability::<f32>)]
    pub top_p: Option<f32>,
    /// Seed of the sampling.
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
    #[command(flatten)]
    pub device: DeviceArgs,
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
