// residual: the elementwise sums where two paths meet.
//
//   residual_forward      y = a + b      (the residual stream; writes y)
//   residual_accumulate   acc += x       (gradients of a tensor read by two paths; adds into acc)
//
// Both: a grid-stride loop over n elements; params last.

struct Params {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const WG: u32 = 256u;

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

// Bindings: x, acc, params.
@group(0) @binding(0) var<storage, read> acc_x: array<f32>;
@group(0) @binding(1) var<storage, read_write> acc: array<f32>;
@group(0) @binding(2) var<uniform> acc_params: Params;

@compute @workgroup_size(WG)
fn residual_accumulate(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    for (var i = id.x; i < acc_params.n; i += groups.x * WG) {
        acc[i] += acc_x[i];
    }
}
