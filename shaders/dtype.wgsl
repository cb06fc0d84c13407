// dtype: reading tensors stored in f32 or in 16 bits packed two per u32, the contract of src/dtype.rs
// (its CPU twin): value i of a 16-bit tensor is in word i / 2, in the low half when i is even; f16 widens
// through unpack2x16float, bf16 by a shift (it is the top half of an f32), so no optional feature is
// needed. f32 tensors read through the same u32 views, one value per word. A prelude
// (`shader!("matvec", ["dtype"])`): kernels bind such tensors as array<u32> or array<vec4<u32>> and set
// `dtype` per pipeline.

const DTYPE_F32: u32 = 0u;
const DTYPE_F16: u32 = 1u;
const DTYPE_BF16: u32 = 2u;

// Dtype::code of the packed tensor the kernel reads.
override dtype: u32 = DTYPE_F32;

// The two 16-bit values of a word: (low half, high half), i.e. values 2i and 2i + 1.
// (unpack2x16float beat widening f16 by integer arithmetic, exact subnormals included, by 4-22% in the
// decode products on lavapipe.)
fn dtype_unpack2(word: u32) -> vec2<f32> {
    if dtype == DTYPE_F16 {
        return unpack2x16float(word);
    }
    return bitcast<vec2<f32>>(vec2(word << 16u, word & 0xffff0000u));
}

// Four consecutive 16-bit values from two words.
fn dtype_unpack4(words: vec2<u32>) -> vec4<f32> {
    return vec4(dtype_unpack2(words.x), dtype_unpack2(words.y));
}

// Value `i` of a tensor, given the word holding it (`word(i)` = i for f32, i / 2 for 16 bits).
fn dtype_value(word: u32, i: u32) -> f32 {
    if dtype == DTYPE_F32 {
        return bitcast<f32>(word);
    }
    return dtype_unpack2(word)[i % 2u];
}

// Values per word: 1 (f32) or 2.
fn dtype_per_word() -> u32 {
    return select(2u, 1u, dtype == DTYPE_F32);
}

// Two values as the 16-bit dtype stores them, in one word (the low half holds v.x). f16 goes through
// pack2x16float, which WGSL lets round to either neighbour and leaves undefined outside f16's range:
// from half an ulp past its largest finite value (65504 + 16, f32 bits 0x477ff000) on, the value is
// ±infinity, as rounding to nearest gives, and a NaN stays a NaN. bf16 rounds to nearest, ties to even,
// by integer arithmetic on the f32 bits (a NaN whose payload sits in the low half becomes infinity).
fn dtype_pack2(v: vec2<f32>) -> u32 {
    if dtype == DTYPE_F16 {
        let bits = bitcast<vec2<u32>>(v);
        let magnitude = bits & vec2(0x7fffffffu);
        let finite = pack2x16float(clamp(v, vec2(-65504.0), vec2(65504.0)));
        var h = vec2(finite & 0xffffu, finite >> 16u);
        h = select(h, ((bits >> vec2(16u)) & vec2(0x8000u)) | vec2(0x7c00u), magnitude >= vec2(0x477ff000u));
        h = select(h, vec2(0x7e00u), magnitude > vec2(0x7f800000u));
        return h.x | (h.y << 16u);
    }
    let b = bitcast<vec2<u32>>(v);
    let r = (b + 0x7fffu + ((b >> vec2(16u)) & vec2(1u))) >> vec2(16u);
    return r.x | (r.y << 16u);
}

// The word holding value `i`.
fn dtype_word(i: u32) -> u32 {
    if dtype == DTYPE_F32 {
        return i;
    }
    return i / 2u;
}
