//! gelu: forward and backward against `reference::gelu` (f64), and the reference's backward against
//! finite differences.

use wgpt::kernels::gelu;
use wgpt::reference::gelu as reference;

use crate::common::{assert_gradient, assert_within, gpu, project, random, F32_EPS};

/// Sizes: one element, one vec4, primes, around the 256-wide workgroup in elements and in vec4s, a
/// [97, 768] MLP activation. Multiples of 4 take the vec4 entry points, the rest the scalar ones.
const SIZES: [usize; 8] = [1, 4, 5, 97, 255, 257, 260, 97 * 768];

/// Absolute error allowed in the GPU's tanh. Vulkan specifies tanh through exp ((3 + 2|u|) ulp with
/// |u| ≤ 10 after the clamp), which cancels to an absolute error of about 2⁻¹⁹ around 0 and less
/// elsewhere; 2⁻¹⁷ leaves a factor of four.
const TANH_ERROR: f64 = 1.0 / 131072.0;

/// Inputs spread over [-6, 6): both tails of the tanh and its linear middle.
fn inputs(seed: u64, n: usize) -> Vec<f32> {
    random(seed, n).iter().map(|v| 6.0 * v).collect()
}

fn derivative_terms(x: f64) -> (f64, f64) {
    let u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
    let du = 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * x * x);
    (u.tanh(), du)
}

/// Error bound of the GPU's `y = gelu(x)` against the f64 reference `want`: the tanh error times |x|/2,
/// plus a few roundings of |y| and of the cubic inside u (whose error, times |x|/2·(1 - t²)·|du/dx|-like
/// factors, stays below 8u·|x|).
pub fn forward_bound(x: f32, want: f32) -> f64 {
    let x = x.abs() as f64;
    0.5 * x * TANH_ERROR + 8.0 * F32_EPS * (x + want.abs() as f64)
}

/// Error bound of the GPU's `dx = dy·gelu'(x)`: t's error enters with weight ½ + |x·t·du|; every other
/// term carries a handful of roundings of its own magnitude.
pub fn backward_bound(x: f32, dy: f32) -> f64 {
    let (x, dy) = (x as f64, dy.abs() as f64);
    let (t, du) = derivative_terms(x);
    let magnitude = 0.5 * (1.0 + t.abs()) + 0.5 * x.abs() * (1.0 + t * t) * du;
    dy * (TANH_ERROR * (0.5 + (x * t * du).abs()) + 12.0 * F32_EPS * magnitude)
}

/// The largest |gelu'(x)| (about 1.129, at x ≈ 1.42), rounded up: how much an error in GELU's input
/// can grow through it.
pub const MAX_SLOPE: f64 = 1.13;

#[test]
fn gelu_forward_and_backward_match_reference() {
    let gpu = gpu();
    for (i, &n) in SIZES.iter().enumerate() {
        let x = inputs(1000 + i as u64, n);
        let dy = random(1100 + i as u64, n);
        let xt = gpu.upload("x", &[n], &x).unwrap();
        let dyt = gpu.upload("dy", &[n], &dy).unwrap();
        let yt = gpu.zeros("y", &[n]).unwrap();
        let dxt = gpu.zeros("dx", &[n]).unwrap();
        let dispatches = [
            gelu::forward(gpu, &xt, &yt).unwrap(),
            gelu::backward(gpu, &xt, &dyt, &dxt).unwrap(),
        ];
        gpu.run_dispatches(&dispatches).unwrap();

        let want = reference::forward(&x);
        assert_within(
            &format!("gelu forward {n}"),
            &gpu.read(&yt).unwrap(),
            &want,
            |i| forward_bound(x[i], want[i]),
        );

        let want = reference::backward(&x, &dy);
        assert_within(
            &format!("gelu backward {n}"),
            &gpu.read(&dxt).unwrap(),
            &want,
            |i| backward_bound(x[i], dy[i]),
        );
    }
}

#[test]
fn gelu_reference_backward_matches_finite_differences() {
    let x = inputs(1, 64);
    let r = random(2, 64);
    // Perturbing x[i] changes only y[i], so the other terms of Σ y·r cancel exactly; what remains is
    // y[i]'s f32 rounding (2 · 6·2⁻²⁴ over 2h = 0.02: 4e-5) and the truncation h²/6·|gelu'''| (|gelu'''|
    // < 2: 3e-5). 2e-4 covers both.
    assert_gradient(
        "gelu dx",
        |x| project(&reference::forward(x), &r),
        &x,
        &reference::backward(&x, &r),
        1e-2,
        2e-4,
    );
}
