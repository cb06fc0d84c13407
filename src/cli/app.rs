//! The `wgpt` command's flags and subcommands as clap parses them (the binary dispatches), and the shell
//! completions generated from them.

use clap::{CommandFactory, Parser, Subcommand};

use crate::cli::{
    EvalArgs, InfoArgs, InspectArgs, PrepareArgs, SampleArgs, TokenizerCommand, TrainArgs,
};

#[derive(Parser, Debug)]
#[command(
    name = "wgpt",
    version,
    about = "Train and run GPT models on any GPU through wgpu",
    after_help = "Every command that runs on a GPU takes --adapter INDEX|NAME (see `wgpt devices`); \
                  WGPU_BACKEND and WGPU_ADAPTER_NAME choose one too."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the GPU adapter wgpt would use and its limits; or, with --preset, --model or --config, a
    /// model's parameter table and the memory plan of its training step.
    Info(InfoArgs),
    /// List every GPU adapter wgpu finds, with the index and name --adapter takes.
    Devices,
    /// Train a model (a preset, a config.json, or a checkpoint) on text or token files.
    Train(Box<TrainArgs>),
    /// Mean loss and perplexity of a saved model on held-out data.
    Eval(EvalArgs),
    /// Generate text from a saved model: one sample streamed as it comes, several as one batch,
    /// JSON for tools, or the --interactive playground.
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
    /// Print a shell completion script (e.g. `wgpt completions bash > ~/.local/share/bash-completion/completions/wgpt`).
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Writes `shell`'s completion script for `wgpt` to `out`.
pub fn completions(shell: clap_complete::Shell, out: &mut impl std::io::Write) {
    clap_complete::generate(shell, &mut Cli::command(), "wgpt", out);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every argument of every subcommand, with the path of subcommands to it.
    fn arguments(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Arg)>) {
        for arg in cmd.get_arguments() {
            out.push((path.to_string(), arg.clone()));
        }
        for sub in cmd.get_subcommands() {
            arguments(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_flag_has_help_text() {
        let mut all = Vec::new();
        arguments(&Cli::command(), "wgpt", &mut all);
        let missing: Vec<String> = (all.iter())
            .filter(|(_, arg)| arg.get_help().is_none())
            .filter(|(_, arg)| !["help", "version"].contains(&arg.get_id().as_str()))
            .map(|(path, arg)| format!("{path} {}", arg.get_id()))
            .collect();
        assert!(missing.is_empty(), "no help text: {missing:?}");
    }

    #[test]
    fn the_defaults_train_shows_are_the_settings_it_uses() {
        let cli = Cli::command();
        let train = cli.find_subcommand("train").unwrap();
        let mut checked = Vec::new();
        for arg in train.get_arguments() {
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let Some((_, shown)) = help.split_once("[default: ") else {
                continue;
            };
            let value = shown.split([',', ']']).next().unwrap();
            if value.starts_with("the ") || value.starts_with("wgpu's") {
                continue;
            }
            let flag = format!("--{}", arg.get_long().unwrap());
            let parsed = Cli::try_parse_from(["wgpt", "train", &flag, value]).unwrap();
            let Command::Train(args) = parsed.command else {
                unreachable!()
            };
            let defaults = crate::train::Settings::default();
            assert_eq!(args.settings(defaults.clone()), defaults, "{flag} {value}");
            checked.push(flag);
        }
        assert_eq!(checked.len(), 20, "{checked:?}");
    }
}
