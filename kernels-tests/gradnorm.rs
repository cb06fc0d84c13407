//! gradnorm: the GPU norm and clip scale against the f64 reference, over whole arenas, sub-ranges and
//! arenas split into several buffers.

use wgpt::kernels::gradnorm::{self, NORM, NORM_SUM, OUT_LEN, SCALE};
use wgpt::reference::gradnorm as reference;

use crate::common::{assert_within, gpu, random, F32_EPS};

/// Runs gradnorm on `grads[range]` and returns (norm, scale).
fn run(grads: &[f32], range: std::ops::Range<usize>, max_norm: Option<f32>) -> (f32, f32) {
    let gpu = gpu();
    let gt = gpu.upload("grads", &[grads.len()], grads).unwrap();
    let out = gpu.zeros("gradnorm", &[OUT_LEN]).unwrap();
    gpu.run_dispatches(&gradnorm::norm(gpu, &[(&gt, range)], max_norm, &out).unwrap())
        .unwrap();
    let got: Vec<f32> = gpu.read(&out).unwrap();
    (got[NORM], got[SCALE])
}

#[test]
fn gradnorm_matches_f64_reference_over_arenas_and_sub_ranges() {
    let grads = random(42, 1_000_003);
    let ranges = [
        0..1,
        0..1000,
        3..1027,
        0..1_000_003,
        12_345..999_999,
        500..500,
        // Ranges on multiples of 4 take the vec4 entry point (as 0..1000 does).
        4..1_000_000,
    ];
    for range in ranges {
        // Only the arena up to the range's end is uploaded, so the small ranges export small cases.
        let (norm, scale) = run(&grads[..range.end], range.clone(), None);
        let want = reference::norm(&grads[range.clone()]);
        // A sum of n positive squares in f32 in any order has relative error ≤ depth·u, where depth
        // counts the roundings on any term's way to the total: its square, the sequential terms of one
        // accumulator (at most 8, or n / (1024 workgroups · 256 invocations) for larger arenas), the
        // 2 adds merging the four accumulators, and 8 + 10 tree levels; 32 covers the constant part. The
        // square root halves the relative error and adds 1 ulp.
        let depth = range.len() as f64 / (1024.0 * 256.0) + 32.0;
        // Rounding the f64 reference to f32 for the comparison adds up to u·want.
        let bound = (depth / 2.0 + 3.0) * F32_EPS * want + f64::MIN_POSITIVE;
        assert_within(
            &format!("norm of {range:?}"),
            &[norm],
            &[want as f32],
            |_| bound,
        );
        assert_eq!(scale, 1.0, "scale of {range:?} without clipping");
    }
}

#[test]
fn gradnorm_sums_every_part_of_a_split_arena() {
    let gpu = gpu();
    // Three buffers (the chunks of a gradient arena), two of them read in part, one not a multiple of 4.
    let parts = [random(44, 300_001), random(45, 1000), random(46, 77_777)];
    let ranges = [0..300_001, 64..1000, 3..77_000];
    let tensors: Vec<_> = parts
        .iter()
        .map(|p| gpu.upload("grads", &[p.len()], p).unwrap())
        .collect();
    let out = gpu.zeros("gradnorm", &[OUT_LEN]).unwrap();
    let arg: Vec<_> = tensors
        .iter()
        .zip(&ranges)
        .map(|(t, r)| (t, r.clone()))
        .collect();
    gpu.run_dispatches(&gradnorm::norm(gpu, &arg, None, &out).unwrap())
        .unwrap();
    let norm = gpu.read::<f32>(&out).unwrap()[NORM];
    let all: Vec<f32> = parts
        .iter()
        .zip(&ranges)
        .flat_map(|(p, r)| p[r.clone()].to_vec())
        .collect();
    let want = reference::norm(&all);
    // The bound of the single-range test: each part gets a third of the workgroups, so the sequential
    // part of the depth triples.
    let depth = 3.0 * all.len() as f64 / (1024.0 * 256.0) + 32.0;
    let bound = (depth / 2.0 + 2.0) * F32_EPS * want;
    assert!(
        (norm as f64 - want).abs() <= bound,
        "norm of 3 parts: got {norm}, want {want}, bound {bound:.3e}"
    );
}

#[test]
fn gradnorm_clips_exactly_when_the_norm_exceeds_max_norm() {
    let grads = random(43, 100_003);
    let norm = reference::norm(&grads);
    // 1e-4 relative is far above the GPU norm's error (≈1e-6 by the bound above), so the GPU sees the
    // same side of max_norm as the f64 reference.
    for (factor, clips) in [(1.0 - 1e-4, true), (1.0 + 1e-4, false)] {
        let max_norm = (norm * factor) as f32;
        let (got_norm, scale) = run(&grads, 0..grads.len(), Some(max_norm));
        if clips {
            // One division, correctly rounded or within 2.5 ulp (Vulkan).
            let want = max_norm / got_norm;
            assert!(
                scale < 1.0 && (scale - want).abs() <= 3.0 * f32::EPSILON * want,
                "norm {got_norm} > max_norm {max_norm}: scale {scale}, want {want}"
            );
            let want_ref = reference::scale(norm, Some(max_norm));
            assert!(
                (scale as f64 - want_ref).abs() < 1e-5,
                "scale {scale} vs {want_ref}"
            );
        } else {
            assert_eq!(scale, 1.0, "norm {got_norm} <= max_norm {max_norm}");
        }
    }
    // A zero gradient has norm 0 and must not divide.
    let (norm, scale) = run(&vec![0.0; 1000], 0..1000, Some(1.0));
    assert_eq!((norm, scale), (0.0, 1.0));
}

#[test]
fn gradnorm_keeps_a_running_sum_that_a_nan_gradient_poisons_for_good() {
    let gpu = gpu();
    let grads = gpu.upload("grads", &[4], &[3.0f32, 4.0, 0.0, 0.0]).unwrap();
    let out = gpu.zeros("gradnorm", &[OUT_LEN]).unwrap();
    let dispatches = gradnorm::norm(gpu, &[(&grads, 0..4)], None, &out).unwrap();
    let sum = |gpu: &wgpt::Gpu| gpu.read::<f32>(&out).unwrap()[NORM_SUM];
    gpu.run_dispatches(&dispatches).unwrap();
    gpu.run_dispatches(&dispatches).unwrap();
    assert_eq!(sum(gpu), 10.0, "two steps of norm 5");
    gpu.write(&grads, &[f32::NAN, 0.0, 0.0, 0.0]).unwrap();
    gpu.run_dispatches(&dispatches).unwrap();
    gpu.write(&grads, &[3.0f32, 4.0, 0.0, 0.0]).unwrap();
    gpu.run_dispatches(&dispatches).unwrap();
    let got: Vec<f32> = gpu.read(&out).unwrap();
    assert_eq!(got[NORM], 5.0, "the last step's norm is finite again");
    assert!(
        !got[NORM_SUM].is_finite(),
        "the sum forgot a NaN step: {}",
        got[NORM_SUM]
    );
}
