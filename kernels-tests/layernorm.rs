//! layernorm: forward, backward and parameter gradients against `reference::layernorm` over awkward
//! shapes, with and without a bias; the reference's backward against finite differences.

use wgpt::kernels::layernorm::{self, Variant};
use wgpt::reference::layernorm as reference;

use crate::common::{assert_gradient, assert_within, gpu, project, random, F32_EPS};

/// Row counts (one, a few, a prime) and widths (primes, a power of two, GPT-2's 768): none is a
/// multiple of every workgroup size. Widths that are multiples of 4 take the vec4 entry points, the
/// primes the scalar ones.
pub const ROWS: [usize; 3] = [1, 5, 97];
pub const COLS: [usize; 4] = [65, 97, 128, 768];
pub const EPS: f32 = 1e-5;

/// Activations with a mean offset, so the mean subtraction matters.
pub fn activations(seed: u64, n: usize) -> Vec<f32> {
    random(seed, n).iter().map(|v| v + 0.5).collect()
}

pub fn add(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(a, b)| a + b).collect()
}

pub fn mean(v: &[f32]) -> f64 {
    v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64
}

#[test]
fn layernorm_matches_reference_for_awkward_shapes() {
    let gpu = gpu();
    for (i, (rows, c)) in ROWS
        .iter()
        .flat_map(|&r| COLS.iter().map(move |&c| (r, c)))
        .enumerate()
    {
        let seed = 1700 + 10 * i as u64;
        let x = activations(seed, rows * c);
        let (gain, bias, dy) = (
            random(seed + 1, c),
            random(seed + 2, c),
            random(seed + 3, rows * c),
        );
        let (dgain0, dbias0) = (random(seed + 4, c), random(seed + 5, c));
        let u = F32_EPS;
        let n = c as f64;
        for (variant, with_bias) in Variant::ALL
            .into_iter()
            .flat_map(|v| [(v, true), (v, false)])
        {
            let case = format!("{} {rows}x{c} bias={with_bias}", variant.name());
            let bias = with_bias.then_some(&bias[..]);
            let want = reference::forward(&x, &gain, bias, c, EPS);
            let up = |name, shape: &[usize], data: &[f32]| gpu.upload(name, shape, data).unwrap();
            let (xt, gt, bt) = (
                up("x", &[rows, c], &x),
                up("g", &[c], &gain),
                up("b", &[c], bias.unwrap_or(&gain)),
            );
            let yt = gpu.zeros("y", &[rows, c]).unwrap();
            let (mt, rt) = (
                gpu.zeros("mean", &[rows]).unwrap(),
                gpu.zeros("rstd", &[rows]).unwrap(),
            );
            let forward = layernorm::forward(
                gpu,
                variant,
                &xt,
                &gt,
                bias.map(|_| &bt),
                &yt,
                &mt,
                &rt,
                EPS,
            )
            .unwrap();
            gpu.run_dispatches(&[forward]).unwrap();

            // Forward error analysis per row (A = mean|x|, D = mean|x - mean|). Workgroup (two passes):
            // the mean is a C-term f32 sum, off by at most δm = (C+1)u·A; the variance by
            // (C+3)u·var + 2δm·D. Invocation (one pass over d = x - k, k = the row's first element):
            // the mean is k + a C-term sum of d, off by δm = (C+1)u·mean|d| + u·A; the variance is
            // mean(d²) - (m - k)², off by (C+4)u·(var + (m - k)²) + 2δm·(D + |m - k|), as mean(d²) =
            // var + (m - k)². Either moves rstd by half the variance's relative error, plus 8u for
            // sqrt and division. y = x̂·g + b then carries |g|·(rstd·δm + |x̂|·(rel + u)) and three
            // roundings of |x̂·g| + |b|.
            let row_bounds: Vec<(f64, f64)> = x
                .chunks(c)
                .map(|row| {
                    let m = mean(row);
                    let a = row.iter().map(|v| v.abs() as f64).sum::<f64>() / n;
                    let d = row.iter().map(|&v| (v as f64 - m).abs()).sum::<f64>() / n;
                    let var = row.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / n;
                    let (dm, var_error) = match variant {
                        Variant::Workgroup => {
                            let dm = (n + 1.0) * u * a;
                            (dm, (n + 3.0) * u * var + 2.0 * dm * d)
                        }
                        Variant::Invocation => {
                            let k = row[0] as f64;
                            let dk = row.iter().map(|&v| (v as f64 - k).abs()).sum::<f64>() / n;
                            let dm = (n + 1.0) * u * dk + u * a;
                            let s = (m - k).abs();
                            (dm, (n + 4.0) * u * (var + s * s) + 2.0 * dm * (d + s))
                        }
                    };
                    (dm, var_error / (2.0 * (var + EPS as f64)) + 8.0 * u)
                })
                .collect();
            let xhat = |i: usize| (x[i] as f64 - want.mean[i / c] as f64) * want.rstd[i / c] as f64;
            assert_within(
                &format!("y {case}"),
                &gpu.read(&yt).unwrap(),
                &want.y,
                |i| {
                    let (dm, rel) = row_bounds[i / c];
                    let (g, b) = (
                        gain[i % c].abs() as f64,
                        bias.map_or(0.0, |b| b[i % c].abs() as f64),
                    );
                    g * (want.rstd[i / c] as f64 * dm + xhat(i).abs() * (rel + u))
                        + 3.0 * u * (xhat(i).abs() * g + b)
                },
            );
            assert_within(
                &format!("mean {case}"),
                &gpu.read(&mt).unwrap(),
                &want.mean,
                |r| row_bounds[r].0,
            );
            assert_within(
                &format!("rstd {case}"),
                &gpu.read(&rt).unwrap(),
                &want.rstd,
                |r| row_bounds[r].1 * want.rstd[r] as f64,
            );

            // The backward reads the reference's mean and rstd, so only its own rounding counts.
            let (mt, rt) = (
                up("mean", &[rows], &want.mean),
                up("rstd", &[rows], &want.rstd),
            );
            let dyt = up("dy", &[rows, c], &dy);
            let dxt = gpu.zeros("dx", &[rows, c]).unwrap();
            let (dgt, dbt) = (up("dgain", &[c], &dgain0), up("dbias", &[c], &dbias0));
            let dispatches = [
                layernorm::backward(gpu, variant, &xt, &gt, &mt, &rt, &dyt, &dxt).unwrap(),
                layernorm::backward_params(gpu, &xt, &mt, &rt, &dyt, &dgt, bias.map(|_| &dbt))
                    .unwrap(),
            ];
            gpu.run_dispatches(&dispatches).unwrap();
            let back = reference::backward(&x, &gain, &want.mean, &want.rstd, &dy, c);

            // dx = rstd·(g - mean(g) - x̂·mean(g·x̂)): two C-term sums and a few roundings per term,
            // all within (C+8)u of the terms' magnitudes.
            let g: Vec<f32> = (0..rows * c).map(|i| (dy[i] * gain[i % c]).abs()).collect();
            let gx: Vec<f32> = (0..rows * c).map(|i| g[i] * xhat(i).abs() as f32).collect();
            assert_within(
                &format!("dx {case}"),
                &gpu.read(&dxt).unwrap(),
                &back.dx,
                |i| {
                    let r = i / c;
                    let row = r * c..(r + 1) * c;
                    (n + 8.0)
                        * u
                        * want.rstd[r] as f64
                        * (g[i] as f64 + mean(&g[row.clone()]) + xhat(i).abs() * mean(&gx[row]))
                },
            );

            // Column sums over the rows of terms that carry ≤ 4 roundings (x̂ and the product), then
            // one addition into the start value.
            let mag_gain: Vec<f64> = (0..c)
                .map(|j| {
                    (0..rows)
                        .map(|r| (dy[r * c + j] as f64 * xhat(r * c + j)).abs())
                        .sum()
                })
                .collect();
            let want_gain = add(&dgain0, &back.dgain);
            assert_within(
                &format!("dgain {case}"),
                &gpu.read(&dgt).unwrap(),
                &want_gain,
                |j| (rows as f64 + 6.0) * u * (mag_gain[j] + dgain0[j].abs() as f64),
            );
            let want_bias = if with_bias {
                add(&dbias0, &back.dbias)
            } else {
                dbias0.clone()
            };
            let mag_bias: Vec<f64> = (0..c)
                .map(|j| (0..rows).map(|r| dy[r * c + j].abs() as f64).sum())
                .collect();
            assert_within(
                &format!("dbias {case}"),
                &gpu.read(&dbt).unwrap(),
                &want_bias,
                |j| (rows as f64 + 1.0) * u * (mag_bias[j] + dbias0[j].abs() as f64),
            );
        }
    }
}

#[test]
fn layernorm_reference_backward_matches_finite_differences() {
    let (rows, c) = (3, 7);
    let (x, gain, bias, r) = (
        activations(1, rows * c),
        random(2, c),
        random(3, c),
        random(4, rows * c),
    );
    let loss =
        |x: &[f32], g: &[f32], b: &[f32]| project(&reference::forward(x, g, Some(b), c, EPS).y, &r);
    let f = reference::forward(&x, &gain, Some(&bias), c, EPS);
    let back = reference::backward(&x, &gain, &f.mean, &f.rstd, &r, c);
    // h = 1e-2: perturbing one input changes at most one row (C = 7 outputs, each rounded to f32 with
    // |y| ≲ 4: 7·2·4·2⁻²⁴/2h ≈ 3e-5), and the truncation h²/6·|L'''| with |L'''| ≲ C·rstd³ ≈ 40
    // is ≈ 7e-4. 2e-3 covers both.
    let (h, tol) = (1e-2, 2e-3);
    assert_gradient("dx", |x| loss(x, &gain, &bias), &x, &back.dx, h, tol);
    assert_gradient("dgain", |g| loss(&x, g, &bias), &gain, &back.dgain, h, tol);
    assert_gradient("dbias", |b| loss(&x, &gain, b), &bias, &back.dbias, h, tol);
}
