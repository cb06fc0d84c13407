//! residual: `y = a + b` and `acc += x` equal the CPU's f32 sums.

use wgpt::kernels::residual;
use wgpt::reference::residual as reference;

use crate::common::{assert_within, gpu, random};

/// Sizes: one element, one vec4, primes, around the 256-wide workgroup in elements and in vec4s, a
/// C = 768 activation of 97 rows. Multiples of 4 take the vec4 entry points, the rest the scalar ones.
const SIZES: [usize; 8] = [1, 4, 5, 97, 255, 257, 260, 97 * 768];

// Both sides do one correctly rounded f32 addition per element (IEEE, required of Vulkan and GLES
// highp for +), so the results are identical: the bound is zero.

#[test]
fn residual_forward_equals_the_f32_sum() {
    let gpu = gpu();
    for (i, &n) in SIZES.iter().enumerate() {
        let (a, b) = (random(600 + i as u64, n), random(700 + i as u64, n));
        let at = gpu.upload("a", &[n], &a).unwrap();
        let bt = gpu.upload("b", &[n], &b).unwrap();
        let yt = gpu.zeros("y", &[n]).unwrap();
        gpu.run_dispatches(&[residual::forward(gpu, &at, &bt, &yt).unwrap()])
            .unwrap();
        let want = reference::forward(&a, &b);
        assert_within(
            &format!("a + b, {n}"),
            &gpu.read(&yt).unwrap(),
            &want,
            |_| 0.0,
        );
    }
}

#[test]
fn residual_accumulate_adds_into_the_accumulator() {
    let gpu = gpu();
    for (i, &n) in SIZES.iter().enumerate() {
        let (x, acc) = (random(800 + i as u64, n), random(900 + i as u64, n));
        let xt = gpu.upload("x", &[n], &x).unwrap();
        let acct = gpu.upload("acc", &[n], &acc).unwrap();
        gpu.run_dispatches(&[residual::accumulate(gpu, &xt, &acct).unwrap()])
            .unwrap();
        let want = reference::forward(&acc, &x);
        assert_within(
            &format!("acc += x, {n}"),
            &gpu.read(&acct).unwrap(),
            &want,
            |_| 0.0,
        );
    }
}
