// residual: the elementwise sums where two paths meet.
//
//   residual_forward      y = a + b      (the residual stream; writes y)
//   residual_accumulate   acc += x       (gradients of a tensor read by two paths; adds into acc)
//
// Each has a `_vec4` twin over vec4s (params.n counts vec4s), used when the element count is a multiple
// of 4; the plain ones go element by element. Grid-stride loops; params last.

struct Params {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const WG: u32 = 256u;

// ---- forward. Bindings: a, b, y, params.
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn residual_forward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    for (var i = id.x; i < params.n; i += groups.x * WG) {
        y[i] = a[i] + b[i];
    }
}

@group(0) @binding(0) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y4: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn residual_forward_vec4(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    for (var i = id.x; i < params.n; i += groups.x * WG) {
        y4[i] = a4[i] + b4[i];
    }
}

// ---- accumulate. Bindings: x, acc, params.
@group(0) @binding(1) var<storage, read_write> acc: array<f32>;
@group(0) @binding(2) var<uniform> acc_params: Params;

@compute @workgroup_size(WG)
fn residual_accumulate(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    for (var i = id.x; i < acc_params.n; i += groups.x * WG) {
        acc[i] += a[i];
    }
}

@group(0) @binding(1) var<storage, read_write> acc4: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn residual_accumulate_vec4(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    for (var i = id.x; i < acc_params.n; i += groups.x * WG) {
        acc4[i] += a4[i];
    }
}
