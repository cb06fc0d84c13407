//! The `wgpt` command line. Each subcommand is a thin layer over the library; errors print one line and
//! exit non-zero.

use clap::{Parser, Subcommand};
use wgpt::cli::{EvalArgs, InspectArgs, PrepareArgs, SampleArgs, TokenizerCommand, TrainArgs};

#[derive(Parser)]
#[command(
    name = "wgpt",
    version,
    about = "Train and run GPT models on any GPU through wgpu"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the GPU adapter wgpt would use (WGPU_BACKEND / WGPU_ADAPTER_NAME choose it) and its limits,
    /// or with --preset the model's parameter table.
    Info {
        /// A model preset (gpt2, gpt2-medium, gpt2-large, gpt2-xl, shakespeare-char, baby, anatomy).
        #[arg(long)]
        preset: Option<String>,
        /// Batch size of the memory plan shown with --preset.
        #[arg(long, default_value_t = 8)]
        batch: usize,
        /// Sequence length of the memory plan (default: the context length).
        #[arg(long)]
        seq: Option<usize>,
    },
    /// Train a model (a preset, a config.json, or a checkpoint) on text or token files.
    Train(Box<TrainArgs>),
    /// Mean loss and perplexity of a saved model on held-out data.
    Eval(EvalArgs),
    /// Generate text from a saved model, streaming it as it comes.
    Sample(SampleArgs),
    /// Encode a text file into train.bin/val.bin (uint16, split 90/10) plus its tokenizer.json.
    Prepare(PrepareArgs),
    /// Look inside a model on a prompt: attention maps, activations across depth, embeddings,
    /// parameter and gradient histograms and the next-token distribution, as SVG figures and JSON.
    Inspect(InspectArgs),
    /// Train a byte-level BPE tokenizer, or encode and decode with one.
    Tokenizer {
        #[command(subcommand)]
        command: TokenizerCommand,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info { preset: None, .. } => wgpt::cli::info(),
        Command::Info {
            preset: Some(name),
            batch,
            seq,
        } => wgpt::model::GptConfig::preset(&name)
            .and_then(|c| wgpt::cli::model_info(&name, &c, batch, seq.unwrap_or(c.n_positions))),
        Command::Train(args) => wgpt::cli::gpu_for_training(&args, "baby")
            .and_then(|gpu| wgpt::cli::train(&gpu, &args, Default::default(), "baby"))
            .map(|_| ()),
        Command::Eval(args) => eval(&args),
        Command::Sample(args) => wgpt::cli::gpu_for_model(&args.model)
            .and_then(|gpu| wgpt::cli::sample(&gpu, &args, &mut std::io::stdout().lock())),
        Command::Prepare(args) => wgpt::cli::prepare(&args),
        Command::Inspect(args) => inspect(&args),
        Command::Tokenizer { command } => wgpt::cli::tokenizer_command(&command),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}

fn inspect(args: &InspectArgs) -> wgpt::Result<()> {
    let gpu = wgpt::cli::gpu_for_model(&args.model)?;
    let (anatomy, files) = wgpt::cli::inspect(&gpu, args)?;
    println!("prompt: {} tokens", anatomy.prompt.len());
    println!("next token: {}", anatomy.next_token_summary(5));
    for file in files {
        println!("wrote {}", file.display());
    }
    Ok(())
}

fn eval(args: &EvalArgs) -> wgpt::Result<()> {
    let gpu = wgpt::cli::gpu_for_model(&args.model)?;
    let loss = wgpt::cli::eval(&gpu, args)?;
    if args.json {
        println!("{{\"val_loss\":{loss}}}");
    } else {
        println!("val loss {loss:.4}, perplexity {:.2}", loss.exp());
    }
    Ok(())
}
