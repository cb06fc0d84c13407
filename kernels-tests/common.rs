//! What every kernel test shares: the GPU, seeded data, and "compare with the reference, report the worst
//! element".

use std::sync::OnceLock;

use rand::{Rng, SeedableRng};
use wgpt::Gpu;

/// The one GPU of the test binary. Panics (fails the test) when no adapter exists: never a silent skip.
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let gpu = Gpu::new().unwrap_or_else(|e| panic!("kernel tests need a GPU adapter: {e}"));
        eprintln!("kernel tests on {}", gpu.summary());
        gpu
    })
}

/// `len` values uniform in [-1, 1), reproducible from `seed`.
pub fn random(seed: u64, len: usize) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// Unit roundoff of f32.
pub const F32_EPS: f64 = f32::EPSILON as f64 / 2.0;

/// Asserts `|got[i] - want[i]| <= bound[i]` for every element, where each test derives `bound` from an
/// error analysis of its kernel. On failure names the case, the worst element (relative to its bound)
/// and both values. With `WGPT_EXPORT_CASES` set, also writes the case for the browser (`web/`).
pub fn assert_within(case: &str, got: &[f32], want: &[f32], bound: impl Fn(usize) -> f64) {
    assert_eq!(got.len(), want.len(), "{case}: length");
    wgpt::gpu::export::case(case, got, want, &bound);
    let mut worst: Option<(usize, f64)> = None;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w as f64).abs();
        let ratio = if err == 0.0 { 0.0 } else { err / bound(i) };
        let fails = ratio.is_nan() || ratio > 1.0;
        if fails && worst.is_none_or(|(_, r)| ratio > r || ratio.is_nan()) {
            worst = Some((i, ratio));
        }
    }
    if let Some((i, ratio)) = worst {
        panic!(
            "{case}: element {i}: got {}, want {}, error {:.3e} is {ratio:.2}x its bound {:.3e}",
            got[i],
            want[i],
            (got[i] as f64 - want[i] as f64).abs(),
            bound(i)
        );
    }
}

/// Central finite difference of `f` with respect to element `i` of `x`, in f64.
pub fn finite_difference(f: impl Fn(&[f32]) -> f64, x: &[f32], i: usize, h: f32) -> f64 {
    let mut plus = x.to_vec();
    let mut minus = x.to_vec();
    plus[i] += h;
    minus[i] -= h;
    (f(&plus) - f(&minus)) / (plus[i] as f64 - minus[i] as f64)
}

/// Asserts that `analytic` is the gradient of `f` at `x`, element by element, against central finite
/// differences with step `h`, within `tol` absolute.
pub fn assert_gradient(
    case: &str,
    f: impl Fn(&[f32]) -> f64,
    x: &[f32],
    analytic: &[f32],
    h: f32,
    tol: f64,
) {
    assert_eq!(x.len(), analytic.len(), "{case}: gradient length");
    for (i, &g) in analytic.iter().enumerate() {
        let fd = finite_difference(&f, x, i, h);
        assert!(
            (fd - g as f64).abs() <= tol,
            "{case}: element {i}: finite difference {fd}, analytic {g}"
        );
    }
}

/// `Σ y·r`: a scalar loss whose gradient with respect to `y` is `r`, used to check backward passes.
pub fn project(y: &[f32], r: &[f32]) -> f64 {
    y.iter().zip(r).map(|(&a, &b)| a as f64 * b as f64).sum()
}
