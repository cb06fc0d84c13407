//! adamw: ten steps on random arenas against `reference::adamw`, with and without decay, gaps and clipping;
//! the per-step values; the launch geometry of a GPT-2-sized arena; segment validation.

use wgpt::contract::{adamw_hyper, AdamWConfig, Segment, HYPER_LEN};
use wgpt::kernels::adamw::{self, Segments};
use wgpt::kernels::gradnorm;
use wgpt::reference::adamw as reference;

use crate::common::{assert_within, gpu, random};

fn seg(offset: usize, len: usize, decay: bool) -> Segment {
    Segment { offset, len, decay }
}

/// Ten steps of AdamW on the GPU (one dispatch built once, the per-step tensor rewritten each step) and
/// on the CPU, then compares params and both moments.
fn ten_steps(case: &str, len: usize, segments: &[Segment], clip_scale: Option<f32>) {
    let gpu = gpu();
    let config = AdamWConfig {
        weight_decay: 0.1,
        ..AdamWConfig::default()
    };
    let (mut p, mut m, mut v) = (random(1, len), random(2, len), random(3, len));
    v.iter_mut().for_each(|x| *x = x.abs());
    let pt = gpu.upload("params", &[len], &p).unwrap();
    let gt = gpu.zeros("grads", &[len]).unwrap();
    let mt = gpu.upload("m", &[len], &m).unwrap();
    let vt = gpu.upload("v", &[len], &v).unwrap();
    let ht = gpu.zeros("hyper", &[HYPER_LEN]).unwrap();
    let mut clip = vec![0.0; gradnorm::OUT_LEN];
    clip[gradnorm::SCALE] = clip_scale.unwrap_or(1.0);
    let ct = gpu.upload("clip", &[gradnorm::OUT_LEN], &clip).unwrap();
    let table = Segments::new(gpu, segments).unwrap();
    let clip_tensor = clip_scale.is_some().then_some(&ct);
    let step = adamw::step(gpu, &config, &pt, &gt, &mt, &vt, &table, &ht, clip_tensor).unwrap();
    for t in 1..=10u32 {
        let g = random(100 + t as u64, len);
        let hyper = adamw_hyper(&config, 1e-2 * (1.0 + t as f64 / 10.0), t);
        gpu.write(&gt, &g).unwrap();
        gpu.write(&ht, &hyper).unwrap();
        gpu.run_dispatches(std::slice::from_ref(&step)).unwrap();
        let scale = clip_scale.unwrap_or(1.0);
        reference::step(&config, &mut p, &g, &mut m, &mut v, segments, &hyper, scale);
    }
    // Same f32 operations in the same order on both sides; what may differ is the GPU's sqrt and division
    // (up to 2.5 ulp on Vulkan) and fused multiply-adds, each a few ulp of operands of magnitude ≤ 1
    // (params, moments and gradients start in ±1), compounded over 10 steps: ~1e-6 relative to
    // max(|x|, 1) holds them, as the task asks.
    let bound = |want: &[f32]| {
        let w = want.to_vec();
        move |i: usize| 1e-6 * (w[i].abs() as f64).max(1.0)
    };
    assert_within(
        &format!("params {case}"),
        &gpu.read(&pt).unwrap(),
        &p,
        bound(&p),
    );
    assert_within(&format!("m {case}"), &gpu.read(&mt).unwrap(), &m, bound(&m));
    assert_within(&format!("v {case}"), &gpu.read(&vt).unwrap(), &v, bound(&v));
}

#[test]
fn adamw_ten_steps_match_reference_with_and_without_decay() {
    // Listed out of order, with a gap (1001..1010) that must stay untouched and a one-element tensor.
    let segments = [
        seg(1010, 598_990, true),
        seg(0, 1000, true),
        seg(600_000, 400_003, false),
        seg(1000, 1, false),
    ];
    ten_steps("1000003 mixed", 1_000_003, &segments, None);
    ten_steps("1000003 mixed, clipped", 1_000_003, &segments, Some(0.37));
    ten_steps("1 no decay", 1, &[seg(0, 1, false)], None);
    ten_steps("1 decay", 1, &[seg(0, 1, true)], Some(0.5));
    ten_steps("97 of 300", 300, &[seg(101, 97, true)], None);
    // Runs on multiples of 4 take the vec4 entry point; again out of order, with a gap (1000..1012).
    let aligned = [
        seg(1012, 598_988, true),
        seg(0, 1000, true),
        seg(600_000, 400_000, false),
    ];
    ten_steps("1000004 aligned", 1_000_004, &aligned, None);
    ten_steps("1000004 aligned, clipped", 1_000_004, &aligned, Some(0.37));
    ten_steps("96 of 300 aligned", 300, &[seg(100, 96, true)], None);
}

#[test]
fn adamw_hyper_values_follow_pytorch_formulas() {
    let config = AdamWConfig::default();
    let h = adamw_hyper(&config, 3e-4, 1);
    // At t = 1: bc1 = 1 - 0.9, bc2 = 1 - 0.999.
    let want = [3e-4, 1.0, 0.1, 1e-3, 3e-3, 1e-3f64.sqrt(), 1.0 - 3e-6, 0.0];
    for (i, (&got, &want)) in h.iter().zip(&want).enumerate() {
        // f64 values rounded once to f32: 2⁻²⁴ relative, well inside 1e-6.
        assert!(
            (got as f64 - want).abs() <= 1e-6 * want.abs(),
            "hyper[{i}]: got {got}, want {want}"
        );
    }
}

#[test]
fn adamw_grid_stays_within_the_dispatch_limit_for_gpt2_sized_arenas() {
    // 124M parameters (GPT-2 small), the largest span u32 indices allow, and awkward small ones.
    for len in [
        1,
        255,
        256,
        1_000_003,
        124_439_808,
        16 << 20,
        u32::MAX as usize - (1 << 24),
    ] {
        let (groups, chunk) = adamw::grid(len);
        assert!(groups <= 65535, "{len}: {groups} workgroups");
        assert!(
            groups * chunk >= len,
            "{len}: {groups} x {chunk} misses elements"
        );
        assert!((groups - 1) * chunk < len, "{len}: an idle workgroup");
    }
}

#[test]
fn adamw_segments_reject_overlaps_and_empty_lists() {
    let gpu = gpu();
    let overlap = Segments::new(gpu, &[seg(0, 10, true), seg(9, 5, false)]);
    assert!(overlap.is_err_and(|e| e.to_string().contains("overlaps")));
    assert!(Segments::new(gpu, &[]).is_err());
    assert!(Segments::new(gpu, &[seg(4, 0, true)]).is_err());
}
