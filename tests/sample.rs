//! Generation with key/value caches against the full forward: the logits of every position, the text a
//! seeded sampler picks, and the hot path (one submit per token, nothing created).

use rand::{Rng, SeedableRng};
use wgpt::graph::StepInputs;
use wgpt::model::{Gpt, GptConfig, Norm};
use wgpt::sample::{choose, Generator, Sampling};
use wgpt::Gpu;

mod common;
use common::{tiny, uniform_params};

/// A model with [`uniform_params`].
fn model(gpu: &Gpu, config: &GptConfig, seed: u64) -> Gpt {
    Gpt::new(gpu, config, &uniform_params(config, seed)).unwrap()
}

fn tokens(seed: u64, len: usize, vocab: usize) -> Vec<u32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..len)
        .map(|_| rng.random_range(0..vocab as u32))
        .collect()
}

/// The full forward's logits `[context, vocab]` over `tokens` padded to the context (causal attention
/// makes row t depend on tokens 0..=t only): the old full-recompute path, kept here as the reference.
fn full_forward(gpu: &Gpu, model: &Gpt, tokens: &[u32]) -> Vec<f32> {
    let context = model.config.n_positions;
    let (plan, graph) = model.eval_plan(gpu, 1, context).unwrap();
    let mut padded = tokens.to_vec();
    padded.resize(context, 0);
    plan.set_batch(
        gpu,
        &StepInputs {
            tokens: &padded,
            targets: &padded,
        },
    )
    .unwrap();
    plan.run(gpu, false).unwrap();
    let logits = graph.logits.expect("a context's logits fit one binding");
    plan.read_kept(gpu, logits).unwrap()
}

/// Every position from T = 1 to the context length: the decode step's logits equal the full forward's
/// row T - 1 within 1e-4. Both compute the same f32 math in different orders (the attention's online
/// softmax over 64-key chunks against 32-row tiles; one-row against many-row matmul tiles), so they
/// differ by rounding: a few ulps of the O(1..10) activations per op over ~20 ops, about 1e-5 at most;
/// a wrong cache row, position or kv head moves logits by 1e-2 or more.
#[test]
fn kv_cache_logits_equal_the_full_forward_at_every_position() {
    let gpu = Gpu::new().expect("sampling tests need a GPU adapter");
    for modern in [false, true] {
        check_kv_cache(&gpu, &tiny(modern), None);
    }
}

/// The same with the token embedding split into three pieces (as GPT-2's is on a 128 MiB binding),
/// against the unsplit model's full forward: a binding of c_attn's `[64, 192]` elements holds every
/// other parameter.
#[test]
fn kv_cache_logits_with_a_split_embedding_equal_the_unsplit_full_forward() {
    let gpu = Gpu::new().expect("sampling tests need a GPU adapter");
    let config = GptConfig {
        vocab_size: 500,
        n_inner: 64,
        ..tiny(false)
    };
    check_kv_cache(&gpu, &config, Some(64 * 192));
}

/// Every position from T = 1 to the context length: the decode step's logits (of the model split for
/// `max_binding`, when given) equal the full forward's row T - 1 within 1e-4.
fn check_kv_cache(gpu: &Gpu, config: &GptConfig, max_binding: Option<usize>) {
    let modern = config.norm == Norm::RmsNorm;
    let (context, vocab) = (config.n_positions, config.vocab_size);
    let model = model(gpu, config, 7);
    let tokens = tokens(11, context, vocab);
    let want = full_forward(gpu, &model, &tokens);
    let decoder = match max_binding {
        Some(max) => {
            let params = model.read_params(gpu).unwrap();
            Gpt::with_max_binding(gpu, config, &params, max).unwrap()
        }
        None => model,
    };
    let generator = Generator::new(gpu, &decoder).unwrap();
    let mut worst = 0.0f64;
    let mut spread = 0.0f64;
    for t in 0..context {
        let got = if t == 0 {
            generator.prefill(&tokens[..1]).unwrap()
        } else {
            generator.extend(tokens[t], t).unwrap()
        };
        let row = &want[t * vocab..(t + 1) * vocab];
        for (v, (&g, &w)) in got.iter().zip(row).enumerate() {
            let err = (g as f64 - w as f64).abs();
            assert!(
                err <= 1e-4,
                "modern={modern} T={}: logit {v}: kv cache {g}, full forward {w}",
                t + 1
            );
            worst = worst.max(err);
            spread = spread.max(w.abs() as f64);
        }
    }
    eprintln!("modern={modern}: worst |error| {worst:.2e}, largest |logit| {spread:.2}");
    // The model is far from uniform, so matching logits is a real check.
    assert!(spread > 0.5, "modern={modern}: logits too flat ({spread})");
}

/// A prefill of several tokens leaves the caches as the steps one by one do.
#[test]
fn kv_cache_prefill_gives_the_full_forward_logits_of_its_last_token() {
    let gpu = Gpu::new().expect("sampling tests need a GPU adapter");
    let config = tiny(true);
    let model = model(&gpu, &config, 8);
    let vocab = config.vocab_size;
    let tokens = tokens(12, 17, vocab);
    let want = full_forward(&gpu, &model, &tokens);
    let generator = Generator::new(&gpu, &model).unwrap();
    let got = generator.prefill(&tokens).unwrap();
    let row = &want[16 * vocab..17 * vocab];
    for (v, (&g, &w)) in got.iter().zip(row).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4,
            "logit {v}: prefill {g}, full forward {w}"
        );
    }
}

/// Same seed, same text: the cached generator picks what the full recompute with the same seeded
/// sampler picks, token by token (within the context), and twice the same.
#[test]
fn kv_cache_generation_gives_the_text_of_the_full_recompute_for_the_same_seed() {
    let gpu = Gpu::new().expect("sampling tests need a GPU adapter");
    let config = tiny(false);
    let model = model(&gpu, &config, 9);
    let context = config.n_positions;
    let prompt = tokens(13, 5, config.vocab_size);
    let sampling = Sampling {
        temperature: 1.0,
        top_k: Some(20),
        top_p: None,
    };
    let count = context - prompt.len();
    let generator = Generator::new(&gpu, &model).unwrap();
    let mut streamed = Vec::new();
    let got = generator
        .generate(&prompt, count, &sampling, 42, |t| streamed.push(t))
        .unwrap();
    assert_eq!(got[prompt.len()..], streamed[..]);
    let again = generator
        .generate(&prompt, count, &sampling, 42, |_| {})
        .unwrap();
    assert_eq!(got, again, "same seed, different text");

    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut want = prompt.clone();
    let vocab = config.vocab_size;
    for _ in 0..count {
        let logits = full_forward(&gpu, &model, &want);
        let t = want.len() - 1;
        want.push(choose(
            &logits[t * vocab..(t + 1) * vocab],
            &sampling,
            &mut rng,
        ));
    }
    assert_eq!(
        got, want,
        "kv cache and full recompute chose different text"
    );
}

/// Past the context the window slides (half of it is prefilled again) and generation goes on.
#[test]
fn kv_cache_generation_continues_past_the_context() {
    let gpu = Gpu::new().expect("sampling tests need a GPU adapter");
    let config = tiny(true);
    let model = model(&gpu, &config, 10);
    let generator = Generator::new(&gpu, &model).unwrap();
    let greedy = Sampling {
        temperature: 0.0,
        top_k: None,
        top_p: None,
    };
    let prompt = tokens(14, 40, config.vocab_size);
    let out = generator.generate(&prompt, 50, &greedy, 1, |_| {}).unwrap();
    assert_eq!(out.len(), 90);
    assert!(out.iter().all(|&t| (t as usize) < config.vocab_size));
    assert!(generator.generate(&[], 3, &greedy, 1, |_| {}).is_err());
    assert!(
        generator.prefill(&[97]).is_err(),
        "token outside the vocabulary"
    );
    assert!(
        generator.extend(1, 32).is_err(),
        "position outside the context"
    );
}

/// The hot path: a decode step creates no buffer, bind group or pipeline and submits once, reading the
/// logits back in the same submit.
#[test]
fn a_decode_step_submits_once_and_creates_nothing() {
    let gpu = Gpu::new().expect("sampling tests need a GPU adapter");
    let config = tiny(true);
    let model = model(&gpu, &config, 11);
    let generator = Generator::new(&gpu, &model).unwrap();
    generator.prefill(&[1, 2, 3]).unwrap();
    let before = gpu.counts();
    for position in 3..8 {
        generator.extend(position as u32, position).unwrap();
    }
    let after = gpu.counts();
    assert_eq!(
        (after.buffers, after.bind_groups, after.pipelines),
        (before.buffers, before.bind_groups, before.pipelines),
        "objects created during decode steps"
    );
    assert_eq!(after.submits - before.submits, 5, "submits per decode step");
}
