//! matmul: every variant and product against `reference::matmul`, the fused epilogues also against the
//! unfused kernels, the products that read 16-bit weights against `reference::matvec` (which reads the
//! same packed words), and the reference's backward against finite differences.

use wgpt::dtype::Dtype;
use wgpt::gpu::{Dispatch, Tensor};
use wgpt::kernels::matmul::{self, Variant, Weights};
use wgpt::kernels::{dropout, gelu, residual};
use wgpt::reference::matmul as reference;
use wgpt::reference::matvec as packed_reference;

use crate::common::{assert_gradient, assert_within, gpu, project, random, F32_EPS};

/// (M, K, N): single elements, primes, sizes that are not multiples of any tile, odd leftovers in every
/// dimension, a GPT layer shape with a 65-character vocabulary, GPT-2's 50257-token vocabulary, more
/// than 4096 rows (B·T of a real batch; the weight gradient's inner dimension), few rows in fours
/// (the cpu variant's thin kernels: M ≤ 8, two 4-row blocks, the second partial; 6×12×20 through their
/// vec4 views, small enough for the browser's exported cases), and products wide
/// enough for the cpu variant's 32-invocation workgroups (the input gradient of 256×384×64 through the
/// vec4 views, the forward of 520×33×1024 through the scalar ones), and op(A) alone through its vec4
/// view (130×64×67 forward and weight gradient, the latter with an inner dimension not in fours;
/// 33×8×5 forward, small enough for the browser's exported cases).
const SHAPES: [(usize, usize, usize); 18] = [
    (1, 1, 1),
    (1, 97, 65),
    (65, 97, 1),
    (97, 65, 97),
    (64, 64, 64),
    (33, 17, 130),
    (130, 257, 67),
    (128, 128, 128),
    (256, 64, 384),
    (768, 128, 65),
    (130, 64, 67),
    (33, 8, 5),
    (3, 24, 50257),
    (4099, 8, 12),
    (5, 64, 384),
    (6, 12, 20),
    (256, 384, 64),
    (520, 33, 1024),
];

/// Error bound for one element of a K-term dot product computed in f32 in any order: the standard
/// `γ_K · Σ|a_i b_i|` with γ_K ≈ K·u (u = 2⁻²⁴), plus one rounding each for the bias and the
/// accumulated value. `magnitude` is `Σ|a_i b_i| + |bias| + |previous|`, computed by the reference on
/// absolute values.
fn dot_bound(k: usize, magnitude: f32) -> f64 {
    (k as f64 + 2.0) * F32_EPS * magnitude as f64 + f64::MIN_POSITIVE
}

fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

fn variants() -> Vec<Variant> {
    let gpu = gpu();
    let supported: Vec<Variant> = Variant::ALL
        .into_iter()
        .filter(|v| v.supported(gpu))
        .collect();
    assert!(supported.contains(&Variant::best(gpu)));
    supported
}

#[test]
fn matmul_best_variant_is_cpu_on_cpu_adapters_with_the_widest_fitting_subgroup_sharing() {
    let gpu = gpu();
    let best = Variant::best(gpu);
    if !gpu.is_cpu() {
        assert_eq!(best, Variant::Gpu);
        return;
    }
    // Subgroup sharing needs every subgroup to have at least `lanes` lanes.
    let lanes = match gpu.subgroup_sizes() {
        Some((min, _)) if min >= 8 => 8,
        Some((min, _)) if min >= 4 => 4,
        _ => 1,
    };
    assert_eq!(best, Variant::Cpu { lanes }, "{}", gpu.summary());
}

#[test]
fn matmul_forward_matches_reference_for_every_variant_and_shape() {
    let gpu = gpu();
    for variant in variants() {
        for (i, &(m, k, n)) in SHAPES.iter().enumerate() {
            let seed = 100 + i as u64;
            let (x, w, b) = (
                random(seed, m * k),
                random(seed + 1, k * n),
                random(seed + 2, n),
            );
            let xt = gpu.upload("x", &[m, k], &x).unwrap();
            let wt = gpu.upload("w", &[k, n], &w).unwrap();
            let bt = gpu.upload("b", &[n], &b).unwrap();
            let yt = gpu.zeros("y", &[m, n]).unwrap();
            for bias in [false, true] {
                let d = matmul::forward(gpu, variant, &xt, &wt, bias.then_some(&bt), &yt).unwrap();
                gpu.run_dispatches(&[d]).unwrap();
                let got: Vec<f32> = gpu.read(&yt).unwrap();
                let bias_ref = bias.then_some(&b[..]);
                let want = reference::forward(&x, &w, bias_ref, m, k, n);
                let magnitude =
                    reference::forward(&abs(&x), &abs(&w), bias.then_some(&abs(&b)[..]), m, k, n);
                assert_within(
                    &format!("forward {} {m}x{k}x{n} bias={bias}", variant.name()),
                    &got,
                    &want,
                    |i| dot_bound(k, magnitude[i]),
                );
            }
        }
    }
}

#[test]
fn matmul_backward_products_match_reference_for_every_variant_and_shape() {
    let gpu = gpu();
    for variant in variants() {
        for (i, &(m, k, n)) in SHAPES.iter().enumerate() {
            let seed = 200 + i as u64;
            let (x, w, dy) = (
                random(seed, m * k),
                random(seed + 1, k * n),
                random(seed + 2, m * n),
            );
            // dW starts non-zero: the kernel must add into it, not overwrite.
            let dw0 = random(seed + 3, k * n);
            let xt = gpu.upload("x", &[m, k], &x).unwrap();
            let wt = gpu.upload("w", &[k, n], &w).unwrap();
            let dyt = gpu.upload("dy", &[m, n], &dy).unwrap();
            let dxt = gpu.zeros("dx", &[m, k]).unwrap();
            let dwt = gpu.upload("dw", &[k, n], &dw0).unwrap();
            let dispatches = [
                matmul::backward_input(gpu, variant, &dyt, &wt, &dxt).unwrap(),
                matmul::backward_weight(gpu, variant, &xt, &dyt, &dwt).unwrap(),
            ];
            gpu.run_dispatches(&dispatches).unwrap();

            let case = format!("{} {m}x{k}x{n}", variant.name());
            let want = reference::backward_input(&dy, &w, m, k, n);
            let magnitude = reference::backward_input(&abs(&dy), &abs(&w), m, k, n);
            assert_within(
                &format!("dx {case}"),
                &gpu.read(&dxt).unwrap(),
                &want,
                |i| dot_bound(n, magnitude[i]),
            );

            let increment = reference::backward_weight(&x, &dy, m, k, n);
            let want: Vec<f32> = dw0.iter().zip(&increment).map(|(a, b)| a + b).collect();
            let magnitude = reference::backward_weight(&abs(&x), &abs(&dy), m, k, n);
            assert_within(
                &format!("dw {case}"),
                &gpu.read(&dwt).unwrap(),
                &want,
                |i| dot_bound(m, magnitude[i] + dw0[i].abs()),
            );
        }
    }
}

/// (M, K, N) of the products with 16-bit weights (an inference model's forward and head, a
/// mixed-precision step's products): one element, odd K and N (a word holds the last value of one row
/// and the first of the next), the thin kernels' few rows, more rows than a 32-row block, a prefill's
/// attention shape, GPT-2's vocabulary, and K and N in fours (CPU adapters read B in word pairs) with
/// few rows and with M past two 64-row blocks.
const PACKED_SHAPES: [(usize, usize, usize); 9] = [
    (1, 1, 1),
    (3, 5, 7),
    (5, 97, 65),
    (33, 17, 130),
    (130, 257, 67),
    (64, 64, 192),
    (3, 24, 50257),
    (5, 36, 44),
    (150, 68, 132),
];

#[test]
fn matmul_reads_16_bit_weights_for_every_variant_and_awkward_shape() {
    // The weights are the same values on both sides (the reference widens the packed words exactly),
    // so the only difference is the f32 accumulation: the dot-product bound.
    let gpu = gpu();
    for variant in variants() {
        for dtype in [Dtype::F16, Dtype::Bf16] {
            for (i, &(m, k, n)) in PACKED_SHAPES.iter().enumerate() {
                let seed = 900 + i as u64;
                let (x, w, b) = (
                    random(seed, m * k),
                    random(seed + 1, k * n),
                    random(seed + 2, n),
                );
                let words = dtype.pack(&w);
                let wt = gpu.upload("w", &[words.len()], &words).unwrap();
                let (xt, bt) = (
                    gpu.upload("x", &[m, k], &x).unwrap(),
                    gpu.upload("b", &[n], &b).unwrap(),
                );
                let case = format!("{} {} {m}x{k}x{n}", variant.name(), dtype.name());
                let rounded = dtype.round(&w);

                // y = x·w + b, w: [K, N].
                let yt = gpu.zeros("y", &[m, n]).unwrap();
                let weights = Weights::packed(&wt, dtype, k, n).unwrap();
                let d = matmul::forward_weights(gpu, variant, &xt, weights, Some(&bt), &yt);
                gpu.run_dispatches(&[d.unwrap()]).unwrap();
                let want = packed_reference::forward(&x, &words, dtype, Some(&b), m, k, n);
                let abs_b = abs(&b);
                let magnitude = reference::forward(&abs(&x), &abs(&rounded), Some(&abs_b), m, k, n);
                assert_within(
                    &format!("forward {case}"),
                    &gpu.read(&yt).unwrap(),
                    &want,
                    |i| dot_bound(k, magnitude[i]),
                );

                // y = x·eᵀ, e: [N, K] (the head: x: [M, K], e the embedding).
                let et = Weights::packed(&wt, dtype, n, k).unwrap();
                let yt = gpu.zeros("y", &[m, n]).unwrap();
                let d = matmul::backward_input_weights(gpu, variant, &xt, et, &yt);
                gpu.run_dispatches(&[d.unwrap()]).unwrap();
                let want = packed_reference::transposed(&x, &words, dtype, None, m, k, n);
                let magnitude = reference::backward_input(&abs(&x), &abs(&rounded), m, n, k);
                assert_within(
                    &format!("head {case}"),
                    &gpu.read(&yt).unwrap(),
                    &want,
                    |i| dot_bound(k, magnitude[i]),
                );

                // dpre = (dy·wᵀ)·gelu'(pre), w: [K, N] (a mixed-precision step's MLP backward);
                // bounded as the f32 epilogue test bounds it.
                let dy = random(seed + 3, m * n);
                let pre: Vec<f32> = random(seed + 4, m * k).iter().map(|v| 4.0 * v).collect();
                let dyt = gpu.upload("dy", &[m, n], &dy).unwrap();
                let pt = gpu.upload("pre", &[m, k], &pre).unwrap();
                let dpt = gpu.zeros("dpre", &[m, k]).unwrap();
                let weights = Weights::packed(&wt, dtype, k, n).unwrap();
                let d = matmul::backward_input_gelu(gpu, variant, &dyt, weights, &pt, &dpt);
                gpu.run_dispatches(&[d.unwrap()]).unwrap();
                let want = reference::backward_input_gelu(&dy, &rounded, &pre, m, k, n);
                let dx = reference::backward_input(&dy, &rounded, m, k, n);
                let magnitude = reference::backward_input(&abs(&dy), &abs(&rounded), m, k, n);
                assert_within(
                    &format!("backward gelu {case}"),
                    &gpu.read(&dpt).unwrap(),
                    &want,
                    |i| {
                        crate::gelu::MAX_SLOPE * dot_bound(n, magnitude[i])
                            + crate::gelu::backward_bound(pre[i], dx[i])
                    },
                );
            }
        }
    }
}

/// An f32 tensor as the products' weights.
fn f32s(t: &Tensor) -> Weights<'_> {
    Weights::f32(t).unwrap()
}

/// Runs `dispatches` and reads `outputs` back.
fn run(dispatches: Vec<Dispatch>, outputs: &[&Tensor]) -> Vec<Vec<f32>> {
    let gpu = gpu();
    gpu.run_dispatches(&dispatches).unwrap();
    outputs.iter().map(|t| gpu.read(t).unwrap()).collect()
}

/// Asserts two outputs are the same bits.
fn assert_same_bits(case: &str, fused: &[f32], unfused: &[f32]) {
    let differ = fused
        .iter()
        .zip(unfused)
        .position(|(a, b)| a.to_bits() != b.to_bits());
    if let Some(i) = differ {
        panic!(
            "{case}: element {i}: fused {} but unfused {}",
            fused[i], unfused[i]
        );
    }
}

/// Dropout of the fused residual: a state with a later micro-batch (its mask numbers elements in the
/// whole batch), a site and a probability.
const STATE: [u32; 3] = [7, 2, 1];
const SITE: u32 = 5;
const P: f32 = 0.25;

/// The forward epilogues (GELU, residual add with and without dropout) on every variant and shape.
/// Tolerance against the unfused kernels (the product, then `gelu::forward`, or `dropout::forward` and
/// `residual::forward`): none, bit for bit, since the epilogue evaluates the same f32 expressions (that
/// is what keeps a fused training step identical to an unfused one). Against the reference
/// composition: the product's bound, grown by at most GELU's largest slope, plus GELU's own bound; the
/// residual's sum is one more rounding, as an accumulated value in [`dot_bound`], and dropout's scaling
/// (the masks are equal, see the dropout tests) scales the product's bound and adds one more.
#[test]
fn matmul_forward_epilogues_give_the_unfused_kernels_bits_and_match_reference() {
    let gpu = gpu();
    for variant in variants() {
        for (i, &(m, k, n)) in SHAPES.iter().enumerate() {
            let seed = 500 + i as u64;
            let (x, w, b, r) = (
                random(seed, m * k),
                random(seed + 1, k * n),
                random(seed + 2, n),
                random(seed + 3, m * n),
            );
            let xt = gpu.upload("x", &[m, k], &x).unwrap();
            let wt = gpu.upload("w", &[k, n], &w).unwrap();
            let bt = gpu.upload("b", &[n], &b).unwrap();
            let rt = gpu.upload("r", &[m, n], &r).unwrap();
            let state = gpu.upload("state", &[3], &STATE).unwrap();
            let [pre, y, z, zd, pre_u, y_u, z_u, drop_u, zd_u] =
                [0; 9].map(|_| gpu.zeros("out", &[m, n]).unwrap());
            let dropout = matmul::BranchDropout {
                state: &state,
                site: SITE,
                p: P,
            };
            let bias = Some(&bt);
            let w4 = Weights::f32(&wt).unwrap();
            let fused = run(
                vec![
                    matmul::forward_gelu(gpu, variant, &xt, w4, bias, &pre, &y).unwrap(),
                    matmul::forward_residual(gpu, variant, &xt, w4, bias, None, &rt, &z).unwrap(),
                    matmul::forward_residual(gpu, variant, &xt, w4, bias, Some(dropout), &rt, &zd)
                        .unwrap(),
                ],
                &[&pre, &y, &z, &zd],
            );
            let unfused = run(
                vec![
                    matmul::forward(gpu, variant, &xt, &wt, bias, &pre_u).unwrap(),
                    gelu::forward(gpu, &pre_u, &y_u).unwrap(),
                    residual::forward(gpu, &rt, &pre_u, &z_u).unwrap(),
                    dropout::forward(gpu, &pre_u, &state, SITE, P, &drop_u).unwrap(),
                    residual::forward(gpu, &rt, &drop_u, &zd_u).unwrap(),
                ],
                &[&pre_u, &y_u, &z_u, &zd_u],
            );
            let case = format!("{} {m}x{k}x{n}", variant.name());
            for (what, (f, u)) in ["pre", "gelu", "residual", "dropout residual"]
                .iter()
                .zip(fused.iter().zip(&unfused))
            {
                assert_same_bits(&format!("forward {what} {case}"), f, u);
            }

            let (want_pre, want_y) = reference::forward_gelu(&x, &w, Some(&b), m, k, n);
            let magnitude = reference::forward(&abs(&x), &abs(&w), Some(&abs(&b)), m, k, n);
            let product_bound = |i: usize| dot_bound(k, magnitude[i]);
            assert_within(&format!("pre {case}"), &fused[0], &want_pre, product_bound);
            assert_within(&format!("gelu {case}"), &fused[1], &want_y, |i| {
                crate::gelu::MAX_SLOPE * product_bound(i)
                    + crate::gelu::forward_bound(want_pre[i], want_y[i])
            });
            let want_z = reference::forward_residual(&x, &w, Some(&b), None, &r, m, k, n);
            assert_within(&format!("residual {case}"), &fused[2], &want_z, |i| {
                dot_bound(k, magnitude[i] + r[i].abs())
            });
            let dropout = Some((STATE, SITE, P));
            let want_zd = reference::forward_residual(&x, &w, Some(&b), dropout, &r, m, k, n);
            let scale = 1.0 / (1.0 - P);
            assert_within(
                &format!("dropout residual {case}"),
                &fused[3],
                &want_zd,
                |i| dot_bound(k + 1, scale * magnitude[i] + r[i].abs()),
            );
        }
    }
}

/// The input-gradient product times gelu'(pre) on every variant and shape: the unfused kernels'
/// bits (`backward_input`, then `gelu::backward`) and the reference composition within the product's
/// bound grown by GELU's largest slope plus `gelu::backward`'s own bound.
#[test]
fn matmul_backward_gelu_epilogue_gives_the_unfused_kernels_bits_and_matches_reference() {
    let gpu = gpu();
    for variant in variants() {
        for (i, &(m, k, n)) in SHAPES.iter().enumerate() {
            let seed = 600 + i as u64;
            let (dy, w) = (random(seed, m * n), random(seed + 1, k * n));
            // Pre-activations over [-4, 4): GELU's tails and its curved middle.
            let pre: Vec<f32> = random(seed + 2, m * k).iter().map(|v| 4.0 * v).collect();
            let dyt = gpu.upload("dy", &[m, n], &dy).unwrap();
            let wt = gpu.upload("w", &[k, n], &w).unwrap();
            let pt = gpu.upload("pre", &[m, k], &pre).unwrap();
            let [dp, dx_u, dp_u] = [0; 3].map(|_| gpu.zeros("d", &[m, k]).unwrap());
            let fused = run(
                vec![matmul::backward_input_gelu(gpu, variant, &dyt, f32s(&wt), &pt, &dp).unwrap()],
                &[&dp],
            );
            let unfused = run(
                vec![
                    matmul::backward_input(gpu, variant, &dyt, &wt, &dx_u).unwrap(),
                    gelu::backward(gpu, &pt, &dx_u, &dp_u).unwrap(),
                ],
                &[&dp_u],
            );
            let case = format!("{} {m}x{k}x{n}", variant.name());
            assert_same_bits(&format!("backward gelu {case}"), &fused[0], &unfused[0]);

            let want = reference::backward_input_gelu(&dy, &w, &pre, m, k, n);
            let dx = reference::backward_input(&dy, &w, m, k, n);
            let magnitude = reference::backward_input(&abs(&dy), &abs(&w), m, k, n);
            assert_within(&format!("backward gelu {case}"), &fused[0], &want, |i| {
                crate::gelu::MAX_SLOPE * dot_bound(n, magnitude[i])
                    + crate::gelu::backward_bound(pre[i], dx[i])
            });
        }
    }
}

#[test]
fn matmul_bias_backward_adds_column_sums() {
    let gpu = gpu();
    for (i, &(m, _, n)) in SHAPES.iter().enumerate() {
        let dy = random(300 + i as u64, m * n);
        let db0 = random(400 + i as u64, n);
        let dyt = gpu.upload("dy", &[m, n], &dy).unwrap();
        let dbt = gpu.upload("db", &[n], &db0).unwrap();
        gpu.run_dispatches(&[matmul::backward_bias(gpu, &dyt, &dbt).unwrap()])
            .unwrap();
        let sums = reference::backward_bias(&dy, m, n);
        let want: Vec<f32> = db0.iter().zip(&sums).map(|(a, b)| a + b).collect();
        let magnitude = reference::backward_bias(&abs(&dy), m, n);
        assert_within(
            &format!("db {m}x{n}"),
            &gpu.read(&dbt).unwrap(),
            &want,
            |i| dot_bound(m, magnitude[i] + db0[i].abs()),
        );
    }
}

#[test]
fn matmul_reference_backward_matches_finite_differences() {
    let (m, k, n) = (3, 4, 5);
    let (x, w, b, r) = (
        random(1, m * k),
        random(2, k * n),
        random(3, n),
        random(4, m * n),
    );
    // L = Σ y·r, so dL/dy = r. The product is linear, so central differences are exact up to the
    // rounding of y to f32 (|y| ≲ 5, 2⁻²⁴ each) over 2h: 1e-4 is ample.
    let loss =
        |x: &[f32], w: &[f32], b: &[f32]| project(&reference::forward(x, w, Some(b), m, k, n), &r);
    let h = 1e-2;
    let dx = reference::backward_input(&r, &w, m, k, n);
    assert_gradient("dx", |x| loss(x, &w, &b), &x, &dx, h, 1e-4);
    let dw = reference::backward_weight(&x, &r, m, k, n);
    assert_gradient("dw", |w| loss(&x, w, &b), &w, &dw, h, 1e-4);
    let db = reference::backward_bias(&r, m, n);
    assert_gradient("db", |b| loss(&x, &w, b), &b, &db, h, 1e-4);
}

#[test]
fn matmul_reference_backward_gelu_matches_finite_differences() {
    let (m, k, n) = (3, 4, 5);
    let pre: Vec<f32> = random(1, m * k).iter().map(|v| 4.0 * v).collect();
    let (w, r) = (random(2, k * n), random(3, m * n));
    // L = Σ (gelu(pre)·w)·r: perturbing pre[i] moves gelu(pre[i]) only, through n products, so the
    // error is gelu's (2e-4 in gelu_reference_backward_matches_finite_differences) times Σ|w·r| ≤ 5,
    // plus y's roundings: 2e-3.
    let loss = |pre: &[f32]| {
        let hidden = wgpt::reference::gelu::forward(pre);
        project(&reference::forward(&hidden, &w, None, m, k, n), &r)
    };
    let dpre = reference::backward_input_gelu(&r, &w, &pre, m, k, n);
    assert_gradient("dpre", loss, &pre, &dpre, 1e-2, 2e-3);
}

#[test]
fn matmul_cpu_variant_refuses_inner_dimensions_past_the_cpu_adapter_loop_limit() {
    let gpu = gpu();
    if !gpu.is_cpu() {
        return; // the limit is llvmpipe's; other adapters run any K
    }
    // 4·65535 columns of x: more loop iterations than llvmpipe runs in one invocation.
    let k = 4 * 65535;
    let x = gpu.zeros("x", &[1, k]).unwrap();
    let w = gpu.zeros("w", &[k, 1]).unwrap();
    let y = gpu.zeros("y", &[1, 1]).unwrap();
    for lanes in [1, 4, 8] {
        let variant = Variant::Cpu { lanes };
        if variant.supported(gpu) {
            let err = matmul::forward(gpu, variant, &x, &w, None, &y).unwrap_err();
            assert!(matches!(err, wgpt::Error::Limit { .. }), "{err}");
        }
    }
}
