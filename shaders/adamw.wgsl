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

@compute @workgroup_size(wg)
fn adamw_step(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let begin = params.start + group.x * params.chunk;
    let end = min(begin + params.chunk, params.end);
    let step_size = hyper[4];
    let bc2_sqrt = hyper[5];
    let decay_keep = hyper[6];
    var scale = 1.0;
    if use_clip {
        scale = clip[1];
    }
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
        let g = grad[i] * scale;
        let m = params.beta1 * exp_avg[i] + params.one_minus_beta1 * g;
        let v = params.beta2 * exp_avg_sq[i] + params.one_minus_beta2 * g * g;
        exp_avg[i] = m;
        exp_avg_sq[i] = v;
        var p = param[i];
        if run.z != 0u {
            p *= decay_keep;
        }
        param[i] = p - step_size * (m / (sqrt(v) / bc2_sqrt + params.eps));
    }
}
