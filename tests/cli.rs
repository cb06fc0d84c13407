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
