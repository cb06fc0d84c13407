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
// exp(0)·0 = 0 instead of exp(-inf + inf) = NaN. Written exactly (-f32::MAX): Chromium's compiler
// rejects a decimal literal past f32's range even by less than its rounding, as -3.40282347e38 is.
const LOWEST: f32 = -0x1.fffffep+127f;

// Online softmax state: running max and the sum of exp(x - max).
struct Stats {
    m: f32,
    s: f32,
}

fn merge(a: Stats, b: Stats) -> Stats {
    let m = max(a.m, b.m);
    return Stats(m, a.s * exp(a.m - m) + b.s * exp(b.m - m));
}

fn load4(i: u32) -> vec4<f32> {
    return vec4<f32>(logits[i], logits[i + 1u], logits[i + 2u], logits[i + 3u]);
}

// One invocation's share of a row: the quads starting at 4·lane, 4·(lane + lanes), ... of the row's
// whole quads, then the last V mod 4 elements lane, lane + lanes, ... (no masks on the hot path).
fn row_stats(row: u32, lane: u32, lanes: u32) -> Stats {
    let base = row * params.vocab;
    let full = params.vocab & ~3u;
    var st = Stats(LOWEST, 0.0);
    for (var i = 4u * lane; i < full; i += 4u * lanes) {
        let x = load4(base + i);
        let m = max(st.m, max(max(x.x, x.y), max(x.z, x.w)));
        let e = exp(x - m);
        st = Stats(m, st.s * exp(st.m - m) + ((e.x + e.y) + (e.z + e.w)));
    }
    for (var j = full + lane; j < params.vocab; j += lanes) {
        st = merge(st, Stats(logits[base + j], 1.0));
    }
    return st;
}

// Writes dlogits for the same share of the row, given the row's merged stats.
fn row_grad(row: u32, lane: u32, lanes: u32, st: Stats) {
    let base = row * params.vocab;
    let full = params.vocab & ~3u;
    let tgt = targets[row];
    let inv_s = 1.0 / st.s;
    for (var i = 4u * lane; i < full; i += 4u * lanes) {
        let p = exp(load4(base + i) - st.m) * inv_s;
        let onehot = select(vec4<f32>(0.0), vec4<f32>(1.0), vec4<u32>(i, i + 1u, i + 2u, i + 3u) == vec4<u32>(tgt));
        let d = (p - onehot) * params.inv_rows;
        dlogits[base + i] = d.x;
        dlogits[base + i + 1u] = d.y;
        dlogits[base + i + 2u] = d.z;
        dlogits[base + i + 3u] = d.w;
    }
    for (var j = full + lane; j < params.vocab; j += lanes) {
        let p = exp(logits[base + j] - st.m) * inv_s;
        dlogits[base + j] = (p - select(0.0, 1.0, j == tgt)) * params.inv_rows;
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
    let st = row_stats(row, 0u, 1u);
    finish(row, st);
    if write_grad {
        row_grad(row, 0u, 1u, st);
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
    var st = row_stats(row, t, wg);
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
        row_grad(row, t, wg, st);
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
