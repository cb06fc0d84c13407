//! `rmsnorm` on the CPU over rows of `c`: `x, y, dy: [rows, c]`, `gain: [c]`, `rstd: [rows]`.
//! Statistics in f64.

/// `(y, rstd)`: `y = x·rstd·gain`, `rstd = 1/√(mean(x²) + eps)`.
pub fn forward(x: &[f32], gain: &[f32], c: usize, eps: f32) -> (Vec<f32>, Vec<f32>) {
    let mut y = Vec::with_capacity(x.len());
    let mut rstds = Vec::new();
    for row in x.chunks(c) {
        let ms = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / c as f64;
        let rstd = 1.0 / (ms + eps as f64).sqrt();
        y.extend(
            row.iter()
                .zip(gain)
                .map(|(&v, &g)| (v as f64 * rstd * g as f64) as f32),
        );
        rstds.push(rstd as f32);
    }
    (y, rstds)
}

/// `(dx, dgain)`: `dx = rstd·(g - x̂·mean(g·x̂))` with `g = dy·gain`, `x̂ = x·rstd` (written);
/// `dgain = Σ_rows dy·x̂` (the increment the kernel adds).
pub fn backward(
    x: &[f32],
    gain: &[f32],
    rstd: &[f32],
    dy: &[f32],
    c: usize,
) -> (Vec<f32>, Vec<f32>) {
    let mut dx = Vec::with_capacity(x.len());
    let mut dgain = vec![0.0f64; c];
    for (r, (row, dyr)) in x.chunks(c).zip(dy.chunks(c)).enumerate() {
        let s = rstd[r] as f64;
        let xhat: Vec<f64> = row.iter().map(|&v| v as f64 * s).collect();
        let g: Vec<f64> = (0..c).map(|j| dyr[j] as f64 * gain[j] as f64).collect();
        let mean_gx = g.iter().zip(&xhat).map(|(g, x)| g * x).sum::<f64>() / c as f64;
        dx.extend((0..c).map(|j| (s * (g[j] - xhat[j] * mean_gx)) as f32));
        for j in 0..c {
            dgain[j] += dyr[j] as f64 * xhat[j];
        }
    }
    (dx, dgain.into_iter().map(|v| v as f32).collect())
}
