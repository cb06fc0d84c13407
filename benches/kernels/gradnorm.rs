//! gradnorm rows: the norm and clip scale of a 1M and a 16M gradient arena, beside the f64 CPU reference.

use wgpt::kernels::gradnorm::{self, OUT_LEN};
use wgpt::reference::gradnorm as reference;

use crate::harness::{Bench, Row};

pub fn run(bench: &mut Bench) {
    for len in [1 << 20, 16 << 20] {
        let id = format!("gradnorm/{}M", len >> 20);
        if !bench.wants(&id) {
            continue;
        }
        let gpu = &bench.gpu;
        let grads: Vec<f32> = (0..len).map(|i| (i % 11) as f32 * 1e-3).collect();
        let gt = gpu.upload("grads", &[len], &grads).unwrap();
        let out = gpu.zeros("gradnorm", &[OUT_LEN]).unwrap();
        let dispatches = gradnorm::norm(gpu, &[(&gt, 0..len)], Some(1.0), &out).unwrap();
        let median = bench.time_gpu(&dispatches);
        let cpu = bench.time_cpu(|| {
            std::hint::black_box(reference::scale(reference::norm(&grads), Some(1.0)));
        });
        bench.report(Row {
            id,
            median,
            flops: None,
            bytes: Some(4.0 * len as f64),
            cpu: Some(cpu),
        });
    }
}
