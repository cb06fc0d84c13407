//! Dispatch shapes shared by the kernels that walk their work with a grid-stride loop, so a tensor larger
//! than one dispatch dimension needs no second dispatch.

use bytemuck::{Pod, Zeroable};

use crate::error::Result;
use crate::gpu::{Binding, Dispatch, Gpu, Kernel, Shader};
use crate::kernels::check::to_u32;

/// Workgroups covering `items` at `per_group` each, capped at the device's dimension limit (the shader's
/// grid-stride loop does the rest). Zero items give zero workgroups, which records nothing.
pub(crate) fn groups(gpu: &Gpu, items: usize, per_group: usize) -> u32 {
    let max = gpu.limits().max_compute_workgroups_per_dimension as usize;
    items.div_ceil(per_group).min(max) as u32
}

/// Invocations per workgroup of the elementwise shaders (their `WG`).
pub(crate) const ELEMENTWISE_WG: usize = 256;

/// The uniform of the elementwise shaders: the element count, padded to 16 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct Count {
    n: u32,
    _pad: [u32; 3],
}

/// The dispatch of an elementwise entry point over `n` elements whose only parameter is `n`.
pub(crate) fn elementwise(
    gpu: &Gpu,
    shader: Shader,
    entry: &'static str,
    bindings: &[Binding],
    n: usize,
) -> Result<Dispatch> {
    let kernel = Kernel {
        shader,
        entry,
        constants: vec![],
    };
    let params = Count {
        n: to_u32(entry, n)?,
        _pad: [0; 3],
    };
    let workgroups = [groups(gpu, n, ELEMENTWISE_WG), 1, 1];
    Dispatch::new(gpu, &kernel, bindings, &params, workgroups)
}
