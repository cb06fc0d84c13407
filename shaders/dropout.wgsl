// dropout: y = keep ? x / (1 - p) : 0, with keep = random_keep(seed, step, site, element, threshold)
// from random.wgsl (the prelude). The backward applies the same map to dy, regenerating the mask, so
// one entry point serves both.
//
// seed and step come from `state` ([seed, step], a tiny storage tensor the trainer writes once per
// step), not from the uniform, so the pre-built dispatch stays valid as the step advances. site (which
// dropout of the model this is), the threshold p·2³² and the scale 1/(1-p) are fixed per dispatch.

struct Params {
    n: u32,
    site: u32,
    threshold: u32,
    scale: f32,
}

const WG: u32 = 256u;

// Bindings: x, state, y, params.
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> state: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn dropout_apply(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let seed = state[0];
    let step = state[1];
    for (var i = id.x; i < params.n; i += groups.x * WG) {
        let keep = random_keep(seed, step, params.site, i, params.threshold);
        y[i] = select(0.0, x[i] * params.scale, keep);
    }
}
