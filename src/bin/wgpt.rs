//! The `wgpt` command line. Each subcommand is a thin layer over the library (its flags live in
//! `wgpt::cli::Cli`); errors print one line and exit non-zero.

use clap::Parser;
use wgpt::cli::{Cli, Command, EvalArgs, InspectArgs};

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info(args) => wgpt::cli::info_command(&args),
        Command::Devices => wgpt::cli::devices(),
        Command::Train(args) => wgpt::cli::gpu_for_training(&args, "baby")
            .and_then(|gpu| wgpt::cli::train(&gpu, &args, Default::default(), "baby"))
            .map(|_| ()),
        Command::Eval(args) => eval(&args),
        Command::Sample(args) => wgpt::cli::gpu_for_model(&args.device, &args.model)
            .and_then(|gpu| wgpt::cli::sample(&gpu, &args, &mut std::io::stdout().lock())),
        Command::Prepare(args) => wgpt::cli::prepare(&args),
        Command::Inspect(args) => inspect(&args),
        Command::Tokenizer { command } => wgpt::cli::tokenizer_command(&command),
        Command::Completions { shell } => {
            wgpt::cli::completions(shell, &mut std::io::stdout().lock());
            Ok(())
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}

fn inspect(args: &InspectArgs) -> wgpt::Result<()> {
    let gpu = wgpt::cli::gpu_for_model(&args.device, &args.model)?;
    let (anatomy, files) = wgpt::cli::inspect(&gpu, args)?;
    println!("prompt: {} tokens", anatomy.prompt.len());
    println!("next token: {}", anatomy.next_token_summary(5));
    for file in files {
        println!("wrote {}", file.display());
    }
    Ok(())
}

fn eval(args: &EvalArgs) -> wgpt::Result<()> {
    let gpu = wgpt::cli::gpu_for_model(&args.device, &args.model)?;
    let loss = wgpt::cli::eval(&gpu, args)?;
    if args.json {
        println!("{{\"val_loss\":{loss}}}");
    } else {
        println!("val loss {loss:.4}, perplexity {:.2}", loss.exp());
    }
    Ok(())
}
