//! crossentropy: every variant against `reference::crossentropy` (losses, mean, dlogits), the reference's
//! backward against finite differences, and the target check.

use wgpt::kernels::crossentropy::{self, Variant};
use wgpt::reference::crossentropy as reference;

use crate::common::{assert_gradient, assert_within, gpu, random, F32_EPS};

/// (rows, V, logit scale): single rows, primes, the 65-character vocabulary at 4100 rows (rows past
/// 4096), GPT-2's 50257-token vocabulary, and logits of ±1000 that overflow exp without the max.
const SHAPES: [(usize, usize, f32); 11] = [
    (1, 65, 4.0),
    (5, 65, 4.0),
    (97, 65, 4.0),
    (1, 97, 4.0),
    (5, 97, 4.0),
    (97, 97, 4.0),
    (1, 50257, 4.0),
    (5, 50257, 4.0),
    (97, 50257, 4.0),
    (4100, 65, 4.0),
    (5, 97, 1000.0),
];

fn targets(seed: u64, rows: usize, vocab: usize) -> Vec<u32> {
    random(seed, rows)
        .iter()
        .map(|&r| (((r + 1.0) * 0.5 * vocab as f32) as usize).min(vocab - 1) as u32)
        .collect()
}

/// Relative error of the row sum s = Σ exp(x - m) in f32: one rounding per sequential addition (at most
/// V/4 + log2(256) + 4 of them in either variant), and for each exp factor Vulkan's exp bound of
/// 3 + 2|x| ulp = 2(3 + 2|x|)u; with |x - m| ≤ 8 (logits in ±4) that is ≤ 40u for each term and each
/// rescale of the running sum, and a thread's running max changes about ln n + 1 ≤ 12 times on random
/// data, so 40u·(1 + 2·12) ≤ 1000u covers them. (For the ±1000 case the terms with a large |x - m| are
/// below e⁻²⁰ and do not count.)
fn sum_error(vocab: usize) -> f64 {
    (vocab as f64 / 4.0 + 12.0 + 1000.0) * F32_EPS
}

#[test]
fn crossentropy_matches_reference_for_every_variant_and_shape() {
    let gpu = gpu();
    for variant in Variant::ALL {
        for (i, &(rows, vocab, scale)) in SHAPES.iter().enumerate() {
            let seed = 500 + i as u64;
            let logits: Vec<f32> = random(seed, rows * vocab)
                .iter()
                .map(|x| x * scale)
                .collect();
            let tgt = targets(seed + 1, rows, vocab);
            let lt = gpu.upload("logits", &[rows, vocab], &logits).unwrap();
            let tt = gpu.upload("targets", &[rows], &tgt).unwrap();
            let losses = gpu.zeros("losses", &[rows]).unwrap();
            let dlogits = gpu.zeros("dlogits", &[rows, vocab]).unwrap();
            let mean = gpu.zeros("mean", &[1]).unwrap();
            // Every other shape is a row chunk of a batch three times its size.
            let mean_over = rows * (1 + 2 * (i % 2));
            let dispatches = [
                crossentropy::forward_backward(
                    gpu, variant, &lt, &tt, &losses, &dlogits, mean_over,
                )
                .unwrap(),
                crossentropy::mean(gpu, &losses, &mean).unwrap(),
            ];
            gpu.run_dispatches(&dispatches).unwrap();
            let case = format!("{} rows={rows} V={vocab} scale={scale}", variant.name());

            // loss = log s + m - x_t: the error of s, log's (3 ulp, or 2⁻²¹ absolute near s = 1), and
            // one rounding in each of the two additions of terms up to |loss| + 2·max|x|.
            let got: Vec<f32> = gpu.read(&losses).unwrap();
            let want = reference::forward(&logits, &tgt, vocab);
            let bound = |r: usize| {
                sum_error(vocab)
                    + 2f64.powi(-21)
                    + 8.0 * F32_EPS * (want[r].abs() as f64 + 2.0 * scale as f64)
            };
            assert_within(&format!("losses {case}"), &got, &want, bound);

            // The mean of the GPU's own losses: rows/256 + 8 sequential additions of positive terms,
            // and the rounding of the division.
            let got_mean: Vec<f32> = gpu.read(&mean).unwrap();
            let want_mean = reference::mean(&got);
            let k = rows as f64 / 256.0 + 10.0;
            assert_within(&format!("mean {case}"), &got_mean, &[want_mean], |_| {
                k * F32_EPS * want_mean.abs() as f64
            });

            // dlogits = (p - onehot)/mean_over with p = exp(x - m)/s: p carries s's error, exp's 40u and the
            // reciprocal's 2.5 ulp; the subtraction and the scaling by 1/rows round once each.
            let got: Vec<f32> = gpu.read(&dlogits).unwrap();
            let want = reference::backward(&logits, &tgt, vocab, mean_over);
            let rows = mean_over;
            let bound = |j: usize| {
                let onehot = if j % vocab == tgt[j / vocab] as usize {
                    1.0
                } else {
                    0.0
                };
                let p = want[j] as f64 * rows as f64 + onehot;
                // Results below f32's normal range may flush to zero on the GPU.
                (p * (sum_error(vocab) + 50.0 * F32_EPS) + 4.0 * F32_EPS * (p + onehot))
                    / rows as f64
                    + f32::MIN_POSITIVE as f64
            };
            assert_within(&format!("dlogits {case}"), &got, &want, bound);
        }
    }
}

#[test]
fn crossentropy_forward_only_writes_losses_and_leaves_dlogits_alone() {
    let gpu = gpu();
    let (rows, vocab) = (5, 97);
    let logits = random(1, rows * vocab);
    let tgt = targets(2, rows, vocab);
    let lt = gpu.upload("logits", &[rows, vocab], &logits).unwrap();
    let tt = gpu.upload("targets", &[rows], &tgt).unwrap();
    let losses = gpu.zeros("losses", &[rows]).unwrap();
    for variant in Variant::ALL {
        gpu.run_dispatches(&[crossentropy::forward(gpu, variant, &lt, &tt, &losses).unwrap()])
            .unwrap();
        // Logits in ±1: the bound of the full test with scale 1.
        let want = reference::forward(&logits, &tgt, vocab);
        assert_within(
            &format!("forward only {}", variant.name()),
            &gpu.read(&losses).unwrap(),
            &want,
            |r| sum_error(vocab) + 2f64.powi(-21) + 8.0 * F32_EPS * (want[r].abs() as f64 + 2.0),
        );
    }
}

#[test]
fn crossentropy_reference_backward_matches_finite_differences() {
    let (rows, vocab) = (3, 7);
    let logits: Vec<f32> = random(7, rows * vocab).iter().map(|x| 3.0 * x).collect();
    let tgt = targets(8, rows, vocab);
    let loss = |x: &[f32]| reference::mean(&reference::forward(x, &tgt, vocab)) as f64;
    // The loss is smooth with second derivatives ≤ 1/4 per row, so the central difference's truncation
    // error is O(h²) ≈ 1e-4·|f'''|; the f32 rounding of the loss (~1e-7 over 2h = 2e-2) adds ~1e-5.
    // 1e-3 holds both with margin while any wrong term (≥ 1/(rows·V) ≈ 0.05) fails.
    let dlogits = reference::backward(&logits, &tgt, vocab, rows);
    assert_gradient("crossentropy", loss, &logits, &dlogits, 1e-2, 1e-3);
}
