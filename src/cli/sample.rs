//! `wgpt sample`: generation from a saved model: one sample streamed as it comes, `--num-samples N`
//! generated together as one batch, `--json` for tools, `--interactive` for the playground
//! ([`crate::cli::playground`]). The prefill's and the decode's speeds go to stderr.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::checkpoint;
use crate::cli::progress::Task;
use crate::cli::values::{at_least_one, model_dir, non_negative, probability};
use crate::cli::{saved_tokenizer, DeviceArgs, DtypeArgs};
use crate::data::{TextStream, Tokenizer};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::GptConfig;
use crate::sample::{Generation, Generator, Sampling};

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
    /// Read the prompt from this UTF-8 text file instead of --prompt.
    #[arg(long, conflicts_with = "prompt")]
    pub prompt_file: Option<PathBuf>,
    /// The prompt as token ids, comma-separated (e.g. 464,2068), instead of --prompt.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["prompt", "prompt_file"])]
    pub prompt_ids: Option<Vec<u32>>,
    /// Tokens to generate (per sample).
    #[arg(long, visible_alias = "max_new_tokens", default_value_t = 500)]
    pub max_new_tokens: usize,
    /// Divides the logits before sampling; 0 picks the most likely token every time (the lowest id
    /// among equals).
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
    /// Samples generated together as one batch, each from its own random stream of the seed (the
    /// first one's is what a single sample draws).
    #[arg(long, visible_alias = "num_samples", default_value_t = 1, value_parser = at_least_one::<usize>)]
    pub num_samples: usize,
    /// Also end a sample where its text contains this (repeatable); `<|endoftext|>` ends one whenever
    /// the tokenizer has that token. The text stops before it [default: none]
    #[arg(long)]
    pub stop: Vec<String>,
    /// Print one JSON object per sample instead of the text (ids and text: the new tokens only):
    /// {"prompt_ids":[..],"ids":[..],"text":"..","prefill_ms":..,"ms_per_token":..}
    #[arg(long)]
    pub json: bool,
    /// The playground: asks for a start text, a number of tokens and a temperature (the flags'
    /// values by default), streams the continuation, and asks again until end of input.
    #[arg(long, conflicts_with_all = ["json", "prompt_file", "prompt_ids"])]
    pub interactive: bool,
    /// After sampling, print where a decode step's GPU time goes, per kernel (to stderr).
    #[arg(long, conflicts_with = "interactive")]
    pub profile: bool,
    #[command(flatten)]
    pub weights: DtypeArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
}

impl SampleArgs {
    fn sampling(&self) -> Sampling {
        Sampling {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
        }
    }
}

/// Generates from a saved model, writing the text (or JSON) to `out`. Every setting, the prompt and
/// its length are checked before the model is loaded.
pub fn sample(gpu: &Gpu, args: &SampleArgs, out: &mut impl Write) -> Result<()> {
    args.sampling().check()?;
    let config = checkpoint::load_config(&args.model)?;
    let tokenizer = saved_tokenizer(&args.model)?.ok_or_else(|| {
        Error::Invalid(format!(
            "{}: no tokenizer.json (and not GPT-2's vocabulary), so the prompt cannot be encoded",
            args.model.display()
        ))
    })?;
    let prompt = match args.interactive {
        true => Vec::new(),
        false => prompt_ids(args, &tokenizer, &config)?,
    };
    let model = args.weights.load(gpu, &args.model)?;
    let mut session = Session {
        generator: Generator::new(gpu, &model, args.num_samples)?,
        tokenizer: &tokenizer,
        stops: args
            .stop
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect(),
        end_of_text: tokenizer.token_id(END_OF_TEXT),
        json: args.json,
    };
    if args.interactive {
        return crate::cli::playground::run(&mut session, args, &config, out);
    }
    session.run(
        &prompt,
        args.max_new_tokens,
        &args.sampling(),
        args.seed,
        out,
    )?;
    if args.profile {
        let what = format!("a decode step of {} sample(s)", args.num_samples);
        crate::cli::profile::print_profile(gpu, session.generator.decode_plan(), &what)?;
    }
    Ok(())
}

/// The token that ends a sample, when the tokenizer has it.
const END_OF_TEXT: &str = "<|endoftext|>";

/// The prompt's ids, from --prompt-ids, --prompt-file or --prompt, checked against the model.
fn prompt_ids(args: &SampleArgs, tokenizer: &Tokenizer, config: &GptConfig) -> Result<Vec<u32>> {
    let ids = match (&args.prompt_ids, &args.prompt_file) {
        (Some(ids), _) => ids.clone(),
        (None, Some(path)) => tokenizer.encode(&read_prompt_file(path)?)?,
        (None, None) => tokenizer.encode(&args.prompt)?,
    };
    check_prompt(&ids, config)?;
    Ok(ids)
}

/// An error unless `ids` is a prompt the model can take: 1 to the context length of tokens in its
/// vocabulary.
pub(crate) fn check_prompt(ids: &[u32], config: &GptConfig) -> Result<()> {
    if ids.is_empty() {
        return Err(Error::Invalid(
            "the prompt is empty; give at least one token".into(),
        ));
    }
    if ids.len() > config.n_positions {
        return Err(Error::Invalid(format!(
            "the prompt is {} tokens, longer than the model's context of {} tokens; shorten it",
            ids.len(),
            config.n_positions
        )));
    }
    config.check_tokens("prompt", ids)
}

/// The text of a prompt file, which must be UTF-8.
fn read_prompt_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(Error::io(path))?;
    String::from_utf8(bytes).map_err(|e| {
        Error::Invalid(format!(
            "{}: not UTF-8 text (byte {} is not); save the prompt as UTF-8",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })
}

/// A loaded model ready to generate and print: its generator, its tokenizer, what ends a sample and
/// how samples are printed.
pub(crate) struct Session<'a> {
    pub generator: Generator<'a>,
    pub tokenizer: &'a Tokenizer,
    /// Strings that end a sample (the text stops before them).
    pub stops: Vec<String>,
    /// The tokenizer's `<|endoftext|>`, which ends a sample.
    pub end_of_text: Option<u32>,
    pub json: bool,
}

impl Session<'_> {
    /// Generates up to `count` tokens per sample after `prompt` and writes them to `out`: one sample
    /// streamed as it comes, several once they are done (separated by a line of dashes, as nanoGPT
    /// prints them), or one JSON object each. Timings go to stderr.
    pub fn run(
        &mut self,
        prompt: &[u32],
        count: usize,
        sampling: &Sampling,
        seed: u64,
        out: &mut impl Write,
    ) -> Result<()> {
        let n = self.generator.sequences();
        let mut samples: Vec<SampleText> =
            (0..n).map(|_| SampleText::new(self.tokenizer)).collect();
        let stream = n == 1 && !self.json;
        let prompt_text = self.tokenizer.decode(prompt);
        if stream {
            write!(out, "{prompt_text}").map_err(stdout)?;
        }
        let mut failed = None;
        let (stops, end_of_text) = (&self.stops, self.end_of_text);
        // Samples printed once they are done show a bar of the tokens made meanwhile.
        let mut progress = Task::new("sampling", count as u64, !stream && !self.json);
        let (mut made, mut done) = (vec![0u64; n], 0);
        let run = self
            .generator
            .generate(prompt, count, sampling, seed, |i, id| {
                made[i] += 1;
                if made[i] > done {
                    done = made[i];
                    progress.set(done);
                }
                let sample = &mut samples[i];
                let ended = sample.push(id, end_of_text, stops);
                if stream && failed.is_none() {
                    failed = write!(out, "{}", sample.unshown(stops))
                        .and_then(|_| out.flush())
                        .err();
                }
                ended
            });
        progress.finish();
        let run = run?;
        if let Some(e) = failed {
            return Err(stdout(e));
        }
        for (sample, ids) in samples.iter_mut().zip(&run.tokens) {
            sample.finish();
            if stream {
                writeln!(out, "{}", sample.unshown(stops))
            } else if self.json {
                writeln!(out, "{}", json_line(prompt, ids, &sample.text, &run))
            } else {
                writeln!(out, "{prompt_text}{}\n---------------", sample.text)
            }
            .map_err(stdout)?;
        }
        out.flush().map_err(stdout)?;
        report(&run, prompt.len(), n);
        Ok(())
    }
}

fn stdout(e: std::io::Error) -> Error {
    Error::Io {
        path: "standard output".into(),
        source: e,
    }
}

/// One sample's text as it comes. It ends at `<|endoftext|>` or where its text first contains a stop
/// string (the text cut before it).
struct SampleText<'t> {
    stream: Option<TextStream<'t>>,
    text: String,
    /// Bytes of `text` already shown.
    shown: usize,
    /// Ended by a stop string (the text is final).
    cut: bool,
}

impl<'t> SampleText<'t> {
    fn new(tokenizer: &'t Tokenizer) -> Self {
        SampleText {
            stream: Some(TextStream::new(tokenizer)),
            text: String::new(),
            shown: 0,
            cut: false,
        }
    }

    /// Takes the sample's next token; returns whether it ends the sample.
    fn push(&mut self, id: u32, end_of_text: Option<u32>, stops: &[String]) -> bool {
        let Some(stream) = self.stream.as_mut() else {
            return true;
        };
        if Some(id) == end_of_text {
            self.finish();
            return true;
        }
        self.text.push_str(&stream.push(id));
        if let Some(at) = stops
            .iter()
            .filter_map(|s| self.text.find(s.as_str()))
            .min()
        {
            self.text.truncate(at);
            self.stream = None;
            self.cut = true;
        }
        self.cut
    }

    /// The end of the sample: characters still pending join the text.
    fn finish(&mut self) {
        if let Some(stream) = self.stream.take() {
            self.text.push_str(&stream.finish());
        }
    }

    /// The text not shown yet that is safe to show: all of it once the sample is over, else all but a
    /// tail that may still grow into a stop string.
    fn unshown(&mut self, stops: &[String]) -> &str {
        let hold = match self.stream {
            None => 0,
            Some(_) => stops
                .iter()
                .flat_map(|s| {
                    (1..s.len())
                        .filter(|&k| s.is_char_boundary(k))
                        .map(|k| &s[..k])
                })
                .filter(|head| self.text.ends_with(head))
                .map(str::len)
                .max()
                .unwrap_or(0),
        };
        let end = (self.text.len() - hold).max(self.shown);
        let piece = &self.text[self.shown..end];
        self.shown = end;
        piece
    }
}

/// A sample as `sample --json` prints it.
#[derive(serde::Serialize)]
struct SampleJson<'a> {
    prompt_ids: &'a [u32],
    ids: &'a [u32],
    text: &'a str,
    prefill_ms: f64,
    /// None when no decode step ran (one token, from the prefill).
    ms_per_token: Option<f64>,
}

fn json_line(prompt: &[u32], ids: &[u32], text: &str, run: &Generation) -> String {
    let line = SampleJson {
        prompt_ids: prompt,
        ids,
        text,
        prefill_ms: ms(run.prefill),
        ms_per_token: per_step_ms(run),
    };
    serde_json::to_string(&line).unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The decode's time per step (a token of each sequence).
fn per_step_ms(run: &Generation) -> Option<f64> {
    (run.steps > 0).then(|| ms(run.decode) / run.steps as f64)
}

/// The prefill's and the decode's speeds, on stderr.
fn report(run: &Generation, prompt: usize, sequences: usize) {
    if run.tokens.iter().all(|t| t.is_empty()) {
        return;
    }
    let prefill = ms(run.prefill);
    eprintln!(
        "prefill: {prompt} tokens in {prefill:.1} ms, {:.0} tokens/s (after {:.0} ms building its \
         plan and finishing uploads)",
        prompt as f64 * 1e3 / prefill.max(1e-9),
        ms(run.setup)
    );
    if let Some(step) = per_step_ms(run) {
        eprintln!(
            "decode: {} steps of {sequences} sequence(s), {step:.1} ms per token, {:.1} tokens/s",
            run.steps,
            sequences as f64 * 1e3 / step
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `text`'s GPT-2 ids to a sample until it ends: (what was shown as it came, whether it
    /// ended, its final text).
    fn feed(text: &str, stops: &[String]) -> (String, bool, String) {
        let gpt2 = Tokenizer::gpt2();
        let end_of_text = gpt2.token_id(END_OF_TEXT);
        let mut sample = SampleText::new(&gpt2);
        let mut shown = String::new();
        let mut ended = false;
        for id in gpt2.encode(text).unwrap() {
            ended = sample.push(id, end_of_text, stops);
            shown.push_str(sample.unshown(stops));
            if ended {
                break;
            }
        }
        sample.finish();
        shown.push_str(sample.unshown(stops));
        (shown, ended, sample.text)
    }

    #[test]
    fn a_sample_ends_at_end_of_text_or_before_a_stop_string() {
        let (shown, ended, text) = feed("Hi there<|endoftext|> more", &[]);
        assert!(ended);
        assert_eq!((shown.as_str(), text.as_str()), ("Hi there", "Hi there"));
        let stops = ["\n\n".to_string(), "!?".to_string()];
        let (shown, ended, text) = feed("Hello world.\n\nMore", &stops);
        assert!(ended);
        assert_eq!(
            (shown.as_str(), text.as_str()),
            ("Hello world.", "Hello world.")
        );
        let (_, ended, text) = feed("Hello world.\nMore", &stops);
        assert!(!ended);
        assert_eq!(text, "Hello world.\nMore");
    }

    #[test]
    fn streaming_holds_back_only_what_may_still_become_a_stop_string() {
        let gpt2 = Tokenizer::gpt2();
        let stops = ["world!".to_string()];
        let mut sample = SampleText::new(&gpt2);
        let mut shown = Vec::new();
        for id in gpt2.encode("Hello world.").unwrap() {
            assert!(!sample.push(id, None, &stops));
            shown.push(sample.unshown(&stops).to_string());
        }
        // " world" may begin "world!": held until "." shows it cannot.
        assert_eq!(shown, ["Hello", " ", "world."]);
    }
}
