//! `wgpt sample` as a user meets it: batches of samples, JSON, greedy decoding, stop strings, the
//! playground driven through stdin, and bad input as one clear line.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use wgpt::data::Tokenizer;
use wgpt::model::GptConfig;

mod common;
use common::{tiny, uniform_params};

mod scratch;
use scratch::Scratch;

/// The text the test model's characters come from.
const TEXT: &str = "KING: what news from the north?\nQUEEN: none, my lord.\n";

/// A character-level model of [`TEXT`]'s characters ([`tiny`] with one layer, context 32) with
/// parameters uniform in [-0.3, 0.3) (peaked enough that samples differ), saved in `dir/model`.
fn char_model(dir: &Scratch) -> String {
    let tokenizer = Tokenizer::chars_of(TEXT);
    let config = GptConfig {
        vocab_size: tokenizer.vocab_size(),
        n_layer: 1,
        ..tiny(false)
    };
    let model = dir.path("model");
    let extra = [("tokenizer.json", tokenizer.to_json().into_bytes())];
    let params = uniform_params(&config, 3);
    wgpt::checkpoint::save(Path::new(&model), &config, &params, &extra).unwrap();
    model
}

/// Runs `wgpt sample --model model args..` with `stdin`: (success, stdout, stderr).
fn sample(model: &str, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wgpt"))
        .args(["sample", "--model", model])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running wgpt");
    let mut input = child.stdin.take().expect("a stdin pipe");
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().expect("waiting for wgpt");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn ids(sample: &serde_json::Value, key: &str) -> Vec<u64> {
    (sample[key].as_array().unwrap().iter())
        .map(|v| v.as_u64().unwrap())
        .collect()
}

#[test]
fn a_batch_prints_one_json_object_per_sample_the_first_the_single_samples() {
    let dir = Scratch::new("sample-json");
    let model = char_model(&dir);
    let tokenizer = Tokenizer::chars_of(TEXT);
    let args = ["--prompt", "KING:", "--max-new-tokens", "12", "--json"];
    let (ok, out, err) = sample(&model, &[&args[..], &["--num-samples", "4"]].concat(), "");
    assert!(ok, "{err}");
    let samples = json_lines(&out);
    assert_eq!(samples.len(), 4, "{out}");
    for s in &samples {
        let keys: Vec<&String> = s.as_object().unwrap().keys().collect();
        for key in ["prompt_ids", "ids", "text", "prefill_ms", "ms_per_token"] {
            assert!(keys.iter().any(|k| *k == key), "{key} missing: {s}");
        }
        let prompt: Vec<u64> = tokenizer
            .encode("KING:")
            .unwrap()
            .iter()
            .map(|&i| i as u64)
            .collect();
        assert_eq!(ids(s, "prompt_ids"), prompt);
        let new: Vec<u32> = ids(s, "ids").iter().map(|&i| i as u32).collect();
        assert_eq!(new.len(), 12);
        assert_eq!(s["text"], tokenizer.decode(&new));
        assert!(
            s["prefill_ms"].as_f64().unwrap() > 0.0 && s["ms_per_token"].as_f64().unwrap() > 0.0
        );
    }
    assert!(
        samples.windows(2).any(|w| w[0]["ids"] != w[1]["ids"]),
        "{out}"
    );
    assert!(
        err.contains("prefill: 5 tokens") && err.contains("decode: 11 steps of 4"),
        "{err}"
    );
    let (ok, single, err) = sample(&model, &args, "");
    assert!(ok, "{err}");
    assert_eq!(
        json_lines(&single)[0]["ids"],
        samples[0]["ids"],
        "sample 0 of a batch is the single sample"
    );
}

#[test]
fn temperature_0_is_greedy_a_stop_string_ends_the_text_before_it_and_profile_adds_the_kernels() {
    let dir = Scratch::new("sample-greedy");
    let model = char_model(&dir);
    let args = [
        "--prompt",
        "QUEEN:",
        "--max-new-tokens",
        "20",
        "--temperature",
        "0",
    ];
    let (ok, out, err) = sample(
        &model,
        &[&args[..], &["--num-samples", "3", "--json"]].concat(),
        "",
    );
    assert!(ok, "{err}");
    let samples = json_lines(&out);
    assert!(
        samples.iter().all(|s| s["ids"] == samples[0]["ids"]),
        "{out}"
    );
    let greedy = samples[0]["text"].as_str().unwrap().to_string();
    // The streamed text is the prompt and the same continuation.
    let (ok, streamed, err) = sample(&model, &args, "");
    assert!(ok, "{err}");
    assert_eq!(streamed, format!("QUEEN:{greedy}\n"));
    // --profile prints a decode step's kernels after the same text.
    let (ok, profiled, err) = sample(&model, &[&args[..], &["--profile"]].concat(), "");
    assert!(ok, "{err}");
    assert_eq!(profiled, streamed);
    assert!(
        err.contains("profile of a decode step of 1 sample(s)")
            && err.contains("kv-cache attention"),
        "{err}"
    );
    // Stop at a piece of the greedy text: the sample ends just before its first occurrence.
    let chars: Vec<char> = greedy.chars().collect();
    let stop: String = chars[4..6].iter().collect();
    let cut = &greedy[..greedy.find(&stop).unwrap()];
    let (ok, out, err) = sample(&model, &[&args[..], &["--stop", &stop]].concat(), "");
    assert!(ok, "{err}");
    assert_eq!(out, format!("QUEEN:{cut}\n"), "stop {stop:?}");
}

#[test]
fn the_playground_asks_with_defaults_streams_and_asks_again_until_end_of_input() {
    let dir = Scratch::new("sample-play");
    let model = char_model(&dir);
    let greedy = [
        "--prompt",
        "KING:",
        "--max-new-tokens",
        "6",
        "--temperature",
        "0",
    ];
    let (ok, want, err) = sample(&model, &greedy, "");
    assert!(ok, "{err}");
    // Round 1: a start text, 6 tokens, greedy. Round 2: a bad count, which restarts the round.
    // Round 3: every default (start "\n", 4 tokens, temperature 0.8). Then the input ends.
    let answers = "KING:\n6\n0\nQUEEN:\nmany\n\n\n\n\n";
    let (ok, out, err) = sample(&model, &["--interactive", "--max-new-tokens", "4"], answers);
    assert!(ok, "{err}");
    let ask = "start text [\\n]: tokens [4]: temperature [0.8]: ";
    assert!(out.starts_with(&format!("{ask}{want}")), "{out}");
    assert_eq!(out.matches("start text [\\n]: ").count(), 4, "{out}");
    assert!(
        err.contains("error: tokens: \"many\" is not a whole number"),
        "{err}"
    );
    // The defaults' round: a newline and 4 characters and the line's end, then the last question,
    // unanswered.
    let last = out.rsplit(ask).next().unwrap();
    let generated = last.strip_suffix("start text [\\n]: ").unwrap();
    assert_eq!(generated.chars().count(), 1 + 4 + 1, "{last:?}");
}

#[test]
fn bad_sample_input_is_one_clear_line() {
    let dir = Scratch::new("sample-bad");
    let model = char_model(&dir);
    let latin1 = dir.path("latin1.txt");
    std::fs::write(&latin1, b"KING: caf\xe9").unwrap();
    let long = "KING: ".repeat(6);
    // Refused by wgpt once the model's context and the prompt are known: one line.
    let cases: [(&[&str], &str); 3] = [
        (
            &["--prompt", &long],
            "longer than the model's context of 32 tokens",
        ),
        (&["--prompt-file", &latin1], "not UTF-8 text (byte 9"),
        (&["--prompt-ids", "1,2,999"], "999"),
    ];
    for (args, expect) in cases {
        let (ok, _, err) = sample(&model, args, "");
        assert!(!ok, "{args:?} succeeded");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {err}");
        assert!(
            lines[0].starts_with("error: ") && lines[0].contains(expect),
            "{args:?}: {err}"
        );
    }
    // Refused as the flags are parsed: one error line naming the flag and the reason (then clap's
    // pointer to --help).
    let at_least_one = "must be at least 1";
    let cases: [(&[&str], &str, &str); 9] = [
        (
            &["--dtype", "f8"],
            "'--dtype <DTYPE>'",
            "must be f32, f16 or bf16",
        ),
        (
            &["--num-samples", "0"],
            "'--num-samples <NUM_SAMPLES>'",
            at_least_one,
        ),
        (
            &["--num_samples", "0"],
            "'--num-samples <NUM_SAMPLES>'",
            at_least_one,
        ),
        (
            &["--temperature=-1"],
            "'--temperature <TEMPERATURE>'",
            "must be at least 0",
        ),
        (
            &["--temperature", "NaN"],
            "'--temperature <TEMPERATURE>'",
            "finite number",
        ),
        (
            &["--top-p", "0"],
            "'--top-p <TOP_P>'",
            "must be above 0 and at most 1",
        ),
        (
            &["--top-p", "1.5"],
            "'--top-p <TOP_P>'",
            "must be above 0 and at most 1",
        ),
        (
            &["--interactive", "--json"],
            "'--interactive'",
            "cannot be used with '--json'",
        ),
        (
            &["--interactive", "--profile"],
            "'--interactive'",
            "cannot be used with '--profile'",
        ),
    ];
    for (args, flag, reason) in cases {
        let (ok, _, err) = sample(&model, args, "");
        assert!(!ok, "{args:?} succeeded");
        let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(errors.len(), 1, "{args:?}: {err}");
        assert!(
            errors[0].contains(flag) && errors[0].contains(reason),
            "{args:?}: {err}"
        );
    }
}

/// `--dtype f16` and `bf16` sample from the model with its matrices in 16 bits: greedy decoding gives
/// f32's tokens (this model's two best logits are far apart next to the rounding: see tests/dtype.rs).
/// A model holding a weight f16 cannot (past 65504) is refused in one line naming it and the way out.
#[test]
fn sixteen_bit_weights_sample_the_greedy_text_and_f16_refuses_weights_past_its_range() {
    let dir = Scratch::new("sample-dtype");
    let model = char_model(&dir);
    let greedy = [
        "--prompt",
        "KING:",
        "--temperature",
        "0",
        "--max-new-tokens",
        "16",
    ];
    let (ok, want, err) = sample(&model, &greedy, "");
    assert!(ok, "{err}");
    for dtype in ["f16", "bf16"] {
        let (ok, got, err) = sample(&model, &[&greedy[..], &["--dtype", dtype]].concat(), "");
        assert!(ok, "{dtype}: {err}");
        assert_eq!(got, want, "{dtype}");
    }
    let config = wgpt::checkpoint::load_config(Path::new(&model)).unwrap();
    let mut params = uniform_params(&config, 3);
    params[0][5] = 1.0e5;
    let extra = [(
        "tokenizer.json",
        Tokenizer::chars_of(TEXT).to_json().into_bytes(),
    )];
    wgpt::checkpoint::save(Path::new(&model), &config, &params, &extra).unwrap();
    let (ok, _, err) = sample(&model, &[&greedy[..], &["--dtype", "f16"]].concat(), "");
    assert!(!ok, "f16 accepted a weight of 1e5");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with("error: ")
            && lines[0].contains("transformer.wte.weight holds 100000")
            && lines[0].contains("--dtype bf16"),
        "{err}"
    );
    let (ok, _, err) = sample(&model, &[&greedy[..], &["--dtype", "bf16"]].concat(), "");
    assert!(ok, "bf16: {err}");
}
