//! A GPU training step against the same model run on the CPU by `graph::reference` (nothing but the
//! kernels' reference twins): loss, every gradient, the parameters and moments after AdamW.

use std::collections::{BTreeMap, BTreeSet};

use wgpt::contract::{adamw_hyper, AdamWConfig, HYPER_LEN};
use wgpt::data::{Batch, BatchSampler};
use wgpt::dtype::Dtype;
use wgpt::graph::reference::{self, CpuInputs, CpuModel};
use wgpt::graph::{Epilogue, Graph, Op, Plan, StepInputs, TensorId};
use wgpt::model::graph::{build, Mode};
use wgpt::model::{Gpt, GptConfig, GraphOptions, Optimizer, Recompute};
use wgpt::Gpu;

mod common;
use common::tiny;

/// Largest |a - b| relative to the largest |b| of a tensor.
fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    let scale = b
        .iter()
        .fold(0.0f64, |m, &x| m.max(x.abs() as f64))
        .max(1e-30);
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).abs())
        .fold(0.0, f64::max)
        / scale
}

/// Gradients may differ by 1e-4 of a tensor's largest element. Each is a chain of about 20 f32 ops
/// (sums of at most 256 terms, error up to K·u ≈ 1.5e-5 each in the worst case, about √K·u ≈ 1e-6
/// typically) against f64 sums in the reference, so the worst case is near 3e-4; measured over several
/// batches: up to 3e-5.
const GRAD_TOL: f64 = 1e-4;

/// With activations kept in 16 bits the GPU and the reference run the same graph, rounding the same
/// tensors the same way, but an element whose f32 value (about 1e-6 apart on the two sides) straddles a
/// rounding boundary lands one 16-bit ulp apart (2⁻⁸ relative in bf16, 2⁻¹¹ in f16), and the ops
/// after it carry that on. It happens to about 1e-6 / 2⁻⁸ ≈ 3e-4 of the elements in bf16 (4e-3 in
/// f16, whose ulp is 8x smaller): a gradient, a sum over many of them, moves by a fraction of an ulp
/// of its largest element. Bound: 2⁻⁸ of the largest, one bf16 ulp (measured in one step from the
/// same parameters: up to 1.5e-3 in bf16, 3e-4 in f16). Only the first step is checked: after it the
/// two sides' parameters differ by those amounts too, which the next gradients amplify (1e-2 at step
/// 2 in bf16) without checking anything the first step did not.
const GRAD_TOL_16: f64 = 1.0 / 256.0;

/// After AdamW a parameter may differ by 4 ulps plus lr times the relative error of its gradient: the
/// update is lr·m̂/(√v̂ + eps), a ratio of moments made of the gradients, so an element's update is as
/// accurate, relatively, as its own gradient, whose error is at most GRAD_TOL of the tensor's largest
/// (a factor 10 covers the history m and v carry). Elements whose gradient is below 1e-3 of the tensor's
/// largest at any step so far (a key bias's gradient is exactly zero in exact arithmetic) are exempt:
/// AdamW divides their rounding noise by its own size and may step ±lr either way; `noisy` remembers
/// them across steps.
fn check_params(
    name: &str,
    (got, want): (&[f32], &[f32]),
    grad: &[f32],
    noisy: &mut [bool],
    (lr, grad_tol): (f64, f64),
) {
    let largest = grad.iter().fold(0.0f32, |m, &g| m.max(g.abs()));
    for (i, ((&g, &w), &d)) in got.iter().zip(want).zip(grad).enumerate() {
        noisy[i] |= d.abs() < 1e-3 * largest;
        if noisy[i] {
            continue;
        }
        let relative = 10.0 * grad_tol * largest as f64 / d.abs() as f64;
        let bound = lr * relative + 4.0 * f32::EPSILON as f64 * w.abs() as f64;
        assert!(
            (g as f64 - w as f64).abs() <= bound,
            "{name}[{i}]: GPU {g}, reference {w}, bound {bound:.2e}"
        );
    }
}

/// AdamW with clipping, as the training steps here run it.
fn optimizer() -> Optimizer {
    Optimizer {
        adamw: AdamWConfig {
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.1,
        },
        max_norm: Some(1.0),
    }
}

/// 5000 tokens below `vocab`, spread over it without a short period.
fn tokens(vocab: u32) -> Vec<u32> {
    (0..5000u32).map(|i| (i * 7919 + i / 3) % vocab).collect()
}

/// Uploads batch `b` and the step's settings (seed 11, `step`, `lr`) to `plan`.
fn prepare_step(gpu: &Gpu, plan: &Plan, b: &Batch, step: u32, lr: f64) {
    let inputs = StepInputs {
        tokens: &b.inputs,
        targets: &b.targets,
    };
    plan.set_batch(gpu, &inputs).unwrap();
    plan.set_step(gpu, 11, step, lr).unwrap();
}

/// Checks three training steps of `config` on the GPU against the CPU reference (one in 16 bits, see
/// [`GRAD_TOL_16`]). With `max_binding`,
/// the GPU model runs as if storage bindings held that many elements (split parameters, arena chunks)
/// while the reference runs the plain graph, so the split is checked against the unsplit model. Both
/// keep the backward's activations in `precision`.
fn check_step_matches_reference(config: GptConfig, max_binding: Option<usize>, precision: Dtype) {
    let gpu = Gpu::new().expect("model tests need a GPU adapter");
    let vocab = config.vocab_size as u32;
    let (batch, seq) = (4, 32);
    let optimizer = optimizer();
    let grad_tol = match precision {
        Dtype::F32 => GRAD_TOL,
        _ => GRAD_TOL_16,
    };
    let plain = Gpt::init(&gpu, &config, 7)
        .unwrap()
        .with_precision(precision);
    let (_, graph) = plain.train_plan(&gpu, batch, seq, 1, &optimizer).unwrap();
    let model = match max_binding {
        Some(max) => {
            let split =
                Gpt::with_max_binding(&gpu, &config, &plain.read_params(&gpu).unwrap(), max);
            let split = split.unwrap().with_precision(precision);
            assert!(
                split.arena_chunks() > 1,
                "the arenas should take several buffers"
            );
            split
        }
        None => plain,
    };
    let (plan, split_graph) = model.train_plan(&gpu, batch, seq, 1, &optimizer).unwrap();
    if max_binding.is_some() {
        let pieces = &split_graph.graph.pieces;
        assert!(pieces.len() > config.params().len(), "wte should be split");
        assert!(
            split_graph.logits.is_none(),
            "the logits should be in row chunks"
        );
    }
    let specs = config.params();
    let mut cpu = CpuModel {
        params: model.read_params(&gpu).unwrap(),
        m: specs.iter().map(|s| vec![0.0; s.len()]).collect(),
        v: specs.iter().map(|s| vec![0.0; s.len()]).collect(),
        decays: specs.iter().map(|s| s.decays()).collect(),
    };
    let tokens = tokens(vocab);
    let sampler = BatchSampler::new(&tokens, batch, seq, 3).unwrap();
    let lr = 1e-3;
    let mut noisy: Vec<Vec<bool>> = specs.iter().map(|s| vec![false; s.len()]).collect();
    let steps = match precision {
        Dtype::F32 => 3,
        _ => 1,
    };
    for step in 1..=steps {
        let b = sampler.batch(step as u64);
        prepare_step(&gpu, &plan, &b, step, lr);
        let loss = plan.run(&gpu, true).unwrap().unwrap();
        let want = reference::run(
            &graph.graph,
            &mut cpu,
            &CpuInputs {
                tokens: &b.inputs,
                targets: &b.targets,
                position: 0,
                random_state: [11, step, 0],
                hyper: adamw_hyper(&optimizer.adamw, lr, step),
            },
        );
        let loss_err = (loss as f64 - want.loss as f64).abs() / want.loss as f64;
        assert!(
            loss_err <= grad_tol / 10.0,
            "step {step}: loss {loss} vs reference {}",
            want.loss
        );
        let grads = model.read_grads(&gpu).unwrap();
        let params = model.read_params(&gpu).unwrap();
        for (i, spec) in specs.iter().enumerate() {
            let err = rel_err(&grads[i], &want.grads[i]);
            assert!(
                err <= grad_tol,
                "step {step}: gradient of {}: relative error {err:.2e}",
                spec.name
            );
            let noisy = &mut noisy[i];
            let (got, cpu_params) = (&params[i][..], &cpu.params[i][..]);
            let (step_lr, grad) = ((lr, grad_tol), &want.grads[i]);
            check_params(&spec.name, (got, cpu_params), grad, noisy, step_lr);
        }
    }
    // Evaluation (row-chunked logits without their gradient when split) gives the reference's loss.
    let b = sampler.batch(99);
    let (eval, eval_graph) = model.eval_plan(&gpu, batch, seq).unwrap();
    let inputs = StepInputs {
        tokens: &b.inputs,
        targets: &b.targets,
    };
    eval.set_batch(&gpu, &inputs).unwrap();
    let loss = eval.run(&gpu, true).unwrap().unwrap();
    let cpu_inputs = CpuInputs {
        tokens: &b.inputs,
        targets: &b.targets,
        position: 0,
        random_state: [11, 4, 0],
        hyper: [0.0; HYPER_LEN],
    };
    let want = reference::run(&eval_graph.graph, &mut cpu.clone(), &cpu_inputs).loss;
    assert!(
        (loss as f64 - want as f64).abs() <= 1e-5 * want as f64,
        "evaluation loss {loss} vs reference {want}"
    );
    // The exemption must leave the check with something to check. It covers the embedding rows of tokens
    // absent from the batches (exactly zero gradient), key biases and near-cancelling elements: about
    // 10% here.
    let exempt = noisy.iter().flatten().filter(|&&n| n).count();
    let total = config.parameter_count();
    assert!(exempt * 5 < total, "{exempt} of {total} parameters exempt");
    println!("{exempt} of {total} parameters exempt from the update check");
}

#[test]
fn gpt2_training_step_matches_the_cpu_reference() {
    check_step_matches_reference(tiny(false), None, Dtype::F32);
}

#[test]
fn modern_variant_training_step_matches_the_cpu_reference() {
    check_step_matches_reference(tiny(true), None, Dtype::F32);
}

#[test]
fn training_steps_keeping_16_bit_activations_match_the_cpu_reference() {
    check_step_matches_reference(tiny(false), None, Dtype::Bf16);
    check_step_matches_reference(tiny(true), None, Dtype::F16);
}

/// A model shaped so that a binding of `SPLIT_BINDING` elements holds every parameter but the token
/// embedding (`[500, 128]`, split in two) and the logits of 64 rows (`[64, 500]`) but not all 128.
fn split_tiny() -> GptConfig {
    GptConfig {
        vocab_size: 500,
        n_embd: 128,
        n_inner: 128,
        ..tiny(false)
    }
}

/// Elements of the forced binding: c_attn `[128, 384]`.
const SPLIT_BINDING: usize = 128 * 384;

#[test]
fn training_step_with_split_embedding_and_arena_chunks_matches_the_unsplit_reference() {
    check_step_matches_reference(split_tiny(), Some(SPLIT_BINDING), Dtype::F32);
}

/// One of two data-parallel ranks over several arena chunks: each chunk is sent off (read back, summed
/// across ranks, written back) once the backward has finished writing it, in submissions of its own.
/// With the other rank's gradients taken to be its own (doubled: exact in f32, as is the loss divisor
/// for twice the rows), three steps are bit for bit those of one process on the same rows, dropout
/// included; a chunk sent before its last gradient is written would not be.
#[test]
fn a_gradient_exchange_over_arena_chunks_gives_the_one_process_steps() {
    let gpu = Gpu::new().expect("model tests need a GPU adapter");
    let config = split_tiny();
    let (batch, seq) = (4, 32);
    let optimizer = optimizer();
    let params = Gpt::init(&gpu, &config, 7)
        .unwrap()
        .read_params(&gpu)
        .unwrap();
    let split = || Gpt::with_max_binding(&gpu, &config, &params, SPLIT_BINDING).unwrap();
    let (one, ranked) = (split(), split());
    assert!(ranked.arena_chunks() > 2, "several chunks to send");
    let (single, _) = one.train_plan(&gpu, batch, seq, 1, &optimizer).unwrap();
    let (shard, _) = (ranked.shard_train_plan(&gpu, batch, seq, 1, 2, &optimizer)).unwrap();
    let tokens = tokens(config.vocab_size as u32);
    let sampler = BatchSampler::new(&tokens, batch, seq, 3).unwrap();
    for step in 1..=3u32 {
        let b = sampler.batch(step as u64);
        for plan in [&single, &shard] {
            prepare_step(&gpu, plan, &b, step, 1e-3);
        }
        single.run(&gpu, false).unwrap();
        shard.submit_micro(&gpu, 0, false).unwrap();
        let double = |bucket: &mut [f32]| {
            bucket.iter_mut().for_each(|g| *g *= 2.0);
            Ok(())
        };
        let (update, _) = shard.exchange_gradients(&gpu, double).unwrap();
        gpu.wait_for(&update).unwrap();
    }
    let bits = |m: &Gpt| -> Vec<Vec<u32>> {
        let params = m.read_params(&gpu).unwrap();
        params
            .iter()
            .map(|p| p.iter().map(|v| v.to_bits()).collect())
            .collect()
    };
    assert!(bits(&one) == bits(&ranked), "the exchanged steps differ");
}

/// Matmul epilogues and recomputation change dispatches and memory, not results: three training steps
/// with dropout, with the model's graphs fused or op for op, each keeping every activation or
/// recomputing GELU or every block, end in the same parameters, bit for bit (GPT-2 and the modern variant).
#[test]
fn every_graph_layout_trains_to_the_same_bits() {
    let gpu = Gpu::new().expect("model tests need a GPU adapter");
    let (batch, seq) = (4, 32);
    let optimizer = optimizer();
    for modern in [false, true] {
        let config = tiny(modern);
        let init = Gpt::init(&gpu, &config, 7).unwrap();
        let params = init.read_params(&gpu).unwrap();
        let tokens = tokens(config.vocab_size as u32);
        let sampler = BatchSampler::new(&tokens, batch, seq, 3).unwrap();
        // (epilogues, recompute) -> (ops, fused ops, activation bytes, parameters after the steps)
        let mut runs = BTreeMap::new();
        for epilogues in [false, true] {
            for recompute in [Recompute::None, Recompute::Gelu, Recompute::Block] {
                let model = (Gpt::new(&gpu, &config, &params).unwrap())
                    .with_epilogues(epilogues)
                    .with_recompute(recompute);
                let (plan, graph) = model.train_plan(&gpu, batch, seq, 1, &optimizer).unwrap();
                let ops = &graph.graph.ops;
                let fused = ops.iter().filter(|op| is_fused(op)).count();
                for step in 1..=3u32 {
                    prepare_step(&gpu, &plan, &sampler.batch(step as u64), step, 1e-3);
                    plan.run(&gpu, false).unwrap();
                }
                let params = model.read_params(&gpu).unwrap();
                let bits = |p: &Vec<f32>| p.iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
                let trained: Vec<_> = params.iter().map(bits).collect();
                let memory = plan.memory().activations;
                runs.insert(
                    (epilogues, recompute.name()),
                    (ops.len(), fused, memory, trained),
                );
            }
        }
        let run = |epilogues, recompute| &runs[&(epilogues, recompute)];
        let (plain, fused) = (run(false, "none"), run(true, "none"));
        assert!(
            fused.0 < plain.0 && fused.1 > 0,
            "modern {modern}: the fused graph has no fewer ops"
        );
        assert_eq!(plain.1, 0, "modern {modern}: the op-for-op graph fuses");
        for epilogues in [false, true] {
            let kept = run(epilogues, "none");
            for what in ["gelu", "block"] {
                let again = run(epilogues, what);
                assert!(
                    again.0 > kept.0 && again.2 < kept.2,
                    "modern {modern}, epilogues {epilogues}: recomputing {what} takes {} ops and {} \
                     activation bytes, against {} and {}",
                    again.0,
                    again.2,
                    kept.0,
                    kept.2
                );
            }
        }
        for (layout, (.., trained)) in &runs {
            assert!(
                *trained == plain.3,
                "modern {modern}: {layout:?} trains to other bits"
            );
        }
    }
}

/// [`Op::tensors_mut`] (what keeping activations in 16 bits renames) names exactly the tensors
/// [`Op::uses`] reads and writes, for every op of every training-graph layout; and a 16-bit graph
/// packs some tensors and unpacks each of them once.
#[test]
fn every_op_names_the_tensors_it_uses() {
    for modern in [false, true] {
        for epilogues in [false, true] {
            for recompute in [Recompute::None, Recompute::Gelu, Recompute::Block] {
                for precision in [Dtype::F32, Dtype::Bf16] {
                    let options = GraphOptions {
                        epilogues,
                        recompute,
                        precision,
                    };
                    let (batch, seq) = (2, 8);
                    let model = build(&tiny(modern), batch, seq, Mode::Train, 1 << 20, options);
                    let graph = model.unwrap().graph;
                    for op in &graph.ops {
                        let (reads, writes) = op.uses();
                        let used: BTreeSet<TensorId> = reads.into_iter().chain(writes).collect();
                        let mut named = op.clone();
                        let named: BTreeSet<TensorId> =
                            named.tensors_mut().into_iter().map(|id| *id).collect();
                        assert_eq!(named, used, "{op:?}");
                    }
                    let count = |f: fn(&Op) -> bool| graph.ops.iter().filter(|op| f(op)).count();
                    let packs = count(|op| matches!(op, Op::Pack { .. }));
                    let unpacks = count(|op| matches!(op, Op::Unpack { .. }));
                    assert_eq!(packs, unpacks, "{options:?}");
                    assert_eq!(packs > 0, precision != Dtype::F32, "{options:?}");
                }
            }
        }
    }
}

/// What `wgpt info` plans (`GptConfig::planned_memory`, without a GPU) is what a training plan
/// allocates, for every recomputation and precision.
#[test]
fn the_planned_memory_is_what_a_training_plan_allocates() {
    let gpu = Gpu::new().expect("model tests need a GPU adapter");
    let (batch, seq) = (4, 32);
    let config = tiny(false);
    for recompute in [Recompute::None, Recompute::Gelu, Recompute::Block] {
        for precision in [Dtype::F32, Dtype::Bf16] {
            let model = (Gpt::init(&gpu, &config, 7).unwrap())
                .with_epilogues(false)
                .with_recompute(recompute)
                .with_precision(precision);
            let (plan, _) = model.train_plan(&gpu, batch, seq, 1, &optimizer()).unwrap();
            let planned = config.planned_memory(batch, seq, model.options()).unwrap();
            assert_eq!(plan.memory(), planned, "{recompute:?}, {precision:?}");
        }
    }
}

/// Whether `op` is a product that applies an elementwise op as it stores (a matmul epilogue).
fn is_fused(op: &Op) -> bool {
    match op {
        Op::Linear { epilogue, .. } => !matches!(epilogue, Epilogue::None),
        Op::LinearBackward { gelu_pre, .. } => gelu_pre.is_some(),
        _ => false,
    }
}

/// The CPU reference model's gradients are right: they match central finite differences of its own loss
/// (with dropout on; the masks are a fixed function of the random state) at the largest-gradient
/// elements of every parameter tensor.
#[test]
fn reference_model_gradients_match_finite_differences() {
    use wgpt::model::graph::{build, Mode};
    for modern in [false, true] {
        let config = GptConfig {
            n_embd: 16,
            n_head: 2,
            n_kv_head: if modern { 1 } else { 2 },
            n_inner: 32,
            n_positions: 8,
            vocab_size: 11,
            ..tiny(modern)
        };
        let (batch, seq) = (2, 8);
        // The fused graph (matmul epilogues) for one variant, the op-for-op graph for the other; each
        // keeping its activations, recomputing GELU and recomputing its blocks.
        for recompute in [Recompute::None, Recompute::Gelu, Recompute::Block] {
            let options = GraphOptions {
                epilogues: modern,
                recompute,
                ..GraphOptions::default()
            };
            let graph = build(&config, batch, seq, Mode::Train, usize::MAX, options)
                .unwrap()
                .graph;
            check_gradients(&config, &graph, modern);
        }
    }
}

/// The reference gradients of `graph` (a training graph of `config`) against central finite
/// differences of its loss at the three largest-gradient elements of every parameter tensor.
fn check_gradients(config: &GptConfig, graph: &Graph, modern: bool) {
    let tokens: Vec<u32> = (0..16).map(|i| (i * 5 + 3) % 11).collect();
    let targets: Vec<u32> = (0..16).map(|i| (i * 7 + 1) % 11).collect();
    let inputs = CpuInputs {
        tokens: &tokens,
        targets: &targets,
        position: 0,
        random_state: [5, 1, 0],
        hyper: [0.0; HYPER_LEN],
    };
    let specs = config.params();
    let model = CpuModel {
        params: specs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                (0..s.len())
                    .map(|j| ((i * 31 + j * 17) % 23) as f32 / 23.0 - 0.5)
                    .collect()
            })
            .collect(),
        m: vec![],
        v: vec![],
        decays: specs.iter().map(|s| s.decays()).collect(),
    };
    let grads = reference::run(graph, &mut model.clone(), &inputs).grads;
    let loss_at = |i: usize, e: usize, delta: f32| {
        let mut m = model.clone();
        m.params[i][e] += delta;
        reference::run(graph, &mut m, &inputs).loss as f64
    };
    for (i, spec) in specs.iter().enumerate() {
        let mut order: Vec<usize> = (0..spec.len()).collect();
        order.sort_by(|&a, &b| grads[i][b].abs().total_cmp(&grads[i][a].abs()));
        for &e in order.iter().take(3) {
            // h = 1e-2: the loss (≈ 2.4) is f32, so rounding adds ≈ 2.4·6e-8 / 2h ≈ 7e-6; the
            // truncation error h²/6·f''' stays near 1e-5 for these smooth functions.
            let h = 1e-2;
            let fd = (loss_at(i, e, h) - loss_at(i, e, -h)) / (2.0 * h as f64);
            let g = grads[i][e] as f64;
            assert!(
                (fd - g).abs() <= 1e-4 + 1e-2 * g.abs(),
                "modern={modern} {}[{e}]: finite difference {fd}, reference gradient {g}",
                spec.name
            );
        }
    }
}
