//! `residual` on the CPU: `y = a + b` (and `acc += x`, the same sum).

pub fn forward(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(a, b)| a + b).collect()
}
