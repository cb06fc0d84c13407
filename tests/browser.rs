//! The same shaders in a real browser: every shader module of wgpt compiled by Chromium's WebGPU (Tint,
//! not naga) and every exported kernel test case run there on SwiftShader and compared with the CPU
//! reference within the native test's bound (`cargo test --release --test browser`; not part of a plain
//! `cargo test`, as it needs Chromium: `apt-get install -y chromium`).
//!
//! The cases come from the kernel tests themselves (`WGPT_EXPORT_CASES`, see `src/gpu/export.rs`); the
//! page in `web/` runs them and sets `window.wgptReport`, which the test reads over the DevTools
//! protocol, as it hears the page's exceptions and console errors (a broken page fails at once, with
//! its message). A missing browser fails the test, and so does an entry point that no exported case
//! runs; a case the browser's adapter cannot run (a feature it lacks) is named in the output.

#[path = "../web/serve.rs"]
mod serve;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::protocol::cdp::Runtime::{ConsoleAPICalledEventTypeOption, RemoteObject};
use headless_chrome::{Browser, LaunchOptions, Tab};
use serde_json::Value;

/// How long the page may take for every case (under a minute on 2 cores).
const PAGE_TIMEOUT: Duration = Duration::from_secs(600);

/// Headless Chromium with WebGPU on SwiftShader (its Vulkan on the CPU), checked by hand on Debian's
/// chromium 156. `--use-angle=swiftshader` instead of the last two flags works as well. Without the
/// background-networking flags Chromium keeps trying connections a closed network refuses; WebGPU
/// needs `--enable-unsafe-webgpu` on Linux.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-unsafe-webgpu",
    "--enable-features=Vulkan",
    "--use-webgpu-adapter=swiftshader",
];

/// Chromium started with [`FLAGS`] and a fresh profile in `profile`, killed when dropped.
fn launch(profile: &Path) -> Browser {
    let chromium = chromium();
    let _ = std::fs::remove_dir_all(profile);
    // FLAGS are every switch: the crate's defaults are off (one would replace `--enable-features`),
    // and so are the options that add a switch of their own (headless, sandbox, GPU, certificates).
    let options = LaunchOptions {
        path: Some(chromium.clone()),
        user_data_dir: Some(profile.to_path_buf()),
        args: FLAGS.iter().map(OsStr::new).collect(),
        disable_default_args: true,
        headless: false,
        sandbox: true,
        enable_gpu: true,
        ignore_certificate_errors: false,
        // The connection counts as lost after this long without a message from the browser.
        idle_browser_timeout: PAGE_TIMEOUT,
        ..LaunchOptions::default()
    };
    Browser::new(options).unwrap_or_else(|e| panic!("starting {}: {e}", chromium.display()))
}

/// `WGPT_CHROMIUM`, or Debian's `/usr/bin/chromium`; a clear failure when neither is there.
fn chromium() -> PathBuf {
    let path = std::env::var_os("WGPT_CHROMIUM").map_or("/usr/bin/chromium".into(), PathBuf::from);
    assert!(
        path.exists(),
        "the browser test needs Chromium at {}: apt-get install -y chromium (or set WGPT_CHROMIUM)",
        path.display()
    );
    path
}

/// `module/entry` for each entry point that a shader module defines in its own file (not in a file it
/// is composed with) and that no exported case dispatches: the browser would compile it but never run
/// it.
fn entry_points_without_a_case(cases: &Path) -> Vec<String> {
    let mut dispatched = std::collections::BTreeSet::new();
    for file in std::fs::read_dir(cases).expect("the exported cases") {
        let text = std::fs::read_to_string(file.expect("a case file").path()).expect("a case");
        let case: Value = serde_json::from_str(&text).expect("a case is JSON");
        for d in case["dispatches"].as_array().into_iter().flatten() {
            let [kernel, entry] = ["kernel", "entry"].map(|k| d[k].as_str().unwrap_or(""));
            dispatched.insert(format!("{kernel}/{entry}"));
        }
    }
    let mut missing = Vec::new();
    for shader in wgpt::kernels::SHADERS {
        let own =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("shaders/{}.wgsl", shader.name));
        let own =
            std::fs::read_to_string(&own).unwrap_or_else(|e| panic!("{}: {e}", own.display()));
        let module = naga::front::wgsl::parse_str(shader.source)
            .unwrap_or_else(|e| panic!("{}: {}", shader.name, e.emit_to_string(shader.source)));
        for entry in &module.entry_points {
            let name = format!("{}/{}", shader.name, entry.name);
            if own.contains(&format!("fn {}(", entry.name)) && !dispatched.contains(&name) {
                missing.push(name);
            }
        }
    }
    missing
}

/// Opens `url` in a new tab and waits for the page's `window.wgptReport`; panics with the page's first
/// exception or console error, or after [`PAGE_TIMEOUT`].
fn run_page(browser: &Browser, url: &str) -> Value {
    let tab = browser.new_tab().expect("a tab");
    let errors = listen_for_errors(&tab);
    tab.navigate_to(url).expect("opening the page");
    let start = Instant::now();
    while start.elapsed() < PAGE_TIMEOUT {
        if let Some(error) = errors.lock().expect("the errors").first() {
            panic!("the page broke: {error}");
        }
        let report = (tab.evaluate("JSON.stringify(window.wgptReport ?? null)", false))
            .expect("reading window.wgptReport");
        match report.value.as_ref().and_then(Value::as_str) {
            Some("null") | None => std::thread::sleep(Duration::from_millis(250)),
            Some(text) => return serde_json::from_str(text).expect("the page's report is JSON"),
        }
    }
    panic!("the page set no window.wgptReport in {PAGE_TIMEOUT:?} (does WebGPU start there?)")
}

/// The page's uncaught exceptions and `console.error` messages, as they arrive.
fn listen_for_errors(tab: &Tab) -> Arc<Mutex<Vec<String>>> {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let heard = Arc::clone(&errors);
    tab.enable_runtime().expect("the Runtime domain");
    let text =
        |o: &RemoteObject| (o.description.clone()).unwrap_or_else(|| format!("{:?}", o.value));
    tab.add_event_listener(Arc::new(move |event: &Event| {
        let error = match event {
            Event::RuntimeExceptionThrown(e) => {
                // An Error's description is its message and stack, which name the script's line.
                let details = &e.params.exception_details;
                details
                    .exception
                    .as_ref()
                    .map_or(details.text.clone(), text)
            }
            Event::RuntimeConsoleAPICalled(e)
                if e.params.Type == ConsoleAPICalledEventTypeOption::Error =>
            {
                let args: Vec<String> = e.params.args.iter().map(text).collect();
                format!("console.error: {}", args.join(" "))
            }
            _ => return,
        };
        heard.lock().expect("the errors").push(error);
    }))
    .expect("listening to the page");
    errors
}

#[test]
fn every_kernel_case_matches_the_reference_in_chromium_webgpu() {
    chromium();
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    let cases = scratch.join("cases");
    serve::export_cases(&cases).unwrap_or_else(|e| panic!("exporting the cases: {e}"));
    let url = serve::start(&cases).expect("starting the page's server");
    let browser = launch(&scratch.join("profile"));
    let report = run_page(&browser, &url);
    if let Some(error) = report["error"].as_str() {
        panic!("the page failed before its cases: {error}");
    }
    let results = report["results"].as_array().expect("results");
    let of = |status: &'static str| results.iter().filter(move |r| r["status"] == status);
    let tally = |status, key: &str| {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for r in of(status) {
            *counts
                .entry(r[key].as_str().unwrap_or("").into())
                .or_default() += 1;
        }
        counts
    };
    eprintln!("Chromium WebGPU adapter: {}", report["adapter"]);
    eprintln!(
        "{} modules compiled; {} cases in {:.1} s: {} match, {} fail, {} skipped",
        report["modules"].as_array().map_or(0, |m| m.len()),
        results.len(),
        report["seconds"].as_f64().unwrap_or(0.0),
        of("ok").count(),
        of("fail").count(),
        of("skipped").count()
    );
    eprintln!("  matched, by kernel: {:?}", tally("ok", "kernel"));
    for (why, n) in tally("skipped", "note") {
        eprintln!("  skipped {n}: {why}");
    }
    let uncovered = entry_points_without_a_case(&cases);
    assert!(
        uncovered.is_empty(),
        "entry points with no exported case (each needs a kernel test shape under the export's size cap): {}",
        uncovered.join(", ")
    );
    let failures: Vec<String> = of("fail")
        .map(|r| format!("{} [{}]: {}", r["name"], r["kernel"], r["note"]))
        .collect();
    assert!(
        failures.is_empty(),
        "{} cases fail in Chromium:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(of("ok").count() > 0, "no case ran in Chromium");
}
