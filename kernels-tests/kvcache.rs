//! kvcache: the append and the decode attention against `reference::kvcache` at head_dim 32, 64 and 128,
//! GQA ratios 1 and 2, caches of fewer and more than one 64-key chunk, at positions 0, 1, a prime,
//! context − 1, and one past the cache (writes nothing, attends over all of it).

use wgpt::contract::AttentionShape;
use wgpt::kernels::kvcache;
use wgpt::reference::kvcache as reference;

use crate::common::{assert_within, gpu, random, F32_EPS};

/// (heads, kv heads, head_dim, context, a prime position below it).
const CASES: [(usize, usize, usize, usize, usize); 4] = [
    (4, 4, 32, 40, 37),
    (4, 2, 64, 150, 131),
    (2, 1, 128, 70, 67),
    (6, 3, 64, 64, 61),
];

fn shape(heads: usize, kv_heads: usize, head_dim: usize) -> AttentionShape {
    AttentionShape {
        batch: 1,
        seq: 1,
        heads,
        kv_heads,
        head_dim,
    }
}

#[test]
fn kvcache_append_and_attention_match_reference() {
    let gpu = gpu();
    for (i, &(h, hkv, d, ctx, prime)) in CASES.iter().enumerate() {
        let sh = shape(h, hkv, d);
        let width = hkv * d;
        for pos in [0, 1, prime, ctx - 1, ctx] {
            let seed = 5100 + 100 * i as u64 + pos as u64;
            let qkv = random(seed, sh.qkv_width());
            // Every row starts as other values (earlier tokens; stale rows past pos, which must not be read).
            let (k0, v0) = (random(seed + 1, ctx * width), random(seed + 2, ctx * width));
            let qkvt = gpu.upload("qkv", &[1, sh.qkv_width()], &qkv).unwrap();
            let position = gpu.upload("position", &[1], &[pos as u32]).unwrap();
            let kt = gpu.upload("k cache", &[ctx, width], &k0).unwrap();
            let vt = gpu.upload("v cache", &[ctx, width], &v0).unwrap();
            let out = gpu.zeros("out", &[1, h * d]).unwrap();
            gpu.run_dispatches(&[
                kvcache::append(gpu, sh, &qkvt, &position, &kt, &vt).unwrap(),
                kvcache::attention(gpu, sh, &qkvt, &position, &kt, &vt, &out).unwrap(),
            ])
            .unwrap();
            let (mut k, mut v) = (k0.clone(), v0.clone());
            reference::append(&qkv, &sh, pos, &mut k, &mut v);
            let want = reference::attention(&qkv, &sh, pos, &k, &v);
            let case = format!("H={h} Hkv={hkv} D={d} ctx={ctx} pos={pos}");
            // A copy: exact.
            assert_within(
                &format!("k cache {case}"),
                &gpu.read(&kt).unwrap(),
                &k,
                |_| 0.0,
            );
            assert_within(
                &format!("v cache {case}"),
                &gpu.read(&vt).unwrap(),
                &v,
                |_| 0.0,
            );
            // Values in [-1, 1). A score sums D products: error ≤ γ_D·scale·D = √D·D·u. A softmax weight
            // exp(s - m)/l then errs relatively by twice that plus (n + 4)·u for the exp, its rescaling and
            // the n-term sum, and the output, a weighted mean of |v| ≤ 1 over n keys, by that relative error
            // plus n·u for its own sum.
            let n = pos.min(ctx - 1) + 1;
            let score = (d as f64).sqrt() * d as f64 * F32_EPS;
            let bound = 2.0 * score + (2 * n + 8) as f64 * F32_EPS;
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
fn kvcache_rejects_batches_and_heads_it_cannot_run() {
    let gpu = gpu();
    let sh = shape(4, 2, 32);
    let qkv = gpu.zeros("qkv", &[1, sh.qkv_width()]).unwrap();
    let position = gpu.zeros("position", &[1]).unwrap();
    let cache = gpu.zeros("cache", &[8, 64]).unwrap();
    let two = AttentionShape { seq: 2, ..sh };
    assert!(kvcache::append(gpu, two, &qkv, &position, &cache, &cache).is_err());
    let uneven = shape(4, 3, 32);
    assert!(kvcache::append(gpu, uneven, &qkv, &position, &cache, &cache).is_err());
    let narrow = gpu.zeros("cache", &[8, 32]).unwrap();
    assert!(kvcache::append(gpu, sh, &qkv, &position, &narrow, &narrow).is_err());
}
