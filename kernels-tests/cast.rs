//! cast: f32 to 16-bit storage and back. bf16 rounds exactly as the reference (to nearest, ties to
//! even); f16 to either neighbour (WGSL's pack2x16float), so within one f16 ulp; both overflow to ±∞
//! as rounding to nearest does; unpacking is exact; `pack_rounding` leaves in `x` exactly what its
//! words hold, and `pack` leaves `x` alone and writes the same words.

use wgpt::dtype::Dtype;
use wgpt::kernels::cast;
use wgpt::reference::cast as reference;
use wgpt::{Dispatch, Gpu, Tensor};

use crate::common::{assert_within, gpu, random};

/// Values spread over magnitudes 2⁻²⁰ .. 2¹², both signs, with bf16 ties first.
fn values(seed: u64, n: usize) -> Vec<f32> {
    let ties = [
        1.0 + 2f32.powi(-8),
        1.0 + 3.0 * 2f32.powi(-8),
        -(1.0 + 2f32.powi(-8)),
    ];
    let spread = random(seed, n)
        .into_iter()
        .enumerate()
        .map(|(i, v)| v * 2f32.powi((i % 33) as i32 - 20));
    ties.into_iter().chain(spread).take(n).collect()
}

/// The bound on a stored value against the reference's: bf16 exact; f16 one ulp (2⁻¹⁰ relative,
/// 2⁻²⁴ in its subnormal range), since pack2x16float may round to either neighbour.
fn bound(dtype: Dtype, want: &[f32]) -> impl Fn(usize) -> f64 + '_ {
    move |i| match dtype {
        Dtype::F16 => 2f64.powi(-10) * want[i].abs() as f64 + 2f64.powi(-24),
        _ => 0.0,
    }
}

/// `cast::pack` or `cast::pack_rounding`.
type Launcher = fn(&Gpu, &Tensor, &Tensor, Dtype) -> wgpt::Result<Dispatch>;

/// Packs `x` on the GPU by `launch`: the words, and `x` as the kernel left it.
fn pack_on_gpu(x: &[f32], dtype: Dtype, launch: Launcher) -> (Vec<u32>, Vec<f32>) {
    let gpu = gpu();
    let xt = gpu.upload("x", &[x.len()], x).unwrap();
    let yt = gpu.zeros("y", &[dtype.words(x.len())]).unwrap();
    gpu.run_dispatches(&[launch(gpu, &xt, &yt, dtype).unwrap()])
        .unwrap();
    (gpu.read(&yt).unwrap(), gpu.read(&xt).unwrap())
}

/// `words` unpacked on the GPU.
fn unpack_on_gpu(words: &[u32], len: usize, dtype: Dtype) -> Vec<f32> {
    let gpu = gpu();
    let xt = gpu.upload("words", &[words.len()], words).unwrap();
    let yt = gpu.zeros("values", &[len]).unwrap();
    gpu.run_dispatches(&[cast::unpack(gpu, &xt, &yt, dtype).unwrap()])
        .unwrap();
    gpu.read(&yt).unwrap()
}

#[test]
fn cast_round_trips_awkward_sizes_as_the_reference_rounds() {
    // Odd lengths leave a half word (7 makes four words, the last half empty: the word-by-word entry
    // points); lengths that are multiples of 8 take the vec4 ones.
    for dtype in [Dtype::F16, Dtype::Bf16] {
        for (i, n) in [1, 2, 3, 7, 8, 9, 16, 97, 65 * 97, 768 * 128, 2048 * 8 + 6]
            .into_iter()
            .enumerate()
        {
            let x = values(800 + i as u64, n);
            let mut want = x.clone();
            let want_words = reference::pack_rounding(&mut want, dtype);
            assert_eq!(reference::pack(&x, dtype), want_words);
            let case = format!("cast {} {n}", dtype.name());
            let (words, rounded) = pack_on_gpu(&x, dtype, cast::pack_rounding);
            assert_within(
                &format!("{case}, rounded in place"),
                &rounded,
                &want,
                bound(dtype, &want),
            );
            // The values left in x are exactly the ones the words hold, half word included.
            let held = reference::unpack(&words, n, dtype);
            assert_within(&format!("{case}, words"), &held, &rounded, |_| 0.0);
            assert_eq!(words.len(), want_words.len(), "{case}: words");
            // Packing alone writes the same words and leaves x as it was. bf16 words are compared
            // with the reference's bit for bit, through an f32 view of their bits (each word's high
            // half is a finite bf16, so the view is a finite f32, equal only to the same bits).
            let (plain, kept) = pack_on_gpu(&x, dtype, cast::pack);
            assert_eq!(plain, words, "{case}: pack and pack_rounding differ");
            assert_within(&format!("{case}, pack leaves x"), &kept, &x, |_| 0.0);
            if dtype == Dtype::Bf16 {
                let bits = |w: &[u32]| w.iter().map(|&b| f32::from_bits(b)).collect::<Vec<f32>>();
                let case = format!("{case}, packed");
                assert_within(&case, &bits(&plain), &bits(&want_words), |_| 0.0);
            }
            // Unpacking moves bits: exact.
            let unpacked = unpack_on_gpu(&want_words, n, dtype);
            assert_within(&format!("{case}, unpacked"), &unpacked, &want, |_| 0.0);
        }
    }
}

#[test]
fn cast_overflows_to_infinity_as_rounding_to_nearest_does() {
    // f16's largest finite value is 65504; from 65520 (half an ulp past it) on, rounding to nearest
    // gives ±∞. bf16 has f32's range: only an f32 infinity stays one.
    let x = [
        65504.0,
        65519.0,
        65520.0,
        -70000.0,
        1e30,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.0,
    ];
    for dtype in [Dtype::F16, Dtype::Bf16] {
        let mut want = x.to_vec();
        reference::pack_rounding(&mut want, dtype);
        let (words, rounded) = pack_on_gpu(&x, dtype, cast::pack_rounding);
        assert_eq!(rounded, want, "{} packed in place", dtype.name());
        assert_eq!(
            reference::unpack(&words, x.len(), dtype),
            want,
            "{} words",
            dtype.name()
        );
    }
}

#[test]
fn cast_refuses_f32_and_mismatched_words() {
    let gpu = gpu();
    let x = gpu.zeros("x", &[10]).unwrap();
    assert!(cast::pack(gpu, &x, &gpu.zeros("y", &[5]).unwrap(), Dtype::F32).is_err());
    assert!(cast::pack(gpu, &x, &gpu.zeros("y", &[6]).unwrap(), Dtype::Bf16).is_err());
    assert!(cast::pack_rounding(gpu, &x, &gpu.zeros("y", &[5]).unwrap(), Dtype::F32).is_err());
    assert!(cast::unpack(gpu, &gpu.zeros("w", &[4]).unwrap(), &x, Dtype::F16).is_err());
}
