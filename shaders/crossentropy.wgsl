// crossentropy: fused softmax + cross-entropy over the vocabulary, one row per position.
//
//   logits [rows, V], targets u32 [rows]
//   m = max_j x_j,  s = Σ_j exp(x_j - m)                      (online: one sweep, 4 elements a step)
//   losses[r]  = log(s) + m - x[target]                       (written)
//   dlogits[r] = (exp(x - m) / s - onehot(target)) / rows     (written, when write_grad)
//   mean[0]    = Σ_r losses[r] / rows                         (crossentropy_mean, a second dispatch)
//
// dlogits come from a second sweep over the row in the same dispatch: the row was just read, so it is
// still in cache, and no per-row (m, s) has to go through memory or another dispatch.
//
// Bindings (same order in every entry point): logits, targets, losses, dlogits, params. Targets are checked
// on the CPU before upload (`crossentropy::check_targets`); the shader trusts them.

struct Params {
    rows: u32,
    vocab: u32,
    inv_rows: f32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<u32>;
@group(0) @binding(2) var<storage, read_write> losses: array<f32>;
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

override wg: u32 = 256u;
override write_grad: bool = true;

// The running max starts at the lowest finite float, not -inf, so merging two empty partials gives
// exp(0)·0 = 0 instead of exp(-inf + inf) = NaN.
const LOWEST: f32 = -3.40282347e38;

// Online softmax state: running max and the sum of exp(x - max).
struct Stats {
    m: f32,
    s: f32,
}

fn merge(a: Stats, b: Stats) -> Stats {
    let m = max(a.m, b.m);
    return Stats(m, a.s * exp(a.m - m) + b.s * exp(b.m - m));
}

// Folds x[i..i+4) of the row starting at `base` into `st` (elements at or past `end` are skipped).
fn fold4(st: Stats, base: u32, i: u32, end: u32) -> Stats {
    let lane = vec4<u32>(i, i + 1u, i + 2u, i + 3u);
    let ok = lane < vec4<u32>(end);
    let x = select(vec4<f32>(LOWEST), vec4<f32>(
        logits[base + min(i, end - 1u)],
        logits[base + min(i + 1u, end - 1u)],
        logits[base + min(i + 2u, end - 1u)],
        logits[base + min(i + 3u, end - 1u)],
    ), ok);
    let m = max(st.m, max(max(x.x, x.y), max(x.z, x.w)));
    let e = select(vec4<f32>(0.0), exp(x - m), ok);
    return Stats(m, st.s * exp(st.m - m) + (e.x + e.y) + (e.z + e.w));
}

// dlogits for x[i..i+4) of row `row` (elements at or past the row's end are skipped).
fn grad4(row: u32, st: Stats, i: u32) {
    let base = row * params.vocab;
    let tgt = targets[row];
    let inv_s = 1.0 / st.s;
    for (var j = 0u; j < 4u; j++) {
        let c = i + j;
        if c < params.vocab {
            let p = exp(logits[base + c] - st.m) * inv_s;
            dlogits[base + c] = (p - select(0.0, 1.0, c == tgt)) * params.inv_rows;
        }
    }
}

fn finish(row: u32, st: Stats) {
    losses[row] = log(st.s) + st.m - logits[row * params.vocab + targets[row]];
}

// ---- row: one invocation per row, no workgroup memory and no barriers. For small vocabularies (and
// CPUs, where an invocation is a SIMD lane and barriers are costly).

@compute @workgroup_size(wg)
fn crossentropy_row(@builtin(global_invocation_id) id: vec3<u32>) {
    let row = id.x;
    if row >= params.rows {
        return;
    }
    let base = row * params.vocab;
    var st = Stats(LOWEST, 0.0);
    for (var i = 0u; i < params.vocab; i += 4u) {
        st = fold4(st, base, i, params.vocab);
    }
    finish(row, st);
    if write_grad {
        for (var i = 0u; i < params.vocab; i += 4u) {
            grad4(row, st, i);
        }
    }
}

// ---- workgroup: one workgroup per row, invocations taking 4 consecutive elements in turn, then a tree
// merge of the (max, sum) pairs in workgroup memory. For large vocabularies on GPUs. Rows past 65535
// wrap into the dispatch's y dimension.

const MAX_WG: u32 = 256u;
var<workgroup> partial: array<Stats, MAX_WG>;

@compute @workgroup_size(wg)
fn crossentropy_workgroup(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let row = group.y * groups.x + group.x;
    // Uniform per workgroup, so returning keeps every barrier below in uniform control flow.
    if row >= params.rows {
        return;
    }
    let base = row * params.vocab;
    var st = Stats(LOWEST, 0.0);
    for (var i = 4u * t; i < params.vocab; i += 4u * wg) {
        st = fold4(st, base, i, params.vocab);
    }
    partial[t] = st;
    workgroupBarrier();
    for (var half = wg / 2u; half > 0u; half /= 2u) {
        if t < half {
            partial[t] = merge(partial[t], partial[t + half]);
        }
        workgroupBarrier();
    }
    st = partial[0];
    if t == 0u {
        finish(row, st);
    }
    if write_grad {
        for (var i = 4u * t; i < params.vocab; i += 4u * wg) {
            grad4(row, st, i);
        }
    }
}

// ---- mean: one workgroup sums the per-row losses in a fixed order (strided partial sums, then a tree),
// so the logged loss is the same bit for bit on every run.

var<workgroup> sums: array<f32, MAX_WG>;

@compute @workgroup_size(wg)
fn crossentropy_mean(@builtin(local_invocation_index) t: u32) {
    var sum = 0.0;
    for (var r = t; r < params.rows; r += wg) {
        sum += losses[r];
    }
    sums[t] = sum;
    workgroupBarrier();
    for (var half = wg / 2u; half > 0u; half /= 2u) {
        if t < half {
            sums[t] += sums[t + half];
        }
        workgroupBarrier();
    }
    if t == 0u {
        dlogits[0] = sums[0] * params.inv_rows;
    }
}
