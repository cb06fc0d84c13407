//! kvcache rows: a decode step's append and attention at GPT-2 small's 12 heads of 64 (Hkv = H) over a
//! 1024-row cache, the new token at positions 63 and 1023, for one sequence and for a batch of 8; and a
//! prefill's fill of 512 rows from one prompt into 8 caches; each beside the CPU reference for the same
//! work. All are memory-bound: the attention reads the cached keys and values of positions 0..=pos.

use wgpt::contract::AttentionShape;
use wgpt::kernels::kvcache;
use wgpt::reference::kvcache as reference;

use crate::copy::{fill, memory_row};
use crate::harness::Bench;

const CONTEXT: usize = 1024;
const POSITIONS: [usize; 2] = [63, 1023];
/// Sequences of the batched rows, and the prompt length of the fill row.
const BATCH: usize = 8;
const PROMPT: usize = 512;
const SHAPE: AttentionShape = AttentionShape {
    batch: 1,
    seq: 1,
    heads: 12,
    kv_heads: 12,
    head_dim: 64,
};

pub fn run(bench: &mut Bench) {
    let name = format!("H{}xD{}/ctx{CONTEXT}", SHAPE.heads, SHAPE.head_dim);
    for n in [1, BATCH] {
        let name = if n == 1 {
            name.clone()
        } else {
            format!("{name}/n{n}")
        };
        decode_rows(bench, &name, n);
    }
    fill_row(bench, &format!("kvcache/fill/{name}/n{BATCH}/t{PROMPT}"));
}

/// The append and attention rows of a decode step of `n` sequences.
fn decode_rows(bench: &mut Bench, name: &str, n: usize) {
    let sh = AttentionShape { batch: n, ..SHAPE };
    let width = sh.kv_heads * sh.head_dim;
    let append_id = format!("kvcache/append/{name}");
    let attention_ids: Vec<String> = POSITIONS
        .iter()
        .map(|pos| format!("kvcache/attention/{name}/pos{pos}"))
        .collect();
    if !bench.wants(&append_id) && !attention_ids.iter().any(|id| bench.wants(id)) {
        return;
    }
    let gpu = &bench.gpu;
    let (qkv, qkvt) = fill(gpu, &[n, sh.qkv_width()]);
    let (k, kt) = fill(gpu, &[n, CONTEXT, width]);
    let (v, vt) = fill(gpu, &[n, CONTEXT, width]);
    let out = gpu.zeros("out", &[n, sh.heads * sh.head_dim]).unwrap();
    if bench.wants(&append_id) {
        let pos = POSITIONS[0];
        let position = gpu.upload("position", &[1], &[pos as u32]).unwrap();
        let build = || kvcache::append(&bench.gpu, sh, &qkvt, &position, &kt, &vt).unwrap();
        let d = if n == 1 {
            bench.compile("kvcache/append", build)
        } else {
            build()
        };
        let (mut kc, mut vc) = (k.clone(), v.clone());
        let cpu = bench.time_cpu(|| reference::append(&qkv, &sh, pos, &mut kc, &mut vc));
        // k and v read, their cache rows written.
        memory_row(bench, append_id, &[d], 4 * 4 * n * width, cpu);
    }
    for (i, (&pos, id)) in POSITIONS.iter().zip(attention_ids).enumerate() {
        if !bench.wants(&id) {
            continue;
        }
        let gpu = &bench.gpu;
        let position = gpu.upload("position", &[1], &[pos as u32]).unwrap();
        let build = || kvcache::attention(gpu, sh, &qkvt, &position, &kt, &vt, &out).unwrap();
        // The shader compiles once: time it on the first row only.
        let d = if i == 0 && n == 1 {
            bench.compile("kvcache/attention", build)
        } else {
            build()
        };
        let cpu = bench.time_cpu(|| {
            std::hint::black_box(reference::attention(&qkv, &sh, pos, &k, &v));
        });
        // The queries, the keys and values of positions 0..=pos, the output.
        let bytes = 4 * n * (2 * sh.heads * sh.head_dim + 2 * (pos + 1) * width);
        memory_row(bench, id, &[d], bytes, cpu);
    }
}

/// The fill of `PROMPT` rows of `BATCH` caches from one prompt's `qkv`.
fn fill_row(bench: &mut Bench, id: &str) {
    if !bench.wants(id) {
        return;
    }
    let sh = AttentionShape {
        seq: PROMPT,
        ..SHAPE
    };
    let width = sh.kv_heads * sh.head_dim;
    let gpu = &bench.gpu;
    let (qkv, qkvt) = fill(gpu, &[1, PROMPT, sh.qkv_width()]);
    let (mut k, kt) = fill(gpu, &[BATCH, CONTEXT, width]);
    let (mut v, vt) = fill(gpu, &[BATCH, CONTEXT, width]);
    let d = bench.compile("kvcache/fill", || {
        kvcache::fill(&bench.gpu, sh, &qkvt, &kt, &vt).unwrap()
    });
    let cpu = bench.time_cpu(|| reference::fill(&qkv, &sh, BATCH, &mut k, &mut v));
    // Each written row read once and written once.
    memory_row(
        bench,
        id.to_string(),
        &[d],
        4 * 4 * BATCH * PROMPT * width,
        cpu,
    );
}
