// residual: the elementwise sums where two paths meet.
//
//   residual_forward      y = a + b      (the residual stream; writes y)
//   residual_accumulate   acc += x       (gradients of a tensor read by two paths; adds into acc)
//
// Each has a `_vec4` twin over vec4s (params.n counts vec4s), used when the element count is a multiple
// of 4; the plain ones go element by element. Each workgroup walks its own run of the items
// (elementwise.wgsl, the prelude); params last.

struct Params {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}


// ---- forward. Bindings: a, b, y, params.
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(wg)
fn residual_forward(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let run = elementwise_run(params.n, group.x, groups.x);
    for (var i = run.x + lane; i < run.y; i += wg) {
        y[i] = a[i] + b[i];
    }
}

@group(0) @binding(0) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y4: array<vec4<f32>>;

@compute @workgroup_size(wg)
fn residual_forward_vec4(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let run = elementwise_run(params.n, group.x, groups.x);
    for (var i = run.x + lane; i < run.y; i += wg) {
        y4[i] = a4[i] + b4[i];
    }
}

// ---- accumulate. Bindings: x, acc, params.
@group(0) @binding(1) var<storage, read_write> acc: array<f32>;
@group(0) @binding(2) var<uniform> acc_params: Params;

@compute @workgroup_size(wg)
fn residual_accumulate(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let run = elementwise_run(acc_params.n, group.x, groups.x);
    for (var i = run.x + lane; i < run.y; i += wg) {
        acc[i] += a[i];
    }
}

@group(0) @binding(1) var<storage, read_write> acc4: array<vec4<f32>>;

@compute @workgroup_size(wg)
fn residual_accumulate_vec4(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let run = elementwise_run(acc_params.n, group.x, groups.x);
    for (var i = run.x + lane; i < run.y; i += wg) {
        acc4[i] += a4[i];
    }
}
