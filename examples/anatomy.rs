//! Anatomy of a GPT: train the `anatomy` preset (RMSNorm, grouped-query attention, 4 layers, 256 wide,
//! 5,048,576 parameters) on tiny-shakespeare with its own 8192-token byte-level BPE, then look inside
//! it on a prompt.
//!
//! `cargo run --release --example anatomy [-- FLAGS]`. Each speech of the play becomes a document
//! `<|startoftext|>SPEAKER:\n...<|endoftext|>`; the BPE (with those two special tokens) is trained on
//! that text, which is then encoded into `OUT/tokens/` as `wgpt prepare` does. Training takes a few
//! minutes on lavapipe (every `wgpt train` flag overrides: `--steps`, `--batch`, ...). Writes
//! `OUT/tokenizer.json`, `OUT/tokens/`, `OUT/model/`, `OUT/log.jsonl`, `OUT/loss.svg` and the figures
//! and `anatomy.json` of `wgpt inspect` in `OUT/anatomy/`.

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use wgpt::cli::{inspect, prepare, InspectArgs, PrepareArgs, TrainArgs};
use wgpt::data::Tokenizer;
use wgpt::model::GptConfig;
use wgpt::train::{Settings, LATEST_DIR};

const START: &str = "<|startoftext|>";
const END: &str = "<|endoftext|>";

#[derive(Parser)]
#[command(
    about = "Train the anatomy preset with its own BPE on tiny-shakespeare, then look inside it"
)]
struct Args {
    /// Everything goes in --out (default out/anatomy): the tokenizer, tokens, and what `wgpt train`
    /// writes there.
    #[command(flatten)]
    train: TrainArgs,
    /// Size of the BPE vocabulary (the preset's is 8192; the model takes the tokenizer's).
    #[arg(long, default_value_t = 8192)]
    bpe_vocab: usize,
    /// The prompt the figures look at.
    #[arg(
        long,
        default_value = "<|startoftext|>ROMEO:\nBut soft, what light through yonder window breaks?"
    )]
    prompt: String,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}

/// The play as documents: one per speech (paragraphs are separated by blank lines).
fn documents(play: &str) -> String {
    play.split("\n\n")
        .map(str::trim)
        .filter(|speech| !speech.is_empty())
        .map(|speech| format!("{START}{speech}\n{END}"))
        .collect()
}

fn run() -> wgpt::Result<()> {
    let mut args = Args::parse();
    let gpu = wgpt::Gpu::on(&args.train.device.choice())?.autotuned();
    let out = (args.train.out)
        .get_or_insert_with(|| PathBuf::from("out/anatomy"))
        .clone();
    std::fs::create_dir_all(&out).map_err(wgpt::Error::io(&out))?;
    let write = |name: &str, contents: &str| -> wgpt::Result<()> {
        let path = out.join(name);
        std::fs::write(&path, contents).map_err(wgpt::Error::io(&path))
    };
    let config = GptConfig::preset("anatomy")?;
    println!(
        "adapter {} ({:?}); anatomy preset: {} parameters",
        gpu.info().name,
        gpu.info().backend,
        config.parameter_count()
    );

    // 1. The tokenizer: a byte-level BPE with two special tokens, trained on the documents.
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/tinyshakespeare.txt");
    let play = std::fs::read_to_string(&source).map_err(wgpt::Error::io(&source))?;
    let corpus = documents(&play);
    write("corpus.txt", &corpus)?;
    let start = Instant::now();
    let tokenizer = Tokenizer::train_bpe(&corpus, args.bpe_vocab, &[START, END], None)?;
    let tokenizer_path = out.join("tokenizer.json");
    tokenizer.save(&tokenizer_path)?;
    println!(
        "BPE tokenizer: {} tokens in {:.1}s ({START} = {}, {END} = {})",
        tokenizer.vocab_size(),
        start.elapsed().as_secs_f64(),
        tokenizer.token_id(START).unwrap_or_default(),
        tokenizer.token_id(END).unwrap_or_default()
    );
    let tokens = out.join("tokens");
    prepare(&PrepareArgs {
        tokenizer: tokenizer_path.display().to_string(),
        data: out.join("corpus.txt"),
        out: tokens.clone(),
    })?;

    // 2. Training: a few minutes on a CPU adapter.
    let train = &mut args.train;
    if train.preset.is_none() && train.config.is_none() && train.init.is_none() {
        train.preset = Some("anatomy".into());
    }
    train.tokens.get_or_insert(tokens);
    let model_dir = out.join(LATEST_DIR);
    train.plot_title = Some("anatomy preset, tiny-shakespeare, BPE 8192".into());
    let defaults = Settings {
        batch: 16,
        seq: 128,
        steps: 200,
        warmup: 20,
        eval_every: 50,
        eval_steps: 10,
        ..Settings::default()
    };
    let summary = wgpt::cli::train(&gpu, &args.train, defaults, "anatomy")?;
    if let Some((train_loss, val_loss)) = summary.last_eval {
        println!("final: train loss {train_loss:.4}, val loss {val_loss:.4}");
    }
    println!(
        "training: {} steps in {:.0}s, {:.0} tokens/s",
        summary.steps, summary.seconds, summary.tokens_per_s
    );

    // 3. The anatomy of the trained model on the prompt.
    let (anatomy, files) = inspect(
        &gpu,
        &InspectArgs {
            model: model_dir,
            prompt: args.prompt.clone(),
            out: out.join("anatomy"),
            weights: Default::default(),
            device: args.train.device.clone(),
        },
    )?;
    println!(
        "prompt {:?}: {} tokens; next token: {}",
        args.prompt,
        anatomy.prompt.len(),
        anatomy.next_token_summary(5)
    );
    for file in files {
        println!("wrote {}", file.display());
    }
    Ok(())
}
