//! The `wgpt` command line as a user meets it: output and exit codes.

use std::process::Command;

fn wgpt(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wgpt"))
        .args(args)
        .output()
        .expect("running wgpt");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn info_preset_prints_exact_parameter_counts() {
    let (ok, out, _) = wgpt(&["info", "--preset", "gpt2"]);
    assert!(ok);
    assert!(out.contains("124,439,808"), "{out}");
    assert!(
        out.contains("163,037,184") && out.contains("621.94 MiB"),
        "{out}"
    );
    let (ok, out, _) = wgpt(&["info", "--preset", "anatomy"]);
    assert!(ok && out.contains("5,048,576"), "{out}");
}

#[test]
fn unknown_preset_is_one_line_and_a_failure() {
    let (ok, _, err) = wgpt(&["info", "--preset", "gpt5"]);
    assert!(!ok);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("unknown preset \"gpt5\""), "{err}");
}

#[test]
fn an_adapter_name_that_matches_nothing_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_wgpt"))
        .arg("info")
        .env("WGPU_ADAPTER_NAME", "no-such-gpu-anywhere")
        .output()
        .expect("running wgpt");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("WGPU_ADAPTER_NAME=no-such-gpu-anywhere matches none of"),
        "{err}"
    );
}

#[test]
fn info_names_the_adapter_and_backend() {
    let (ok, out, err) = wgpt(&["info"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("adapter:") && out.contains("backend:"),
        "{out}"
    );
}

/// A scratch directory for one test, removed when dropped.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("wgpt-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn corpus(dir: &Scratch) -> String {
    let text = &include_str!("../data/tinyshakespeare.txt")[..50_000];
    let path = dir.path("corpus.txt");
    std::fs::write(&path, text).unwrap();
    path
}

const SMALL: [&str; 10] = [
    "--batch",
    "4",
    "--seq",
    "32",
    "--eval-every",
    "0",
    "--log-every",
    "5",
    "--warmup",
    "2",
];

#[test]
fn train_save_eval_sample_and_resume_a_model() {
    let dir = Scratch::new("e2e");
    let data = corpus(&dir);
    let model = dir.path("model");
    let mut args = vec![
        "train", "--data", &data, "--steps", "10", "--save", &model, "--json",
    ];
    args.extend(SMALL);
    let (ok, out, err) = wgpt(&args);
    assert!(ok, "{err}");
    let losses: Vec<f64> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["loss"].as_f64())
        .collect();
    assert!(
        losses.len() >= 2 && losses[losses.len() - 1] < losses[0],
        "{out}"
    );
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "optimizer.safetensors",
        "trainer_state.json",
    ] {
        assert!(
            std::path::Path::new(&model).join(file).exists(),
            "{file} missing"
        );
    }

    let (ok, out, err) = wgpt(&[
        "eval",
        "--model",
        &model,
        "--data",
        &data,
        "--eval-steps",
        "2",
        "--batch",
        "2",
    ]);
    assert!(
        ok && out.contains("val loss") && out.contains("perplexity"),
        "{out}{err}"
    );

    let (ok, out, err) = wgpt(&[
        "sample",
        "--model",
        &model,
        "--prompt",
        "KING:",
        "--max-new-tokens",
        "20",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("KING:") && out.trim_end().chars().count() >= 21,
        "{out}"
    );
    let (_, again, _) = wgpt(&[
        "sample",
        "--model",
        &model,
        "--prompt",
        "KING:",
        "--max-new-tokens",
        "20",
    ]);
    assert_eq!(out, again, "same seed, same text");

    let (ok, out, err) = wgpt(&[
        "train", "--resume", &model, "--data", &data, "--steps", "15", "--json",
    ]);
    assert!(ok, "{err}");
    assert!(out.lines().any(|l| l.contains("\"step\":15")), "{out}");
}

/// Runs a failing command and checks the one-line message; the saved model must be untouched.
fn fails_with(args: &[&str], expect: &str, untouched: &str) {
    let before = std::fs::read(std::path::Path::new(untouched).join("model.safetensors")).unwrap();
    let (ok, _, err) = wgpt(args);
    assert!(!ok, "{args:?} succeeded");
    let message: Vec<&str> = err
        .lines()
        .filter(|l| !l.contains("XDG_RUNTIME_DIR"))
        .collect();
    assert_eq!(message.len(), 1, "{err}");
    assert!(
        message[0].starts_with("error: ") && message[0].contains(expect),
        "{err}"
    );
    let after = std::fs::read(std::path::Path::new(untouched).join("model.safetensors")).unwrap();
    assert!(before == after, "{args:?} changed the checkpoint");
}

#[test]
fn bad_input_is_one_clear_line_and_leaves_checkpoints_alone() {
    let dir = Scratch::new("bad");
    let data = corpus(&dir);
    let model = dir.path("model");
    let mut args = vec![
        "train", "--data", &data, "--steps", "2", "--save", &model, "--json",
    ];
    args.extend(SMALL);
    assert!(wgpt(&args).0);

    // --seq above the context length (baby: 64).
    let long = ["train", "--data", &data, "--seq", "65", "--save", &model];
    fails_with(&long, "context length", &model);

    // Token ids the model's vocabulary does not have.
    let tokens = dir.path("big.bin");
    std::fs::write(&tokens, [1u8, 0, 200, 0, 3, 0]).unwrap();
    let bad_ids = [
        "train",
        "--tokens",
        &tokens,
        "--vocab-size",
        "65",
        "--save",
        &model,
    ];
    fails_with(&bad_ids, "token id 200", &model);

    // A data file that is not there.
    let missing = ["train", "--data", "/no/such/file.txt", "--save", &model];
    fails_with(&missing, "/no/such/file.txt", &model);

    // A model too big for the adapter: GPT-2 XL's parameters exceed one storage binding.
    let xl = [
        "train", "--preset", "gpt2-xl", "--tokens", &tokens, "--save", &model,
    ];
    fails_with(&xl, "max_storage_buffer_binding_size", &model);

    // A truncated checkpoint to start from, and one whose config contradicts its weights.
    let broken = dir.path("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::copy(
        format!("{model}/config.json"),
        format!("{broken}/config.json"),
    )
    .unwrap();
    let weights = std::fs::read(format!("{model}/model.safetensors")).unwrap();
    std::fs::write(
        format!("{broken}/model.safetensors"),
        &weights[..weights.len() / 3],
    )
    .unwrap();
    let truncated = [
        "train", "--init", &broken, "--data", &data, "--save", &model,
    ];
    fails_with(&truncated, "truncated", &model);
    let config = std::fs::read_to_string(format!("{model}/config.json")).unwrap();
    std::fs::write(
        format!("{broken}/config.json"),
        config.replace("\"n_embd\": 128", "\"n_embd\": 256"),
    )
    .unwrap();
    std::fs::write(format!("{broken}/model.safetensors"), &weights).unwrap();
    let contradicts = [
        "train", "--init", &broken, "--data", &data, "--save", &model,
    ];
    fails_with(&contradicts, "has shape", &model);
}
