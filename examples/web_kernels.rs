//! Serves the browser page that runs every exported kernel case through the browser's WebGPU and
//! compares it with the CPU reference (see `web/`), and prints its address:
//!
//! ```text
//! cargo run --release --example web_kernels            # exports the cases first if there are none
//! cargo run --release --example web_kernels -- --export  # exports them again
//! ```
//!
//! Open the address in any browser with WebGPU. Each time the page finishes, its summary is printed
//! here as well.

#[path = "../web/serve.rs"]
mod serve;

use std::path::Path;

fn main() {
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/web-cases");
    let again = std::env::args().skip(1).any(|a| a == "--export");
    let empty = std::fs::read_dir(&cases).map_or(true, |mut d| d.next().is_none());
    if again || empty {
        eprintln!(
            "exporting the kernel tests' cases to {} ...",
            cases.display()
        );
        if let Err(e) = serve::export_cases(&cases) {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
    let server = serve::start(&cases).unwrap_or_else(|e| {
        eprintln!("error: starting the server: {e}");
        std::process::exit(1);
    });
    println!(
        "open {} in a browser with WebGPU (Ctrl-C to stop)",
        server.url
    );
    for report in server.results.iter() {
        println!("{}", summary(&report));
    }
}

/// One line from the page's report: the adapter and how many cases matched, failed, were skipped.
fn summary(report: &str) -> String {
    let Ok(report) = serde_json::from_str::<serde_json::Value>(report) else {
        return "the page sent a report that is not JSON".into();
    };
    if let Some(error) = report["error"].as_str() {
        return format!("the page failed: {error}");
    }
    let results = report["results"].as_array().cloned().unwrap_or_default();
    let count = |s: &str| results.iter().filter(|r| r["status"] == s).count();
    format!(
        "{}: {} match, {} fail, {} skipped",
        report["adapter"],
        count("ok"),
        count("fail"),
        count("skipped")
    )
}
