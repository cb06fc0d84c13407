//! CPU twin of `shaders/random.wgsl`: the counter-based hash behind dropout masks. A mask element is a pure
//! function of (seed, step, site, element), so the GPU mask equals this one bit for bit.

use crate::contract::dropout_threshold;

/// Chris Wellons' "lowbias32" integer hash, as in the shader.
pub fn hash(x: u32) -> u32 {
    let mut h = x;
    h ^= h >> 16;
    h = h.wrapping_mul(0x7feb352d);
    h ^= h >> 15;
    h = h.wrapping_mul(0x846ca68b);
    h ^= h >> 16;
    h
}

/// Uniform u32 for one element of one dropout site at one step.
pub fn random_u32(seed: u32, step: u32, site: u32, element: u32) -> u32 {
    hash(hash(hash(hash(seed) ^ step) ^ site) ^ element)
}

/// The index of `element` of micro-batch `micro` in the whole batch, each micro-batch holding `count`
/// elements of the site (mod 2³²), as `random_element` in the shader.
pub fn element(micro: u32, count: usize, element: u32) -> u32 {
    micro.wrapping_mul(count as u32).wrapping_add(element)
}

/// Whether the element survives dropout with probability `p`.
pub fn keep(seed: u32, step: u32, site: u32, element: u32, p: f32) -> bool {
    random_u32(seed, step, site, element) >= dropout_threshold(p)
}
