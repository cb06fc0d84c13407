//! dropout: the GPU mask equals `reference::random`'s bit for bit, follows the state tensor without a
//! rebuild, keeps 1 - p of a large tensor, and the reference's backward matches finite differences.

use wgpt::kernels::dropout;
use wgpt::reference::dropout as reference;

use crate::common::{assert_gradient, assert_within, gpu, project, random};

/// Inputs in [1, 3): never zero, so a zero output means exactly "dropped".
fn inputs(seed: u64, n: usize) -> Vec<f32> {
    random(seed, n).iter().map(|v| v + 2.0).collect()
}

// Kept elements are x·scale with the same f32 scale on both sides, one correctly rounded product:
// bound zero, which also makes the masks equal.

#[test]
fn dropout_mask_equals_reference_mask_exactly_and_follows_the_state_tensor() {
    let gpu = gpu();
    let site = 3;
    for (i, &(n, p)) in [(1, 0.5), (4, 0.5), (97, 0.1), (257, 0.9), (97 * 768, 0.1)]
        .iter()
        .enumerate()
    {
        let x = inputs(1200 + i as u64, n);
        let xt = gpu.upload("x", &[n], &x).unwrap();
        let yt = gpu.zeros("y", &[n]).unwrap();
        let dxt = gpu.zeros("dx", &[n]).unwrap();
        let state = gpu.upload("state", &[3], &[7u32, 0, 0]).unwrap();
        let dispatches = [
            dropout::forward(gpu, &xt, &state, site, p, &yt).unwrap(),
            dropout::backward(gpu, &xt, &state, site, p, &dxt).unwrap(),
        ];
        // The same dispatches at later steps, another seed and another micro-batch: only the state
        // tensor changes.
        for state_now in [[7, 0, 0], [7, 1, 0], [8, 1, 0], [8, 1, 3]] {
            gpu.write(&state, &state_now).unwrap();
            gpu.run_dispatches(&dispatches).unwrap();
            let case = format!("n={n} p={p} state={state_now:?}");
            let want = reference::forward(&x, state_now, site, p);
            assert_within(
                &format!("forward {case}"),
                &gpu.read(&yt).unwrap(),
                &want,
                |_| 0.0,
            );
            let want = reference::backward(&x, state_now, site, p);
            assert_within(
                &format!("backward {case}"),
                &gpu.read(&dxt).unwrap(),
                &want,
                |_| 0.0,
            );
        }
    }
}

#[test]
fn dropout_keeps_one_minus_p_within_three_sigma() {
    let gpu = gpu();
    let n = 1 << 20;
    let xt = gpu.upload("x", &[n], &vec![1.0f32; n]).unwrap();
    let yt = gpu.zeros("y", &[n]).unwrap();
    let state = gpu.upload("state", &[3], &[1234u32, 99, 0]).unwrap();
    for p in [0.1f32, 0.5, 0.9] {
        gpu.run_dispatches(&[dropout::forward(gpu, &xt, &state, 0, p, &yt).unwrap()])
            .unwrap();
        let y: Vec<f32> = gpu.read(&yt).unwrap();
        let kept = y.iter().filter(|&&v| v != 0.0).count() as f64 / n as f64;
        // Each element is kept independently with probability 1 - p: the fraction's σ is √(p(1-p)/n).
        let sigma = (p as f64 * (1.0 - p as f64) / n as f64).sqrt();
        let expected = 1.0 - p as f64;
        assert!(
            (kept - expected).abs() <= 3.0 * sigma,
            "p={p}: kept {kept}, expected {expected} ± {}",
            3.0 * sigma
        );
    }
}

#[test]
fn dropout_with_p_zero_is_a_copy_and_p_one_is_refused() {
    let gpu = gpu();
    let x = random(1300, 257);
    let xt = gpu.upload("x", &[257], &x).unwrap();
    let yt = gpu.zeros("y", &[257]).unwrap();
    let state = gpu.upload("state", &[3], &[1u32, 2, 0]).unwrap();
    assert!(dropout::is_identity(0.0));
    gpu.run_dispatches(&[dropout::forward(gpu, &xt, &state, 0, 0.0, &yt).unwrap()])
        .unwrap();
    assert_within("p = 0", &gpu.read(&yt).unwrap(), &x, |_| 0.0);
    for p in [1.0, -0.1, f32::NAN] {
        assert!(
            dropout::forward(gpu, &xt, &state, 0, p, &yt).is_err(),
            "p = {p}"
        );
    }
}

#[test]
fn dropout_reference_backward_matches_finite_differences() {
    let x = random(1, 64);
    let r = random(2, 64);
    let (state, site, p) = ([5, 6, 0], 7, 0.3);
    // Linear in x for a fixed mask: the differences are exact up to y[i]'s rounding (2⁻²⁴·|x|/(1-p))
    // over 2h = 0.02, below 1e-5.
    assert_gradient(
        "dropout dx",
        |x| project(&reference::forward(x, state, site, p), &r),
        &x,
        &reference::backward(&r, state, site, p),
        1e-2,
        1e-5,
    );
}
