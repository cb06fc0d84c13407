//! Cast between f32 and 16-bit storage ([`crate::dtype`]'s packing, f16 or bf16), for mixed-precision
//! training.
//!
//! - [`pack`]: `x: [len] f32 -> y: [⌈len / 2⌉] u32`, `y = pack(x)` (writes `y`): the 16-bit working
//!   copy of the weights, from their f32 master values.
//! - [`pack_rounding`]: the same, and `x` rounded in place to the values `y` holds (writes `y` and
//!   `x`): an activation the backward keeps, so the forward's later readers and the backward see the
//!   same numbers.
//! - [`unpack`]: `x: [⌈len / 2⌉] u32 -> y: [len] f32`, `y = unpack(x)`, exact (writes `y`).
//!
//! bf16 rounds to nearest, ties to even; f16 as WGSL's `pack2x16float` rounds (to either neighbour),
//! ±∞ from half an ulp past 65504.

use bytemuck::{Pod, Zeroable};

use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::gpu::{Binding, Dispatch, Gpu, Kernel, Shader, Tensor};
use crate::kernels::check::{expect_len, to_u32};
use crate::kernels::grid::elementwise_shape;

pub const SHADER: Shader = crate::shader!("cast", ["elementwise", "dtype"]);

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct Params {
    /// Items the entry point loops over: words, or groups of four words.
    n: u32,
    /// Values.
    len: u32,
    _pad: [u32; 2],
}

/// `y = pack(x)` into `dtype` (f16 or bf16); writes `y`.
pub fn pack(gpu: &Gpu, x: &Tensor, y: &Tensor, dtype: Dtype) -> Result<Dispatch> {
    let bindings = [Binding::Read(x), Binding::ReadWrite(y)];
    let entries = ["cast_pack", "cast_pack_vec4"];
    cast(gpu, entries, &bindings, x.len(), y, dtype)
}

/// `y = pack(x)` into `dtype` (f16 or bf16) and `x` rounded in place; writes `y` and `x`.
pub fn pack_rounding(gpu: &Gpu, x: &Tensor, y: &Tensor, dtype: Dtype) -> Result<Dispatch> {
    let bindings = [Binding::ReadWrite(x), Binding::ReadWrite(y)];
    let entries = ["cast_pack_rounding", "cast_pack_rounding_vec4"];
    cast(gpu, entries, &bindings, x.len(), y, dtype)
}

/// `y = unpack(x)` from `dtype` (f16 or bf16); writes `y`.
pub fn unpack(gpu: &Gpu, x: &Tensor, y: &Tensor, dtype: Dtype) -> Result<Dispatch> {
    let bindings = [Binding::Read(x), Binding::ReadWrite(y)];
    let entries = ["cast_unpack", "cast_unpack_vec4"];
    cast(gpu, entries, &bindings, y.len(), x, dtype)
}

/// The dispatch over `len` values whose words are `packed`, by the `[word, vec4]` entry points: the
/// second (four words, eight values an item) when the values come in eights.
fn cast(
    gpu: &Gpu,
    [word, vec4]: [&'static str; 2],
    bindings: &[Binding],
    len: usize,
    packed: &Tensor,
    dtype: Dtype,
) -> Result<Dispatch> {
    if dtype == Dtype::F32 {
        return Err(Error::Invalid(format!("{word}: f32 is not a 16-bit dtype")));
    }
    let words = dtype.words(len);
    expect_len(&format!("{word} words"), packed, words)?;
    // Eight values, not just four words: an odd length fills its last word by half.
    let (entry, items) = match len % 8 {
        0 => (vec4, words / 4),
        _ => (word, words),
    };
    let (wg, workgroups) = elementwise_shape(gpu, items);
    let kernel = Kernel {
        shader: SHADER,
        entry,
        constants: vec![("wg", wg as f64), ("dtype", dtype.code() as f64)],
    };
    let params = Params {
        n: to_u32(entry, items)?,
        len: to_u32(entry, len)?,
        _pad: [0; 2],
    };
    Dispatch::new(gpu, &kernel, bindings, &params, [workgroups, 1, 1])
}
