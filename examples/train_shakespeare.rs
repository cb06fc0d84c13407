//! The main job: train a character-level GPT on tiny-shakespeare, then write a sample.
//!
//! `cargo run --release --example train_shakespeare [-- FLAGS]`. On a CPU adapter (lavapipe, llvmpipe)
//! it trains the `baby` preset (4 layers, 128 wide, context 64, batch 12, 2000 steps); on a real GPU the
//! `shakespeare-char` preset (6 layers, 384 wide, context 256, batch 64, 5000 steps, dropout 0.2). Every
//! flag of `wgpt train` overrides (`--steps 50`, `--preset`, `--data other.txt`, ...). Writes the
//! checkpoint (`OUT/model/`), the log (`OUT/log.jsonl`) and the loss curves (`OUT/loss.svg`).

use std::path::PathBuf;

use clap::Parser;
use wgpt::cli::{saved_tokenizer, TrainArgs};
use wgpt::model::Gpt;
use wgpt::sample::{Generator, Sampling};
use wgpt::train::{loss_curves_svg, Settings};

#[derive(Parser)]
#[command(about = "Train a character-level GPT on tiny-shakespeare and write a sample")]
struct Args {
    #[command(flatten)]
    train: TrainArgs,
    /// Where the checkpoint, log and plot go.
    #[arg(long, default_value = "out/shakespeare")]
    out: PathBuf,
    /// Characters to generate at the end (prompt "\n", temperature 0.8, top-k 200).
    #[arg(long, default_value_t = 500)]
    sample_chars: usize,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> wgpt::Result<()> {
    let mut args = Args::parse();
    let gpu = wgpt::Gpu::new()?.autotuned();
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
    let model_dir = train
        .save
        .get_or_insert_with(|| args.out.join("model"))
        .clone();
    let write = |name: &str, contents: String| {
        let path = args.out.join(name);
        std::fs::write(&path, contents).map_err(wgpt::Error::io(&path))
    };
    std::fs::create_dir_all(&args.out).map_err(wgpt::Error::io(&args.out))?;
    eprintln!(
        "preset {}, output {}",
        train.preset.as_deref().unwrap_or(preset),
        args.out.display()
    );

    let summary = wgpt::cli::train(&gpu, &args.train, defaults, preset)?;
    let log: Vec<String> = summary.events.iter().map(|e| e.to_json()).collect();
    write("log.jsonl", log.join("\n") + "\n")?;
    write(
        "loss.svg",
        loss_curves_svg(&summary.events, "tiny-shakespeare, character level"),
    )?;
    if let Some((train_loss, val_loss)) = summary.last_eval {
        println!("final: train loss {train_loss:.4}, val loss {val_loss:.4}");
    }
    println!(
        "training: {:.0} tokens/s; wrote {}/model, log.jsonl, loss.svg",
        summary.tokens_per_s,
        args.out.display()
    );

    if args.sample_chars > 0 {
        let saved = wgpt::checkpoint::load(&model_dir)?;
        let tokenizer = saved_tokenizer(&model_dir)?
            .ok_or_else(|| wgpt::Error::Invalid("the checkpoint has no tokenizer".into()))?;
        let model = Gpt::new(&gpu, &saved.config, &saved.params)?;
        let generator = Generator::new(&gpu, &model)?;
        let sampling = Sampling {
            temperature: 0.8,
            top_k: Some(200),
            top_p: None,
        };
        let prompt = tokenizer.encode("\n")?;
        println!("--- sample ---");
        generator.generate(&prompt, args.sample_chars, &sampling, 1337, |t| {
            print!("{}", tokenizer.decode(&[t]));
            use std::io::Write;
            let _ = std::io::stdout().flush();
        })?;
        println!("\n--------------");
    }
    Ok(())
}
