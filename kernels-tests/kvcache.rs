//! kvcache: the fill, the append and the decode attention (both variants, where they take the shape)
//! against `reference::kvcache` at head_dim 12, 32, 64 and 128, GQA ratios 1 and 2, one, two and three
//! sequences, caches of fewer and more than one 64-key chunk, decode steps at positions 0, 1, a prime, context − 1 and one past the cache (writes nothing,
//! attends over all of it), prefills of 1, an odd number and all `ctx` tokens from one prompt and from
//! one per sequence; caches in f32, f16 and bf16 (the values rounded as written, the attention reading
//! what the cache holds).

use wgpt::contract::AttentionShape;
use wgpt::dtype::Dtype;
use wgpt::kernels::kvcache::{self, Caches, Variant};
use wgpt::reference::kvcache as reference;

use crate::common::{assert_within, gpu, random, F32_EPS};

/// (heads, kv heads, head_dim, context, a prime position below it, sequences).
const CASES: [(usize, usize, usize, usize, usize, usize); 6] = [
    (4, 4, 32, 40, 37, 1),
    // Rows of three vec4s: the lanes variant takes them in f32 only (16 bits need whole vec4<u32>s).
    (3, 3, 12, 20, 17, 2),
    (4, 2, 64, 150, 131, 1),
    (2, 1, 128, 70, 67, 1),
    (6, 3, 64, 64, 61, 1),
    (4, 2, 32, 70, 67, 3),
];

fn shape(
    batch: usize,
    seq: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
) -> AttentionShape {
    AttentionShape {
        batch,
        seq,
        heads,
        kv_heads,
        head_dim,
    }
}

/// Uploads caches of `[n, ctx, width]` values stored in `dtype` holding other values (earlier tokens;
/// stale rows, which must not be read); returns their values (as stored) and tensors.
fn stale_caches(
    seed: u64,
    [n, ctx, width]: [usize; 3],
    dtype: Dtype,
) -> ((Vec<f32>, Vec<f32>), (wgpt::gpu::Tensor, wgpt::gpu::Tensor)) {
    let gpu = gpu();
    let (k0, v0) = (
        dtype.round(&random(seed + 1, n * ctx * width)),
        dtype.round(&random(seed + 2, n * ctx * width)),
    );
    let shape = [n, ctx, dtype.words(width)];
    let kt = gpu.upload("k cache", &shape, &dtype.pack(&k0)).unwrap();
    let vt = gpu.upload("v cache", &shape, &dtype.pack(&v0)).unwrap();
    ((k0, v0), (kt, vt))
}

/// A cache's values as the GPU stored them.
fn stored(cache: &wgpt::gpu::Tensor, dtype: Dtype) -> Vec<f32> {
    let words: Vec<u32> = gpu().read(cache).unwrap();
    dtype.unpack(&words, words.len() * dtype.per_word())
}

/// A cache as written against `want`, the reference's f32 values: f32 and bf16 (rounded to nearest
/// even on both sides) exactly; f16 to either neighbour (WGSL's pack2x16float may round either way),
/// within an f16 ulp (2⁻¹⁰ relative, 2⁻²⁴ below its normal range).
fn assert_stored(what: &str, got: &[f32], want: &[f32], dtype: Dtype) {
    match dtype {
        Dtype::F16 => assert_within(what, got, want, |i| {
            2f64.powi(-10) * want[i].abs() as f64 + 2f64.powi(-24)
        }),
        _ => assert_within(what, got, &dtype.round(want), |_| 0.0),
    }
}

#[test]
fn kvcache_append_and_attention_match_reference() {
    for dtype in Dtype::ALL {
        for variant in Variant::ALL {
            append_and_attention_match_reference(dtype, variant);
        }
    }
}

fn append_and_attention_match_reference(dtype: Dtype, variant: Variant) {
    let gpu = gpu();
    for (i, &(h, hkv, d, ctx, prime, n)) in CASES.iter().enumerate() {
        let sh = shape(n, 1, h, hkv, d);
        let width = hkv * d;
        if !variant.fits(gpu, d, ctx, dtype) {
            continue;
        }
        for pos in [0, 1, prime, ctx - 1, ctx] {
            let seed = 5100 + 100 * i as u64 + pos as u64;
            let qkv = random(seed, n * sh.qkv_width());
            let ((k0, v0), (kt, vt)) = stale_caches(seed, [n, ctx, width], dtype);
            let qkvt = gpu.upload("qkv", &[n, sh.qkv_width()], &qkv).unwrap();
            let position = gpu.upload("position", &[1], &[pos as u32]).unwrap();
            let out = gpu.zeros("out", &[n, h * d]).unwrap();
            let caches = Caches {
                k_cache: &kt,
                v_cache: &vt,
                dtype,
            };
            let step = kvcache::step(gpu, variant, sh, &qkvt, &position, caches, &out);
            gpu.run_dispatches(&step.unwrap()).unwrap();
            let (mut k, mut v) = (k0, v0);
            reference::append(&qkv, &sh, pos, &mut k, &mut v);
            let case = format!(
                "{} {} H={h} Hkv={hkv} D={d} ctx={ctx} N={n} pos={pos}",
                variant.name(),
                dtype.name()
            );
            // A copy, rounded to the cache's dtype.
            let (k_got, v_got) = (stored(&kt, dtype), stored(&vt, dtype));
            assert_stored(&format!("k cache {case}"), &k_got, &k, dtype);
            assert_stored(&format!("v cache {case}"), &v_got, &v, dtype);
            // The attention over the values the caches hold.
            let want = reference::attention(&qkv, &sh, pos, &k_got, &v_got);
            // Values in [-1, 1). A score sums D products: error ≤ γ_D·scale·D = √D·D·u. A softmax weight
            // exp(s - m)/l then errs relatively by twice that plus (n + 4)·u for the exp, its rescaling and
            // the n-term sum, and the output, a weighted mean of |v| ≤ 1 over n keys, by that relative error
            // plus n·u for its own sum.
            let keys = pos.min(ctx - 1) + 1;
            let score = (d as f64).sqrt() * d as f64 * F32_EPS;
            let bound = 2.0 * score + (2 * keys + 8) as f64 * F32_EPS;
            assert_within(
                &format!("out {case}"),
                &gpu.read(&out).unwrap(),
                &want,
                |_| bound,
            );
        }
    }
}

#[test]
fn kvcache_fill_writes_the_prompts_rows_of_every_sequence_and_nothing_else() {
    let gpu = gpu();
    for (i, &(h, hkv, d, ctx, prime, n)) in CASES.iter().enumerate() {
        let width = hkv * d;
        for (seq, prompts, dtype) in [
            (1, 1, Dtype::F32),
            (prime, 1, Dtype::F32),
            (ctx, 1, Dtype::F32),
            (prime, n, Dtype::F32),
            (prime, 1, Dtype::F16),
            (prime, n, Dtype::Bf16),
        ] {
            let sh = shape(prompts, seq, h, hkv, d);
            let seed = 6100 + 100 * i as u64 + seq as u64 + prompts as u64;
            let qkv = random(seed, prompts * seq * sh.qkv_width());
            let ((k0, v0), (kt, vt)) = stale_caches(seed, [n, ctx, width], dtype);
            let qkvt = (gpu.upload("qkv", &[prompts, seq, sh.qkv_width()], &qkv)).unwrap();
            let caches = Caches {
                k_cache: &kt,
                v_cache: &vt,
                dtype,
            };
            gpu.run_dispatches(&[kvcache::fill(gpu, sh, &qkvt, caches).unwrap()])
                .unwrap();
            let (mut k, mut v) = (k0, v0);
            reference::fill(&qkv, &sh, n, &mut k, &mut v);
            let case = format!(
                "{} H={h} Hkv={hkv} D={d} ctx={ctx} N={n} B={prompts} T={seq}",
                dtype.name()
            );
            // A copy rounded to the cache's dtype, and the rows past T keep their values.
            assert_stored(&format!("k cache {case}"), &stored(&kt, dtype), &k, dtype);
            assert_stored(&format!("v cache {case}"), &stored(&vt, dtype), &v, dtype);
        }
    }
}

/// Caches of `dtype` in a key and a value buffer.
fn of(kv: &[wgpt::Tensor; 2], dtype: Dtype) -> Caches<'_> {
    Caches {
        k_cache: &kv[0],
        v_cache: &kv[1],
        dtype,
    }
}

#[test]
fn kvcache_rejects_batches_and_heads_it_cannot_run() {
    let gpu = gpu();
    let sh = shape(1, 1, 4, 2, 32);
    let qkv = gpu.zeros("qkv", &[1, sh.qkv_width()]).unwrap();
    let position = gpu.zeros("position", &[1]).unwrap();
    // A key and a value cache of `shape` (two buffers: one bound twice would be refused for that alone).
    let pair_of =
        |shape: &[usize]| ["k cache", "v cache"].map(|name| gpu.zeros(name, shape).unwrap());
    let cache = pair_of(&[1, 8, 64]);
    let two = AttentionShape { seq: 2, ..sh };
    assert!(kvcache::append(gpu, two, &qkv, &position, of(&cache, Dtype::F32)).is_err());
    let uneven = shape(1, 1, 4, 3, 32);
    assert!(kvcache::append(gpu, uneven, &qkv, &position, of(&cache, Dtype::F32)).is_err());
    let narrow = pair_of(&[1, 8, 32]);
    assert!(kvcache::append(gpu, sh, &qkv, &position, of(&narrow, Dtype::F32)).is_err());
    // The same caches hold the values in 16 bits; a 16-bit row of an odd width would split a word.
    assert!(kvcache::append(gpu, sh, &qkv, &position, of(&narrow, Dtype::F16)).is_ok());
    let odd = shape(1, 1, 1, 1, 3);
    let odd_qkv = gpu.zeros("qkv", &[1, odd.qkv_width()]).unwrap();
    let odd_cache = pair_of(&[1, 8, 2]);
    assert!(kvcache::append(gpu, odd, &odd_qkv, &position, of(&odd_cache, Dtype::F16)).is_err());
    // Two sequences' caches, one token's qkv.
    let pair = pair_of(&[2, 8, 64]);
    assert!(kvcache::append(gpu, sh, &qkv, &position, of(&pair, Dtype::F32)).is_err());
    // A prefill longer than the cache, or of three prompts for two caches.
    let long = gpu.zeros("qkv", &[9, sh.qkv_width()]).unwrap();
    let nine = AttentionShape { seq: 9, ..sh };
    assert!(kvcache::fill(gpu, nine, &long, of(&cache, Dtype::F32)).is_err());
    let three = gpu.zeros("qkv", &[3, sh.qkv_width()]).unwrap();
    let prompts = AttentionShape { batch: 3, ..sh };
    assert!(kvcache::fill(gpu, prompts, &three, of(&pair, Dtype::F32)).is_err());
    // The lanes variant reads head rows as whole vec4s of the cache's words.
    let lanes = Variant::Lanes;
    assert!(lanes.fits(gpu, 12, 8, Dtype::F32) && !lanes.fits(gpu, 12, 8, Dtype::Bf16));
    assert!(!lanes.fits(gpu, 6, 8, Dtype::F32) && Variant::Chunks.fits(gpu, 6, 8, Dtype::F32));
    let out = gpu.zeros("out", &[1, sh.heads * sh.head_dim]).unwrap();
    let six = shape(1, 1, 4, 2, 6);
    let six_qkv = gpu.zeros("qkv", &[1, six.qkv_width()]).unwrap();
    let six_cache = pair_of(&[1, 8, 12]);
    let six_out = gpu.zeros("out", &[1, 24]).unwrap();
    let caches = of(&six_cache, Dtype::F32);
    assert!(kvcache::step(gpu, lanes, six, &six_qkv, &position, caches, &six_out).is_err());
    assert!(kvcache::step(
        gpu,
        lanes,
        sh,
        &qkv,
        &position,
        of(&cache, Dtype::F32),
        &out
    )
    .is_ok());
    // On a CPU adapter, no cache so long that an invocation could pass llvmpipe's loop cap.
    assert_eq!(lanes.fits(gpu, 128, 1 << 16, Dtype::F32), !gpu.is_cpu());
}
