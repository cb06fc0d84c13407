// gradnorm: the global L2 norm of the gradients and the clip scale, in two fixed-order reductions.
//
//   norm  = sqrt(Σ_{i in [offset, offset + len)} g_i²)
//   scale = min(1, max_norm / norm), and 1 when clipping is off (max_norm = 0) or norm = 0
//
//   out: [0] norm, [1] scale, [2] the running sum of every norm written (a non-finite norm at any step
//   leaves it non-finite: a trainer reading it now and then learns of steps it did not read), [3] unused,
//   [4..) one partial sum of squares per workgroup of stage 1.
//
// The gradients may be several buffers (the chunks of the gradient arena): one partials dispatch per
// buffer, each writing its slots from `first` on, then one gradnorm_finish over all `groups` slots.
//
// gradnorm_partials: workgroup w sums the squares of its contiguous chunk (invocations take elements in
// turn, four loads in flight) and merges its invocations in a tree; gradnorm_finish: one workgroup
// merges the partials the same way and writes norm and scale, which adamw reads without a readback.
//
// Bindings: grads, out, params.

struct Params {
    offset: u32,
    len: u32,
    chunk: u32,
    groups: u32,
    max_norm: f32,
    first: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> grads: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

override wg: u32 = 256u;
const MAX_WG: u32 = 256u;
const PARTIALS: u32 = 4u;

var<workgroup> sums: array<f32, MAX_WG>;

// Tree-merges every invocation's `sum` (in a fixed order) and returns the total to all of them.
fn workgroup_total(t: u32, sum: f32) -> f32 {
    sums[t] = sum;
    workgroupBarrier();
    for (var half = wg / 2u; half > 0u; half /= 2u) {
        if t < half {
            sums[t] += sums[t + half];
        }
        workgroupBarrier();
    }
    return sums[0];
}

@compute @workgroup_size(wg)
fn gradnorm_partials(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let begin = group.x * params.chunk;
    let end = min(begin + params.chunk, params.len);
    let first = params.offset + begin + t;
    let last = params.offset + end;
    var acc = vec4<f32>(0.0);
    var i = first;
    // Whole steps of four loads with no masks (every chunk but the last is made of them), then the rest.
    for (; i + 3u * wg < last; i += 4u * wg) {
        let g = vec4<f32>(grads[i], grads[i + wg], grads[i + 2u * wg], grads[i + 3u * wg]);
        acc += g * g;
    }
    for (; i < last; i += wg) {
        acc.x += grads[i] * grads[i];
    }
    let total = workgroup_total(t, (acc.x + acc.y) + (acc.z + acc.w));
    if t == 0u {
        out[PARTIALS + params.first + group.x] = total;
    }
}

// The same over vec4s (offset, len and chunk count vec4s), when the range starts and ends on a multiple
// of 4.
@group(0) @binding(0) var<storage, read> grads4: array<vec4<f32>>;

@compute @workgroup_size(wg)
fn gradnorm_partials_vec4(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let begin = group.x * params.chunk;
    let end = min(begin + params.chunk, params.len);
    var acc = vec4<f32>(0.0);
    for (var i = params.offset + begin + t; i < params.offset + end; i += wg) {
        let g = grads4[i];
        acc += g * g;
    }
    let total = workgroup_total(t, (acc.x + acc.y) + (acc.z + acc.w));
    if t == 0u {
        out[PARTIALS + params.first + group.x] = total;
    }
}

@compute @workgroup_size(wg)
fn gradnorm_finish(@builtin(local_invocation_index) t: u32) {
    var sum = 0.0;
    for (var w = t; w < params.groups; w += wg) {
        sum += out[PARTIALS + w];
    }
    let total = workgroup_total(t, sum);
    if t == 0u {
        let norm = sqrt(total);
        out[0] = norm;
        out[2] += norm;
        // Written as a select rather than min(1, max_norm / norm) so that norm = 0 never divides.
        out[1] = select(1.0, params.max_norm / norm, params.max_norm > 0.0 && norm > params.max_norm);
    }
}
