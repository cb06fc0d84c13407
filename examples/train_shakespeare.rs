//! The main job: train a character-level GPT on tiny-shakespeare.
//!
//! Training lands with the graph executor and model. Until then this example opens the GPU, says which
//! adapter it runs on, and checks one matmul against the CPU reference, so a new machine can be verified.

use wgpt::kernels::matmul::{self, Variant};
use wgpt::reference;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> wgpt::Result<()> {
    let gpu = wgpt::Gpu::new()?;
    println!("adapter: {}", gpu.summary());
    println!("training is not implemented yet: checking a matmul on this adapter instead");
    let (m, k, n) = (256, 256, 256);
    let x: Vec<f32> = (0..m * k)
        .map(|i| ((i * 7919) % 13) as f32 / 13.0 - 0.5)
        .collect();
    let w: Vec<f32> = (0..k * n)
        .map(|i| ((i * 104729) % 11) as f32 / 11.0 - 0.5)
        .collect();
    let variant = Variant::best(&gpu);
    let xt = gpu.upload("x", &[m, k], &x)?;
    let wt = gpu.upload("w", &[k, n], &w)?;
    let yt = gpu.zeros("y", &[m, n])?;
    gpu.run_dispatches(&[matmul::forward(&gpu, variant, &xt, &wt, None, &yt)?])?;
    let got: Vec<f32> = gpu.read(&yt)?;
    let want = reference::matmul::forward(&x, &w, None, m, k, n);
    let worst = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0f32, f32::max);
    println!(
        "matmul {m}x{k}x{n} ({} variant): largest difference from the CPU reference {worst:.2e}",
        variant.name()
    );
    if worst > 1e-3 {
        return Err(wgpt::Error::Invalid(format!(
            "matmul on {} disagrees with the CPU reference by {worst}",
            gpu.info().name
        )));
    }
    Ok(())
}
