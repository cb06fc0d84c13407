//! What `wgpt inspect` reads from the GPU: the captured attention probabilities of every head are a
//! causal distribution per query and equal the CPU reference model's.

use wgpt::contract::HYPER_LEN;
use wgpt::graph::reference::{self, CpuInputs, CpuModel};
use wgpt::inspect::capture;
use wgpt::model::graph::{build, Mode};
use wgpt::model::{Gpt, GraphOptions};
use wgpt::Gpu;

mod common;
use common::{tiny, uniform_params};

/// Probabilities may differ from the reference model's by 2e-6: both run the same forward, the GPU in
/// f32 and the reference with f64 sums, so the scores entering the softmax carry the activations'
/// relative error (a few ulps per op over about ten ops before the last attention, ~1e-6) times their
/// size (|score| ≤ ~1 with these weights), and a probability moves by P times that. Measured: 1.8e-7.
const PROB_TOL: f64 = 2e-6;

#[test]
fn captured_attention_is_causal_normalized_and_equals_the_reference_model() {
    let gpu = Gpu::new().expect("a GPU adapter (lavapipe: apt-get install mesa-vulkan-drivers)");
    // The modern variant: RMSNorm, 4 query heads over 2 kv heads.
    let config = tiny(true);
    let params = uniform_params(&config, 7);
    let model = Gpt::new(&gpu, &config, &params).unwrap();
    for seq in [1, 13, config.n_positions] {
        let tokens: Vec<u32> = (0..seq as u32).map(|i| (i * 37 + 5) % 97).collect();
        let captured = capture(&gpu, &model, &tokens).unwrap();

        let options = GraphOptions {
            epilogues: true,
            ..GraphOptions::default()
        };
        let graph = build(&config, 1, seq, Mode::Inspect, usize::MAX, options).unwrap();
        let mut cpu = CpuModel {
            params: params.clone(),
            m: vec![],
            v: vec![],
            decays: vec![],
        };
        let inputs = CpuInputs {
            tokens: &tokens,
            targets: &[],
            position: 0,
            random_state: [0, 0, 0],
            hyper: [0.0; HYPER_LEN],
        };
        let step = reference::run(&graph.graph, &mut cpu, &inputs);

        assert_eq!(captured.attention.len(), config.n_layer);
        for (l, (probs, block)) in captured.attention.iter().zip(&graph.blocks).enumerate() {
            let want = &step.values[block.probabilities.expect("inspect graphs keep them").0];
            assert_eq!(probs.len(), config.n_head * seq * seq);
            for (r, row) in probs.chunks(seq).enumerate() {
                let (h, t) = (r / seq, r % seq);
                let at = format!("T={seq} layer {l} head {h} query {t}");
                assert!(
                    row[t + 1..].iter().all(|&p| p == 0.0),
                    "{at}: weight on a later key: {row:?}"
                );
                let sum: f64 = row.iter().map(|&p| p as f64).sum();
                assert!((sum - 1.0).abs() <= 1e-5, "{at}: row sums to {sum}");
                for (s, (&got, &w)) in row.iter().zip(&want[r * seq..]).enumerate() {
                    assert!(
                        (got as f64 - w as f64).abs() <= PROB_TOL,
                        "{at} key {s}: GPU {got}, reference {w}"
                    );
                }
            }
        }
        // The stream and logits come from the same forward: spot-check the logits too.
        let logits = &step.values[graph.logits.unwrap().0];
        let worst = captured
            .logits
            .iter()
            .zip(logits)
            .map(|(&a, &b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-3, "T={seq}: logits differ by {worst}");
        assert_eq!(captured.stages.len(), 1 + 2 * config.n_layer);
    }
}
