// gelu: GPT-2's tanh approximation ("gelu_new"), elementwise.
//
//   forward    y  = x/2 · (1 + tanh(u)),  u = √(2/π) · (x + 0.044715 x³)                 (writes y)
//   backward   dx = dy · (½(1 + tanh u) + ½x (1 - tanh²u) · √(2/π)(1 + 3·0.044715 x²))   (writes dx)
//
// Each has a `_vec4` twin over vec4s (params.n counts vec4s), used when the element count is a multiple
// of 4; the plain ones go element by element through the same math (gelu_math.wgsl, shared with
// matmul's epilogues). Each workgroup walks its own run of the items (elementwise.wgsl, the prelude).

struct Params {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// ---- forward. Bindings: x, y, params.
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(wg)
fn gelu_forward(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let run = elementwise_run(params.n, group.x, groups.x);
    for (var i = run.x + lane; i < run.y; i += wg) {
        y[i] = gelu_f32(x[i]);
    }
}

@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> y4: array<vec4<f32>>;

@compute @workgroup_size(wg)
fn gelu_forward_vec4(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let run = elementwise_run(params.n, group.x, groups.x);
    for (var i = run.x + lane; i < run.y; i += wg) {
        y4[i] = gelu(x4[i]);
    }
}

// ---- backward. Bindings: x, dy, dx, params.
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> backward_params: Params;

@compute @workgroup_size(wg)
fn gelu_backward(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let run = elementwise_run(backward_params.n, group.x, groups.x);
    for (var i = run.x + lane; i < run.y; i += wg) {
        dx[i] = gelu_grad_f32(x[i], dy[i]);
    }
}

@group(0) @binding(1) var<storage, read> dy4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dx4: array<vec4<f32>>;

@compute @workgroup_size(wg)
fn gelu_backward_vec4(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let run = elementwise_run(backward_params.n, group.x, groups.x);
    for (var i = run.x + lane; i < run.y; i += wg) {
        dx4[i] = gelu_grad(x4[i], dy4[i]);
    }
}
