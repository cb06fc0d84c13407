//! `dropout` on the CPU: `y = keep ? x / (1 - p) : 0` with the mask of [`super::random::keep`] over flat
//! element indices, numbered in the whole batch for micro-batch `state[2]` ([`super::random::element`]).
//! The backward is the same map applied to `dy`.

use super::random::{element, keep};
use crate::contract::dropout_scale;

/// The mask for `state = [seed, step, micro]`: element `i` survives.
pub fn mask(state: [u32; 3], site: u32, p: f32, len: usize) -> Vec<bool> {
    let [seed, step, micro] = state;
    (0..len as u32)
        .map(|i| keep(seed, step, site, element(micro, len, i), p))
        .collect()
}

/// `y = keep ? x / (1 - p) : 0`, the scale rounded to f32 first as the kernel's uniform holds it.
pub fn forward(x: &[f32], state: [u32; 3], site: u32, p: f32) -> Vec<f32> {
    let scale = dropout_scale(p);
    x.iter()
        .zip(mask(state, site, p, x.len()))
        .map(|(&x, keep)| if keep { x * scale } else { 0.0 })
        .collect()
}

/// `dx = keep ? dy / (1 - p) : 0` with the forward's mask.
pub fn backward(dy: &[f32], state: [u32; 3], site: u32, p: f32) -> Vec<f32> {
    forward(dy, state, site, p)
}
