//! rmsnorm: forward, backward and gain gradient against `reference::rmsnorm` over layernorm's awkward
//! shapes; the reference's backward against finite differences.

use wgpt::kernels::rmsnorm;
use wgpt::reference::rmsnorm as reference;

use crate::common::{assert_gradient, assert_within, gpu, project, random, F32_EPS};
use crate::layernorm::{activations, add, mean, COLS, EPS, ROWS};

#[test]
fn rmsnorm_matches_reference_for_awkward_shapes() {
    let gpu = gpu();
    for (i, (rows, c)) in ROWS
        .iter()
        .flat_map(|&r| COLS.iter().map(move |&c| (r, c)))
        .enumerate()
    {
        let seed = 1800 + 10 * i as u64;
        let case = format!("{rows}x{c}");
        let x = activations(seed, rows * c);
        let (gain, dy, dgain0) = (
            random(seed + 1, c),
            random(seed + 2, rows * c),
            random(seed + 3, c),
        );
        let up = |name, shape: &[usize], data: &[f32]| gpu.upload(name, shape, data).unwrap();
        let (xt, gt) = (up("x", &[rows, c], &x), up("gain", &[c], &gain));
        let yt = gpu.zeros("y", &[rows, c]).unwrap();
        let rt = gpu.zeros("rstd", &[rows]).unwrap();
        gpu.run_dispatches(&[rmsnorm::forward(gpu, &xt, &gt, &yt, &rt, EPS).unwrap()])
            .unwrap();
        let (y, rstd) = reference::forward(&x, &gain, c, EPS);
        let (u, n) = (F32_EPS, c as f64);
        // mean(x²) is a C-term f32 sum of squares (relative error (C+2)u); rstd gets half of it plus
        // 8u for sqrt and division; y = x·rstd·g adds two roundings.
        let rel = (n + 2.0) * u / 2.0 + 8.0 * u;
        assert_within(
            &format!("rstd {case}"),
            &gpu.read(&rt).unwrap(),
            &rstd,
            |r| rel * rstd[r] as f64,
        );
        assert_within(&format!("y {case}"), &gpu.read(&yt).unwrap(), &y, |i| {
            (rel + 2.0 * u) * y[i].abs() as f64
        });

        // The backward reads the reference's rstd, so only its own rounding counts.
        let rt = up("rstd", &[rows], &rstd);
        let dyt = up("dy", &[rows, c], &dy);
        let dxt = gpu.zeros("dx", &[rows, c]).unwrap();
        let dgt = up("dgain", &[c], &dgain0);
        let dispatches = [
            rmsnorm::backward(gpu, &xt, &gt, &rt, &dyt, &dxt).unwrap(),
            rmsnorm::backward_params(gpu, &xt, &rt, &dyt, &dgt).unwrap(),
        ];
        gpu.run_dispatches(&dispatches).unwrap();
        let (dx, dgain) = reference::backward(&x, &gain, &rstd, &dy, c);
        let xhat = |i: usize| x[i] as f64 * rstd[i / c] as f64;
        // dx = rstd·(g - x̂·mean(g·x̂)): one C-term sum and a few roundings per term, within (C+8)u of
        // the terms' magnitudes.
        let gx: Vec<f32> = (0..rows * c)
            .map(|i| (dy[i] * gain[i % c]).abs() * xhat(i).abs() as f32)
            .collect();
        assert_within(&format!("dx {case}"), &gpu.read(&dxt).unwrap(), &dx, |i| {
            let r = i / c;
            (n + 8.0)
                * u
                * rstd[r] as f64
                * ((dy[i] * gain[i % c]).abs() as f64
                    + xhat(i).abs() * mean(&gx[r * c..(r + 1) * c]))
        });
        // Column sums over rows of terms with ≤ 4 roundings, then one addition into the start value.
        assert_within(
            &format!("dgain {case}"),
            &gpu.read(&dgt).unwrap(),
            &add(&dgain0, &dgain),
            |j| {
                let magnitude: f64 = (0..rows)
                    .map(|r| (dy[r * c + j] as f64 * xhat(r * c + j)).abs())
                    .sum();
                (rows as f64 + 6.0) * u * (magnitude + dgain0[j].abs() as f64)
            },
        );
    }
}

#[test]
fn rmsnorm_reference_backward_matches_finite_differences() {
    let (rows, c) = (3, 7);
    let (x, gain, r) = (activations(1, rows * c), random(2, c), random(3, rows * c));
    let loss = |x: &[f32], g: &[f32]| project(&reference::forward(x, g, c, EPS).0, &r);
    let (_, rstd) = reference::forward(&x, &gain, c, EPS);
    let (dx, dgain) = reference::backward(&x, &gain, &rstd, &r, c);
    // As for layernorm: one row's f32 roundings over 2h ≈ 3e-5 and an O(h²) truncation below 1e-3.
    let (h, tol) = (1e-2, 2e-3);
    assert_gradient("dx", |x| loss(x, &gain), &x, &dx, h, tol);
    assert_gradient("dgain", |g| loss(&x, g), &gain, &dgain, h, tol);
}
