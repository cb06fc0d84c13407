//! kvcache rows: a decode step's append and attention at GPT-2 small's 12 heads of 64 (Hkv = H) over a
//! 1024-row cache, the new token at positions 63 and 1023, for one sequence and for a batch of 8; and a
//! prefill's fill of 512 rows from one prompt into 8 caches; each beside the CPU reference for the same
//! work. All are memory-bound: the attention reads the cached keys and values of positions 0..=pos.
//! The one-sequence rows and the fill also run with the caches in f16 and bf16
//! (`kvcache/<row>/<dtype>/..`). The attention rows time a whole step (`kvcache::step`: the append and
//! the attention) in each variant the adapter takes: the chunks kernels under the plain ids, the lanes
//! twin (CPU adapters' pick, one dispatch) as `kvcache/attention/lanes/..`.

use wgpt::contract::AttentionShape;
use wgpt::dtype::Dtype;
use wgpt::kernels::kvcache::{self, Caches, Variant};
use wgpt::reference::kvcache as reference;

use wgpt::Tensor;

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
    for dtype in Dtype::ALL {
        // The f32 rows keep their ids; the others name their dtype.
        let (name, suffix) = match dtype {
            Dtype::F32 => (name.clone(), String::new()),
            _ => (
                format!("{}/{name}", dtype.name()),
                format!("/{}", dtype.name()),
            ),
        };
        decode_rows(bench, &name, 1, (dtype, &suffix));
        if dtype == Dtype::F32 {
            decode_rows(bench, &format!("{name}/n{BATCH}"), BATCH, (dtype, &suffix));
        }
        let id = format!("kvcache/fill/{name}/n{BATCH}/t{PROMPT}");
        fill_row(bench, &id, (dtype, &suffix));
    }
}

/// Caches of `[n, ctx, width]` values stored in `dtype`: their values (as stored) and tensors.
fn caches(bench: &Bench, [n, ctx, width]: [usize; 3], dtype: Dtype) -> [(Vec<f32>, Tensor); 2] {
    [0, 1].map(|_| {
        let (values, _) = fill(&bench.gpu, &[n, ctx, width]);
        let words = dtype.pack(&values);
        let shape = [n, ctx, dtype.words(width)];
        let tensor = bench.gpu.upload("cache", &shape, &words).unwrap();
        (dtype.round(&values), tensor)
    })
}

/// Bytes of `values` cache values in `dtype`.
fn cache_bytes(values: usize, dtype: Dtype) -> usize {
    values * dtype.bits() / 8
}

/// The append and attention rows of a decode step of `n` sequences, the caches in `dtype` (`suffix`
/// names it in the compile rows).
fn decode_rows(bench: &mut Bench, name: &str, n: usize, (dtype, suffix): (Dtype, &str)) {
    let sh = AttentionShape { batch: n, ..SHAPE };
    let width = sh.kv_heads * sh.head_dim;
    let append_id = format!("kvcache/append/{name}");
    // The chunks rows keep their ids; the lanes rows name their variant.
    let rows: Vec<(Variant, usize, String)> = Variant::ALL
        .into_iter()
        .filter(|v| v.fits(&bench.gpu, sh.head_dim, CONTEXT, dtype))
        .flat_map(|variant| {
            let tag = named(variant).map_or(String::new(), |n| format!("{n}/"));
            POSITIONS.map(|pos| {
                (
                    variant,
                    pos,
                    format!("kvcache/attention/{tag}{name}/pos{pos}"),
                )
            })
        })
        .collect();
    if !bench.wants(&append_id) && !rows.iter().any(|(_, _, id)| bench.wants(id)) {
        return;
    }
    let [(k, kt), (v, vt)] = caches(bench, [n, CONTEXT, width], dtype);
    let caches = Caches {
        k_cache: &kt,
        v_cache: &vt,
        dtype,
    };
    let gpu = &bench.gpu;
    let (qkv, qkvt) = fill(gpu, &[n, sh.qkv_width()]);
    let out = gpu.zeros("out", &[n, sh.heads * sh.head_dim]).unwrap();
    if bench.wants(&append_id) {
        let pos = POSITIONS[0];
        let position = gpu.upload("position", &[1], &[pos as u32]).unwrap();
        let build = || kvcache::append(&bench.gpu, sh, &qkvt, &position, caches).unwrap();
        let d = if n == 1 {
            bench.compile(&format!("kvcache/append{suffix}"), build)
        } else {
            build()
        };
        let (mut kc, mut vc) = (k.clone(), v.clone());
        let cpu = bench.time_cpu(|| reference::append(&qkv, &sh, pos, &mut kc, &mut vc));
        // k and v read, their cache rows written.
        let bytes = 4 * 2 * n * width + cache_bytes(2 * n * width, dtype);
        memory_row(bench, append_id, &[d], bytes, cpu);
    }
    for (variant, pos, id) in rows {
        if !bench.wants(&id) {
            continue;
        }
        let gpu = &bench.gpu;
        let position = gpu.upload("position", &[1], &[pos as u32]).unwrap();
        let build = || kvcache::step(gpu, variant, sh, &qkvt, &position, caches, &out).unwrap();
        // Each variant's shader compiles once: time it on its first row only.
        let d = if pos == POSITIONS[0] && n == 1 {
            let tag = named(variant).map_or(String::new(), |n| format!("_{n}"));
            bench.compile(&format!("kvcache/attention{tag}{suffix}"), build)
        } else {
            build()
        };
        let (mut kc, mut vc) = (k.clone(), v.clone());
        let cpu = bench.time_cpu(|| {
            reference::append(&qkv, &sh, pos, &mut kc, &mut vc);
            std::hint::black_box(reference::attention(&qkv, &sh, pos, &kc, &vc));
        });
        // The queries, the keys and values of positions 0..=pos, the output (the append's few bytes
        // left out).
        let bytes =
            4 * n * 2 * sh.heads * sh.head_dim + cache_bytes(2 * n * (pos + 1) * width, dtype);
        memory_row(bench, id, &d, bytes, cpu);
    }
}

/// The name a variant's rows carry: none for the chunks kernel, whose rows keep their ids.
fn named(variant: Variant) -> Option<&'static str> {
    (variant != Variant::Chunks).then(|| variant.name())
}

/// The fill of `PROMPT` rows of `BATCH` caches in `dtype` from one prompt's `qkv`.
fn fill_row(bench: &mut Bench, id: &str, (dtype, suffix): (Dtype, &str)) {
    if !bench.wants(id) {
        return;
    }
    let sh = AttentionShape {
        seq: PROMPT,
        ..SHAPE
    };
    let width = sh.kv_heads * sh.head_dim;
    let [(mut k, kt), (mut v, vt)] = caches(bench, [BATCH, CONTEXT, width], dtype);
    let caches = Caches {
        k_cache: &kt,
        v_cache: &vt,
        dtype,
    };
    let (qkv, qkvt) = fill(&bench.gpu, &[1, PROMPT, sh.qkv_width()]);
    let d = bench.compile(&format!("kvcache/fill{suffix}"), || {
        kvcache::fill(&bench.gpu, sh, &qkvt, caches).unwrap()
    });
    let cpu = bench.time_cpu(|| reference::fill(&qkv, &sh, BATCH, &mut k, &mut v));
    // Each written row read once and written once.
    memory_row(
        bench,
        id.to_string(),
        &[d],
        2 * (4 + dtype.bits() / 8) * BATCH * PROMPT * width,
        cpu,
    );
}
