//! Generation with key/value caches against the full forward: the logits of every position, a prefill
//! in one pass against the token-by-token path (logits and the caches it writes), batched sequences and
//! their random streams, the text a seeded sampler picks, stopping, and the hot path (one submit per
//! token, nothing created).

use rand::{Rng, SeedableRng};
use wgpt::contract::{AdamWConfig, HYPER_LEN};
use wgpt::graph::reference::{self, CpuInputs, CpuModel};
use wgpt::graph::{StepInputs, TensorId};
use wgpt::model::{Gpt, GptConfig, Norm, Optimizer, Plan};
use wgpt::sample::{choose, sequence_rng, Generator, Sampling};
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

/// The full forward over a context of tokens: the old full-recompute path, kept here as the reference.
struct FullForward {
    plan: Plan,
    logits: TensorId,
    context: usize,
    vocab: usize,
}

impl FullForward {
    fn new(gpu: &Gpu, model: &Gpt) -> Self {
        let context = model.config.n_positions;
        let (plan, graph) = model.eval_plan(gpu, 1, context).unwrap();
        FullForward {
            plan,
            logits: graph.logits.expect("a context's logits fit one binding"),
            context,
            vocab: model.config.vocab_size,
        }
    }

    /// The logits `[context, vocab]` over `tokens` padded to the context (causal attention makes row t
    /// depend on tokens 0..=t only).
    fn all(&self, gpu: &Gpu, tokens: &[u32]) -> Vec<f32> {
        let mut padded = tokens.to_vec();
        padded.resize(self.context, 0);
        let inputs = StepInputs {
            tokens: &padded,
            targets: &padded,
        };
        self.plan.set_batch(gpu, &inputs).unwrap();
        self.plan.run(gpu, false).unwrap();
        self.plan.read_kept(gpu, self.logits).unwrap()
    }

    /// The logits of the token after `tokens`.
    fn next(&self, gpu: &Gpu, tokens: &[u32]) -> Vec<f32> {
        let t = tokens.len() - 1;
        self.all(gpu, tokens)[t * self.vocab..(t + 1) * self.vocab].to_vec()
    }

    /// What a generator makes from `prompt` with sequence `index`'s stream of `seed`, recomputed in full
    /// at every token over the same window: past the context, the last half of it.
    fn generate(
        &self,
        gpu: &Gpu,
        prompt: &[u32],
        count: usize,
        sampling: &Sampling,
        seed: u64,
        index: usize,
    ) -> Vec<u32> {
        let mut rng = sequence_rng(seed, index);
        let mut all = prompt.to_vec();
        let mut window = 0;
        for _ in 0..count {
            if all.len() - window > self.context {
                window = all.len() - self.context / 2;
            }
            let next = choose(&self.next(gpu, &all[window..]), sampling, &mut rng);
            all.push(next);
        }
        all[prompt.len()..].to_vec()
    }
}

/// Every logit of `got` within `bound` of `want`.
fn assert_close(what: &str, got: &[f32], want: &[f32], bound: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= bound, "{what}: element {i}: {g} vs {w}");
    }
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

/// The same with an MLP 1536 wide: on a CPU adapter the decode step's MLP products read transposed
/// copies of their 64 × 1536 and 1536 × 64 weights.
#[test]
fn kv_cache_logits_with_a_wide_mlp_equal_the_full_forward() {
    let gpu = Gpu::new().expect("sampling tests need a GPU adapter");
    let config = GptConfig {
        n_inner: 1536,
        ..tiny(false)
    };
    check_kv_cache(&gpu, &config, None);
}

/// On CPU adapters a generation plan's products read transposed copies of the weights, written as the
/// plan is built: after a training step has changed the weights, a new generator's prefill (6 rows: the
/// matrix-vector products) gives the full forward's logits over the new weights, not the old ones.
#[test]
fn a_generator_made_after_a_training_step_decodes_with_the_new_weights() {
    let gpu = Gpu::new().expect("sampling tests need a GPU adapter");
    let config = tiny(false);
    let model = model(&gpu, &config, 7);
    let prompt = tokens(5, 6, config.vocab_size);
    let old = (Generator::new(&gpu, &model, 1).unwrap())
        .prefill(&prompt, 1)
        .unwrap();
    let optimizer = Optimizer {
        adamw: AdamWConfig {
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.1,
        },
        max_norm: None,
    };
    let (step, _) = model.train_plan(&gpu, 2, 16, 1, &optimizer).unwrap();
    let batch = tokens(6, 32, config.vocab_size);
    let inputs = StepInputs {
        tokens: &batch,
        targets: &batch,
    };
    step.set_batch(&gpu, &inputs).unwrap();
    step.set_step(&gpu, 11, 1, 1e-2).unwrap();
    step.run(&gpu, false).unwrap();
    let want = FullForward::new(&gpu, &model).next(&gpu, &prompt);
    let moved = (old.iter().zip(&want))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(moved > 1e-2, "the step should move the logits, by {moved}");
    let mut after = Generator::new(&gpu, &model, 1).unwrap();
    // The bound of check_kv_cache.
    assert_close(
        "after a step",
        &after.prefill(&prompt, 1).unwrap(),
        &want,
        1e-4,
    );
}

/// Every position from T = 1 to the context length: the decode step's logits (of the model split for
/// `max_binding`, when given) equal the full forward's row T - 1 within 1e-4.
fn check_kv_cache(gpu: &Gpu, config: &GptConfig, max_binding: Option<usize>) {
    let modern = config.norm == Norm::RmsNorm;
    let (context, vocab) = (config.n_positions, config.vocab_size);
    let model = model(gpu, config, 7);
    let tokens = tokens(11, context, vocab);
    let want = FullForward::new(gpu, &model).all(gpu, &tokens);
    let decoder = match max_binding {
        Some(max) => {
            let params = model.read_params(gpu).unwrap();
            Gpt::with_max_binding(gpu, config, &params, max).unwrap()
        }
        None => model,
    };
    let mut generator = Generator::new(gpu, &decoder, 1).unwrap();
    let mut spread = 0.0f32;
    for t in 0..context {
        let got = if t == 0 {
            generator.prefill(&tokens[..1], 1).unwrap()
        } else {
            generator.extend(&tokens[t..t + 1], t).unwrap()
        };
        let row = &want[t * vocab..(t + 1) * vocab];
        assert_close(&format!("modern={modern} T={}", t + 1), &got, row, 1e-4);
        spread = row.iter().fold(spread, |m, w| m.max(w.abs()));
    }
    // The model is far from uniform, so matching logits is a real check.
    assert!(spread > 0.5, "modern={modern}: logits too flat ({spread})");
}

/// A prefill in one pass (T = 1, odd T, T = context) gives the logits the token-by-token path gives
/// after its last token, within 1e-4 (as above), and writes the same cache rows, for every one of three
/// sequences, within 1e-5 (one `c_attn` product of O(1) values, in different tile orders).
#[test]
fn a_prefill_gives_the_logits_and_caches_of_the_token_by_token_path() {
    let gpu = Gpu::new().expect("sampling tests need a GPU adapter");
    for modern in [false, true] {
        let config = tiny(modern);
        let model = model(&gpu, &config, 8);
        let (context, width) = (config.n_positions, config.n_kv_head * config.head_dim());
        let tokens = tokens(12, context, config.vocab_size);
        let mut stepwise = Generator::new(&gpu, &model, 1).unwrap();
        let mut want = vec![stepwise.prefill(&tokens[..1], 1).unwrap()];
        for t in 1..context {
            want.push(stepwise.extend(&tokens[t..t + 1], t).unwrap());
        }
        let mut batched = Generator::new(&gpu, &model, 3).unwrap();
        for len in [1, 17, context] {
            let case = format!("modern={modern} T={len}");
            let got = batched.prefill(&tokens[..len], 1).unwrap();
            assert_close(&format!("{case} logits"), &got, &want[len - 1], 1e-4);
            for layer in 0..config.n_layer {
                let [k_want, v_want] = stepwise.caches().layer(layer).unwrap();
                let [k_got, v_got] = batched.caches().layer(layer).unwrap();
                for (name, got, want) in [("k", k_got, k_want), ("v", v_got, v_want)] {
                    let (got, want) = (
                        gpu.read::<f32>(got).unwrap(),
                        gpu.read::<f32>(want).unwrap(),
                    );
                    for s in 0..3 {
                        let rows =
                            |c: &[f32], s: usize| c[s * context * width..][..len * width].to_vec();
                        let what = format!("{case} layer {layer} {name} cache of sequence {s}");
                        assert_close(&what, &rows(&got, s), &rows(&want, 0), 1e-5);
                    }
                }
            }
        }
    }
}

/// A prefill plan of two different prompts into two sequences' caches computes on the GPU what the CPU
/// executor computes from the reference twins: the logits of each prompt's last token and every cache.
#[test]
fn a_prefill_plan_matches_the_cpu_executor() {
    let gpu = Gpu::new().expect("sampling tests need a GPU adapter");
    let config = tiny(true);
    let model = model(&gpu, &config, 13);
    let caches = model.kv_caches(&gpu, 2).unwrap();
    let (plan, graph) = model.prefill_plan(&gpu, &caches, 2, 9).unwrap();
    let prompts = tokens(17, 18, config.vocab_size);
    let inputs = StepInputs {
        tokens: &prompts,
        targets: &[],
    };
    plan.set_batch(&gpu, &inputs).unwrap();
    let got = plan.run_and_read(&gpu).unwrap();
    let specs = config.params();
    let mut cpu = CpuModel {
        params: model.read_params(&gpu).unwrap(),
        m: vec![],
        v: vec![],
        decays: specs.iter().map(|s| s.decays()).collect(),
    };
    let cpu_inputs = CpuInputs {
        tokens: &prompts,
        targets: &[],
        position: 0,
        random_state: [0, 0, 0],
        hyper: [0.0; HYPER_LEN],
    };
    let values = reference::run(&graph.graph, &mut cpu, &cpu_inputs).values;
    let logits = graph.logits.expect("a prefill has logits");
    assert_eq!(got.len(), 2 * config.vocab_size);
    assert_close("prefill logits", &got, &values[logits.0], 1e-4);
    for (i, def) in graph.graph.tensors.iter().enumerate() {
        if let wgpt::graph::Storage::Cache(c) = def.storage {
            let [k, v] = caches.layer(c / 2).unwrap();
            let gpu_cache = gpu.read::<f32>([k, v][c % 2]).unwrap();
            assert_close(&def.name, &gpu_cache, &values[i], 1e-5);
        }
    }
}

/// Same seed, same text: one sequence picks what the full recompute with the same seeded sampler
/// (`StdRng::seed_from_u64(seed)`, what a single generation always drew from) picks, token by token
/// within the context, and twice the same.
#[test]
fn kv_cache_generation_gives_the_text_of_the_full_recompute_for_the_same_seed() {
    let gpu = Gpu::new().expect("sampling tests need a GPU adapter");
    let config = tiny(false);
    let model = model(&gpu, &config, 9);
    let prompt = tokens(13, 5, config.vocab_size);
    let sampling = Sampling {
        temperature: 1.0,
        top_k: Some(20),
        top_p: None,
    };
    let count = config.n_positions - prompt.len();
    let mut generator = Generator::new(&gpu, &model, 1).unwrap();
    let mut streamed = Vec::new();
    let got = generator
        .generate(&prompt, count, &sampling, 42, |_, t| {
            streamed.push(t);
            false
        })
        .unwrap();
    assert_eq!(got.tokens, [streamed]);
    let again = generator
        .generate(&prompt, count, &sampling, 42, |_, _| false)
        .unwrap();
    assert_eq!(got.tokens, again.tokens, "same seed, different text");

    let full = FullForward::new(&gpu, &model);
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut want = prompt.clone();
    for _ in 0..count {
        let next = choose(&full.next(&gpu, &want), &sampling, &mut rng);
        want.push(next);
    }
    assert_eq!(
        got.tokens[0],
        want[prompt.len()..],
        "kv cache and full recompute chose different text"
    );
}

/// Three sequences decoded as one batch each give the text the full recompute gives with that
/// sequence's own random stream, past the context too (where each one's last half window is prefilled
/// again in one pass), and the streams differ.
/// Nine sequences (more rows than the matrix-vector kernels take) decode through the matmul instead,
/// with the same result.
#[test]
fn batched_sequences_each_give_the_text_of_their_own_stream_past_the_context() {
    let gpu = Gpu::new().expect("sampling tests need a GPU adapter");
    let config = tiny(true);
    let model = model(&gpu, &config, 10);
    let prompt = tokens(14, 20, config.vocab_size);
    let sampling = Sampling {
        temperature: 1.0,
        top_k: None,
        top_p: Some(0.9),
    };
    let count = 30;
    let full = FullForward::new(&gpu, &model);
    for n in [3, 9] {
        let mut generator = Generator::new(&gpu, &model, n).unwrap();
        let got = generator
            .generate(&prompt, count, &sampling, 7, |_, _| false)
            .unwrap();
        for (i, tokens) in got.tokens.iter().enumerate() {
            let want = full.generate(&gpu, &prompt, count, &sampling, 7, i);
            assert_eq!(tokens, &want, "sequence {i} of {n}");
        }
        assert!(
            got.tokens[0] != got.tokens[1] && got.tokens[1] != got.tokens[2],
            "{:?}",
            got.tokens
        );
        assert_eq!(got.steps, count - 1);
    }
}

/// On a CPU adapter a decode step's products (each layer's four linear layers and the head) go to the
/// matrix-vector kernels for up to their 8 rows, one row per sequence, and to the matmul beyond; a
/// prefill's linear layers run the matmul of training, and only its head, over the last position of
/// each prompt, reads few enough rows for the matrix-vector kernel. Other adapters use the matmul
/// throughout.
#[test]
fn decode_products_go_to_matvec_for_up_to_eight_sequences_on_a_cpu_adapter() {
    let gpu = Gpu::new().expect("sampling tests need a GPU adapter");
    let config = tiny(false);
    let model = model(&gpu, &config, 15);
    // Kernels as `shader/entry`; the matmul's shaders are `matmul` and its variants `matmul_*`.
    let count = |plan: &Plan, shader: &str| {
        (plan.kernels().iter())
            .filter(|k| k.starts_with(shader))
            .count()
    };
    let products = 4 * config.n_layer + 1;
    let cpu = gpu.is_cpu();
    for (n, matvec) in [(1, cpu), (8, cpu), (9, false)] {
        let caches = model.kv_caches(&gpu, n).unwrap();
        let (decode, _) = model.decode_plan(&gpu, &caches).unwrap();
        let want = if matvec { products } else { 0 };
        assert_eq!(
            count(&decode, "matvec"),
            want,
            "{n} sequences: {:?}",
            decode.kernels()
        );
        assert_eq!(
            count(&decode, "matmul"),
            products - want,
            "{n} sequences: {:?}",
            decode.kernels()
        );
        let (prefill, _) = model.prefill_plan(&gpu, &caches, 1, 20).unwrap();
        let head = usize::from(cpu);
        assert_eq!(count(&prefill, "matvec"), head, "{:?}", prefill.kernels());
        assert_eq!(
            count(&prefill, "matmul"),
            products - head,
            "{:?}",
            prefill.kernels()
        );
    }
}

/// A sequence ends when `on_token` says so (its later tokens dropped, the others going on), and
/// generation stops once every sequence has ended.
#[test]
fn each_sequence_stops_on_its_own_and_generation_ends_with_the_last() {
    let gpu = Gpu::new().expect("sampling tests need a GPU adapter");
    let config = tiny(false);
    let model = model(&gpu, &config, 12);
    let greedy = Sampling {
        temperature: 0.0,
        top_k: None,
        top_p: None,
    };
    let mut generator = Generator::new(&gpu, &model, 2).unwrap();
    let mut seen = [0usize; 2];
    let run = generator
        .generate(&[1, 2, 3], 20, &greedy, 1, |i, _| {
            seen[i] += 1;
            seen[i] == [3, 6][i]
        })
        .unwrap();
    assert_eq!(run.tokens.iter().map(Vec::len).collect::<Vec<_>>(), [3, 6]);
    assert_eq!(seen, [3, 6]);
    // Greedy: both sequences follow the same path.
    assert_eq!(run.tokens[0], run.tokens[1][..3]);
    assert_eq!(run.steps, 5);
}

/// Past the context the window slides (half of it is prefilled again) and generation goes on; prompts
/// that are empty, longer than the context or outside the vocabulary, and steps outside the context,
/// are errors.
#[test]
fn kv_cache_generation_continues_past_the_context_and_refuses_bad_input() {
    let gpu = Gpu::new().expect("sampling tests need a GPU adapter");
    let config = tiny(true);
    let model = model(&gpu, &config, 10);
    let mut generator = Generator::new(&gpu, &model, 1).unwrap();
    let greedy = Sampling {
        temperature: 0.0,
        top_k: None,
        top_p: None,
    };
    let prompt = tokens(14, 32, config.vocab_size);
    let out = generator
        .generate(&prompt, 50, &greedy, 1, |_, _| false)
        .unwrap();
    assert_eq!(out.tokens[0].len(), 50);
    assert!(out.tokens[0]
        .iter()
        .all(|&t| (t as usize) < config.vocab_size));
    assert!(generator
        .generate(&[], 3, &greedy, 1, |_, _| false)
        .is_err());
    let long = tokens(15, 33, config.vocab_size);
    assert!(generator
        .generate(&long, 3, &greedy, 1, |_, _| false)
        .is_err());
    assert!(
        generator.prefill(&[97], 1).is_err(),
        "token outside the vocabulary"
    );
    assert!(
        generator.extend(&[1], 32).is_err(),
        "position outside the context"
    );
    let hot = Sampling {
        temperature: -1.0,
        ..greedy
    };
    assert!(generator.generate(&[1], 3, &hot, 1, |_, _| false).is_err());
}

/// The hot path: a decode step of two sequences creates no buffer, bind group or pipeline and submits
/// once, reading the logits back in the same submit.
#[test]
fn a_decode_step_submits_once_and_creates_nothing() {
    let gpu = Gpu::new().expect("sampling tests need a GPU adapter");
    let config = tiny(true);
    let model = model(&gpu, &config, 11);
    let mut generator = Generator::new(&gpu, &model, 2).unwrap();
    generator.prefill(&[1, 2, 3], 1).unwrap();
    let before = gpu.counts();
    for position in 3..8 {
        let logits = generator.extend(&[position as u32, 5], position).unwrap();
        assert_eq!(logits.len(), 2 * config.vocab_size);
    }
    let after = gpu.counts();
    assert_eq!(
        (after.buffers, after.bind_groups, after.pipelines),
        (before.buffers, before.bind_groups, before.pipelines),
        "objects created during decode steps"
    );
    assert_eq!(after.submits - before.submits, 5, "submits per decode step");
}
