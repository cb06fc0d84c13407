// gelu_math: GPT-2's tanh approximation and its derivative, on f32s and vec4s, the one definition that the gelu
// kernels and matmul's GELU epilogues both use, so that fused and unfused steps compute the same bits.
//
//   gelu(x)          = x/2 · (1 + tanh(u)),  u = √(2/π) · (x + 0.044715 x³)
//   gelu_grad(x, dy) = dy · (½(1 + tanh u) + ½x (1 - tanh²u) · √(2/π)(1 + 3·0.044715 x²))

const SQRT_2_OVER_PI: f32 = 0.7978845608028654;
const CUBIC: f32 = 0.044715;

// tanh(u), with u clamped first: some drivers compute tanh through exp and return NaN once it overflows;
// tanh(±10) already rounds to ±1 in f32.
fn gelu_tanh(x: f32) -> f32 {
    return tanh(clamp(SQRT_2_OVER_PI * (x + CUBIC * x * x * x), -10.0, 10.0));
}

fn gelu_f32(x: f32) -> f32 {
    return 0.5 * x * (1.0 + gelu_tanh(x));
}

fn gelu_grad_f32(x: f32, dy: f32) -> f32 {
    let t = gelu_tanh(x);
    let du = SQRT_2_OVER_PI * (1.0 + 3.0 * CUBIC * x * x);
    return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du);
}

// The same, component by component.
fn gelu(x: vec4<f32>) -> vec4<f32> {
    return vec4(gelu_f32(x.x), gelu_f32(x.y), gelu_f32(x.z), gelu_f32(x.w));
}

fn gelu_grad(x: vec4<f32>, dy: vec4<f32>) -> vec4<f32> {
    return vec4(gelu_grad_f32(x.x, dy.x), gelu_grad_f32(x.y, dy.y), gelu_grad_f32(x.z, dy.z), gelu_grad_f32(x.w, dy.w));
}
