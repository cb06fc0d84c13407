//! attention rows: fused and unfused forward and backward at B = 1, 6 heads of 64 (Hkv = H), no dropout,
//! T = 64, 256, 1024, and at the `baby` model's B = 12, 4 heads of 32, T = 64, beside the CPU reference
//! (`reference::attention`, f64, one thread) for the same work, timed only up to T = 256 (it takes seconds
//! beyond). The fused rows use the variant the launchers pick for the adapter (`Variant::best`).
//!
//! FLOPs count the useful products over the causal half: the forward's two (`q·kᵀ`, `P·v`) are
//! `4·B·H·T²·D/2`, the backward's four (`dO·vᵀ`, `dS·k`, `dSᵀ·q`, `Aᵀ·dO`) `8·B·H·T²·D/2`; the fused
//! backward's recomputed scores are not counted, so fused and unfused rows compare by time.
//! `attention/probabilities` rows time the inspection kernel that recomputes `P: [B, H, T, T]` from the
//! saved lse (one product, `2·B·H·T²·D/2` FLOPs), beside `reference::attention::probability_matrix`.
//! The unfused backward overwrites the stored probabilities with dS, so its repeated runs compute on
//! stale values: the same work, values that do not matter.

use wgpt::contract::{AttentionDropout, AttentionShape};
use wgpt::kernels::attention::{self, Backward, Variant};
use wgpt::reference::attention as reference;
use wgpt::{Dispatch, Tensor};

use crate::harness::{Bench, Row};

/// Longest sequence whose CPU reference is timed.
const MAX_CPU_SEQ: usize = 256;

fn shape(seq: usize) -> AttentionShape {
    AttentionShape {
        batch: 1,
        seq,
        heads: 6,
        kv_heads: 6,
        head_dim: 64,
    }
}

/// The shapes of the rows.
fn shapes() -> [AttentionShape; 4] {
    let baby = AttentionShape {
        batch: 12,
        seq: 64,
        heads: 4,
        kv_heads: 4,
        head_dim: 32,
    };
    [shape(64), shape(256), shape(1024), baby]
}

/// Row id suffix: `b12h4d32t64`.
fn name(sh: AttentionShape) -> String {
    let (b, h, d, t) = (sh.batch, sh.heads, sh.head_dim, sh.seq);
    format!("b{b}h{h}d{d}t{t}")
}

struct Operands {
    qkv: Tensor,
    state: Tensor,
    o: Tensor,
    lse: Tensor,
    d_o: Tensor,
    delta: Tensor,
    dqkv: Tensor,
    scores: Tensor,
}

impl Operands {
    fn new(bench: &Bench, sh: AttentionShape) -> Operands {
        let gpu = &bench.gpu;
        let (b, t, h) = (sh.batch, sh.seq, sh.heads);
        let fill = |shape: &[usize]| {
            let len: usize = shape.iter().product();
            let data: Vec<f32> = (0..len).map(|i| (i % 7) as f32 * 0.1 - 0.3).collect();
            gpu.upload("bench", shape, &data).unwrap()
        };
        let width = h * sh.head_dim;
        Operands {
            qkv: fill(&[b, t, sh.qkv_width()]),
            state: gpu.upload("state", &[3], &[0u32, 0, 0]).unwrap(),
            o: fill(&[b, t, width]),
            lse: fill(&[b, h, t]),
            d_o: fill(&[b, t, width]),
            delta: fill(&[b, h, t]),
            dqkv: fill(&[b, t, sh.qkv_width()]),
            scores: fill(&[b, h, t, t]),
        }
    }

    fn backward(&self) -> Backward<'_> {
        Backward {
            qkv: &self.qkv,
            state: &self.state,
            o: &self.o,
            lse: &self.lse,
            d_o: &self.d_o,
            delta: &self.delta,
            dqkv: &self.dqkv,
        }
    }

    fn dispatches(
        &self,
        bench: &Bench,
        sh: AttentionShape,
        fused: bool,
        forward: bool,
    ) -> Vec<Dispatch> {
        let (gpu, p) = (&bench.gpu, AttentionDropout::NONE);
        let v = Variant::best(gpu, sh);
        let (qkv, state, o, lse) = (&self.qkv, &self.state, &self.o, &self.lse);
        match (fused, forward) {
            (true, true) => vec![attention::forward(gpu, v, sh, p, qkv, state, o, lse).unwrap()],
            (true, false) => attention::backward(gpu, v, sh, p, &self.backward()).unwrap(),
            (false, true) => {
                attention::unfused_forward(gpu, sh, p, qkv, state, o, lse, &self.scores).unwrap()
            }
            (false, false) => {
                attention::unfused_backward(gpu, sh, p, &self.backward(), &self.scores).unwrap()
            }
        }
    }
}

pub fn run(bench: &mut Bench) {
    probabilities(bench);
    for forward in [true, false] {
        let direction = if forward { "forward" } else { "backward" };
        for fused in [true, false] {
            let kind = if fused { "fused" } else { "unfused" };
            let rows: Vec<(AttentionShape, String)> = shapes()
                .into_iter()
                .map(|sh| (sh, format!("attention/{kind}/{direction}/{}", name(sh))))
                .filter(|(_, id)| bench.wants(id))
                .collect();
            if rows.is_empty() {
                continue;
            }
            bench.compile(&format!("attention/{kind}/{direction}"), || {
                Operands::new(bench, shape(1)).dispatches(bench, shape(1), fused, forward)
            });
            for (sh, id) in rows {
                row(bench, id, sh, fused, forward);
            }
        }
    }
}

fn row(bench: &mut Bench, id: String, sh: AttentionShape, fused: bool, forward: bool) {
    let operands = Operands::new(bench, sh);
    let median = bench.time_gpu(&operands.dispatches(bench, sh, fused, forward));
    let cpu = (sh.seq <= MAX_CPU_SEQ).then(|| cpu_baseline(bench, sh, forward));
    let products = if forward { 2.0 } else { 4.0 };
    let (b, h, t, d) = (sh.batch, sh.heads, sh.seq, sh.head_dim);
    bench.report(Row {
        id,
        median,
        flops: Some(products * 2.0 * (b * h * t * t * d) as f64 / 2.0),
        bytes: None,
        cpu,
    });
}

fn probabilities(bench: &mut Bench) {
    for sh in shapes() {
        let id = format!("attention/probabilities/{}", name(sh));
        if !bench.wants(&id) {
            continue;
        }
        let operands = Operands::new(bench, sh);
        let (gpu, s) = (&bench.gpu, &operands);
        let dispatch =
            attention::probabilities(gpu, sh, &s.qkv, &s.state, &s.o, &s.lse, &s.scores).unwrap();
        let median = bench.time_gpu(&[dispatch]);
        let cpu = (sh.seq <= MAX_CPU_SEQ).then(|| {
            let qkv = cpu_operand(sh);
            bench.time_cpu(|| {
                std::hint::black_box(reference::probability_matrix(&qkv, &sh));
            })
        });
        let (b, h, t, d) = (sh.batch, sh.heads, sh.seq, sh.head_dim);
        bench.report(Row {
            id,
            median,
            flops: Some(2.0 * (b * h * t * t * d) as f64 / 2.0),
            bytes: None,
            cpu,
        });
    }
}

/// The qkv the CPU baselines run on (values do not matter for their time).
fn cpu_operand(sh: AttentionShape) -> Vec<f32> {
    (0..sh.batch * sh.seq * sh.qkv_width())
        .map(|i| (i % 7) as f32 * 0.1 - 0.3)
        .collect()
}

fn cpu_baseline(bench: &Bench, sh: AttentionShape, forward: bool) -> std::time::Duration {
    let qkv = cpu_operand(sh);
    let d_o = vec![0.1f32; sh.batch * sh.seq * sh.heads * sh.head_dim];
    bench.time_cpu(|| {
        if forward {
            std::hint::black_box(reference::forward(
                &qkv,
                &sh,
                AttentionDropout::NONE,
                [0, 0, 0],
            ));
        } else {
            std::hint::black_box(reference::backward(
                &qkv,
                &d_o,
                &sh,
                AttentionDropout::NONE,
                [0, 0, 0],
            ));
        }
    })
}
