//! The `wgpt` command line as a user meets it: output and exit codes.

use std::process::Command;

mod scratch;
use scratch::Scratch;

/// Runs wgpt as on a fresh machine (no `XDG_RUNTIME_DIR`, whose absence makes Mesa's Vulkan layer
/// print through libwayland unless wgpt prevents it), with stdout and stderr captured (not terminals),
/// and autotuning off, so that results do not depend on timings (or on other tests' runs).
fn wgpt(args: &[&str]) -> (bool, String, String) {
    wgpt_env(args, &[])
}

/// A cache directory of these tests, under the build's own scratch space (removed by `cargo clean`),
/// so that no file under the user's cache directory can add a warning to what a test reads.
fn scratch_cache() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-cache")
}

/// [`wgpt`] with environment variables set.
fn wgpt_env(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wgpt"))
        .args(args)
        .env_remove("XDG_RUNTIME_DIR")
        .env("WGPT_AUTOTUNE", "off")
        .env("WGPT_CACHE_DIR", scratch_cache())
        .envs(env.iter().copied())
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

/// The planned MiB of a training step `wgpt info` prints for `args` (its "total" line).
fn planned_total_mib(args: &[&str]) -> f64 {
    planned_mib(args, "total")
}

/// The planned MiB of class `class` ("total", "activations", ...) `wgpt info` prints for `args`.
fn planned_mib(args: &[&str], class: &str) -> f64 {
    let (ok, out, err) = wgpt(&[&["info"], args].concat());
    assert!(ok, "{err}");
    // The plan's lines are the class and MiB (the parameter table's "total" is a count with commas).
    let mib = out.lines().find_map(|l| {
        let mut words = l.split_whitespace();
        (words.next() == Some(class)).then(|| words.next()?.parse().ok())?
    });
    mib.unwrap_or_else(|| panic!("no planned {class} in:\n{out}"))
}

/// Keeping activations in bf16 (or f16) halves them: GPT-2's at batch 8 x 1024 from 4.8 GiB to 2.6
/// (the rest of the difference to a half is the unpacked f32 copies of one block's backward and the
/// logits); with f32 parameters, gradients and moments (1.9 GiB) and the 16-bit weights (0.2) the
/// step plans 0.70x.
#[test]
fn info_plans_16_bit_activations_in_about_half_the_memory() {
    let gpt2 = ["--preset", "gpt2", "--batch", "8", "--seq", "1024"];
    let f32 = planned_mib(&gpt2, "activations");
    for half in ["bf16", "f16"] {
        let args = [&gpt2[..], &["--precision", half]].concat();
        let packed = planned_mib(&args, "activations");
        assert!(packed < 0.55 * f32, "{packed} MiB in {half}, {f32} in f32");
    }
    let (ok, out, err) = wgpt(&[&["info"], &gpt2[..], &["--precision", "bf16"]].concat());
    assert!(ok && out.contains("--precision bf16"), "{out}{err}");
}

/// Recomputing blocks halves GPT-2's planned step at batch 8 x 1024 (activations from 4.8 GiB to
/// 0.9) and brings GPT-2 medium's at 4 x 1024 under 8 GiB.
#[test]
fn info_plans_a_step_that_recomputes_its_blocks_in_less_memory() {
    let gpt2 = ["--preset", "gpt2", "--batch", "8", "--seq", "1024"];
    let kept = planned_total_mib(&gpt2);
    let again = planned_total_mib(&[&gpt2[..], &["--recompute", "block"]].concat());
    assert!(
        again < 0.55 * kept,
        "{again} MiB recomputing, {kept} keeping"
    );
    let medium = ["--preset", "gpt2-medium", "--batch", "4", "--seq", "1024"];
    let again = planned_total_mib(&[&medium[..], &["--recompute", "block"]].concat());
    assert!(again < 8.0 * 1024.0, "GPT-2 medium plans {again} MiB");
}

#[test]
fn unknown_preset_is_one_line_and_a_failure() {
    let (ok, _, err) = wgpt(&["info", "--preset", "gpt5"]);
    assert!(!ok);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("unknown preset \"gpt5\""), "{err}");
}

#[test]
fn an_adapter_name_that_matches_nothing_lists_the_adapters_with_their_backends() {
    let env = [("WGPU_ADAPTER_NAME", "no-such-gpu-anywhere")];
    for (args, env, what) in [
        (
            &["info"][..],
            &env[..],
            "WGPU_ADAPTER_NAME=no-such-gpu-anywhere matches none",
        ),
        (
            &["info", "--adapter", "nvidia"],
            &[],
            "no adapter's name or backend matches \"nvidia\"",
        ),
        (&["info", "--adapter", "99"], &[], "there is no adapter #99"),
    ] {
        let (ok, _, err) = wgpt_env(args, env);
        assert!(!ok, "{args:?}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("error: ") && err.contains(what), "{err}");
        assert!(
            err.contains("#0 ") && err.contains(" on vulkan") && err.contains("wgpt devices"),
            "{err}"
        );
        assert!(
            !err.contains("install"),
            "adapters exist: no install hint: {err}"
        );
    }
}

#[test]
fn info_names_the_adapter_and_backend_and_prints_no_driver_noise() {
    let (ok, out, err) = wgpt(&["info"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("adapter:") && out.contains("backend:"),
        "{out}"
    );
    assert_eq!(err, "", "nothing on stderr without XDG_RUNTIME_DIR");
}

#[test]
fn devices_lists_vulkan_and_gl_adapters_and_adapter_picks_one() {
    let (ok, out, err) = wgpt(&["devices"]);
    assert!(ok && err.is_empty(), "{err}");
    let rows: Vec<Vec<&str>> = (out.lines().skip(1))
        .map(|l| l.trim_start_matches('*').split_whitespace().collect())
        .filter(|r: &Vec<&str>| r.first().is_some_and(|i| i.parse::<usize>().is_ok()))
        .collect();
    let index_of = |backend: &str| {
        rows.iter()
            .find(|r| r[1] == backend)
            .unwrap_or_else(|| panic!("no {backend} adapter in\n{out}"))[0]
    };
    assert!(
        out.lines().any(|l| l.starts_with('*')),
        "the default is marked:\n{out}"
    );
    for backend in ["vulkan", "gl"] {
        for choice in [index_of(backend), backend] {
            let (ok, info, err) = wgpt(&["info", "--adapter", choice]);
            assert!(ok && err.is_empty(), "{err}");
            assert!(
                info.contains(&format!("backend:    {backend}")),
                "{choice}: {info}"
            );
        }
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
    let dir = Scratch::new("cli-e2e");
    let data = corpus(&dir);
    let model = dir.path("model");
    let out = dir.path("out");
    let mut args = vec![
        "train", "--data", &data, "--steps", "10", "--save", &model, "--json", "--out", &out,
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
    // The same evaluation with the weights in 16 bits: a loss within bf16's rounding of f32's (a
    // relative 2⁻⁸ per weight moves a loss near 4 by a few thousandths; 0.05 catches a wrong read).
    let eval_json = |dtype: &str| -> f64 {
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
            "--json",
            "--dtype",
            dtype,
        ]);
        assert!(ok, "{dtype}: {err}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        v["val_loss"].as_f64().unwrap()
    };
    let f32_loss = eval_json("f32");
    for dtype in ["f16", "bf16"] {
        let loss = eval_json(dtype);
        assert!(
            (loss - f32_loss).abs() < 0.05,
            "{dtype}: {loss} vs {f32_loss}"
        );
    }

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
        "train",
        "--resume",
        &model,
        "--data",
        &data,
        "--steps",
        "15",
        "--json",
        "--out",
        &dir.path("resumed"),
    ]);
    assert!(ok, "{err}");
    assert!(out.lines().any(|l| l.contains("\"step\":15")), "{out}");
}

#[test]
fn training_autotunes_into_the_cache_and_ignores_corrupt_caches_with_one_warning_each() {
    let dir = Scratch::new("cli-autotune");
    let data = corpus(&dir);
    let cache = dir.path("cache");
    let out = dir.path("out");
    // Returns stderr and the logged losses.
    let train = |tune: bool| {
        let mut args = vec![
            "train", "--data", &data, "--steps", "3", "--json", "--out", &out,
        ];
        // SMALL, logging every step.
        args.extend([
            "--batch",
            "4",
            "--seq",
            "32",
            "--eval-every",
            "0",
            "--warmup",
            "2",
        ]);
        args.extend(["--log-every", "1"]);
        let mut command = Command::new(env!("CARGO_BIN_EXE_wgpt"));
        command
            .args(&args)
            .env("WGPT_CACHE_DIR", &cache)
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("WGPT_AUTOTUNE");
        if !tune {
            command.env("WGPT_AUTOTUNE", "off");
        }
        let run = command.output().expect("running wgpt");
        let err = String::from_utf8_lossy(&run.stderr).into_owned();
        assert!(run.status.success(), "{err}");
        let losses: Vec<String> = String::from_utf8_lossy(&run.stdout)
            .lines()
            .filter(|l| l.contains("\"loss\""))
            .map(|l| l.split(",\"lr\"").next().unwrap().to_string())
            .collect();
        assert_eq!(losses.len(), 3, "{err}");
        (err, losses)
    };
    let cache_files = |prefix: &str| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .collect()
    };
    let (err, untuned) = train(false);
    assert!(!err.contains("warning"), "{err}");
    let (err, tuned) = train(true);
    assert!(!err.contains("warning"), "{err}");
    // Tuning chooses only among launches that give the same bits.
    assert_eq!(tuned, untuned);
    let files = cache_files("autotune-");
    assert_eq!(files.len(), 1, "{files:?}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        text.contains("\"layernorm_forward/128x") && text.contains("\"wgpu\""),
        "{text}"
    );

    // A corrupt autotune file and a truncated pipeline cache (Vulkan writes one): one warning each.
    std::fs::write(&files[0], "{ not json").unwrap();
    let pipelines = cache_files("pipelines-");
    for file in &pipelines {
        let bytes = std::fs::read(file).unwrap();
        std::fs::write(file, &bytes[..bytes.len() / 2]).unwrap();
    }
    let (err, again) = train(true);
    assert_eq!(again, untuned);
    let warnings: Vec<_> = err.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1 + pipelines.len(), "{err}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("corrupt autotune cache")),
        "{err}"
    );
    if !pipelines.is_empty() {
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("corrupt pipeline cache")),
            "{err}"
        );
    }
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.contains("layernorm_backward"), "rewritten: {text}");
    // Rewritten: the next run warns no more.
    let (err, _) = train(true);
    assert!(!err.contains("warning"), "{err}");
}

/// Runs a failing command and checks the one-line message; the saved model must be untouched.
fn fails_with(args: &[&str], expect: &str, untouched: &str) {
    let before = std::fs::read(std::path::Path::new(untouched).join("model.safetensors")).unwrap();
    let (ok, _, err) = wgpt(args);
    assert!(!ok, "{args:?} succeeded");
    let message: Vec<&str> = err.lines().collect();
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
    let dir = Scratch::new("cli-bad");
    let data = corpus(&dir);
    let model = dir.path("model");
    let out = dir.path("out");
    let mut args = vec![
        "train", "--data", &data, "--steps", "2", "--save", &model, "--json", "--out", &out,
    ];
    args.extend(SMALL);
    assert!(wgpt(&args).0);

    // --seq above the context length (baby: 64).
    let long = ["train", "--data", &data, "--seq", "65", "--save", &model];
    fails_with(&long, "context length", &model);

    // Token ids the model's vocabulary does not have.
    let tokens = dir.path("big.bin");
    let mut ids = [3u8, 0].repeat(300);
    ids[100] = 200;
    std::fs::write(&tokens, ids).unwrap();
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

    // A model too big for the adapter: a 4096-wide MLP matrix (268 MB) exceeds one storage binding,
    // and only embeddings are split.
    let wide = dir.path("wide.json");
    std::fs::write(
        &wide,
        r#"{"vocab_size": 65, "n_positions": 64, "n_embd": 4096, "n_layer": 1, "n_head": 32}"#,
    )
    .unwrap();
    let too_big = [
        "train", "--config", &wide, "--tokens", &tokens, "--save", &model,
    ];
    fails_with(&too_big, "max_storage_buffer_binding_size", &model);

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
    fails_with(&contradicts, "but the config implies", &model);
}

fn read_u16(path: &str) -> Vec<u32> {
    wgpt::data::read_tokens(std::path::Path::new(path)).unwrap()
}

#[test]
fn a_trained_bpe_prepares_data_trains_and_samples() {
    let dir = Scratch::new("cli-bpe");
    let data = corpus(&dir);
    let tok = dir.path("tok.json");
    let (ok, out, err) = wgpt(&[
        "tokenizer",
        "train",
        &data,
        "--vocab-size",
        "300",
        "--special-tokens",
        "<|startoftext|>, <|endoftext|>",
        "--out",
        &tok,
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("vocabulary 300") && out.contains("<|endoftext|> = 299"),
        "{out}"
    );

    let prepared = dir.path("prepared");
    let (ok, out, err) = wgpt(&[
        "prepare",
        "--tokenizer",
        &tok,
        "--data",
        &data,
        "--out",
        &prepared,
    ]);
    assert!(ok && out.contains("vocabulary 300"), "{out}{err}");
    let tokenizer = wgpt::data::Tokenizer::load(std::path::Path::new(&tok)).unwrap();
    let text = std::fs::read_to_string(&data).unwrap();
    let (train, val) = (
        read_u16(&format!("{prepared}/train.bin")),
        read_u16(&format!("{prepared}/val.bin")),
    );
    assert_eq!(train.len(), (train.len() + val.len()) * 9 / 10);
    assert_eq!([train, val].concat(), tokenizer.encode(&text).unwrap());

    let model = dir.path("model");
    let out = dir.path("out");
    let mut args = vec![
        "train", "--tokens", &prepared, "--steps", "2", "--save", &model, "--json", "--out", &out,
    ];
    args.extend(SMALL);
    let (ok, _, err) = wgpt(&args);
    assert!(ok, "{err}");
    let config = std::fs::read_to_string(format!("{model}/config.json")).unwrap();
    assert!(config.contains("\"vocab_size\": 300"), "{config}");
    assert_eq!(
        std::fs::read(format!("{model}/tokenizer.json")).unwrap(),
        std::fs::read(&tok).unwrap()
    );

    let (ok, out, err) = wgpt(&[
        "sample",
        "--model",
        &model,
        "--prompt",
        "KING:",
        "--max-new-tokens",
        "8",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("KING:") && out.len() > "KING:\n".len(),
        "{out}"
    );

    let figures = dir.path("inspect");
    let (ok, out, err) = wgpt(&[
        "inspect",
        "--model",
        &model,
        "--prompt",
        "<|startoftext|>KING: what",
        "--out",
        &figures,
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("next token:"), "{out}");
    let (ok, half, err) = wgpt(&[
        "inspect",
        "--model",
        &model,
        "--prompt",
        "<|startoftext|>KING: what",
        "--out",
        &dir.path("inspect-f16"),
        "--dtype",
        "f16",
    ]);
    assert!(ok && half.contains("next token:"), "{err}");
    for file in [
        "attention.svg",
        "activations.svg",
        "activations_near_zero.svg",
        "embedding.svg",
        "embedding_cosine.svg",
        "parameters.svg",
        "gradients.svg",
        "next_token.svg",
    ] {
        let svg = std::fs::read_to_string(format!("{figures}/{file}")).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{file}"
        );
    }
    let json = std::fs::read_to_string(format!("{figures}/anatomy.json")).unwrap();
    let anatomy: serde_json::Value = serde_json::from_str(&json).unwrap();
    let prompt = anatomy["prompt"].as_array().unwrap();
    assert_eq!(
        prompt[0]["id"], 298,
        "<|startoftext|> is one token: {prompt:?}"
    );
    assert_eq!(
        anatomy["attention"].as_array().unwrap().len(),
        4,
        "baby has 4 layers"
    );
    assert_eq!(
        anatomy["gradients"].as_array().unwrap().len(),
        anatomy["parameters"].as_array().unwrap().len()
    );
}

#[test]
fn prepare_with_gpt2_writes_the_split_of_one_encoding() {
    let dir = Scratch::new("cli-gpt2");
    let data = corpus(&dir);
    let out_dir = dir.path("out");
    let (ok, out, err) = wgpt(&[
        "prepare",
        "--tokenizer",
        "gpt2",
        "--data",
        &data,
        "--out",
        &out_dir,
    ]);
    assert!(ok && out.contains("vocabulary 50257"), "{out}{err}");
    let text = std::fs::read_to_string(&data).unwrap();
    let ids = wgpt::data::Tokenizer::gpt2().encode(&text).unwrap();
    let (train, val) = wgpt::data::split_train_val(&ids);
    assert_eq!(read_u16(&format!("{out_dir}/train.bin")), train);
    assert_eq!(read_u16(&format!("{out_dir}/val.bin")), val);
    let saved = wgpt::data::Tokenizer::load(&dir.0.join("out/tokenizer.json")).unwrap();
    assert_eq!(saved.vocab_size(), 50257);

    let (ok, out, _) = wgpt(&["tokenizer", "encode", "Hello world<|endoftext|>"]);
    assert!(ok && out.trim() == "15496 995 50256", "{out}");
    let (ok, out, _) = wgpt(&["tokenizer", "decode", "15496,995"]);
    assert!(ok && out == "Hello world\n", "{out}");
}

#[test]
fn tokenizers_that_cannot_serve_are_one_clear_line() {
    let dir = Scratch::new("cli-badtok");
    let data = corpus(&dir);
    let one_line = |args: &[&str], expect: &str| {
        let (ok, _, err) = wgpt(args);
        assert!(!ok, "{args:?} succeeded");
        assert!(
            err.lines().count() == 1 && err.starts_with("error: ") && err.contains(expect),
            "{err}"
        );
    };
    // A vocabulary whose ids do not fit uint16 token files: the 256 bytes (GPT-2's printable forms of
    // ASCII letters and digits are themselves, the rest come from GPT-2's own file) plus filler tokens.
    let gpt2: serde_json::Value =
        serde_json::from_str(&wgpt::data::Tokenizer::gpt2().to_json()).unwrap();
    let mut big = gpt2.clone();
    let vocab = big["model"]["vocab"].as_object_mut().unwrap();
    vocab.retain(|_, id| id.as_u64().unwrap() < 256);
    for id in 256..70_000u32 {
        vocab.insert(format!("filler{id}"), id.into());
    }
    big["model"]["merges"] = serde_json::json!([]);
    big["added_tokens"] = serde_json::json!([]);
    let big_path = dir.path("big.json");
    std::fs::write(&big_path, big.to_string()).unwrap();
    let prepare = [
        "prepare",
        "--tokenizer",
        &big_path,
        "--data",
        &data,
        "--out",
        &dir.path("out"),
    ];
    one_line(&prepare, "70000 tokens do not fit uint16");

    let too_small = [
        "tokenizer",
        "train",
        &data,
        "--vocab-size",
        "257",
        "--special-tokens",
        "<|a|>,<|b|>",
        "--out",
        &dir.path("t.json"),
    ];
    one_line(&too_small, "too small");
}

#[test]
fn a_run_written_to_a_file_has_plain_progress_lines_and_no_escape_codes_or_driver_noise() {
    let dir = Scratch::new("cli-plain");
    let data = corpus(&dir);
    let mut args = vec!["train", "--data", &data, "--steps", "10"];
    args.extend(SMALL);
    let (ok, out, err) = wgpt(&args);
    assert!(ok, "{err}");
    assert!(out.is_empty(), "the report goes to stderr: {out}");
    assert!(
        !err.contains('\x1b') && !err.contains('\r'),
        "escape codes or carriage returns: {err:?}"
    );
    assert!(!err.contains("error") && !err.contains("XDG"), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines[0].starts_with("adapter:  "), "{err}");
    assert!(lines.iter().all(|l| l.chars().count() <= 80), "{err}");
    assert!(
        lines.iter().any(|l| l.starts_with("step 1/10 loss "))
            && lines
                .iter()
                .any(|l| l.starts_with("step 10/10 loss ") && l.contains("ETA")),
        "the first and last steps get a plain line: {err}"
    );
    assert!(lines.last().unwrap().starts_with("10 steps in "), "{err}");
}

#[test]
fn nanogpt_names_set_the_same_settings_and_models_are_found_in_output_directories() {
    let dir = Scratch::new("cli-nanogpt");
    let data = corpus(&dir);
    let run = dir.path("run");
    let model = format!("{run}/model");
    let (ok, out, err) = wgpt(&[
        "train",
        "--data",
        &data,
        "--save",
        &model,
        "--json",
        "--max_iters",
        "3",
        "--batch_size",
        "4",
        "--block_size",
        "32",
        "--learning_rate",
        "2e-3",
        "--min_lr",
        "2e-4",
        "--warmup_iters",
        "1",
        "--eval_interval",
        "3",
        "--eval_iters",
        "1",
        "--weight_decay",
        "0.05",
        "--grad_clip",
        "0.5",
        "--log_interval",
        "1",
        "--vocab_size",
        "65",
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        out.lines().filter(|l| l.contains("\"loss\"")).count(),
        3,
        "{out}"
    );
    assert!(out.contains("\"val_loss\""), "{out}");
    let state = std::fs::read_to_string(format!("{model}/trainer_state.json")).unwrap();
    let settings = &serde_json::from_str::<serde_json::Value>(&state).unwrap()["settings"];
    for (key, value) in [
        ("steps", 3.0),
        ("batch", 4.0),
        ("seq", 32.0),
        ("lr", 2e-3),
        ("min_lr", 2e-4),
        ("warmup", 1.0),
        ("eval_every", 3.0),
        ("eval_steps", 1.0),
        ("weight_decay", 0.05),
        ("grad_clip", 0.5),
        ("log_every", 1.0),
    ] {
        assert_eq!(settings[key].as_f64(), Some(value), "{key}: {state}");
    }

    // --init_from, sample --out_dir, eval and info take the output directory and use its model/.
    let again = dir.path("again");
    let (ok, _, err) = wgpt(&[
        "train",
        "--init_from",
        &run,
        "--data",
        &data,
        "--max_iters",
        "1",
        "--save",
        &again,
        "--batch",
        "2",
        "--seq",
        "8",
    ]);
    assert!(ok, "{err}");
    let (ok, text, err) = wgpt(&[
        "sample",
        "--out_dir",
        &run,
        "--start",
        "KING:",
        "--max_new_tokens",
        "5",
    ]);
    assert!(ok && text.starts_with("KING:"), "{text}{err}");
    let (ok, _, err) = wgpt(&["eval", "--model", &run]);
    assert!(
        !ok && err.contains("no evaluation data: give --data"),
        "{err}"
    );
    let (ok, info, err) = wgpt(&["info", "--model", &run]);
    assert!(ok && info.contains("memory plan"), "{info}{err}");
}

#[test]
fn info_reads_a_model_directory_or_a_config_file_like_a_preset() {
    let dir = Scratch::new("cli-info");
    let only_config = dir.0.join("only-config");
    std::fs::create_dir_all(&only_config).unwrap();
    let config = r#"{"vocab_size": 65, "n_positions": 64, "n_embd": 128, "n_layer": 4, "n_head": 4, "resid_pdrop": 0.0}"#;
    std::fs::write(only_config.join("config.json"), config).unwrap();
    let file = dir.path("config.json");
    std::fs::write(&file, config).unwrap();
    let after_name = |args: &[&str]| {
        let (ok, out, err) = wgpt(args);
        assert!(ok, "{args:?}: {err}");
        let (_, rest) = out.split_once(':').unwrap();
        rest.to_string()
    };
    let baby = after_name(&["info", "--preset", "baby", "--batch", "4"]);
    assert!(
        baby.contains("memory plan of a training step at batch 4 x 64"),
        "{baby}"
    );
    let only_config = only_config.display().to_string();
    assert_eq!(
        after_name(&["info", "--model", &only_config, "--batch", "4"]),
        baby
    );
    assert_eq!(
        after_name(&["info", "--config", &file, "--batch", "4"]),
        baby
    );
}

/// Runs a command that clap or wgpt refuses and checks that stderr says `what`.
fn refused(args: &[&str], what: &[&str]) {
    let (ok, out, err) = wgpt(args);
    assert!(!ok, "{args:?} was accepted: {out}");
    for w in what {
        assert!(err.contains(w), "{args:?}: {w:?} not in {err}");
    }
}

#[test]
fn impossible_values_are_refused_with_the_flag_and_the_reason() {
    let at_least_one = "must be at least 1";
    refused(&["train", "--lr", "0"], &["'--lr <LR>'", "must be above 0"]);
    refused(
        &["train", "--learning_rate=-1"],
        &["'--lr <LR>'", "must be above 0"],
    );
    refused(
        &["train", "--batch", "0"],
        &["'--batch <BATCH>'", at_least_one],
    );
    refused(
        &["train", "--batch_size", "0"],
        &["'--batch <BATCH>'", at_least_one],
    );
    refused(
        &["train", "--max_iters", "0"],
        &["'--steps <STEPS>'", at_least_one],
    );
    refused(
        &["train", "--dropout", "1"],
        &["'--dropout <DROPOUT>'", "below 1"],
    );
    refused(
        &["eval", "--model", "m", "--batch", "0"],
        &["'--batch <BATCH>'", at_least_one],
    );
    let sample = ["sample", "--model", "m"];
    let temperature = [&sample[..], &["--temperature", "-1"]].concat();
    refused(
        &temperature,
        &["'--temperature <TEMPERATURE>'", "must be at least 0"],
    );
    for p in ["0", "1.5"] {
        let top_p = [&sample[..], &["--top-p", p]].concat();
        refused(
            &top_p,
            &["'--top-p <TOP_P>'", "must be above 0 and at most 1"],
        );
    }
    let top_k = [&sample[..], &["--top_k", "0"]].concat();
    refused(&top_k, &["'--top-k <TOP_K>'", at_least_one]);

    // Checked against the run's settings once they are known (a resumed run brings its own).
    let dir = Scratch::new("cli-refused");
    let data = corpus(&dir);
    let warmup = ["train", "--data", &data, "--steps", "5", "--warmup", "6"];
    let (ok, _, err) = wgpt(&warmup);
    assert!(!ok, "a warmup longer than the run was accepted");
    assert_eq!(
        err.trim_end(),
        "error: --warmup 6 is longer than the run (--steps 5); give at most --steps"
    );
}

#[test]
fn misspelled_flags_and_presets_get_a_did_you_mean() {
    refused(
        &["train", "--stpes", "3"],
        &["'--stpes'", "a similar argument exists: '--steps'"],
    );
    refused(
        &["train", "--max-iters", "3"],
        &["similar argument exists: '--max_iters'"],
    );
    let (ok, _, err) = wgpt(&[
        "train",
        "--preset",
        "shakespeare",
        "--data",
        "no-matter.txt",
    ]);
    assert!(!ok);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("unknown preset \"shakespeare\" (did you mean \"shakespeare-char\"?)"),
        "{err}"
    );
    let (ok, _, err) = wgpt(&["tokenizer", "encode", "--tokenizer", "gtp2", "hello"]);
    assert!(!ok && err.contains("(did you mean \"gpt2\"?)"), "{err}");
}

#[test]
fn completions_cover_every_command_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let (ok, out, err) = wgpt(&["completions", shell]);
        assert!(ok, "{shell}: {err}");
        for word in ["devices", "adapter", "max_iters", "temperature"] {
            assert!(out.contains(word), "{shell}: no {word}");
        }
    }
}

#[test]
fn info_fits_80_columns_for_every_preset() {
    let (_, _, err) = wgpt(&["info", "--preset", "no-such"]);
    let (_, known) = err.trim().split_once("known presets: ").expect(&err);
    let presets: Vec<&str> = known.split(", ").collect();
    assert!(presets.contains(&"gpt2-xl"), "{err}");
    let preset_args = presets.iter().map(|&p| vec!["info", "--preset", p]);
    for args in preset_args.chain([vec!["info"]]) {
        let (ok, out, err) = wgpt(&args);
        assert!(ok, "{err}");
        for line in out.lines() {
            assert!(
                line.chars().count() <= 80,
                "{args:?}: {} columns: {line}",
                line.chars().count()
            );
        }
    }
}

#[test]
fn a_reader_that_goes_away_ends_wgpt_quietly() {
    // `wgpt info | head -0`: the reader closes the pipe before wgpt prints (it probes the adapter first).
    let mut child = Command::new(env!("CARGO_BIN_EXE_wgpt"))
        .arg("info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}

/// Under `mpirun`, a build without the `mpi` feature would train alone once per rank: it refuses.
#[cfg(not(feature = "mpi"))]
#[test]
fn a_build_without_mpi_refuses_to_run_as_one_of_several_ranks() {
    let (ok, _, err) = wgpt_env(&["train", "--steps", "1"], &[("OMPI_COMM_WORLD_SIZE", "2")]);
    assert!(!ok);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("one of 2 MPI ranks") && err.contains("--features mpi"),
        "{err}"
    );
}
