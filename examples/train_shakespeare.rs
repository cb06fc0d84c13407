//! The main job: train a character-level GPT on tiny-shakespeare, then write a sample.
//!
//! `cargo run --release --example train_shakespeare [-- FLAGS]`. On a CPU adapter (lavapipe, llvmpipe)
//! it trains the `baby` preset (4 layers, 128 wide, context 64, batch 12, 2000 steps); on a real GPU the
//! `shakespeare-char` preset (6 layers, 384 wide, context 256, batch 64, 5000 steps, dropout 0.2). Every
//! flag of `wgpt train` overrides (`--steps 50`, `--preset`, `--data other.txt`, `--resume OUT`, ...).
//! Writes what `wgpt train --out OUT` writes (OUT = `out/shakespeare` unless given): the checkpoints
//! (`OUT/model/`, `OUT/best/`), the log (`OUT/log.jsonl`) and the loss curves (`OUT/loss.svg`).

use std::path::PathBuf;

use clap::Parser;
use wgpt::cli::{saved_tokenizer, TrainArgs};
use wgpt::model::Gpt;
use wgpt::sample::{Generator, Sampling};
use wgpt::train::{Settings, LATEST_DIR};

#[derive(Parser)]
#[command(about = "Train a character-level GPT on tiny-shakespeare and write a sample")]
struct Args {
    #[command(flatten)]
    train: TrainArgs,
    /// Characters to generate at the end (prompt "\n", temperature 0.8, top-k 200).
    #[arg(long, default_value_t = 500)]
    sample_chars: usize,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}

fn run() -> wgpt::Result<()> {
    let mut args = Args::parse();
    let gpu = wgpt::Gpu::on(&args.train.device.choice())?.autotuned();
    // nanoGPT's shakespeare_char recipe, scaled to what the adapter can do in minutes.
    let (preset, defaults) = if gpu.is_cpu() {
        ("baby", Settings::default())
    } else {
        (
            "shakespeare-char",
            Settings {
                batch: 64,
                seq: 256,
                steps: 5000,
                eval_steps: 200,
                ..Settings::default()
            },
        )
    };
    let train = &mut args.train;
    if train.data.is_none() && train.tokens.is_none() {
        train.data =
            Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/tinyshakespeare.txt"));
    }
    let out = train
        .out
        .get_or_insert_with(|| PathBuf::from("out/shakespeare"))
        .clone();
    train.plot_title = Some("tiny-shakespeare, character level".into());
    let model_dir = out.join(LATEST_DIR);
    eprintln!(
        "preset {}, output {}",
        train.preset.as_deref().unwrap_or(preset),
        out.display()
    );

    let summary = wgpt::cli::train(&gpu, &args.train, defaults, preset)?;
    if let Some((train_loss, val_loss)) = summary.last_eval {
        println!("final: train loss {train_loss:.4}, val loss {val_loss:.4}");
    }
    println!(
        "training: {:.0} tokens/s; wrote {}/model, best, log.jsonl, loss.svg",
        summary.tokens_per_s,
        out.display()
    );

    if args.sample_chars > 0 {
        let saved = wgpt::checkpoint::load(&model_dir)?;
        let tokenizer = saved_tokenizer(&model_dir)?
            .ok_or_else(|| wgpt::Error::Invalid("the checkpoint has no tokenizer".into()))?;
        let model = Gpt::new(&gpu, &saved.config, &saved.params)?;
        let mut generator = Generator::new(&gpu, &model, 1)?;
        let sampling = Sampling {
            temperature: 0.8,
            top_k: Some(200),
            top_p: None,
        };
        let prompt = tokenizer.encode("\n")?;
        println!("--- sample ---");
        generator.generate(&prompt, args.sample_chars, &sampling, 1337, |_, t| {
            print!("{}", tokenizer.decode(&[t]));
            use std::io::Write;
            let _ = std::io::stdout().flush();
            false
        })?;
        println!("\n--------------");
    }
    Ok(())
}
