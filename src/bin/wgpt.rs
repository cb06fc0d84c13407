//! The `wgpt` command line. Each subcommand is a thin layer over the library (its flags live in
//! `wgpt::cli::Cli`); errors print one line and exit non-zero.

use clap::Parser;
use wgpt::cli::{Cli, Command, EvalArgs, InspectArgs};

fn main() {
    quiet_on_closed_pipe();
    let cli = Cli::parse();
    // Under `mpirun` (with the `mpi` feature) this process is one rank of a job; else it is alone.
    let ranks = wgpt::dist::init().unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    });
    let together = ranks.size() > 1;
    let result = match cli.command {
        Command::Info(args)
            if together
                && args.preset.is_none()
                && args.model.is_none()
                && args.config.is_none() =>
        {
            wgpt::cli::ranks_info(&*ranks, &args.device)
        }
        Command::Info(args) => wgpt::cli::info_command(&args),
        Command::Devices => wgpt::cli::devices(),
        Command::Train(mut args) => {
            args.device = args.device.for_local_rank(ranks.local_rank());
            wgpt::cli::gpu_for_training(&args, "baby")
                .and_then(|gpu| {
                    wgpt::cli::train_on(&gpu, &*ranks, &args, Default::default(), "baby")
                })
                .map(|_| ())
        }
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
        if !together {
            eprintln!("error: {e}");
            std::process::exit(e.exit_code());
        }
        eprintln!("error on rank {} of {}: {e}", ranks.rank(), ranks.size());
        // A signal stops every rank at the same step (they agree on it): end the job normally.
        // Any other error may be this rank's alone, and the others would wait for it: end them all.
        if !matches!(e, wgpt::Error::Interrupted { .. }) {
            ranks.abort(e.exit_code());
        }
        drop(ranks);
        std::process::exit(e.exit_code());
    }
}

/// Writing to a pipe whose reader is gone (`wgpt info | head`) ends the process quietly, as Unix tools
/// do; Rust ignores SIGPIPE by default, which turns that into a panic in `println!`.
fn quiet_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
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
