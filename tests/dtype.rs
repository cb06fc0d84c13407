//! A model whose matrices and key/value caches are stored in 16 bits (`Gpt::for_inference`): its
//! forward computes what the f32 model computes on its rounded weights (whole and split embedding,
//! against the CPU executor too), its decoding stays within the caches' rounding of that, its logits
//! stay within the tolerance derived from the rounding of f32's on the same weights, and greedy
//! decoding agrees with f32 on the top-1 token; it refuses to train and refuses weights f16 cannot hold.

use rand::{Rng, SeedableRng};
use wgpt::dtype::Dtype;
use wgpt::graph::reference::{self, CpuInputs, CpuModel};
use wgpt::graph::StepInputs;
use wgpt::model::{Gpt, GptConfig, Optimizer};
use wgpt::sample::Generator;
use wgpt::Gpu;

mod common;
use common::{tiny, uniform_params};

const HALVES: [Dtype; 2] = [Dtype::F16, Dtype::Bf16];

fn tokens(seed: u64, len: usize, vocab: usize) -> Vec<u32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..len)
        .map(|_| rng.random_range(0..vocab as u32))
        .collect()
}

/// `params` with the matrices (two or more dimensions) rounded to `dtype`, as the 16-bit model holds
/// them.
fn rounded(config: &GptConfig, params: &[Vec<f32>], dtype: Dtype) -> Vec<Vec<f32>> {
    (config.params().iter().zip(params))
        .map(|(spec, values)| match spec.shape.len() {
            1 => values.clone(),
            _ => dtype.round(values),
        })
        .collect()
}

/// The logits `[T, V]` of the full forward over `tokens` (an evaluation plan of one row).
fn full_logits(gpu: &Gpu, model: &Gpt, tokens: &[u32]) -> Vec<f32> {
    let (plan, graph) = model.eval_plan(gpu, 1, tokens.len()).unwrap();
    let inputs = StepInputs {
        tokens,
        targets: tokens,
    };
    plan.set_batch(gpu, &inputs).unwrap();
    plan.run(gpu, false).unwrap();
    plan.read_kept(gpu, graph.logits.unwrap()).unwrap()
}

/// The logits after each token of `tokens`: a prefill of the first, then decode steps (the matrix-vector
/// products on CPU adapters).
fn decoded_logits(gpu: &Gpu, model: &Gpt, tokens: &[u32]) -> Vec<f32> {
    let mut generator = Generator::new(gpu, model, 1).unwrap();
    let mut out = generator.prefill(&tokens[..1], 1).unwrap();
    for t in 1..tokens.len() {
        out.extend(generator.extend(&tokens[t..t + 1], t).unwrap());
    }
    out
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn rms(v: &[f32]) -> f64 {
    (v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
}

/// The full forward: both sides hold the same weight values and compute the same f32 math, the 16-bit
/// side widening as it reads; only the order of some sums differs (the products without a vec4 view of
/// B, or without subgroup sharing), as between the decode and the full forward in tests/sample.rs: 1e-4
/// there, here. Decoding also rounds the keys and values it caches: within [`tolerance`] for the 2L
/// cache reads (plus that 1e-4). Also with the embedding split into three pieces (as GPT-2's is on a
/// 128 MiB binding), each packed on its own, decoding against the unsplit model.
#[test]
fn a_16_bit_model_computes_what_the_f32_model_computes_on_its_rounded_weights() {
    let gpu = Gpu::new().expect("dtype tests need a GPU adapter");
    let split = GptConfig {
        vocab_size: 500,
        n_inner: 64,
        ..tiny(false)
    };
    for (config, max_binding) in [
        (tiny(false), None),
        (tiny(true), None),
        (split, Some(64 * 192)),
    ] {
        let params = uniform_params(&config, 3);
        let tokens = tokens(5, config.n_positions, config.vocab_size);
        for dtype in HALVES {
            let case = format!("{} {:?} split={max_binding:?}", dtype.name(), config.norm);
            let max = max_binding.unwrap_or(usize::MAX);
            let half = Gpt::stored(&gpu, &config, &params, dtype, max).unwrap();
            let exact = Gpt::new(&gpu, &config, &rounded(&config, &params, dtype)).unwrap();
            assert_eq!(
                half.read_params(&gpu).unwrap(),
                exact.read_params(&gpu).unwrap()
            );
            let want = full_logits(&gpu, &exact, &tokens);
            // Split, the whole context's logits exceed the binding: decoding only.
            if max_binding.is_none() {
                let diff = max_diff(&full_logits(&gpu, &half, &tokens), &want);
                assert!(diff <= 1e-4, "{case}: full forward differs by {diff}");
            }
            let reads = [(cache_unit(dtype), 2 * config.n_layer)];
            let (rms_tol, max_tol) = tolerance(&reads, &want);
            let got = decoded_logits(&gpu, &half, &tokens);
            let err: Vec<f32> = got.iter().zip(&want).map(|(g, w)| g - w).collect();
            let (rms_err, max_err) = (rms(&err), max_diff(&got, &want) as f64);
            assert!(
                rms_err <= 1e-4 + rms_tol && max_err <= 1e-4 + max_tol,
                "{case}: decoding differs by {max_err} (rms {rms_err})"
            );
        }
    }
}

/// A 16-bit prefill plan computes on the GPU what the CPU executor computes for the same graph (whose
/// 16-bit pieces it rounds as the GPU stores them).
#[test]
fn a_16_bit_prefill_plan_matches_the_cpu_executor() {
    let gpu = Gpu::new().expect("dtype tests need a GPU adapter");
    let config = tiny(false);
    let params = uniform_params(&config, 4);
    let prompt = tokens(6, 9, config.vocab_size);
    for dtype in HALVES {
        let model = Gpt::for_inference(&gpu, &config, &params, dtype).unwrap();
        let caches = model.kv_caches(&gpu, 1).unwrap();
        let (plan, graph) = model.prefill_plan(&gpu, &caches, 1, prompt.len()).unwrap();
        let inputs = StepInputs {
            tokens: &prompt,
            targets: &[],
        };
        plan.set_batch(&gpu, &inputs).unwrap();
        let got = plan.run_and_read(&gpu).unwrap();
        let mut cpu = CpuModel {
            params: params.clone(),
            m: vec![],
            v: vec![],
            decays: config.params().iter().map(|s| s.decays()).collect(),
        };
        let cpu_inputs = CpuInputs {
            tokens: &prompt,
            targets: &[],
            position: 0,
            random_state: [0, 0, 0],
            hyper: [0.0; wgpt::contract::HYPER_LEN],
        };
        let values = reference::run(&graph.graph, &mut cpu, &cpu_inputs).values;
        let want = &values[graph.logits.unwrap().0];
        let diff = max_diff(&got, want);
        assert!(diff <= 1e-4, "{}: {diff}", dtype.name());
    }
}

/// The unit roundoff of weights rounded to nearest in `dtype`: 2⁻¹¹ (f16), 2⁻⁸ (bf16).
fn weight_unit(dtype: Dtype) -> f64 {
    match dtype {
        Dtype::F16 => 2f64.powi(-11),
        _ => 2f64.powi(-8),
    }
}

/// The same for cached keys and values: f16 may round to either neighbour (WGSL's pack2x16float), a
/// relative error up to 2⁻¹⁰.
fn cache_unit(dtype: Dtype) -> f64 {
    match dtype {
        Dtype::F16 => 2f64.powi(-10),
        _ => 2f64.powi(-8),
    }
}

/// The `(rms, max)` tolerance of logits computed with `reads`, `(u, n)`: n reads of tensors rounded
/// with unit roundoff u, against the logits without the rounding. Rounding moves each value by a
/// relative δ with |δ| ≤ u, spread evenly, so of RMS u/√3. Each rounded read (a matrix: wte, wpe, four
/// per block, the tied head; or a layer's cached keys or values) moves its product's output by relative
/// RMS u/√3 · (that output's Σ|x w| / |Σ x w|, about √2 for sums of terms of random sign); the reads'
/// perturbations are independent, so to first order the logits move by RMS ≈ √(Σ n·u²·2/3) ·
/// rms(logits) through blocks that pass relative changes on at most unchanged (the norms rescale, the
/// residual stream adds). The tests allow that for the RMS and 4× it for the largest element (over
/// thousands of elements of a roughly Gaussian error, the largest is about 4 RMS). Measured: a fifth to
/// a tenth of both (the blocks damp the perturbations).
fn tolerance(reads: &[(f64, usize)], logits: &[f32]) -> (f64, f64) {
    let variance: f64 = reads
        .iter()
        .map(|&(u, n)| n as f64 * u * u * 2.0 / 3.0)
        .sum();
    let rms_bound = variance.sqrt() * rms(logits);
    (rms_bound, 4.0 * rms_bound)
}

/// On a GPT-2-shaped model (LayerNorm, biases, tied head, GELU MLP; 4 blocks of width 128) with
/// weights uniform in [-0.3, 0.3), so its logits spread: 8 prompts of 8 tokens, each continued greedily
/// by the f32 model to the context (24 steps each, 192 in all). At every step the 16-bit model decoding
/// the same tokens (a prefill, then steps over its 16-bit caches) gives logits within [`tolerance`] of
/// f32's (4L + 3 rounded matrix reads, 2L cache reads) and picks the same top-1 token at ≥ 99% of the
/// steps (at most one step in 192 differs: where f32's two best logits are closer than the error).
#[test]
fn logits_in_16_bits_stay_within_the_rounding_tolerance_and_agree_on_greedy_tokens() {
    let gpu = Gpu::new().expect("dtype tests need a GPU adapter");
    let config = GptConfig {
        vocab_size: 512,
        n_positions: 32,
        n_embd: 128,
        n_layer: 4,
        n_head: 4,
        n_kv_head: 4,
        n_inner: 512,
        dropout: 0.0,
        ..tiny(false)
    };
    let params: Vec<Vec<f32>> = uniform_params(&config, 9);
    let f32_model = Gpt::new(&gpu, &config, &params).unwrap();
    let (context, vocab) = (config.n_positions, config.vocab_size);
    let argmax = |row: &[f32]| (0..row.len()).fold(0, |b, i| if row[i] > row[b] { i } else { b });
    // Each prompt continued greedily by the f32 model, and its logits at every step.
    let mut sequences = Vec::new();
    for p in 0..8 {
        let mut seq = tokens(20 + p, 8, vocab);
        while seq.len() < context {
            let logits = full_logits(&gpu, &f32_model, &seq);
            seq.push(argmax(&logits[(seq.len() - 1) * vocab..]) as u32);
        }
        let logits = full_logits(&gpu, &f32_model, &seq);
        sequences.push((seq, logits));
    }
    for dtype in HALVES {
        let half = Gpt::for_inference(&gpu, &config, &params, dtype).unwrap();
        let (mut steps, mut agree) = (0, 0);
        for (seq, want) in &sequences {
            let got = decoded_logits(&gpu, &half, seq);
            let reads = [
                (weight_unit(dtype), 4 * config.n_layer + 3),
                (cache_unit(dtype), 2 * config.n_layer),
            ];
            let (rms_tol, max_tol) = tolerance(&reads, want);
            let err: Vec<f32> = got.iter().zip(want).map(|(g, w)| g - w).collect();
            let (rms_err, max_err) = (rms(&err), max_diff(&got, want) as f64);
            eprintln!(
                "{}: error rms {rms_err:.2e} (tolerance {rms_tol:.2e}), max {max_err:.2e} \
                 (tolerance {max_tol:.2e}), logits rms {:.2}",
                dtype.name(),
                rms(want)
            );
            assert!(rms_err <= rms_tol && max_err <= max_tol, "{}", dtype.name());
            // The greedy steps: from the prompt's last token on.
            for t in 7..context - 1 {
                let row = |l: &[f32]| argmax(&l[t * vocab..(t + 1) * vocab]);
                steps += 1;
                agree += (row(&got) == row(want)) as usize;
            }
        }
        eprintln!("{}: top-1 agrees at {agree} of {steps} steps", dtype.name());
        assert!(
            agree * 100 >= 99 * steps,
            "{}: {agree}/{steps}",
            dtype.name()
        );
    }
}

/// Training needs f32 weights; f16 cannot hold a weight past 65504.
#[test]
fn a_16_bit_model_refuses_to_train_and_f16_refuses_weights_past_its_range() {
    let gpu = Gpu::new().expect("dtype tests need a GPU adapter");
    let config = tiny(false);
    let mut params = uniform_params(&config, 1);
    let model = Gpt::for_inference(&gpu, &config, &params, Dtype::Bf16).unwrap();
    let optimizer = Optimizer {
        adamw: Default::default(),
        max_norm: None,
    };
    let err = model.train_plan(&gpu, 1, 8, 1, &optimizer).err().unwrap();
    assert!(err.to_string().contains("inference only"), "{err}");
    params[0][3] = 1.0e5;
    let err = Gpt::for_inference(&gpu, &config, &params, Dtype::F16)
        .err()
        .unwrap();
    assert!(err.to_string().contains("beyond f16's range"), "{err}");
    assert!(Gpt::for_inference(&gpu, &config, &params, Dtype::Bf16).is_ok());
}

/// In 16 bits the GPU holds the matrices' 16-bit words and the f32 norms and biases, once: about half
/// the f32 model's parameter bytes, and no gradient or AdamW moment arenas (three buffers fewer per
/// arena chunk).
#[test]
fn a_16_bit_model_holds_half_the_parameter_bytes_and_no_optimizer_arenas() {
    let gpu = Gpu::new().expect("dtype tests need a GPU adapter");
    let config = tiny(false);
    let params = uniform_params(&config, 2);
    let buffers = || gpu.counts().buffers;
    let before = buffers();
    let full = Gpt::new(&gpu, &config, &params).unwrap();
    let f32_buffers = buffers() - before;
    let before = buffers();
    let half = Gpt::for_inference(&gpu, &config, &params, Dtype::F16).unwrap();
    assert_eq!(
        buffers() - before + 3 * half.arena_chunks() as u64,
        f32_buffers
    );
    let bytes = |model: &Gpt| model.eval_plan(&gpu, 1, 8).unwrap().0.memory().params;
    let (full_bytes, half_bytes) = (bytes(&full), bytes(&half));
    // The 1-D parameters (norms, biases) stay f32; every tensor is aligned to 64 elements.
    let small: usize = (config.params().iter())
        .filter(|s| s.shape.len() == 1)
        .map(|s| 4 * s.len().next_multiple_of(64))
        .sum();
    assert!(
        2 * half_bytes <= full_bytes + small as u64 + 4 * 64 * config.params().len() as u64,
        "{half_bytes} of {full_bytes}"
    );
}
