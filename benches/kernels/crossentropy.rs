//! crossentropy rows: forward + backward + mean over a batch of 768 rows with the 65-character and the
//! GPT-2 vocabulary, every variant, beside the CPU reference for the same work.

use wgpt::kernels::crossentropy::{self, Variant};
use wgpt::reference::crossentropy as reference;

use crate::harness::{Bench, Row};

/// (rows, V). 640 × 50257 is the largest GPT-2-vocabulary batch whose logits fit one 128 MiB binding,
/// WebGPU's default and lavapipe's maximum; 768 × 50257 needs an adapter that allows more.
const SHAPES: [(usize, usize); 3] = [(768, 65), (640, 50257), (768, 50257)];

pub fn run(bench: &mut Bench) {
    for variant in Variant::ALL {
        for (rows, vocab) in SHAPES {
            let id = format!("crossentropy/{}/{rows}x{vocab}", variant.name());
            if bench.wants(&id) {
                row(bench, id, variant, rows, vocab);
            }
        }
    }
}

fn row(bench: &mut Bench, id: String, variant: Variant, rows: usize, vocab: usize) {
    let gpu = &bench.gpu;
    let logits: Vec<f32> = (0..rows * vocab).map(|i| (i % 13) as f32 * 0.3).collect();
    let targets: Vec<u32> = (0..rows).map(|r| (r * 7 % vocab) as u32).collect();
    let built = (|| {
        let lt = gpu.upload("logits", &[rows, vocab], &logits)?;
        let tt = gpu.upload("targets", &[rows], &targets)?;
        let losses = gpu.zeros("losses", &[rows])?;
        let dlogits = gpu.zeros("dlogits", &[rows, vocab])?;
        let mean = gpu.zeros("mean", &[1])?;
        Ok::<_, wgpt::Error>([
            crossentropy::forward_backward(gpu, variant, &lt, &tt, &losses, &dlogits, rows)?,
            crossentropy::mean(gpu, &losses, &mean)?,
        ])
    })();
    let dispatches = match built {
        Ok(d) => d,
        Err(e) => {
            println!("{id}: skipped: {e}");
            return;
        }
    };
    let median = bench.time_gpu(&dispatches);
    let cpu = bench.time_cpu(|| {
        let losses = reference::forward(&logits, &targets, vocab);
        std::hint::black_box(reference::mean(&losses));
        std::hint::black_box(reference::backward(&logits, &targets, vocab, rows));
    });
    bench.report(Row {
        id,
        median,
        flops: None,
        // Logits read and dlogits written once each (the second sweep hits cache), targets and losses.
        bytes: Some((8 * rows * vocab + 8 * rows) as f64),
        cpu: Some(cpu),
    });
}
