//! `wgpt train` as a run you can leave: its output directory, Ctrl-C and SIGTERM (stop after the step,
//! save, exit 130/143, resume exactly), `kill -9` at any moment (the directory still loads and
//! resumes), and the bad inputs refused before anything is written.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use rand::{Rng, SeedableRng};

mod scratch;
use scratch::Scratch;

/// `wgpt` with the caches (autotuning, pipelines) under the build's own scratch space (removed by
/// `cargo clean`), so that no file under the user's cache directory can add a warning to what a test
/// reads.
fn wgpt() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wgpt"));
    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("trainer-cache");
    command.env("WGPT_CACHE_DIR", cache);
    command
}

/// A small corpus and a tiny model config (2 layers, width 32, context 32): quick steps and saves.
fn setup(dir: &Scratch) -> (String, String) {
    let data = dir.path("corpus.txt");
    std::fs::write(
        &data,
        &include_str!("../data/tinyshakespeare.txt")[..50_000],
    )
    .unwrap();
    let config = dir.path("tiny.json");
    let json = r#"{"vocab_size": 65, "n_positions": 32, "n_embd": 32, "n_layer": 2, "n_head": 2, "resid_pdrop": 0.1}"#;
    std::fs::write(&config, json).unwrap();
    (data, config)
}

/// `wgpt train` with the tiny model on `data`, `steps` steps into `out`, plus `more`.
fn train_args(config: &str, data: &str, steps: u32, out: &str, more: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "train",
        "--config",
        config,
        "--data",
        data,
        "--batch",
        "4",
        "--seq",
        "32",
        "--warmup",
        "2",
        "--log-every",
        "1",
        "--eval-every",
        "4",
        "--eval-steps",
        "2",
        "--json",
        "--out",
        out,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(["--steps".into(), steps.to_string()]);
    args.extend(more.iter().map(|s| s.to_string()));
    args
}

/// A `wgpt train` process whose JSON lines are read as they come.
struct Running {
    child: Child,
    stdout: BufReader<ChildStdout>,
    read: String,
}

fn spawn(args: &[String]) -> Running {
    let mut child = wgpt()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running wgpt");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    Running {
        child,
        stdout,
        read: String::new(),
    }
}

impl Running {
    /// Reads JSON lines until one reports step `step` or later; returns the step it reports
    /// (`None` if the output ends first).
    fn wait_for_step(&mut self, step: u64) -> Option<u64> {
        let mut line = String::new();
        while self.stdout.read_line(&mut line).unwrap() > 0 {
            self.read += &line;
            match losses(&line).first() {
                Some(&(s, _)) if s >= step => return Some(s),
                _ => line.clear(),
            }
        }
        None
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args([name, &pid]).status().unwrap();
        assert!(status.success(), "kill {name} {pid}");
    }

    /// Waits for the end: the exit code, all of stdout and stderr.
    fn finish(mut self) -> (i32, String, String) {
        self.stdout.read_to_string(&mut self.read).unwrap();
        let out = self.child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code().unwrap_or(-1), self.read, err)
    }
}

/// Runs to the end; returns the losses of the logged steps by step.
fn run(args: &[String]) -> Vec<(u64, f64)> {
    let out = wgpt().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {err}");
    losses(&String::from_utf8_lossy(&out.stdout))
}

fn losses(json_lines: &str) -> Vec<(u64, f64)> {
    (json_lines.lines())
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| Some((v["step"].as_u64()?, v["loss"].as_f64()?)))
        .collect()
}

/// The checkpoint in `dir` (or `dir.old`, during a swap) loads, with its trainer state.
fn loads(dir: &Path) -> bool {
    wgpt::checkpoint::load(dir).is_ok() && wgpt::train::saved_state(dir).is_ok()
}

#[test]
fn sigint_saves_exits_130_and_resuming_gives_the_uninterrupted_losses_bit_for_bit() {
    let dir = Scratch::new("run-sigint");
    let (data, config) = setup(&dir);
    // Enough steps after the signalled one that a fast machine cannot finish before the signal.
    let straight = run(&train_args(&config, &data, 40, &dir.path("straight"), &[]));

    let out = dir.path("stopped");
    let args = train_args(&config, &data, 40, &out, &[]);
    let mut child = spawn(&args);
    child.wait_for_step(5);
    child.signal("-INT");
    let (code, stdout, err) = child.finish();
    assert_eq!(code, 130, "{err}");
    assert!(err.contains("stopped by SIGINT after step"), "{err}");
    assert!(err.contains(&format!("--resume {out}")), "{err}");
    let first = losses(&stdout);
    let stopped_at = first.last().unwrap().0;
    assert!(stopped_at < 40, "the run did not stop: {stdout}");

    // The same command with --resume added continues where it stopped.
    let mut resumed_args = args.clone();
    resumed_args.extend(["--resume".to_string(), out.clone()]);
    let second = run(&resumed_args);
    assert_eq!(second.first().unwrap().0, stopped_at + 1);
    let bits = |v: &[(u64, f64)]| v.iter().map(|&(s, l)| (s, l.to_bits())).collect::<Vec<_>>();
    assert_eq!(bits(&[first, second].concat()), bits(&straight));
    // The log holds each step once, the plot and both checkpoints are there.
    let log = std::fs::read_to_string(format!("{out}/log.jsonl")).unwrap();
    assert_eq!(bits(&losses(&log)), bits(&straight), "{log}");
    for file in [
        "loss.svg",
        "model/model.safetensors",
        "best/model.safetensors",
    ] {
        assert!(Path::new(&out).join(file).exists(), "{file} missing");
    }
}

#[test]
fn sigterm_exits_143_and_a_second_sigint_exits_at_once_leaving_a_checkpoint() {
    let dir = Scratch::new("run-sigterm");
    let (data, config) = setup(&dir);
    let out = dir.path("run");
    let mut child = spawn(&train_args(
        &config,
        &data,
        1000,
        &out,
        &["--save-every", "1"],
    ));
    child.wait_for_step(2);
    child.signal("-TERM");
    let (code, _, err) = child.finish();
    assert_eq!(code, 143, "{err}");
    assert!(loads(&Path::new(&out).join("model")));

    let resume = ["--resume", out.as_str(), "--save-every", "1"];
    let mut child = spawn(&train_args(&config, &data, 1000, &out, &resume));
    child.wait_for_step(4);
    child.signal("-INT");
    child.signal("-INT");
    let (code, _, err) = child.finish();
    assert_eq!(code, 130, "{err}");
    assert!(loads(&Path::new(&out).join("model")));
}

/// `kill -9` at 10 seeded random moments of a run that saves after every step (so many kills land
/// mid-save): each time the directory's latest and best checkpoints load, and the run resumes from
/// them; the run finally completed this way ends with the uninterrupted run's weights, bit for bit.
#[test]
fn kill_9_at_ten_random_moments_always_leaves_a_checkpoint_that_resumes() {
    let dir = Scratch::new("run-kill9");
    let (data, config) = setup(&dir);
    let steps = 80;
    let straight = dir.path("straight");
    run(&train_args(
        &config,
        &data,
        steps,
        &straight,
        &["--save-every", "1"],
    ));

    let out = dir.path("killed");
    let model = Path::new(&out).join("model");
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    for kill in 0..10 {
        let mut more = vec!["--save-every", "1"];
        if wgpt::checkpoint::exists(&model) {
            more.extend(["--resume", out.as_str()]);
        }
        let mut child = spawn(&train_args(&config, &data, steps, &out, &more));
        // Once it trains (the first run: once its first checkpoint is saved), 0 to 2 steps later
        // and then a random moment into the step (or its save). Counting steps, not sleeping
        // long, keeps every kill inside the run however fast the machine is.
        let first = child.wait_for_step(if kill == 0 { 2 } else { 0 });
        let first = first.unwrap_or_else(|| panic!("kill {kill}: no step logged: {}", child.read));
        child.wait_for_step(first + rng.random_range(0..3));
        std::thread::sleep(Duration::from_micros(rng.random_range(0..20_000)));
        child.child.kill().unwrap();
        let (code, _, err) = child.finish();
        assert!(code != 0, "kill {kill}: the run ended before it: {err}");
        assert!(loads(&model), "kill {kill}: model/ does not load");
        let best = Path::new(&out).join("best");
        if wgpt::checkpoint::exists(&best) {
            assert!(loads(&best), "kill {kill}: best/ does not load");
        }
    }
    run(&train_args(
        &config,
        &data,
        steps,
        &out,
        &["--resume", &out],
    ));
    let weights = |d: &str| std::fs::read(format!("{d}/model/model.safetensors")).unwrap();
    assert!(
        weights(&out) == weights(&straight),
        "resumed weights differ"
    );
}

/// Runs a command that must fail before writing anything: one line naming `expect`, no `out` created.
fn refused(args: &[String], expect: &str, out: &str) {
    let output = wgpt().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    // clap's refusals add a blank line and a pointer to --help after their one error line.
    let lines: Vec<&str> = (err.lines())
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .collect();
    assert!(!output.status.success(), "{args:?} succeeded");
    assert!(
        lines.len() == 1 && lines[0].starts_with("error: ") && lines[0].contains(expect),
        "{args:?}: {err}"
    );
    assert!(!Path::new(out).exists(), "{args:?} wrote {out}");
}

#[test]
fn contradicting_or_impossible_inputs_are_refused_before_anything_is_written() {
    let dir = Scratch::new("run-refused");
    let (data, config) = setup(&dir);
    let saved = dir.path("saved");
    run(&train_args(&config, &data, 2, &saved, &[]));
    let out = dir.path("never");
    let with = |more: &[&str]| train_args(&config, &data, 2, &out, more);

    refused(
        &with(&["--lr", "nan"]),
        "'--lr <LR>': must be a finite number",
        &out,
    );
    refused(&with(&["--beta2", "inf"]), "must be a finite number", &out);
    refused(&with(&["--grad-accum", "0"]), "must be at least 1", &out);
    // The data's 59 characters cannot be numbered in 50 ids.
    refused(
        &with(&["--vocab-size", "50"]),
        "--vocab-size 50 contradicts the tokenizer",
        &out,
    );
    // A model of the corpus's 59 characters started from, told it has 97 tokens.
    let mut init = with(&["--vocab-size", "97"]);
    let at = init.iter().position(|a| a == "--config").unwrap();
    init.splice(at..at + 2, ["--init".to_string(), format!("{saved}/model")]);
    refused(
        &init,
        "--vocab-size 97 contradicts the model's vocabulary of 59",
        &out,
    );
    // The same run resumed with another model shape.
    let mut wider = with(&["--resume", &saved]);
    let at = wider.iter().position(|a| a == "--config").unwrap();
    wider.splice(at..at + 2, ["--preset".to_string(), "baby".to_string()]);
    refused(&wider, "n_embd 128 (checkpoint: 32)", &out);
    // A token file of odd length (a truncated write).
    let odd = dir.path("odd.bin");
    std::fs::write(&odd, vec![1u8; 2001]).unwrap();
    let tokens = [
        "train",
        "--tokens",
        &odd,
        "--vocab-size",
        "65",
        "--out",
        &out,
    ];
    let tokens: Vec<String> = tokens.iter().map(|s| s.to_string()).collect();
    refused(
        &tokens,
        "2001 bytes is not a whole number of uint16 tokens",
        &out,
    );
    // A fresh run into a directory holding a finished run replaces it (the same command runs again);
    // one holding an unfinished run (here made to have stopped at step 2 of 10) is refused.
    let again = train_args(&config, &data, 2, &saved, &[]);
    run(&again);
    let state = format!("{saved}/model/trainer_state.json");
    let unfinished =
        (std::fs::read_to_string(&state).unwrap()).replace("\"steps\": 2,", "\"steps\": 10,");
    std::fs::write(&state, unfinished).unwrap();
    refused(&again, "holds an unfinished run (step 2 of 10)", &out);
}

/// A device that cannot hold the step's activations (the test hook caps what a plan may allocate, as
/// a GPU with that much memory would): one line naming the model, the batch and the planned bytes, and
/// the --batch that fits; nothing written.
#[test]
fn running_out_of_gpu_memory_is_one_line_naming_the_batch_that_fits() {
    let dir = Scratch::new("run-oom");
    let (data, config) = setup(&dir);
    let out = dir.path("never");
    let mut args = train_args(&config, &data, 2, &out, &[]);
    let batch = args.iter().position(|a| a == "--batch").unwrap();
    args[batch + 1] = "64".into();
    let output = wgpt()
        .args(&args)
        .env(wgpt::gpu::TEST_DEVICE_MEMORY, "2000000")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_default();
    for expect in [
        "out of GPU memory",
        "batches of 64 x 32 tokens",
        "MiB",
        "--batch",
        "fits",
    ] {
        assert!(line.contains(expect), "{expect:?} missing: {err}");
    }
    assert!(!Path::new(&out).exists(), "wrote {out}");
}
