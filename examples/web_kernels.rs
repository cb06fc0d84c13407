//! Serves the browser page that runs every exported kernel case through the browser's WebGPU and
//! compares it with the CPU reference (see `web/`), and prints its address:
//!
//! ```text
//! cargo run --release --example web_kernels            # exports the cases first if there are none
//! cargo run --release --example web_kernels -- --export  # exports them again
//! ```
//!
//! Open the address in any browser with WebGPU: the page shows each case and a summary.

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
    let url = serve::start(&cases).unwrap_or_else(|e| {
        eprintln!("error: starting the server: {e}");
        std::process::exit(1);
    });
    println!("open {url} in a browser with WebGPU (Ctrl-C to stop)");
    // The server answers on its own thread until the process is stopped.
    loop {
        std::thread::park();
    }
}
