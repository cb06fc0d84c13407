//! `gelu` on the CPU: GPT-2's tanh approximation, in f64.

const SQRT_2_OVER_PI: f64 = 0.7978845608028654;
const CUBIC: f64 = 0.044715;

/// `y = x/2 · (1 + tanh(√(2/π)(x + 0.044715 x³)))`.
pub fn forward(x: &[f32]) -> Vec<f32> {
    x.iter()
        .map(|&x| {
            let x = x as f64;
            (0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + CUBIC * x * x * x)).tanh())) as f32
        })
        .collect()
}

/// `dx = dy · gelu'(x)`.
pub fn backward(x: &[f32], dy: &[f32]) -> Vec<f32> {
    x.iter()
        .zip(dy)
        .map(|(&x, &dy)| {
            let x = x as f64;
            let t = (SQRT_2_OVER_PI * (x + CUBIC * x * x * x)).tanh();
            let du = SQRT_2_OVER_PI * (1.0 + 3.0 * CUBIC * x * x);
            (dy as f64 * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)) as f32
        })
        .collect()
}
