// dropout: y = keep ? x / (1 - p) : 0, with keep = random_keep(seed, step, site, element, threshold)
// from random.wgsl (the prelude); element is the flat index, numbered in the whole batch
// (random_element) when the step is micro-batch state[2] of an accumulated batch. The backward applies the same map to dy,
// regenerating the mask, so the entry points serve both.
//
// seed, step and micro-batch come from `state` ([seed, step, micro], a tiny storage tensor the trainer
// writes before each submit), not from the uniform, so the pre-built dispatch stays valid as the step advances. site (which
// dropout of the model this is), the threshold p·2³² and the scale 1/(1-p) are fixed per dispatch.
//
// `dropout_apply_vec4` goes over vec4s (params.n counts vec4s) and is used when the element count is a
// multiple of 4; `dropout_apply` goes element by element. Each workgroup walks its own run of the items
// (elementwise.wgsl, the prelude, after random.wgsl).

struct Params {
    n: u32,
    site: u32,
    threshold: u32,
    scale: f32,
}


// Bindings: x, state, y, params.
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> state: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

// `count`: the elements of x.
fn dropout(v: f32, element: u32, count: u32) -> f32 {
    let s = vec3(state[0], state[1], state[2]);
    return random_dropout(v, s, params.site, count, element, params.threshold, params.scale);
}

@compute @workgroup_size(wg)
fn dropout_apply(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let run = elementwise_run(params.n, group.x, groups.x);
    for (var i = run.x + lane; i < run.y; i += wg) {
        y[i] = dropout(x[i], i, params.n);
    }
}

@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y4: array<vec4<f32>>;

@compute @workgroup_size(wg)
fn dropout_apply_vec4(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let run = elementwise_run(params.n, group.x, groups.x);
    for (var i = run.x + lane; i < run.y; i += wg) {
        let v = x4[i];
        let e = 4u * i;
        let n = 4u * params.n;
        y4[i] = vec4(dropout(v.x, e, n), dropout(v.y, e + 1u, n), dropout(v.z, e + 2u, n), dropout(v.w, e + 3u, n));
    }
}
