//! The `wgpt` command line. Each subcommand is a thin layer over the library; errors print one line and
//! exit non-zero.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "wgpt",
    version,
    about = "Train and run GPT models on any GPU through wgpu"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the GPU adapter wgpt would use (WGPU_BACKEND / WGPU_ADAPTER_NAME choose it) and its limits.
    Info,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info => info(),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn info() -> wgpt::Result<()> {
    let gpu = wgpt::Gpu::new()?;
    let summary = gpu.summary();
    println!("adapter:    {}", summary.name);
    println!("backend:    {}", summary.backend);
    println!("type:       {}", summary.device_type);
    println!("driver:     {}", summary.driver);
    match summary.subgroup_sizes {
        Some((lo, hi)) => println!("subgroups:  {lo}..={hi}"),
        None => println!("subgroups:  not available"),
    }
    println!(
        "timestamps: {}",
        if summary.timestamps { "yes" } else { "no" }
    );
    let limits = gpu.adapter_limits();
    println!(
        "adapter limits: storage binding {} MiB, buffer {} MiB, workgroup storage {} KiB, {} invocations",
        limits.max_storage_buffer_binding_size / (1 << 20),
        limits.max_buffer_size / (1 << 20),
        limits.max_compute_workgroup_storage_size / 1024,
        limits.max_compute_invocations_per_workgroup
    );
    println!(
        "matmul variant: {}",
        wgpt::kernels::matmul::Variant::best(&gpu).name()
    );
    Ok(())
}
