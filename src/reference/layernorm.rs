//! `layernorm` on the CPU over rows of `c`: `x, y, dy: [rows, c]`, `gain, bias: [c]`, `mean, rstd:
//! [rows]`. Statistics in f64.

/// What the forward writes.
pub struct Forward {
    pub y: Vec<f32>,
    pub mean: Vec<f32>,
    pub rstd: Vec<f32>,
}

/// `y = (x - mean)·rstd·gain (+ bias)`, `rstd = 1/√(var + eps)`.
pub fn forward(x: &[f32], gain: &[f32], bias: Option<&[f32]>, c: usize, eps: f32) -> Forward {
    let mut out = Forward {
        y: Vec::with_capacity(x.len()),
        mean: Vec::new(),
        rstd: Vec::new(),
    };
    for row in x.chunks(c) {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / c as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / c as f64;
        let rstd = 1.0 / (var + eps as f64).sqrt();
        out.y.extend(row.iter().enumerate().map(|(j, &v)| {
            let b = bias.map_or(0.0, |b| b[j] as f64);
            ((v as f64 - mean) * rstd * gain[j] as f64 + b) as f32
        }));
        out.mean.push(mean as f32);
        out.rstd.push(rstd as f32);
    }
    out
}

/// What the backward produces: `dx` (written) and the increments of `dgain` and `dbias` (added).
pub struct Backward {
    pub dx: Vec<f32>,
    pub dgain: Vec<f32>,
    pub dbias: Vec<f32>,
}

/// `dx = rstd·(g - mean(g) - x̂·mean(g·x̂))` with `g = dy·gain`, `x̂ = (x - mean)·rstd`;
/// `dgain = Σ_rows dy·x̂`, `dbias = Σ_rows dy`.
pub fn backward(
    x: &[f32],
    gain: &[f32],
    mean: &[f32],
    rstd: &[f32],
    dy: &[f32],
    c: usize,
) -> Backward {
    let mut dx = Vec::with_capacity(x.len());
    let mut dgain = vec![0.0f64; c];
    let mut dbias = vec![0.0f64; c];
    for (r, (row, dyr)) in x.chunks(c).zip(dy.chunks(c)).enumerate() {
        let (m, s) = (mean[r] as f64, rstd[r] as f64);
        let xhat: Vec<f64> = row.iter().map(|&v| (v as f64 - m) * s).collect();
        let g: Vec<f64> = (0..c).map(|j| dyr[j] as f64 * gain[j] as f64).collect();
        let mean_g = g.iter().sum::<f64>() / c as f64;
        let mean_gx = g.iter().zip(&xhat).map(|(g, x)| g * x).sum::<f64>() / c as f64;
        dx.extend((0..c).map(|j| (s * (g[j] - mean_g - xhat[j] * mean_gx)) as f32));
        for j in 0..c {
            dgain[j] += dyr[j] as f64 * xhat[j];
            dbias[j] += dyr[j] as f64;
        }
    }
    let f32s = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect();
    Backward {
        dx,
        dgain: f32s(dgain),
        dbias: f32s(dbias),
    }
}
