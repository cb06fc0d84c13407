//! How a tensor's values are stored on the GPU: f32, or 16 bits (f16 or bf16) packed two per `u32`
//! word. The packing contract, shared by the kernels (`shaders/dtype.wgsl` reads it) and the reference:
//!
//! - a tensor of `len` values in 16 bits is `⌈len / 2⌉` words; value `i` is in word `i / 2`, in its low
//!   half when `i` is even and its high half when `i` is odd; an odd `len` leaves the last word's high
//!   half zero;
//! - f16 is IEEE binary16, bf16 the top 16 bits of an f32; both round to nearest, ties to even, from
//!   f32 (overflow gives ±∞, NaN stays NaN), and widen back to f32 exactly;
//! - f32 is one value per word, its bits unchanged.
//!
//! Packed tensors are plain [`crate::Tensor`]s of `u32` words (shape `[words]`); the launchers that read
//! them take the logical shape and the dtype beside the tensor.

/// The storage type of a tensor's values. Arithmetic is f32 whatever the storage.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    #[default]
    F32,
    F16,
    Bf16,
}

impl Dtype {
    pub const ALL: [Dtype; 3] = [Dtype::F32, Dtype::F16, Dtype::Bf16];

    /// The dtype named `name` (`f32`, `f16`, `bf16`).
    pub fn from_name(name: &str) -> Option<Dtype> {
        Dtype::ALL.into_iter().find(|d| d.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
            Dtype::Bf16 => "bf16",
        }
    }

    /// Bits per value.
    pub fn bits(self) -> usize {
        match self {
            Dtype::F32 => 32,
            Dtype::F16 | Dtype::Bf16 => 16,
        }
    }

    /// Values per `u32` word: 1 or 2.
    pub fn per_word(self) -> usize {
        32 / self.bits()
    }

    /// Words holding `len` values.
    pub fn words(self, len: usize) -> usize {
        len.div_ceil(self.per_word())
    }

    /// The shaders' `dtype` override constant (`shaders/dtype.wgsl`).
    pub fn code(self) -> u32 {
        match self {
            Dtype::F32 => 0,
            Dtype::F16 => 1,
            Dtype::Bf16 => 2,
        }
    }

    /// `values` rounded to this dtype and packed into words.
    pub fn pack(self, values: &[f32]) -> Vec<u32> {
        match self {
            Dtype::F32 => values.iter().map(|v| v.to_bits()).collect(),
            Dtype::F16 | Dtype::Bf16 => values
                .chunks(2)
                .map(|pair| {
                    let low = self.half_bits(pair[0]) as u32;
                    let high = pair.get(1).map_or(0, |&v| self.half_bits(v)) as u32;
                    low | high << 16
                })
                .collect(),
        }
    }

    /// The first `len` values held by `words`, widened to f32 (exact).
    pub fn unpack(self, words: &[u32], len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| match self {
                Dtype::F32 => f32::from_bits(words[i]),
                Dtype::F16 | Dtype::Bf16 => {
                    let bits = (words[i / 2] >> (16 * (i % 2))) as u16;
                    match self {
                        Dtype::F16 => half::f16::from_bits(bits).to_f32(),
                        _ => half::bf16::from_bits(bits).to_f32(),
                    }
                }
            })
            .collect()
    }

    /// `values` as this dtype stores them: rounded to it and widened back to f32.
    pub fn round(self, values: &[f32]) -> Vec<f32> {
        self.unpack(&self.pack(values), values.len())
    }

    /// The 16 bits of `v` in f16 or bf16, rounded to nearest, ties to even.
    fn half_bits(self, v: f32) -> u16 {
        match self {
            Dtype::F16 => half::f16::from_f32(v).to_bits(),
            _ => half::bf16::from_f32(v).to_bits(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Dtype;

    #[test]
    fn packing_puts_even_values_in_low_halves_and_pads_odd_lengths() {
        let words = Dtype::F16.pack(&[1.0, -2.0, 0.5]);
        // f16: 1.0 = 0x3c00, -2.0 = 0xc000, 0.5 = 0x3800; the last word's high half is padding.
        assert_eq!(words, vec![0xc000_3c00, 0x0000_3800]);
        let words = Dtype::Bf16.pack(&[1.0, -2.0, 0.5]);
        assert_eq!(words, vec![0xc000_3f80, 0x0000_3f00]);
        assert_eq!(Dtype::F16.words(3), 2);
        assert_eq!(Dtype::F32.pack(&[1.5]), vec![1.5f32.to_bits()]);
        for dtype in Dtype::ALL {
            assert_eq!(
                dtype.unpack(&dtype.pack(&[1.0, -2.0, 0.5]), 3),
                [1.0, -2.0, 0.5]
            );
        }
    }

    #[test]
    fn rounding_is_to_nearest_with_ties_to_even() {
        // bf16 keeps 8 significand bits: 1 + 2⁻⁸ is halfway between 1 and 1 + 2⁻⁷ and goes to the even
        // 1; 1 + 3·2⁻⁸ is halfway between 1 + 2⁻⁷ and 1 + 2⁻⁶ and goes to the even 1 + 2⁻⁶; just above a
        // tie goes up.
        let b = |v: f32| Dtype::Bf16.round(&[v])[0];
        assert_eq!(b(1.0 + 2f32.powi(-8)), 1.0);
        assert_eq!(b(1.0 + 3.0 * 2f32.powi(-8)), 1.0 + 2f32.powi(-6));
        assert_eq!(b(1.0 + 2f32.powi(-8) + 2f32.powi(-20)), 1.0 + 2f32.powi(-7));
        // f16 keeps 11: the same at 2⁻¹¹ and 3·2⁻¹¹.
        let h = |v: f32| Dtype::F16.round(&[v])[0];
        assert_eq!(h(1.0 + 2f32.powi(-11)), 1.0);
        assert_eq!(h(1.0 + 3.0 * 2f32.powi(-11)), 1.0 + 2f32.powi(-9));
        // From half an ulp past f16's largest finite value (65504 + 16) on: infinity (65536 is the even
        // neighbour). bf16 has f32's range.
        assert_eq!(h(65520.0), f32::INFINITY);
        assert_eq!(b(65520.0), 65536.0);
        assert!(h(f32::NAN).is_nan() && b(f32::NAN).is_nan());
    }

    #[test]
    fn rounding_error_is_at_most_half_an_ulp_of_the_format() {
        // Relative error ≤ 2⁻¹¹ (f16, in its normal range) and ≤ 2⁻⁸ (bf16), the bounds the kernel
        // tests use; magnitudes from 0.01 to 4, both signs.
        for i in 0..10_000 {
            let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
            let v = sign * (0.01 + 4.0 * (i as f32 * 0.618_034).fract());
            for (dtype, u) in [(Dtype::F16, 2f32.powi(-11)), (Dtype::Bf16, 2f32.powi(-8))] {
                let r = dtype.round(&[v])[0];
                assert!((r - v).abs() <= u * v.abs(), "{dtype:?} {v} -> {r}");
            }
        }
    }
}
