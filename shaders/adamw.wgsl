// adamw: PyTorch's AdamW over the parameter arena, one dispatch for every tensor.
//
//   g = grad · clip_scale                       (clip_scale = gradnorm's out[1], when use_clip)
//   m = β1·m + (1-β1)·g
//   v = β2·v + (1-β2)·g²
//   p = p · (1 - lr·wd)                          (runs with decay only; before the update, as PyTorch)
//   p = p - step_size · m / (sqrt(v) / sqrt(bc2) + eps),  step_size = lr / bc1, bcK = 1 - βK^t
//
// params, grads, m, v are arenas of the same length. `runs` lists the updated ranges as
// (start, end, decay, 0), sorted and disjoint (`adamw::Segments`); elements outside every run are left
// alone. `hyper` is written by the trainer once per step (layout in src/kernels/adamw.rs); this kernel
// reads step_size [4], sqrt(bc2) [5] and 1 - lr·wd [6], computed in f64 as PyTorch computes them.
//
// Workgroup w updates the contiguous chunk [start + w·chunk, +chunk) of the covered span; each
// invocation walks a cursor through the runs, found once by binary search, so per element the run
// lookup is one comparison.
//
// Bindings: params, grads, m, v, runs, hyper, clip, params (the uniform).

struct Params {
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    eps: f32,
    runs: u32,
    start: u32,
    end: u32,
    chunk: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> exp_avg: array<f32>;
@group(0) @binding(3) var<storage, read_write> exp_avg_sq: array<f32>;
@group(0) @binding(4) var<storage, read> runs: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read> hyper: array<f32>;
@group(0) @binding(6) var<storage, read> clip: array<f32>;
@group(0) @binding(7) var<uniform> params: Params;

override wg: u32 = 256u;
override use_clip: bool = false;

// Index of the first run that ends after element i (params.runs when none does).
fn first_run(i: u32) -> u32 {
    var lo = 0u;
    var hi = params.runs;
    while lo < hi {
        let mid = (lo + hi) / 2u;
        if runs[mid].y <= i {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    return lo;
}

// One AdamW update of four elements (the scalar entry point passes vec4(x) and keeps .x).
fn update(g: vec4<f32>, m0: vec4<f32>, v0: vec4<f32>, p0: vec4<f32>, decay: bool) -> array<vec4<f32>, 3> {
    let m = params.beta1 * m0 + params.one_minus_beta1 * g;
    let v = params.beta2 * v0 + params.one_minus_beta2 * g * g;
    var p = p0;
    if decay {
        p *= hyper[6];
    }
    return array(m, v, p - hyper[4] * (m / (sqrt(v) / hyper[5] + params.eps)));
}

fn clip_scale() -> f32 {
    if use_clip {
        return clip[1];
    }
    return 1.0;
}

@compute @workgroup_size(wg)
fn adamw_step(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let begin = params.start + group.x * params.chunk;
    let end = min(begin + params.chunk, params.end);
    let scale = clip_scale();
    var cur = first_run(begin + t);
    var run = runs[min(cur, params.runs - 1u)];
    for (var i = begin + t; i < end; i += wg) {
        while cur < params.runs && i >= run.y {
            cur++;
            run = runs[min(cur, params.runs - 1u)];
        }
        if cur == params.runs || i < run.x {
            continue;
        }
        let r = update(vec4(grad[i] * scale), vec4(exp_avg[i]), vec4(exp_avg_sq[i]), vec4(param[i]), run.z != 0u);
        exp_avg[i] = r[0].x;
        exp_avg_sq[i] = r[1].x;
        param[i] = r[2].x;
    }
}

// The same over vec4s, when every run starts and ends on a multiple of 4 (`start`, `end` and `chunk`
// still count elements; i counts vec4s).
@group(0) @binding(0) var<storage, read_write> param4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> grad4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> exp_avg4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> exp_avg_sq4: array<vec4<f32>>;

@compute @workgroup_size(wg)
fn adamw_step_vec4(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let begin = (params.start + group.x * params.chunk) / 4u;
    let end = min(begin + params.chunk / 4u, params.end / 4u);
    let scale = clip_scale();
    var cur = first_run(4u * (begin + t));
    var run = runs[min(cur, params.runs - 1u)];
    for (var i = begin + t; i < end; i += wg) {
        while cur < params.runs && 4u * i >= run.y {
            cur++;
            run = runs[min(cur, params.runs - 1u)];
        }
        if cur == params.runs || 4u * i < run.x {
            continue;
        }
        let r = update(grad4[i] * scale, exp_avg4[i], exp_avg_sq4[i], param4[i], run.z != 0u);
        exp_avg4[i] = r[0];
        exp_avg_sq4[i] = r[1];
        param4[i] = r[2];
    }
}
