//! attention: the fused kernels (every variant the adapter supports) and the unfused ones against `reference::attention` (forward o and lse, backward
//! dqkv) over batch, sequence, head-dimension, grouping and dropout cases, the step buffer, and the
//! reference's backward against finite differences.

use wgpt::contract::{AttentionDropout, AttentionShape};
use wgpt::kernels::attention::{self, Backward, Variant};
use wgpt::reference::attention as reference;
use wgpt::{Gpu, Tensor};

use crate::common::{assert_gradient, assert_within, gpu, project, random, F32_EPS};

/// (B, T, H, Hkv, D, p): B 1 and 5; T 1, 7, 64, 65 and a context of 256 (not workgroup multiples, one
/// past one, one workgroup exactly); D 32, 64, 128; H/Hkv 1, 2, 4; dropout 0 and 0.1.
type Case = (usize, usize, usize, usize, usize, f32);

const CASES: [Case; 11] = [
    (1, 1, 1, 1, 32, 0.0),
    (5, 1, 4, 2, 64, 0.1),
    (1, 7, 2, 1, 128, 0.0),
    (5, 7, 4, 1, 32, 0.1),
    (1, 64, 4, 4, 64, 0.1),
    (5, 64, 2, 2, 32, 0.0),
    (1, 65, 4, 2, 128, 0.1),
    (5, 65, 4, 1, 64, 0.0),
    (1, 256, 4, 1, 128, 0.0),
    (5, 256, 2, 1, 64, 0.1),
    (1, 256, 3, 3, 32, 0.1),
];

const STEP: u32 = 7;
/// The dropout state `[seed, step, micro]` of most cases.
const STATE: [u32; 3] = [1234, STEP, 0];

fn shape_of(
    (batch, seq, heads, kv_heads, head_dim, _): (usize, usize, usize, usize, usize, f32),
) -> AttentionShape {
    AttentionShape {
        batch,
        seq,
        heads,
        kv_heads,
        head_dim,
    }
}

fn dropout_of(p: f32) -> AttentionDropout {
    AttentionDropout { p, site: 3 }
}

/// Largest Euclidean norm of a D-element head vector in `x` (q, k, v or dO).
fn max_norm(x: &[f32], d: usize) -> f64 {
    x.chunks(d)
        .map(|c| c.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt())
        .fold(0.0, f64::max)
}

fn max_abs(x: &[f32]) -> f64 {
    x.iter().fold(0.0f64, |m, &v| m.max(v.abs() as f64))
}

/// Error bounds from a first-order analysis of the f32 kernels (u = 2⁻²⁴, Z = 1/(1-p)):
/// - a score `scale·q·k` errs by `ε_S = (D+2)·u·scale·‖q‖‖k‖` (a D-term dot product, Cauchy-Schwarz);
/// - each probability then errs relatively by `ε_P = 2ε_S + (2T+16)·u`: the score error enters both the
///   exponent and the log-sum-exp, the T-term running sum rounds, and exp/log may err by 3 + 2|x| ulp
///   (Vulkan's precision), where `e^x·|x| ≤ 1/e` keeps each term's share below one ulp of the sum;
/// - `o` is a Z-weighted average of v, `lse` a log of a T-term sum;
/// - `|dA| = |dO·v| ≤ G = Z·‖dO‖‖v‖`, so `dS = A·dA - P·delta` errs by `P·E` with E below (delta also
///   carries o's error); dq sums `dS·k` over s where `Σ P = 1`; dk and dv sum over the `rows` query
///   rows that see key s, where `Σ P` is the key's column sum.
struct Bounds {
    /// ε_S, a score's error.
    score: f64,
    o: f64,
    lse_abs: f64,
    lse_rel: f64,
    dq: f64,
    /// Per (b, g, s): (dk bound, dv bound).
    dkv: Vec<(f64, f64)>,
}

fn bounds(qkv: &[f32], d_o: &[f32], sh: &AttentionShape, p: f32) -> Bounds {
    let u = F32_EPS;
    let (t, d) = (sh.seq as f64, sh.head_dim as f64);
    let z = 1.0 / (1.0 - p as f64);
    let scale = sh.scale() as f64;
    let (a, a_norm, g_norm) = (
        max_abs(qkv),
        max_norm(qkv, sh.head_dim),
        max_norm(d_o, sh.head_dim),
    );
    let eps_s = (d + 2.0) * u * scale * a_norm * a_norm;
    let eps_p = 2.0 * eps_s + (2.0 * t + 16.0) * u;
    let o = z * a * (eps_p + (t + 4.0) * u);
    let big_g = z * a_norm * g_norm;
    let e = 2.0 * big_g * (eps_p + (d + t + 4.0) * u) + g_norm * d.sqrt() * o;
    let group = sh.heads / sh.kv_heads;
    let mut dkv = Vec::new();
    for b in 0..sh.batch {
        for g in 0..sh.kv_heads {
            let mut colsum = vec![0.0; sh.seq];
            for h in g * group..(g + 1) * group {
                for tq in 0..sh.seq {
                    let (probs, _) = reference::probabilities(qkv, sh, b, h, tq);
                    for (s, p) in probs.iter().enumerate() {
                        colsum[s] += p;
                    }
                }
            }
            for (s, c) in colsum.iter().enumerate() {
                let rows = (group * (sh.seq - s)) as f64;
                let dk = scale * a * c * (e + 2.0 * (rows + 2.0) * u * big_g);
                let dv = z * max_abs(d_o) * c * (eps_p + (rows + 2.0) * u);
                dkv.push((dk, dv));
            }
        }
    }
    Bounds {
        score: eps_s,
        o,
        lse_abs: eps_s + 8.0 * u,
        lse_rel: (2.0 * t + 24.0) * u,
        dq: scale * a * (e + 2.0 * (t + 2.0) * u * big_g),
        dkv,
    }
}

/// Bound for element `i` of `dqkv`: q part from `dq`, k and v parts from the key's column.
fn dqkv_bound(b: &Bounds, sh: &AttentionShape, i: usize) -> f64 {
    let (d, w) = (sh.head_dim, sh.qkv_width());
    let (token, col) = (i / w, i % w);
    let (batch, s, head) = (token / sh.seq, token % sh.seq, col / d);
    if head < sh.heads {
        return b.dq;
    }
    let g = (head - sh.heads) % sh.kv_heads;
    let (dk, dv) = b.dkv[(batch * sh.kv_heads + g) * sh.seq + s];
    if head < sh.heads + sh.kv_heads {
        dk
    } else {
        dv
    }
}

/// GPU tensors of one case, with `state` holding [`STATE`].
struct Setup {
    qkv: Tensor,
    state: Tensor,
    o: Tensor,
    lse: Tensor,
    d_o: Tensor,
    delta: Tensor,
    dqkv: Tensor,
}

impl Setup {
    fn new(gpu: &Gpu, sh: &AttentionShape, qkv: &[f32], d_o: &[f32]) -> Setup {
        let (b, t, h) = (sh.batch, sh.seq, sh.heads);
        // dqkv starts as garbage: the backward must write every element.
        let garbage = vec![f32::NAN; qkv.len()];
        Setup {
            qkv: gpu.upload("qkv", &[b, t, sh.qkv_width()], qkv).unwrap(),
            state: gpu.upload("state", &[3], &STATE).unwrap(),
            o: gpu.zeros("o", &[b, t, h * sh.head_dim]).unwrap(),
            lse: gpu.zeros("lse", &[b, h, t]).unwrap(),
            d_o: gpu.upload("d_o", &[b, t, h * sh.head_dim], d_o).unwrap(),
            delta: gpu.zeros("delta", &[b, h, t]).unwrap(),
            dqkv: gpu
                .upload("dqkv", &[b, t, sh.qkv_width()], &garbage)
                .unwrap(),
        }
    }

    fn backward(&self) -> Backward<'_> {
        Backward {
            qkv: &self.qkv,
            state: &self.state,
            o: &self.o,
            lse: &self.lse,
            d_o: &self.d_o,
            delta: &self.delta,
            dqkv: &self.dqkv,
        }
    }
}

/// Runs every case through `run` (which records forward then backward into the setup's tensors) and
/// checks o, lse and dqkv against the reference.
fn check_cases(
    name: &str,
    cases: &[Case],
    run: impl Fn(&Gpu, &AttentionShape, AttentionDropout, &Setup),
) {
    let gpu = gpu();
    for (i, &case) in cases.iter().enumerate() {
        let (sh, dropout) = (shape_of(case), dropout_of(case.5));
        let qkv = random(500 + i as u64, sh.batch * sh.seq * sh.qkv_width());
        let d_o = random(600 + i as u64, sh.batch * sh.seq * sh.heads * sh.head_dim);
        let setup = Setup::new(gpu, &sh, &qkv, &d_o);
        run(gpu, &sh, dropout, &setup);

        let label = format!("{name} {sh:?} p={}", dropout.p);
        let bound = bounds(&qkv, &d_o, &sh, dropout.p);
        let (o, lse) = reference::forward(&qkv, &sh, dropout, STATE);
        assert_within(
            &format!("o {label}"),
            &gpu.read(&setup.o).unwrap(),
            &o,
            |_| bound.o,
        );
        assert_within(
            &format!("lse {label}"),
            &gpu.read(&setup.lse).unwrap(),
            &lse,
            |i| bound.lse_abs + bound.lse_rel * (1.0 + lse[i].abs() as f64),
        );
        let dqkv = reference::backward(&qkv, &d_o, &sh, dropout, STATE);
        let got: Vec<f32> = gpu.read(&setup.dqkv).unwrap();
        assert_within(&format!("dqkv {label}"), &got, &dqkv, |i| {
            dqkv_bound(&bound, &sh, i)
        });
    }
}

/// The variants this adapter supports.
fn variants() -> Vec<Variant> {
    let gpu = gpu();
    Variant::ALL
        .into_iter()
        .filter(|v| v.supported(gpu))
        .collect()
}

/// Checks every supported variant on the cases it fits (on CPU adapters the cpu variant refuses shapes
/// past llvmpipe's loop cap), and that the variant the launchers pick is among them.
fn check_variants(cases: &[Case]) {
    let gpu = gpu();
    for variant in variants() {
        let fitting: Vec<Case> = cases
            .iter()
            .copied()
            .filter(|&c| variant.fits(gpu, shape_of(c)))
            .collect();
        check_cases(
            &format!("fused {}", variant.name()),
            &fitting,
            fused(variant),
        );
    }
    for &case in cases {
        let best = Variant::best(gpu, shape_of(case));
        assert!(best.supported(gpu) && best.fits(gpu, shape_of(case)));
    }
}

#[test]
fn attention_best_variant_is_cpu_on_cpu_adapters_with_subgroups_of_eight_up_to_head_dim_64() {
    let gpu = gpu();
    let cpu = gpu.is_cpu() && gpu.subgroup_sizes().is_some_and(|(min, _)| min >= 8);
    let want = if cpu { Variant::Cpu } else { Variant::Portable };
    // CASES[5] has D = 32, CASES[2] D = 128.
    assert_eq!(
        Variant::best(gpu, shape_of(CASES[5])),
        want,
        "{}",
        gpu.summary()
    );
    assert_eq!(Variant::best(gpu, shape_of(CASES[2])), Variant::Portable);
}

#[test]
fn attention_fused_forward_and_backward_match_reference_for_every_variant() {
    check_variants(&CASES);
}

/// A context of 1024 with four query heads of 128 per kv head: the dk/dv kernel's longest loops (4096
/// query rows per key), which must stay under llvmpipe's cap on loop iterations; and two heads of 32 per kv
/// head, which the cpu variant takes on CPU adapters (near its loop budget).
#[test]
fn attention_fused_handles_a_long_context_with_grouped_heads_for_every_variant() {
    check_variants(&[(1, 1024, 4, 1, 128, 0.1), (1, 1024, 2, 1, 32, 0.0)]);
}

/// Records the fused forward and backward of one case with `variant`.
fn fused(variant: Variant) -> impl Fn(&Gpu, &AttentionShape, AttentionDropout, &Setup) {
    move |gpu, sh, dropout, s| {
        let (qkv, state, o, lse) = (&s.qkv, &s.state, &s.o, &s.lse);
        let mut dispatches =
            vec![attention::forward(gpu, variant, *sh, dropout, qkv, state, o, lse).unwrap()];
        dispatches.extend(attention::backward(gpu, variant, *sh, dropout, &s.backward()).unwrap());
        gpu.run_dispatches(&dispatches).unwrap();
    }
}

/// The probabilities recomputed from the fused forward's lse: each element errs by at most
/// `P·(ε_S + Δlse) + 4u` (the score's error and lse's enter the exponent; exp adds 3 + 2|x| ulp, and
/// `P·|x| ≤ 1/e`), with ε_S and the lse bound of [`bounds`]. Zero above the diagonal exactly.
#[test]
fn attention_probabilities_from_the_fused_forward_match_reference() {
    let gpu = gpu();
    for (i, &case) in CASES.iter().enumerate() {
        let sh = shape_of(case);
        let qkv = random(500 + i as u64, sh.batch * sh.seq * sh.qkv_width());
        let s = Setup::new(
            gpu,
            &sh,
            &qkv,
            &vec![0.0; sh.batch * sh.seq * sh.heads * sh.head_dim],
        );
        let (b, h, t) = (sh.batch, sh.heads, sh.seq);
        let probs = gpu.zeros("probs", &[b, h, t, t]).unwrap();
        let variant = Variant::best(gpu, sh);
        let p = AttentionDropout::NONE;
        let dispatches = [
            attention::forward(gpu, variant, sh, p, &s.qkv, &s.state, &s.o, &s.lse).unwrap(),
            attention::probabilities(gpu, sh, &s.qkv, &s.state, &s.o, &s.lse, &probs).unwrap(),
        ];
        gpu.run_dispatches(&dispatches).unwrap();
        let want = reference::probability_matrix(&qkv, &sh);
        let (_, lse) = reference::forward(&qkv, &sh, p, STATE);
        let bound = bounds(&qkv, &qkv, &sh, 0.0);
        let lse_max = lse.iter().fold(0.0f64, |m, &l| m.max(l.abs() as f64));
        let exponent = bound.score + bound.lse_abs + bound.lse_rel * (1.0 + lse_max);
        let got: Vec<f32> = gpu.read(&probs).unwrap();
        assert_within(&format!("probabilities {sh:?}"), &got, &want, |j| {
            if (j / t) % t < j % t {
                0.0
            } else {
                want[j] as f64 * exponent + 4.0 * F32_EPS
            }
        });
    }
}

#[test]
fn attention_unfused_forward_and_backward_match_reference() {
    check_cases("unfused", &CASES, |gpu, sh, dropout, s| {
        let (b, h, t) = (sh.batch, sh.heads, sh.seq);
        let scores = gpu.zeros("scores", &[b, h, t, t]).unwrap();
        let mut dispatches =
            attention::unfused_forward(gpu, *sh, dropout, &s.qkv, &s.state, &s.o, &s.lse, &scores)
                .unwrap();
        dispatches.extend(
            attention::unfused_backward(gpu, *sh, dropout, &s.backward(), &scores).unwrap(),
        );
        gpu.run_dispatches(&dispatches).unwrap();
    });
}

#[test]
fn attention_dropout_mask_follows_the_step_buffer_without_rebuilding() {
    let gpu = gpu();
    let sh = shape_of((2, 33, 4, 2, 32, 0.1));
    let dropout = dropout_of(0.1);
    let qkv = random(700, sh.batch * sh.seq * sh.qkv_width());
    let d_o = random(701, sh.batch * sh.seq * sh.heads * sh.head_dim);
    let s = Setup::new(gpu, &sh, &qkv, &d_o);
    let variant = Variant::best(gpu, sh);
    let (t_qkv, state, o, lse) = (&s.qkv, &s.state, &s.o, &s.lse);
    let forward = attention::forward(gpu, variant, sh, dropout, t_qkv, state, o, lse).unwrap();
    let bound = bounds(&qkv, &d_o, &sh, dropout.p);
    let mut previous = None;
    for step in [STEP, 8] {
        gpu.write(&s.state, &[STATE[0], step, 0]).unwrap();
        gpu.run_dispatches(std::slice::from_ref(&forward)).unwrap();
        let got: Vec<f32> = gpu.read(&s.o).unwrap();
        let (want, _) = reference::forward(&qkv, &sh, dropout, [STATE[0], step, 0]);
        assert_within(&format!("o at step {step}"), &got, &want, |_| bound.o);
        assert_ne!(
            previous.as_ref(),
            Some(&got),
            "the mask did not change with the step"
        );
        previous = Some(got);
    }
}

#[test]
fn attention_rejects_shapes_it_cannot_run() {
    let gpu = gpu();
    let bad = [
        shape_of((1, 4, 3, 2, 32, 0.0)),  // Hkv does not divide H
        shape_of((1, 4, 2, 1, 36, 0.0)),  // D not a multiple of 8
        shape_of((1, 4, 2, 1, 256, 0.0)), // D above what the accumulators hold
    ];
    for sh in bad {
        let qkv = gpu.zeros("qkv", &[1, sh.seq, sh.qkv_width()]).unwrap();
        let state = gpu.zeros("state", &[3]).unwrap();
        let o = gpu
            .zeros("o", &[1, sh.seq, sh.heads * sh.head_dim])
            .unwrap();
        let lse = gpu.zeros("lse", &[1, sh.heads, sh.seq]).unwrap();
        for variant in variants() {
            let result = attention::forward(
                gpu,
                variant,
                sh,
                AttentionDropout::NONE,
                &qkv,
                &state,
                &o,
                &lse,
            );
            assert!(result.is_err(), "{sh:?} was accepted by {}", variant.name());
        }
    }
}

#[test]
fn attention_reference_backward_matches_finite_differences() {
    // Two batches, one kv head per two query heads (GQA), dropout with a
    // fixed mask (it is a function of the indices only, so the loss stays smooth in qkv).
    let sh = shape_of((2, 4, 4, 2, 3, 0.3));
    let dropout = dropout_of(0.3);
    let qkv = random(800, sh.batch * sh.seq * sh.qkv_width());
    let r = random(801, sh.batch * sh.seq * sh.heads * sh.head_dim);
    let dqkv = reference::backward(&qkv, &r, &sh, dropout, STATE);
    // L = Σ o·r, so dL/do = r. The reference computes in f64 and rounds o to f32 (≤ 2⁻²⁴·|o| each,
    // |o| ≤ 1/(1-p)), so over 32 outputs and 2h = 2e-2 rounding adds ≲ 32·1.4·6e-8/2e-2 ≈ 1.4e-4;
    // the central difference's truncation h²/6·|L'''| is ≲ 1e-4 for these O(1) smooth functions.
    let loss = |x: &[f32]| project(&reference::forward(x, &sh, dropout, STATE).0, &r);
    assert_gradient("dqkv", loss, &qkv, &dqkv, 1e-2, 1e-3);
}
