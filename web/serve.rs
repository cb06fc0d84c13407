//! The browser page's server (used by `examples/web_kernels.rs` and `tests/browser.rs`): a few lines of
//! HTTP/1.1 on a std `TcpListener`, on 127.0.0.1 because WebGPU needs a secure context and a page from
//! `file://` is not one.
//!
//! `/` the page, `/kernels.js` its script, `/modules` every shader module as a browser compiles it,
//! `/cases/` the names of the exported case files and `/cases/<name>` one of them.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};

/// Serves the page and the cases in `cases` on a free port, on a thread of its own; returns the page's
/// address, `http://127.0.0.1:<port>/`.
pub fn start(cases: &Path) -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/", listener.local_addr()?);
    let cases = cases.to_path_buf();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let cases = cases.clone();
            std::thread::spawn(move || {
                // A browser that goes away mid-answer (the test killing it) is no error to report.
                if let Err(e) = answer(stream, &cases) {
                    if !matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) {
                        eprintln!("web server: {e}");
                    }
                }
            });
        }
    });
    Ok(url)
}

fn answer(stream: TcpStream, cases: &Path) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // The headers (a GET has no body): read up to the blank line that ends them.
    let mut header = String::new();
    while reader.read_line(&mut header)? > 0 && !header.trim().is_empty() {
        header.clear();
    }
    let mut parts = request.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, kind, body) = match (method, path) {
        ("GET", "/") => ("200 OK", "text/html", include_bytes!("index.html").to_vec()),
        ("GET", "/kernels.js") => (
            "200 OK",
            "text/javascript",
            include_bytes!("kernels.js").to_vec(),
        ),
        ("GET", "/modules") => ("200 OK", "application/json", modules()),
        ("GET", "/cases/") => ("200 OK", "application/json", list(cases)?),
        ("GET", p) => match case_file(cases, p) {
            Some(file) => ("200 OK", "application/json", std::fs::read(file)?),
            None => ("404 Not Found", "text/plain", b"not found".to_vec()),
        },
        _ => ("405 Method Not Allowed", "text/plain", Vec::new()),
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(&body)
}

/// Every shader module of wgpt, as `[{"name": .., "source": ..}]`.
fn modules() -> Vec<u8> {
    let modules: Vec<_> = (wgpt::kernels::SHADERS.iter())
        .map(|s| serde_json::json!({ "name": s.name, "source": s.web_source() }))
        .collect();
    serde_json::to_vec(&modules).unwrap_or_default()
}

/// The case files' names, sorted.
fn list(cases: &Path) -> std::io::Result<Vec<u8>> {
    let mut names: Vec<String> = std::fs::read_dir(cases)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    Ok(serde_json::to_vec(&names).unwrap_or_default())
}

/// `/cases/<name>` as a file of `cases`, for a plain file name only.
fn case_file(cases: &Path, path: &str) -> Option<PathBuf> {
    let name = path.strip_prefix("/cases/")?;
    let plain = !name.is_empty() && !name.contains(['/', '\\']) && !name.starts_with('.');
    plain.then(|| cases.join(name))
}

/// Whether Cargo sets the environment variable `name` for the process it runs (a test, an example),
/// as opposed to one a user sets to configure Cargo (`CARGO_HOME`, `CARGO_TARGET_DIR`, ...).
fn set_by_cargo_for_a_run(name: &str) -> bool {
    const NAMES: [&str; 6] = [
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_CRATE_NAME",
        "CARGO_TARGET_TMPDIR",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_RUSTC_CURRENT_DIR",
    ];
    NAMES.contains(&name) || name.starts_with("CARGO_PKG_") || name.starts_with("CARGO_BIN_EXE_")
}

/// Writes the kernel tests' cases into `dir`, emptied first: runs `cargo test --release --test kernels`
/// with `WGPT_EXPORT_CASES=<dir>`, so the cases are exactly those the kernel tests check.
pub fn export_cases(dir: &Path) -> Result<(), String> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("emptying {}: {e}", dir.display()))?;
    }
    let mut cargo = std::process::Command::new(env!("CARGO"));
    // Without the variables Cargo set for this process (a test's or an example's): some build scripts
    // of the dev-dependencies watch CARGO_MANIFEST_DIR, so with it the inner cargo rebuilt them (and
    // the kernel tests) every time, two minutes here.
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(set_by_cargo_for_a_run) {
            cargo.env_remove(name);
        }
    }
    let status = cargo
        .args(["test", "--release", "--quiet", "--test", "kernels"])
        .env("WGPT_EXPORT_CASES", dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .map_err(|e| format!("running cargo test --test kernels: {e}"))?;
    match status.success() {
        true => Ok(()),
        false => Err(format!(
            "cargo test --release --test kernels failed ({status})"
        )),
    }
}
