//! `wgpt sample`: generation from a saved model, streamed as it comes.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use crate::checkpoint;
use crate::cli::saved_tokenizer;
use crate::data::TextStream;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::Gpt;

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
    let mut generator = crate::sample::Generator::new(gpu, &model, 1)?;
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
    generator.generate(
        &prompt,
        args.max_new_tokens,
        &sampling,
        args.seed,
        |_, t| {
            let now = Instant::now();
            times = Some((times.map_or(now, |(first, _)| first), now));
            count += 1;
            if failed.is_none() {
                failed = write!(out, "{}", stream.push(t))
                    .and_then(|_| out.flush())
                    .err();
            }
            false
        },
    )?;
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
