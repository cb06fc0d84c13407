//! `wgpt prepare` (text to train.bin/val.bin and the tokenizer, as nanoGPT's `prepare.py` does) and
//! `wgpt tokenizer train|encode|decode`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, Subcommand};

use crate::cli::progress::{spinner, Task};
use crate::cli::values::at_least_one;
use crate::data::tokenizer::TOKENIZER_FILE;
use crate::data::{split_train_val, write_tokens, Tokenizer};
use crate::error::{did_you_mean, Error, Result};

/// The flags of `wgpt prepare`.
#[derive(Args, Clone, Debug)]
pub struct PrepareArgs {
    /// `char` (the text's characters), `gpt2` (built in) or a tokenizer.json.
    #[arg(long, default_value = "gpt2")]
    pub tokenizer: String,
    /// UTF-8 text to encode.
    #[arg(long)]
    pub data: PathBuf,
    /// Directory for train.bin, val.bin and tokenizer.json (created if needed).
    #[arg(long)]
    pub out: PathBuf,
}

/// `wgpt tokenizer ...`.
#[derive(Subcommand, Clone, Debug)]
pub enum TokenizerCommand {
    /// Train a byte-level BPE on a text file and write its tokenizer.json (Hugging Face format).
    Train {
        /// UTF-8 text to learn from.
        file: PathBuf,
        /// Ids in all: the 256 bytes, the merges and the special tokens.
        #[arg(long, value_parser = at_least_one::<usize>)]
        vocab_size: usize,
        /// Comma-separated special tokens, given the last ids (e.g. "<|startoftext|>,<|endoftext|>").
        #[arg(long, default_value = "")]
        special_tokens: String,
        /// The tokenizer.json to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the ids of a text, space-separated.
    Encode {
        /// `gpt2` or a tokenizer.json.
        #[arg(long, default_value = "gpt2")]
        tokenizer: String,
        /// The text to encode.
        text: String,
    },
    /// Print the text of space- or comma-separated ids.
    Decode {
        /// `gpt2` or a tokenizer.json.
        #[arg(long, default_value = "gpt2")]
        tokenizer: String,
        /// Token ids, separated by spaces or commas.
        ids: String,
    },
}

/// `gpt2`, `char` (the characters of `text`, when there is one) or a tokenizer.json path.
fn named(spec: &str, text: Option<&str>) -> Result<Tokenizer> {
    match (spec, text) {
        ("gpt2", _) => Ok(Tokenizer::gpt2()),
        ("char", Some(text)) => Ok(Tokenizer::chars_of(text)),
        ("char", None) => Err(Error::Invalid(
            "--tokenizer char needs a text to take its characters from; give a tokenizer.json"
                .into(),
        )),
        (path, _) if !Path::new(path).exists() && !path.ends_with(".json") => {
            Err(Error::Invalid(format!(
                "unknown tokenizer {path:?}{}: give gpt2, char or a tokenizer.json",
                did_you_mean(path, &["gpt2", "char"])
            )))
        }
        (path, _) => Tokenizer::load(Path::new(path)),
    }
}

/// Encodes the text with the tokenizer and writes the 90/10 split of the one token sequence (train.bin
/// followed by val.bin is the whole text's encoding) and tokenizer.json into `out`.
pub fn prepare(args: &PrepareArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.data).map_err(Error::io(&args.data))?;
    let tokenizer = named(&args.tokenizer, Some(&text))?;
    let vocab = tokenizer.vocab_size();
    if vocab > 1 << 16 {
        return Err(Error::Unsupported(format!(
            "{}: {vocab} tokens do not fit uint16 token files (ids up to 65,535); use a smaller vocabulary",
            args.tokenizer
        )));
    }
    let start = Instant::now();
    let spinner = spinner(format!("encoding {}", args.data.display()));
    let ids = tokenizer.encode(&text);
    if let Some(spinner) = spinner {
        spinner.finish_and_clear();
    }
    let ids = ids.map_err(|e| Error::Invalid(format!("{}: {e}", args.data.display())))?;
    let seconds = start.elapsed().as_secs_f64();
    let (train, val) = split_train_val(&ids);
    std::fs::create_dir_all(&args.out).map_err(Error::io(&args.out))?;
    write_tokens(&args.out.join("train.bin"), train)?;
    write_tokens(&args.out.join("val.bin"), val)?;
    tokenizer.save(&args.out.join(TOKENIZER_FILE))?;
    println!(
        "{}: {} bytes -> {} tokens (vocabulary {vocab}) in {seconds:.2}s; train.bin {} tokens, val.bin {} tokens, tokenizer.json in {}",
        args.data.display(),
        text.len(),
        ids.len(),
        train.len(),
        val.len(),
        args.out.display()
    );
    Ok(())
}

/// Runs one `wgpt tokenizer` subcommand, printing to stdout (progress to stderr).
pub fn tokenizer_command(command: &TokenizerCommand) -> Result<()> {
    match command {
        TokenizerCommand::Train {
            file,
            vocab_size,
            special_tokens,
            out,
        } => {
            let text = std::fs::read_to_string(file).map_err(Error::io(file))?;
            let special: Vec<&str> = special_tokens
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            let start = Instant::now();
            let mut bar: Option<Task> = None;
            let mut progress = |done: usize, total: usize| {
                let bar = bar.get_or_insert_with(|| Task::new("merges", total as u64, true));
                bar.set(done as u64);
            };
            let tokenizer = Tokenizer::train_bpe(&text, *vocab_size, &special, Some(&mut progress));
            if let Some(bar) = &bar {
                bar.finish();
            }
            let tokenizer =
                tokenizer.map_err(|e| Error::Invalid(format!("{}: {e}", file.display())))?;
            tokenizer.save(out)?;
            let ids: Vec<String> = special
                .iter()
                .map(|s| format!("{s} = {}", tokenizer.token_id(s).unwrap_or_default()))
                .collect();
            println!(
                "vocabulary {} in {:.1}s -> {}{}{}",
                tokenizer.vocab_size(),
                start.elapsed().as_secs_f64(),
                out.display(),
                if ids.is_empty() {
                    ""
                } else {
                    "; special tokens: "
                },
                ids.join(", ")
            );
        }
        TokenizerCommand::Encode { tokenizer, text } => {
            let ids = named(tokenizer, None)?.encode(text)?;
            let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
            println!("{}", ids.join(" "));
        }
        TokenizerCommand::Decode { tokenizer, ids } => {
            let ids = ids
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<u32>()
                        .map_err(|_| Error::Invalid(format!("{s:?} is not a token id")))
                })
                .collect::<Result<Vec<u32>>>()?;
            println!("{}", named(tokenizer, None)?.decode(&ids));
        }
    }
    Ok(())
}
