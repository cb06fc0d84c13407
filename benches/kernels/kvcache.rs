//! kvcache rows: a decode step's append and attention at GPT-2 small's 12 heads of 64 (Hkv = H) over a
//! 1024-row cache, the new token at positions 63 and 1023, beside the CPU reference for the same work.
//! Both are memory-bound: the attention reads the cached keys and values of positions 0..=pos.

use wgpt::contract::AttentionShape;
use wgpt::kernels::kvcache;
use wgpt::reference::kvcache as reference;

use crate::copy::{fill, memory_row};
use crate::harness::Bench;

const CONTEXT: usize = 1024;
const POSITIONS: [usize; 2] = [63, 1023];
const SHAPE: AttentionShape = AttentionShape {
    batch: 1,
    seq: 1,
    heads: 12,
    kv_heads: 12,
    head_dim: 64,
};

pub fn run(bench: &mut Bench) {
    let sh = SHAPE;
    let width = sh.kv_heads * sh.head_dim;
    let name = format!("H{}xD{}/ctx{CONTEXT}", sh.heads, sh.head_dim);
    let append_id = format!("kvcache/append/{name}");
    let attention_ids: Vec<String> = POSITIONS
        .iter()
        .map(|pos| format!("kvcache/attention/{name}/pos{pos}"))
        .collect();
    if !bench.wants(&append_id) && !attention_ids.iter().any(|id| bench.wants(id)) {
        return;
    }
    let gpu = &bench.gpu;
    let (qkv, qkvt) = fill(gpu, &[1, sh.qkv_width()]);
    let (k, kt) = fill(gpu, &[CONTEXT, width]);
    let (v, vt) = fill(gpu, &[CONTEXT, width]);
    let out = gpu.zeros("out", &[1, sh.heads * sh.head_dim]).unwrap();
    if bench.wants(&append_id) {
        let pos = POSITIONS[0];
        let position = gpu.upload("position", &[1], &[pos as u32]).unwrap();
        let d = bench.compile("kvcache/append", || {
            kvcache::append(&bench.gpu, sh, &qkvt, &position, &kt, &vt).unwrap()
        });
        let (mut kc, mut vc) = (k.clone(), v.clone());
        let cpu = bench.time_cpu(|| reference::append(&qkv, &sh, pos, &mut kc, &mut vc));
        // k and v read, their cache rows written.
        memory_row(bench, append_id, &[d], 4 * 4 * width, cpu);
    }
    for (i, (&pos, id)) in POSITIONS.iter().zip(attention_ids).enumerate() {
        if !bench.wants(&id) {
            continue;
        }
        let gpu = &bench.gpu;
        let position = gpu.upload("position", &[1], &[pos as u32]).unwrap();
        let build = || kvcache::attention(gpu, sh, &qkvt, &position, &kt, &vt, &out).unwrap();
        let d = if i == 0 {
            bench.compile("kvcache/attention", build)
        } else {
            build()
        };
        let cpu = bench.time_cpu(|| {
            std::hint::black_box(reference::attention(&qkv, &sh, pos, &k, &v));
        });
        // The queries, the keys and values of positions 0..=pos, the output.
        let bytes = 4 * (2 * sh.heads * sh.head_dim + 2 * (pos + 1) * width);
        memory_row(bench, id, &[d], bytes, cpu);
    }
}
