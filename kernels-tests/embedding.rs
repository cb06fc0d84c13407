//! embedding: forward and backward against `reference::embedding` over batch shapes from one token to
//! a full context, at a 65-character and GPT-2's 50257-token vocabulary; the backward is bit-identical
//! run to run; the reference's backward matches finite differences; the `_at` entry points start at a
//! position read on the GPU; the forward reads 16-bit weights exactly.

use rand::{Rng, SeedableRng};
use wgpt::dtype::Dtype;
use wgpt::kernels::embedding::{self, TokenBuckets, Weights};
use wgpt::reference::embedding as reference;
use wgpt::Tensor;

use crate::common::{assert_gradient, assert_within, gpu, project, random, F32_EPS};

/// (B, T, ctx, V, C): a single token, T = 1, T < ctx, T = ctx, widths not multiples of the 64-column
/// workgroup, V = 50257, and a GPT block's B·T = 768 rows at C = 768. C = 8, 128 and 768 take the vec4
/// entry points (C = 8 small enough for the browser's exported cases), the primes the scalar ones.
const SHAPES: [(usize, usize, usize, usize, usize); 7] = [
    (1, 1, 1, 65, 65),
    (2, 3, 4, 65, 8),
    (3, 1, 4, 50257, 97),
    (2, 5, 8, 65, 97),
    (4, 16, 16, 50257, 65),
    (5, 32, 32, 65, 128),
    (12, 64, 64, 65, 768),
];

/// Token ids with many repeats (a quarter drawn from eight ids), so buckets hold several rows.
fn tokens(seed: u64, len: usize, vocab: usize) -> Vec<u32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..len)
        .map(|_| {
            let range = if rng.random_bool(0.25) { 8 } else { vocab };
            rng.random_range(0..range.min(vocab)) as u32
        })
        .collect()
}

fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

/// The batch's tensors on the GPU.
struct Batch {
    tokens: Vec<u32>,
    dx: Vec<f32>,
    dwte0: Vec<f32>,
    dwpe0: Vec<f32>,
    dxt: Tensor,
    positions: Tensor,
    buckets: Tensor,
    dwte: Tensor,
    dwpe: Tensor,
}

fn batch(seed: u64, (b, t, ctx, vocab, c): (usize, usize, usize, usize, usize)) -> Batch {
    let gpu = gpu();
    let tokens = tokens(seed, b * t, vocab);
    let dx = random(seed + 1, b * t * c);
    // Gradients start non-zero: the kernel must add into them.
    let dwte0 = random(seed + 2, vocab * c);
    let dwpe0 = random(seed + 3, ctx * c);
    let prepared = TokenBuckets::new(&tokens, vocab).unwrap();
    Batch {
        dxt: gpu.upload("dx", &[b, t, c], &dx).unwrap(),
        positions: gpu
            .upload("positions", &[b * t], &prepared.positions)
            .unwrap(),
        buckets: gpu
            .upload("buckets", &[b * t, 3], &prepared.buckets)
            .unwrap(),
        dwte: gpu.upload("dwte", &[vocab, c], &dwte0).unwrap(),
        dwpe: gpu.upload("dwpe", &[ctx, c], &dwpe0).unwrap(),
        tokens,
        dx,
        dwte0,
        dwpe0,
    }
}

#[test]
fn embedding_forward_matches_reference() {
    let gpu = gpu();
    for (i, &(b, t, ctx, vocab, c)) in SHAPES.iter().enumerate() {
        let seed = 1400 + 10 * i as u64;
        let tokens = tokens(seed, b * t, vocab);
        let (wte, wpe) = (random(seed + 1, vocab * c), random(seed + 2, ctx * c));
        let tt = gpu.upload("tokens", &[b, t], &tokens).unwrap();
        let wtet = gpu.upload("wte", &[vocab, c], &wte).unwrap();
        let wpet = gpu.upload("wpe", &[ctx, c], &wpe).unwrap();
        let out = gpu.zeros("out", &[b, t, c]).unwrap();
        gpu.run_dispatches(&[embedding::forward(gpu, &tt, &wtet, &wpet, &out).unwrap()])
            .unwrap();
        // One f32 addition on both sides, correctly rounded: identical.
        assert_within(
            &format!("forward B={b} T={t} V={vocab} C={c}"),
            &gpu.read(&out).unwrap(),
            &reference::forward(&tokens, &wte, &wpe, t, c),
            |_| 0.0,
        );
    }
}

#[test]
fn embedding_forward_reads_16_bit_weights_as_their_unpacked_values() {
    // wte and wpe packed in f16 or bf16 (odd lengths leave a padding half), from position 0 and from
    // a start read on the GPU: the reference on the unpacked values, identically (one f32 addition).
    let gpu = gpu();
    for dtype in [Dtype::F16, Dtype::Bf16] {
        for (i, &(b, t, ctx, vocab, c)) in SHAPES.iter().enumerate() {
            let seed = 1700 + 10 * i as u64;
            let tokens = tokens(seed, b * t, vocab);
            let (wte, wpe) = (random(seed + 1, vocab * c), random(seed + 2, ctx * c));
            let (te_words, pe_words) = (dtype.pack(&wte), dtype.pack(&wpe));
            let tt = gpu.upload("tokens", &[b, t], &tokens).unwrap();
            let wtet = gpu.upload("wte", &[te_words.len()], &te_words).unwrap();
            let wpet = gpu.upload("wpe", &[pe_words.len()], &pe_words).unwrap();
            let start = ctx - t;
            let st = gpu.upload("start", &[1], &[start as u32]).unwrap();
            let (te, pe) = (
                Weights::packed(&wtet, dtype, vocab, c).unwrap(),
                Weights::packed(&wpet, dtype, ctx, c).unwrap(),
            );
            let (wte, wpe) = (dtype.round(&wte), dtype.round(&wpe));
            for at in [None, Some(&st)] {
                let out = gpu.zeros("out", &[b, t, c]).unwrap();
                let d = embedding::forward_piece(gpu, &tt, at, te, 0, pe, &out).unwrap();
                gpu.run_dispatches(&[d]).unwrap();
                let from = at.map_or(0, |_| start);
                assert_within(
                    &format!("{} from {from}, B={b} T={t} V={vocab} C={c}", dtype.name()),
                    &gpu.read(&out).unwrap(),
                    &reference::forward_at(&tokens, &wte, &wpe, from, t, c),
                    |_| 0.0,
                );
            }
        }
    }
}

#[test]
fn embedding_backward_adds_token_and_position_sums() {
    let gpu = gpu();
    for (i, &shape) in SHAPES.iter().enumerate() {
        let (b, t, ctx, vocab, c) = shape;
        let s = batch(1500 + 10 * i as u64, shape);
        gpu.run_dispatches(&[embedding::backward(
            gpu,
            &s.dxt,
            &s.positions,
            &s.buckets,
            &s.dwte,
            &s.dwpe,
        )
        .unwrap()])
            .unwrap();
        let (dwte, dwpe) = reference::backward(&s.tokens, &s.dx, (vocab, ctx), t, c);
        let (mag_te, mag_pe) = reference::backward(&s.tokens, &abs(&s.dx), (vocab, ctx), t, c);
        // A sum of at most B·T terms in f32, then one addition into the start value: the worst case
        // γ_{B·T+1} · (Σ|dx| + |start|).
        let bound = |magnitude: f32, start: f32| {
            (b * t + 1) as f64 * F32_EPS * (magnitude + start.abs()) as f64
        };
        let case = format!("B={b} T={t} V={vocab} C={c}");
        let add = |start: &[f32], inc: &[f32]| -> Vec<f32> {
            start.iter().zip(inc).map(|(a, b)| a + b).collect()
        };
        assert_within(
            &format!("dwte {case}"),
            &gpu.read(&s.dwte).unwrap(),
            &add(&s.dwte0, &dwte),
            |i| bound(mag_te[i], s.dwte0[i]),
        );
        assert_within(
            &format!("dwpe {case}"),
            &gpu.read(&s.dwpe).unwrap(),
            &add(&s.dwpe0, &dwpe),
            |i| bound(mag_pe[i], s.dwpe0[i]),
        );
    }
}

#[test]
fn embedding_backward_is_bit_identical_across_runs() {
    let gpu = gpu();
    // Both entry points: C = 97 (scalar) and C = 128 (vec4).
    for c in [97, 128] {
        let s = batch(1600, (8, 64, 64, 50257, c));
        let d =
            embedding::backward(gpu, &s.dxt, &s.positions, &s.buckets, &s.dwte, &s.dwpe).unwrap();
        let mut runs = Vec::new();
        for _ in 0..2 {
            gpu.write(&s.dwte, &s.dwte0).unwrap();
            gpu.write(&s.dwpe, &s.dwpe0).unwrap();
            gpu.run_dispatches(std::slice::from_ref(&d)).unwrap();
            let te: Vec<u32> = gpu.read(&s.dwte).unwrap();
            let pe: Vec<u32> = gpu.read(&s.dwpe).unwrap();
            runs.push((te, pe));
        }
        assert!(runs[0] == runs[1], "C={c}: two runs of the backward differ");
    }
}

#[test]
fn embedding_token_buckets_group_rows_and_reject_ids_outside_the_vocabulary() {
    let buckets = TokenBuckets::new(&[4, 1, 4, 4, 0], 5).unwrap();
    assert_eq!(buckets.positions, [4, 1, 0, 2, 3]);
    assert_eq!(
        buckets.buckets,
        [0, 1, 0, 1, 1, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0]
    );
    assert!(TokenBuckets::new(&[1, 5], 5).is_err());
}

#[test]
fn embedding_reference_backward_matches_finite_differences() {
    let (b, t, ctx, vocab, c) = (2, 3, 4, 5, 3);
    let tokens = [1u32, 4, 1, 0, 1, 2];
    let (wte, wpe, r) = (
        random(1, vocab * c),
        random(2, ctx * c),
        random(3, b * t * c),
    );
    let (dwte, dwpe) = reference::backward(&tokens, &r, (vocab, ctx), t, c);
    // Linear: the differences are exact up to the rounding of each out element (2⁻²⁴·2) summed over at
    // most B·T rows, over 2h = 0.02: below 1e-5.
    let loss = |wte: &[f32], wpe: &[f32]| project(&reference::forward(&tokens, wte, wpe, t, c), &r);
    assert_gradient("dwte", |w| loss(w, &wpe), &wte, &dwte, 1e-2, 1e-5);
    assert_gradient("dwpe", |w| loss(&wte, w), &wpe, &dwpe, 1e-2, 1e-5);
}

/// (B, T, ctx, V, C, start): one token at positions 0, 1, a prime and ctx − 1 (the decode step), and a
/// [2, 3] batch from start 5; C = 128 takes the vec4 entry point, 97 the scalar one.
const AT: [(usize, usize, usize, usize, usize, usize); 5] = [
    (1, 1, 32, 65, 128, 0),
    (1, 1, 32, 65, 97, 1),
    (1, 1, 32, 97, 128, 17),
    (1, 1, 32, 97, 97, 31),
    (2, 3, 16, 65, 128, 5),
];

#[test]
fn embedding_forward_at_starts_at_the_gpu_held_position() {
    let gpu = gpu();
    for (i, &(b, t, ctx, vocab, c, start)) in AT.iter().enumerate() {
        let seed = 5600 + 10 * i as u64;
        let tokens: Vec<u32> = (0..b * t).map(|j| ((j * 31 + i) % vocab) as u32).collect();
        let (wte, wpe) = (random(seed, vocab * c), random(seed + 1, ctx * c));
        let tt = gpu.upload("tokens", &[b, t], &tokens).unwrap();
        let st = gpu.upload("start", &[1], &[start as u32]).unwrap();
        let wtet = gpu.upload("wte", &[vocab, c], &wte).unwrap();
        let wpet = gpu.upload("wpe", &[ctx, c], &wpe).unwrap();
        let out = gpu.zeros("out", &[b, t, c]).unwrap();
        gpu.run_dispatches(&[embedding::forward_at(gpu, &tt, &st, &wtet, &wpet, &out).unwrap()])
            .unwrap();
        // One f32 addition on both sides: identical.
        assert_within(
            &format!("forward_at B={b} T={t} C={c} start={start}"),
            &gpu.read(&out).unwrap(),
            &reference::forward_at(&tokens, &wte, &wpe, start, t, c),
            |_| 0.0,
        );
    }
}

/// wte split by rows into uneven pieces (as GPT-2's is when it exceeds one binding): the pieces'
/// forwards give the whole embedding's output, their backwards the whole one's gradient rows, bit for
/// bit (the same additions in the same order), at a scalar and a vec4 width.
#[test]
fn embedding_pieces_give_the_whole_embedding_bit_for_bit() {
    let gpu = gpu();
    for (b, t, vocab, c) in [(3, 16, 301, 97), (4, 32, 500, 128)] {
        let seed = 1700 + c as u64;
        let tokens = tokens(seed, b * t, vocab);
        let (wte, wpe) = (random(seed + 1, vocab * c), random(seed + 2, t * c));
        let dx = random(seed + 3, b * t * c);
        let tt = gpu.upload("tokens", &[b, t], &tokens).unwrap();
        let wpet = gpu.upload("wpe", &[t, c], &wpe).unwrap();
        let dxt = gpu.upload("dx", &[b, t, c], &dx).unwrap();
        let grouped = TokenBuckets::new(&tokens, vocab).unwrap();
        let positions = gpu
            .upload("positions", &[b * t], &grouped.positions)
            .unwrap();
        let buckets = gpu
            .upload("buckets", &[b * t, 3], &grouped.buckets)
            .unwrap();
        // The whole embedding.
        let wtet = gpu.upload("wte", &[vocab, c], &wte).unwrap();
        let (out, dwte, dwpe) = (
            gpu.zeros("out", &[b, t, c]).unwrap(),
            gpu.zeros("dwte", &[vocab, c]).unwrap(),
            gpu.zeros("dwpe", &[t, c]).unwrap(),
        );
        gpu.run_dispatches(&[
            embedding::forward(gpu, &tt, &wtet, &wpet, &out).unwrap(),
            embedding::backward(gpu, &dxt, &positions, &buckets, &dwte, &dwpe).unwrap(),
        ])
        .unwrap();
        // Three pieces of rows: 0..100, 100..200, 200..vocab.
        let (piece_out, piece_dwpe) = (
            gpu.zeros("out", &[b, t, c]).unwrap(),
            gpu.zeros("dwpe", &[t, c]).unwrap(),
        );
        let mut piece_grads = Vec::new();
        for first in [0, 100, 200] {
            let rows = if first == 200 { vocab - 200 } else { 100 };
            let piece = &wte[first * c..(first + rows) * c];
            let pt = gpu.upload("piece", &[rows, c], piece).unwrap();
            let dpt = gpu.zeros("dpiece", &[rows, c]).unwrap();
            gpu.run_dispatches(&[
                {
                    let (pt, wpet) = (Weights::f32(&pt).unwrap(), Weights::f32(&wpet).unwrap());
                    embedding::forward_piece(gpu, &tt, None, pt, first, wpet, &piece_out).unwrap()
                },
                embedding::backward_piece(
                    gpu,
                    &dxt,
                    &positions,
                    &buckets,
                    &dpt,
                    first,
                    &piece_dwpe,
                )
                .unwrap(),
            ])
            .unwrap();
            piece_grads.extend(gpu.read::<f32>(&dpt).unwrap());
        }
        let case = format!("B={b} T={t} V={vocab} C={c} in 3 pieces");
        let exact = |_| 0.0;
        let read = |x: &Tensor| gpu.read::<f32>(x).unwrap();
        assert_within(
            &format!("forward {case}"),
            &read(&piece_out),
            &read(&out),
            exact,
        );
        assert_within(&format!("dwte {case}"), &piece_grads, &read(&dwte), exact);
        assert_within(
            &format!("dwpe {case}"),
            &read(&piece_dwpe),
            &read(&dwpe),
            exact,
        );
    }
}
