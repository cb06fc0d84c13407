//! adamw rows: one step over a 1M and a 16M parameter arena (half with weight decay, with clipping),
//! beside the CPU reference.

use wgpt::contract::{adamw_hyper, AdamWConfig, Segment};
use wgpt::kernels::adamw::{self, Segments};
use wgpt::kernels::gradnorm::{self, OUT_LEN};
use wgpt::reference::adamw as reference;

use crate::harness::{Bench, Row};

pub fn run(bench: &mut Bench) {
    for len in [1 << 20, 16 << 20] {
        let id = format!("adamw/{}M", len >> 20);
        if !bench.wants(&id) {
            continue;
        }
        let gpu = &bench.gpu;
        let config = AdamWConfig::default();
        let segments = [
            Segment {
                offset: 0,
                len: len / 2,
                decay: true,
            },
            Segment {
                offset: len / 2,
                len: len - len / 2,
                decay: false,
            },
        ];
        let fill =
            |k: usize| -> Vec<f32> { (0..len).map(|i| ((i + k) % 7) as f32 * 0.1).collect() };
        let (mut p, g, mut m, mut v) = (fill(0), fill(1), fill(2), fill(3));
        let hyper = adamw_hyper(&config, 1e-3, 1);
        let mut clip = vec![0.0; OUT_LEN];
        clip[gradnorm::SCALE] = 0.5;
        let tensor = |name, data: &[f32]| gpu.upload(name, &[data.len()], data).unwrap();
        let (pt, gt, mt, vt) = (
            tensor("p", &p),
            tensor("g", &g),
            tensor("m", &m),
            tensor("v", &v),
        );
        let (ht, ct) = (tensor("hyper", &hyper), tensor("clip", &clip));
        let table = Segments::new(gpu, &segments).unwrap();
        let step = adamw::step(gpu, &config, &pt, &gt, &mt, &vt, &table, &ht, Some(&ct)).unwrap();
        let median = bench.time_gpu(&[step]);
        let cpu = bench.time_cpu(|| {
            reference::step(&config, &mut p, &g, &mut m, &mut v, &segments, &hyper, 0.5);
        });
        bench.report(Row {
            id,
            median,
            flops: None,
            // Reads params, grads, m, v; writes params, m, v.
            bytes: Some(28.0 * len as f64),
            cpu: Some(cpu),
        });
    }
}
