//! matvec: both products for every weight dtype against `reference::matvec` (which reads the same packed
//! weights), the 16-bit values read exactly as `Dtype::unpack` gives them, and the error of 16-bit
//! weights against the f32 ones they were rounded from.

use wgpt::dtype::Dtype;
use wgpt::kernels::matvec::{self, Epilogue, Layout, Weights, MAX_ROWS};
use wgpt::kernels::{gelu, residual};
use wgpt::reference::copy::interleave;
use wgpt::reference::gelu as gelu_reference;
use wgpt::reference::matvec as reference;
use wgpt::{Dispatch, Gpu, Tensor};

use crate::common::{assert_within, gpu, random, F32_EPS};
use crate::gelu::forward_bound;

/// (M, K, N) of `forward` and (M, C, V) of `transposed`: one element; K = 1; inner dimensions that are
/// not multiples of 4 (the value-by-value entry points); columns that are multiples of 4 but not of 8
/// (f32 reads vec4s, 16 bits value by value) or of 16 (an invocation's 16 columns reach past N); odd
/// columns; M = 1, 2, 3, 5 and 8; GPT-2's 50257-token vocabulary; a decode step's MLP shapes (on a CPU
/// adapter the MLP out splits K in 4 pieces); and K split in two unequal pieces
/// (772 and 768 rows), for 8 rows and, small enough for the browser test's cases, for 2.
const SHAPES: [(usize, usize, usize); 14] = [
    (1, 1, 1),
    (1, 1, 24),
    (3, 5, 7),
    (1, 97, 65),
    (8, 64, 20),
    (5, 24, 40),
    (1, 8, 12),
    (3, 13, 48),
    (8, 3, 50257),
    (1, 64, 50257),
    (2, 768, 3072),
    (1, 3072, 768),
    (8, 1540, 40),
    (2, 1540, 8),
];

/// Error bound for one element of a K-term dot product in f32 whose products are exact in f64 (the
/// weights are the same values on both sides): summed in any order, `γ_K · Σ|x_i w_i|` with
/// γ_K ≈ K·u (u = 2⁻²⁴), plus one rounding for the bias. `magnitude` is `Σ|x_i w_i| + |b|`, the
/// reference on absolute values.
fn dot_bound(k: usize, magnitude: f32) -> f64 {
    (k as f64 + 2.0) * F32_EPS * magnitude as f64 + f64::MIN_POSITIVE
}

/// `matvec::forward` with the partial-sums scratch it asks for.
fn forward(gpu: &Gpu, x: &Tensor, w: Weights, b: Option<&Tensor>, y: &Tensor) -> Vec<Dispatch> {
    let m = x.len() / w.rows;
    let part = gpu
        .zeros("part", &[matvec::part_len(gpu, m, &w).max(1)])
        .unwrap();
    matvec::forward(gpu, x, w, b, y, &part).unwrap()
}

fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

fn pack(gpu: &Gpu, dtype: Dtype, values: &[f32]) -> (Vec<u32>, Tensor) {
    let words = dtype.pack(values);
    let tensor = gpu.upload("weights", &[words.len()], &words).unwrap();
    (words, tensor)
}

#[test]
fn matvec_forward_matches_reference_for_every_dtype_and_awkward_shape() {
    let gpu = gpu();
    for dtype in Dtype::ALL {
        for (i, &(m, k, n)) in SHAPES.iter().enumerate() {
            let seed = 300 + i as u64;
            let (x, w, b) = (
                random(seed, m * k),
                random(seed + 1, k * n),
                random(seed + 2, n),
            );
            let (words, wt) = pack(gpu, dtype, &w);
            let weights = Weights::packed(&wt, dtype, k, n).unwrap();
            let xt = gpu.upload("x", &[m, k], &x).unwrap();
            let bt = gpu.upload("b", &[n], &b).unwrap();
            // y starts non-zero: the kernel must write it, not add into it.
            let yt = gpu.upload("y", &[m, n], &random(seed + 3, m * n)).unwrap();
            let abs_words = dtype.pack(&abs(&dtype.round(&w)));
            for bias in [false, true] {
                let d = forward(gpu, &xt, weights, bias.then_some(&bt), &yt);
                gpu.run_dispatches(&d).unwrap();
                let want = reference::forward(&x, &words, dtype, bias.then_some(&b), m, k, n);
                let abs_b = abs(&b);
                let magnitude = reference::forward(
                    &abs(&x),
                    &abs_words,
                    dtype,
                    bias.then_some(&abs_b),
                    m,
                    k,
                    n,
                );
                assert_within(
                    &format!("forward {} {m}x{k}x{n} bias={bias}", dtype.name()),
                    &gpu.read(&yt).unwrap(),
                    &want,
                    |i| dot_bound(k, magnitude[i]),
                );
            }
        }
    }
}

/// In both layouts, the interleaved one for every shape whose rows are whole vec4s of words (laid out
/// by the reference: partial groups of 8 rows, and up to 8 rows of x, which CPU adapters read through
/// the subgroup entry point, whose lanes past V read the last group).
#[test]
fn matvec_transposed_matches_reference_and_writes_only_its_columns() {
    let gpu = gpu();
    let mut interleaved = 0;
    for dtype in Dtype::ALL {
        for (i, &(m, c, v)) in SHAPES.iter().enumerate() {
            let seed = 400 + i as u64;
            let (x, e, b) = (
                random(seed, m * c),
                random(seed + 1, v * c),
                random(seed + 2, v),
            );
            let words = dtype.pack(&e);
            let xt = gpu.upload("x", &[m, c], &x).unwrap();
            let bt = gpu.upload("b", &[v], &b).unwrap();
            let abs_words = dtype.pack(&abs(&dtype.round(&e)));
            let abs_b = abs(&b);
            for layout in [Layout::Rows, Layout::Interleaved] {
                let stored = match layout {
                    Layout::Rows => e.clone(),
                    Layout::Interleaved if c % (4 * dtype.per_word()) == 0 => {
                        interleaved += 1;
                        interleave(&e, v, c, 4 * dtype.per_word())
                    }
                    Layout::Interleaved => continue,
                };
                let (_, et) = pack(gpu, dtype, &stored);
                let weights = Weights::packed(&et, dtype, v, c).unwrap();
                let weights = weights.laid_out(layout).unwrap();
                for bias in [false, true] {
                    // The product goes into columns first .. first + V of wider rows whose other
                    // columns must keep their values.
                    let (first, width) = (3, v + 5);
                    let y0 = random(seed + 3, m * width);
                    let yt = gpu.upload("y", &[m, width], &y0).unwrap();
                    let bias_t = bias.then_some(&bt);
                    let none = Epilogue::None;
                    let d = matvec::transposed(gpu, &xt, weights, bias_t, none, &yt, first);
                    gpu.run_dispatches(&[d.unwrap()]).unwrap();
                    let b = bias.then_some(&b[..]);
                    let product = reference::transposed(&x, &words, dtype, b, m, c, v);
                    let abs_b = bias.then_some(&abs_b[..]);
                    let magnitude =
                        reference::transposed(&abs(&x), &abs_words, dtype, abs_b, m, c, v);
                    let (mut want, mut bound) = (y0.clone(), vec![0.0; m * width]);
                    for r in 0..m {
                        for j in 0..v {
                            want[r * width + first + j] = product[r * v + j];
                            bound[r * width + first + j] = dot_bound(c, magnitude[r * v + j]);
                        }
                    }
                    // Outside the block the bound is 0: untouched, bit for bit.
                    let case = format!(
                        "transposed {} {layout:?} {m}x{c}x{v} bias={bias} at {first} of {width}",
                        dtype.name()
                    );
                    assert_within(&case, &gpu.read(&yt).unwrap(), &want, |i| bound[i]);
                }
            }
        }
    }
    assert!(interleaved >= 20, "{interleaved} interleaved cases");
}

/// Equal values, infinities included (which `assert_within`'s differences cannot compare).
fn assert_same(case: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{case}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g == w, "{case}: element {i}: got {g}, want {w}");
    }
}

#[test]
fn matvec_reads_16_bit_values_exactly_as_dtype_unpacks_them() {
    // With x = [1, 0, .., 0] (8 wide) and the values in row 0 of W (forward) or column 0 of E
    // (transposed), zeros elsewhere, y is the values themselves, exactly: one product by 1, then
    // zeros added. Odd lengths (the last word's padding) and 48 (the vec4 entry points, whose rows
    // are whole vec4s of words); signed values, ±∞, the largest finite f16 and f16 subnormals (normal
    // in f32). bf16 subnormals are f32 subnormals, which a GPU may flush to zero: bf16 gets normal
    // values only.
    let gpu = gpu();
    let ramp = random(7, 48);
    let special = [
        f32::INFINITY,
        f32::NEG_INFINITY,
        65504.0,
        -3.0e-6,
        6.0e-8,
        1.0e-30,
    ];
    let mut one = vec![0.0f32; 8];
    one[0] = 1.0;
    let x = gpu.upload("x", &[1, 8], &one).unwrap();
    for dtype in Dtype::ALL {
        for len in [1, 2, 37, 43, 48] {
            let mut values: Vec<f32> = special
                .iter()
                .copied()
                .filter(|s| dtype != Dtype::Bf16 || s.abs() > 1e-20)
                .collect();
            values.extend(&ramp);
            values.truncate(len);
            let want = dtype.round(&values);
            let y = gpu.zeros("y", &[1, len]).unwrap();
            let case = format!("{len} values of {}", dtype.name());

            let mut w = values.clone();
            w.resize(8 * len, 0.0);
            let (_, wt) = pack(gpu, dtype, &w);
            let weights = Weights::packed(&wt, dtype, 8, len).unwrap();
            gpu.run_dispatches(&forward(gpu, &x, weights, None, &y))
                .unwrap();
            assert_same(&format!("forward, {case}"), &gpu.read(&y).unwrap(), &want);

            let mut e = vec![0.0f32; 8 * len];
            for (row, &v) in values.iter().enumerate() {
                e[8 * row] = v;
            }
            let (_, et) = pack(gpu, dtype, &e);
            let transposed = Weights::packed(&et, dtype, len, 8).unwrap();
            gpu.run_dispatches(&[matvec::transposed(
                gpu,
                &x,
                transposed,
                None,
                Epilogue::None,
                &y,
                0,
            )
            .unwrap()])
                .unwrap();
            assert_same(
                &format!("transposed, {case}"),
                &gpu.read(&y).unwrap(),
                &want,
            );
        }
    }
}

#[test]
fn matvec_16_bit_weights_stay_within_their_rounding_of_the_f32_product() {
    // Against the f64 product with the f32 weights before rounding: each weight moved by at most
    // half an ulp of its format, relative 2⁻¹¹ for f16 (plus 2⁻²⁵ absolute below its normal range,
    // 6.1e-5) and 2⁻⁸ for bf16, so the sum moves by at most that times Σ|x_i w_i| (+ 2⁻²⁵ Σ|x_i|),
    // on top of the f32 accumulation bound. At GPT-2's width (768) with weights in [-1, 1) that is
    // about 5e-4 · Σ|x w| for f16 and 4e-3 · Σ|x w| for bf16.
    let gpu = gpu();
    let (m, k, n) = (2, 768, 768);
    let (x, w) = (random(500, m * k), random(501, k * n));
    let exact = wgpt::reference::matmul::forward(&x, &w, None, m, k, n);
    let magnitude = wgpt::reference::matmul::forward(&abs(&x), &abs(&w), None, m, k, n);
    let x_sum: Vec<f32> = x
        .chunks(k)
        .map(|r| r.iter().map(|v| v.abs()).sum())
        .collect();
    let xt = gpu.upload("x", &[m, k], &x).unwrap();
    let yt = gpu.zeros("y", &[m, n]).unwrap();
    for (dtype, u, floor) in [
        (Dtype::F16, 2f64.powi(-11), 2f64.powi(-25)),
        (Dtype::Bf16, 2f64.powi(-8), 0.0),
    ] {
        let (_, wt) = pack(gpu, dtype, &w);
        let weights = Weights::packed(&wt, dtype, k, n).unwrap();
        gpu.run_dispatches(&forward(gpu, &xt, weights, None, &yt))
            .unwrap();
        assert_within(
            &format!("{} weights against f32", dtype.name()),
            &gpu.read(&yt).unwrap(),
            &exact,
            |i| {
                let mag = magnitude[i] as f64;
                (u + (k as f64 + 2.0) * F32_EPS) * mag * (1.0 + u) + floor * x_sum[i / n] as f64
            },
        );
    }
}

#[test]
fn matvec_refuses_too_many_rows_and_shapes_that_do_not_fit() {
    let gpu = gpu();
    let w = gpu.zeros("w", &[4, 8]).unwrap();
    let weights = Weights::f32(&w).unwrap();
    let rows = MAX_ROWS + 1;
    // Scratch enough for every case below, so each fails for its own reason.
    let part = gpu
        .zeros("part", &[matvec::part_len(gpu, rows, &weights).max(1)])
        .unwrap();
    let x = gpu.zeros("x", &[rows, 4]).unwrap();
    let y = gpu.zeros("y", &[rows, 8]).unwrap();
    assert!(matvec::forward(gpu, &x, weights, None, &y, &part).is_err());
    let x = gpu.zeros("x", &[2, 5]).unwrap();
    let y = gpu.zeros("y", &[2, 8]).unwrap();
    assert!(matvec::forward(gpu, &x, weights, None, &y, &part).is_err());
    let x = gpu.zeros("x", &[2, 4]).unwrap();
    let y = gpu.zeros("y", &[3, 8]).unwrap();
    assert!(matvec::forward(gpu, &x, weights, None, &y, &part).is_err());
    // On a CPU adapter a product of 1536 rows of W and one workgroup of columns splits K in two, whose
    // partial sums (2 pieces of 2 rows of 8 columns) the scratch must hold.
    let tall = gpu.zeros("w", &[1536, 8]).unwrap();
    let tall = Weights::f32(&tall).unwrap();
    let (x, y) = (
        gpu.zeros("x", &[2, 1536]).unwrap(),
        gpu.zeros("y", &[2, 8]).unwrap(),
    );
    let needed = matvec::part_len(gpu, 2, &tall);
    assert_eq!(needed, if gpu.is_cpu() { 32 } else { 0 });
    if needed > 0 {
        let short = gpu.zeros("part", &[needed - 1]).unwrap();
        assert!(matvec::forward(gpu, &x, tall, None, &y, &short).is_err());
    }
    let part = gpu.zeros("part", &[needed.max(1)]).unwrap();
    assert!(matvec::forward(gpu, &x, tall, None, &y, &part).is_ok());
    // Transposed: the 4 rows of w as columns 5..9 of 8-wide rows do not fit.
    let x = gpu.zeros("x", &[2, 8]).unwrap();
    let y = gpu.zeros("y", &[2, 8]).unwrap();
    let none = Epilogue::None;
    assert!(matvec::transposed(gpu, &x, weights, None, none, &y, 5).is_err());
    assert!(matvec::transposed(gpu, &x, weights, None, none, &y, 4).is_ok());
    // A bias of one value per weight row; an epilogue's tensor shaped as y.
    let bias = gpu.zeros("bias", &[3]).unwrap();
    assert!(matvec::transposed(gpu, &x, weights, Some(&bias), none, &y, 4).is_err());
    let short = gpu.zeros("pre", &[2, 4]).unwrap();
    let gelu = Epilogue::Gelu { pre: &short };
    assert!(matvec::transposed(gpu, &x, weights, None, gelu, &y, 4).is_err());
    // Packed weights must be exactly their words: 7 f16 values are 4 words.
    let packed = gpu.zeros("packed", &[3]).unwrap();
    assert!(Weights::packed(&packed, Dtype::F16, 1, 7).is_err());
    let packed = gpu.zeros("packed", &[4]).unwrap();
    assert!(Weights::packed(&packed, Dtype::F16, 1, 7).is_ok());
    // Interleaved rows are whole vec4s of words (8 values of 16 bits), and only the transposed
    // product reads them.
    let packed = Weights::packed(&packed, Dtype::F16, 2, 4).unwrap();
    assert!(packed.laid_out(Layout::Interleaved).is_err());
    let interleaved = weights.laid_out(Layout::Interleaved).unwrap();
    let x = gpu.zeros("x", &[2, 4]).unwrap();
    assert!(matvec::forward(gpu, &x, interleaved, None, &y, &part).is_err());
    let x = gpu.zeros("x", &[2, 8]).unwrap();
    assert!(matvec::transposed(gpu, &x, interleaved, None, none, &y, 4).is_ok());
}

/// The transposed product's epilogues store the bits of the product followed by the gelu or the
/// residual kernel (each checked against its reference on its own), in every dtype, on every shape but
/// the head's (a linear layer's output is never 50257 wide), with the bias and into columns of wider
/// rows: compared exactly.
#[test]
fn matvec_transposed_epilogues_store_the_bits_of_the_unfused_kernels() {
    let gpu = gpu();
    let shapes = SHAPES.iter().filter(|&&(_, _, v)| v < 50257);
    for dtype in Dtype::ALL {
        for (i, &(m, c, v)) in shapes.clone().enumerate() {
            let seed = 900 + i as u64;
            let (x, e, b) = (
                random(seed, m * c),
                random(seed + 1, v * c),
                random(seed + 2, v),
            );
            let (_, et) = pack(gpu, dtype, &e);
            let e = Weights::packed(&et, dtype, v, c).unwrap();
            let (first, width) = (3, v + 5);
            let upload = |name, values: &[f32], shape: &[usize]| gpu.upload(name, shape, values);
            let xt = upload("x", &x, &[m, c]).unwrap();
            let bt = upload("b", &b, &[v]).unwrap();
            let stream = random(seed + 3, m * width);
            let case = |what: &str| format!("{what} {} {m}x{c}x{v}", dtype.name());
            let read = |t: &Tensor| gpu.read(t).unwrap();
            let product = |epilogue, y: &Tensor| {
                let d = matvec::transposed(gpu, &xt, e, Some(&bt), epilogue, y, first).unwrap();
                gpu.run_dispatches(&[d]).unwrap();
            };

            // GELU: the product into pre, then gelu(pre) into y.
            let (pre0, y0) = (
                gpu.zeros("pre", &[m, width]).unwrap(),
                gpu.zeros("y", &[m, width]).unwrap(),
            );
            product(Epilogue::None, &pre0);
            gpu.run_dispatches(&[gelu::forward(gpu, &pre0, &y0).unwrap()])
                .unwrap();
            let (pre1, y1) = (
                gpu.zeros("pre", &[m, width]).unwrap(),
                gpu.zeros("y", &[m, width]).unwrap(),
            );
            product(Epilogue::Gelu { pre: &pre1 }, &y1);
            let pre = read(&pre1);
            assert_within(&case("gelu pre"), &pre, &read(&pre0), |_| 0.0);
            // The bits of the gelu kernel here, and (portably: tanh differs by an ulp between
            // compilers, as the browser test replays the case) the reference GELU of pre within the
            // gelu test's bound. Columns outside the block: gelu(0) = 0.
            let (got, want) = (read(&y1), gelu_reference::forward(&pre));
            assert_eq!(got, read(&y0), "{}", case("gelu"));
            assert_within(&case("gelu"), &got, &want, |i| {
                forward_bound(pre[i], want[i])
            });

            // Residual: the product into y, then the stream added; fused, y = product + stream where
            // the block is and y's own values elsewhere (zero here, as the stream is not written).
            let y0 = upload("y", &vec![0.0; m * width], &[m, width]).unwrap();
            product(Epilogue::None, &y0);
            let st = upload("stream", &stream, &[m, width]).unwrap();
            gpu.run_dispatches(&[residual::accumulate(gpu, &st, &y0).unwrap()])
                .unwrap();
            let y1 = gpu.zeros("y", &[m, width]).unwrap();
            product(Epilogue::Residual { stream: &st }, &y1);
            let (mut want, got) = (read(&y0), read(&y1));
            for r in 0..m {
                for j in (0..width).filter(|&j| j < first || j >= first + v) {
                    want[r * width + j] = 0.0;
                }
            }
            assert_within(&case("residual"), &got, &want, |_| 0.0);
        }
    }
}
