// attention: causal multi-head / grouped-query attention, fused (flash-style) and unfused (baseline).
//
//   qkv [B, T, (H + 2·Hkv)·D]: per token q (H heads), then k (Hkv heads), then v (Hkv heads)
//   query head h reads kv head g = h / (H / Hkv)
//   S_ts = scale · q_t·k_s (s ≤ t), scale = 1/sqrt(D);  P_t = softmax(S_t);  lse_t = log Σ_s exp(S_ts)
//   A_ts = P_ts · Z_ts, Z_ts = keep_ts / (1 - p) (attention dropout; Z = 1 without it)
//   O_t = Σ_s A_ts v_s                                   o [B, T, H·D], lse [B, H, T]
// Backward, with dA_ts = dO_t·v_s and delta_t = Σ_s A_ts dA_ts = dO_t·O_t:
//   dS_ts = P_ts (Z_ts dA_ts - delta_t) = A_ts dA_ts - P_ts delta_t
//   dq_t = scale Σ_s dS_ts k_s,  dk_s = scale Σ_{h in group, t ≥ s} dS_ts q_t,  dv_s = Σ_{h, t ≥ s} A_ts dO_t
//
// Dropout element index (mod 2³²): ((b·H + h)·T + t)·T + s, numbered in the whole batch when the step
// is a micro-batch (random_element), with seed, step and micro-batch read from `random_state`
// ([seed, step, micro], the buffer dropout reads too), which the trainer writes before each submit (so
// dispatches are built once).
//
// Fused kernels give each invocation one row (a query for the forward and dq, a key for dk/dv) and walk
// the other axis: no barriers and no T×T storage, which suits lavapipe (barriers expensive). All lanes of a workgroup walk the other axis in the same order, so their loads of
// k/v (or q/dO) hit the same addresses at the same time (broadcasts on GPUs, cache hits on CPUs).
//
// Fused kernels take four keys (or queries) per step, so each load of the invocation's own row and each
// accumulator update serves four. That also matters because llvmpipe (lavapipe, Mesa 22) silently stops
// an invocation after 65535 loop iterations in total: at D = 128 a step of the forward or dq costs
// 1 + 2·32 iterations (T up to about 4000 there), one of dk/dv 1 + 2·16 ((H/Hkv)·T up to about 7900).
// Real GPUs have no such cap.
//
// Bindings (same order in every entry point): qkv, random_state, o, lse, d_o, delta, dqkv, scores, params.
// Entry points that do not use a binding still get one bound (the launcher repeats a tensor).

struct Params {
    batch: u32,
    seq: u32,
    heads: u32,
    kv_heads: u32,
    scale: f32,
    _pad0: u32,
    site: u32,
    threshold: u32,
    keep_scale: f32,
    head_dim: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> qkv: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> random_state: array<u32>;
@group(0) @binding(2) var<storage, read_write> o: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;
@group(0) @binding(4) var<storage, read> d_o: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> delta: array<f32>;
@group(0) @binding(6) var<storage, read_write> dqkv: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> scores: array<f32>;
@group(0) @binding(8) var<uniform> params: Params;

// Compiles the dropout mask in; false makes p = 0 cost nothing.
override dropout: bool = false;
// Invocations per workgroup of the unfused element-wise kernels.
override block: u32 = 64u;

// Head dimension D is a runtime parameter (a multiple of 8, at most 4·MAX_D4), so one pipeline serves
// every D: fewer slow first-use compiles on llvmpipe.
const MAX_D4: u32 = 32u;

fn d4() -> u32 {
    return params.head_dim / 4u;
}

// vec4 offset of a token's row in qkv (and dqkv).
fn token_row(b: u32, t: u32) -> u32 {
    return (b * params.seq + t) * (params.heads + 2u * params.kv_heads) * d4();
}

fn q_at(b: u32, t: u32, h: u32) -> u32 {
    return token_row(b, t) + h * d4();
}

fn k_at(b: u32, s: u32, g: u32) -> u32 {
    return token_row(b, s) + (params.heads + g) * d4();
}

fn v_at(b: u32, s: u32, g: u32) -> u32 {
    return token_row(b, s) + (params.heads + params.kv_heads + g) * d4();
}

// vec4 offset of (b, t, h) in o and d_o.
fn o_at(b: u32, t: u32, h: u32) -> u32 {
    return ((b * params.seq + t) * params.heads + h) * d4();
}

// Index of query row (b, h, t) in lse and delta.
fn row_at(b: u32, h: u32, t: u32) -> u32 {
    return (b * params.heads + h) * params.seq + t;
}

fn kv_head(h: u32) -> u32 {
    return h / (params.heads / params.kv_heads);
}

// A_ts from P_ts: the probability with the dropout mask of (row, s) applied and rescaled.
fn dropped(p: f32, row: u32, s: u32) -> f32 {
    if dropout {
        let count = params.batch * params.heads * params.seq * params.seq;
        let element = random_element(random_state[2], count, row * params.seq + s);
        let keep = random_keep(random_state[0], random_state[1], params.site, element, params.threshold);
        return select(0.0, p * params.keep_scale, keep);
    }
    return p;
}

// ---- fused kernels. An invocation's accumulators live in its own slice of workgroup memory, never
// shared, so no barrier is needed. (Private vec4 arrays indexed by the loop counter took llvmpipe's GL
// path 10-18 s per pipeline to compile and ran slower; workgroup memory indexes natively everywhere.) Slices are interleaved (vec4 i of lane j at i·lanes + j), so the lanes' accesses are
// consecutive (no bank conflicts on GPUs, contiguous vectors on CPUs).

// Query rows per workgroup (forward, dq: one accumulator) and key rows (dk/dv: two), so that
// lanes · MAX_D4 vec4s per accumulator fill STATE = 16 KiB, WebGPU's default limit.
const ROWS: u32 = 32u;
const KEYS: u32 = 16u;
const STATE: u32 = 1024u;

var<workgroup> state: array<vec4<f32>, STATE>;

fn row_slot(i: u32, lane: u32) -> u32 {
    return i * ROWS + lane;
}

// Forward: one invocation per query row (b, h, t); online softmax over keys s = 0..t.
// Grid: (ceil(T / ROWS), B·H).
@compute @workgroup_size(ROWS)
fn attention_forward(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let lane = local.x;
    let t = group.x * ROWS + lane;
    let b = group.y / params.heads;
    let h = group.y % params.heads;
    if t >= params.seq {
        return;
    }
    let g = kv_head(h);
    let qi = q_at(b, t, h);
    for (var i = 0u; i < d4(); i++) {
        state[row_slot(i, lane)] = vec4<f32>(0.0);
    }
    let row = row_at(b, h, t);
    // A finite start, so the first rescale is exp(-huge) = 0 rather than exp(-inf + inf) = NaN.
    var m = -3.0e38;
    var l = 0.0;
    // Four keys per step: each q load and accumulator update serves four keys. Keys past t (the last
    // block's tail) read key t again and get score -3e38, so their weight is exp(-huge) = 0.
    for (var s = 0u; s <= t; s += 4u) {
        let keys = min(vec4<u32>(s) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(t));
        let k0 = k_at(b, keys.x, g);
        let k1 = k_at(b, keys.y, g);
        let k2 = k_at(b, keys.z, g);
        let k3 = k_at(b, keys.w, g);
        var score = vec4<f32>(0.0);
        for (var i = 0u; i < d4(); i++) {
            let qv = qkv[qi + i];
            score += vec4<f32>(dot(qv, qkv[k0 + i]), dot(qv, qkv[k1 + i]), dot(qv, qkv[k2 + i]), dot(qv, qkv[k3 + i]));
        }
        let valid = vec4<u32>(s) + vec4<u32>(0u, 1u, 2u, 3u) <= vec4<u32>(t);
        score = select(vec4<f32>(-3.0e38), score * params.scale, valid);
        let top = max(max(score.x, score.y), max(score.z, score.w));
        // Rescale only when the running max moves (rare after the first keys).
        if top > m {
            let c = exp(m - top);
            l *= c;
            for (var i = 0u; i < d4(); i++) {
                state[row_slot(i, lane)] *= c;
            }
            m = top;
        }
        let e = exp(score - m);
        l += e.x + e.y + e.z + e.w;
        let a = vec4<f32>(dropped(e.x, row, s), dropped(e.y, row, s + 1u), dropped(e.z, row, s + 2u), dropped(e.w, row, s + 3u));
        let v0 = v_at(b, keys.x, g);
        let v1 = v_at(b, keys.y, g);
        let v2 = v_at(b, keys.z, g);
        let v3 = v_at(b, keys.w, g);
        for (var i = 0u; i < d4(); i++) {
            state[row_slot(i, lane)] += a.x * qkv[v0 + i] + a.y * qkv[v1 + i] + a.z * qkv[v2 + i] + a.w * qkv[v3 + i];
        }
    }
    let oi = o_at(b, t, h);
    let inv = 1.0 / l;
    for (var i = 0u; i < d4(); i++) {
        o[oi + i] = state[row_slot(i, lane)] * inv;
    }
    lse[row] = m + log(l);
}

// Backward, step 1: delta_t = dO_t·O_t per query row. Grid as the forward.
@compute @workgroup_size(ROWS)
fn attention_backward_delta(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let t = group.x * ROWS + local.x;
    let b = group.y / params.heads;
    let h = group.y % params.heads;
    if t >= params.seq {
        return;
    }
    let oi = o_at(b, t, h);
    var sum = 0.0;
    for (var i = 0u; i < d4(); i++) {
        sum += dot(d_o[oi + i], o[oi + i]);
    }
    delta[row_at(b, h, t)] = sum;
}

// dk (first MAX_D4 vec4s of the slice) and dv (the rest) of a key lane.
fn dk_slot(i: u32, lane: u32) -> u32 {
    return i * KEYS + lane;
}

fn dv_slot(i: u32, lane: u32) -> u32 {
    return (MAX_D4 + i) * KEYS + lane;
}

// Backward, step 2: dk, dv for one key row (b, g, s), over the query heads of group g and the queries
// t ≥ s, walked from T - 1 down so that every lane reads the same query at once.
// Grid: (ceil(T / KEYS), B·Hkv).
@compute @workgroup_size(KEYS)
fn attention_backward_key_value(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let lane = local.x;
    let s = group.x * KEYS + lane;
    let b = group.y / params.kv_heads;
    let g = group.y % params.kv_heads;
    if s >= params.seq {
        return;
    }
    let ki = k_at(b, s, g);
    let vi = v_at(b, s, g);
    for (var i = 0u; i < d4(); i++) {
        state[dk_slot(i, lane)] = vec4<f32>(0.0);
        state[dv_slot(i, lane)] = vec4<f32>(0.0);
    }
    let group_size = params.heads / params.kv_heads;
    for (var r = 0u; r < group_size; r++) {
        let h = g * group_size + r;
        // Four queries per step (t - 1 down to t - 4); those below s get weight 0 and reread query s.
        for (var t = params.seq; t > s; t -= min(4u, t - s)) {
            let valid = vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(t - s);
            let rows = select(vec4<u32>(s), vec4<u32>(t - 1u) - vec4<u32>(0u, 1u, 2u, 3u), valid);
            let q0 = q_at(b, rows.x, h);
            let q1 = q_at(b, rows.y, h);
            let q2 = q_at(b, rows.z, h);
            let q3 = q_at(b, rows.w, h);
            let o0 = o_at(b, rows.x, h);
            let o1 = o_at(b, rows.y, h);
            let o2 = o_at(b, rows.z, h);
            let o3 = o_at(b, rows.w, h);
            var score = vec4<f32>(0.0);
            var da = vec4<f32>(0.0);
            // Two vec4 columns per iteration: this kernel's loops are the longest ((H/Hkv)·T queries).
            for (var i = 0u; i < d4(); i += 2u) {
                let j = i + 1u;
                let kv = qkv[ki + i];
                let vv = qkv[vi + i];
                let kw = qkv[ki + j];
                let vw = qkv[vi + j];
                score += vec4<f32>(dot(qkv[q0 + i], kv), dot(qkv[q1 + i], kv), dot(qkv[q2 + i], kv), dot(qkv[q3 + i], kv));
                da += vec4<f32>(dot(d_o[o0 + i], vv), dot(d_o[o1 + i], vv), dot(d_o[o2 + i], vv), dot(d_o[o3 + i], vv));
                score += vec4<f32>(dot(qkv[q0 + j], kw), dot(qkv[q1 + j], kw), dot(qkv[q2 + j], kw), dot(qkv[q3 + j], kw));
                da += vec4<f32>(dot(d_o[o0 + j], vw), dot(d_o[o1 + j], vw), dot(d_o[o2 + j], vw), dot(d_o[o3 + j], vw));
            }
            let r = vec4<u32>(row_at(b, h, rows.x), row_at(b, h, rows.y), row_at(b, h, rows.z), row_at(b, h, rows.w));
            let lse4 = vec4<f32>(lse[r.x], lse[r.y], lse[r.z], lse[r.w]);
            let delta4 = vec4<f32>(delta[r.x], delta[r.y], delta[r.z], delta[r.w]);
            let p = select(vec4<f32>(0.0), exp(score * params.scale - lse4), valid);
            let a = vec4<f32>(dropped(p.x, r.x, s), dropped(p.y, r.y, s), dropped(p.z, r.z, s), dropped(p.w, r.w, s));
            let ds = a * da - p * delta4;
            for (var i = 0u; i < d4(); i += 2u) {
                let j = i + 1u;
                state[dk_slot(i, lane)] += ds.x * qkv[q0 + i] + ds.y * qkv[q1 + i] + ds.z * qkv[q2 + i] + ds.w * qkv[q3 + i];
                state[dv_slot(i, lane)] += a.x * d_o[o0 + i] + a.y * d_o[o1 + i] + a.z * d_o[o2 + i] + a.w * d_o[o3 + i];
                state[dk_slot(j, lane)] += ds.x * qkv[q0 + j] + ds.y * qkv[q1 + j] + ds.z * qkv[q2 + j] + ds.w * qkv[q3 + j];
                state[dv_slot(j, lane)] += a.x * d_o[o0 + j] + a.y * d_o[o1 + j] + a.z * d_o[o2 + j] + a.w * d_o[o3 + j];
            }
        }
    }
    for (var i = 0u; i < d4(); i++) {
        dqkv[ki + i] = state[dk_slot(i, lane)] * params.scale;
        dqkv[vi + i] = state[dv_slot(i, lane)];
    }
}

// Backward, step 3: dq for one query row (b, h, t) over keys s = 0..t. Grid as the forward.
@compute @workgroup_size(ROWS)
fn attention_backward_query(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let lane = local.x;
    let t = group.x * ROWS + lane;
    let b = group.y / params.heads;
    let h = group.y % params.heads;
    if t >= params.seq {
        return;
    }
    let g = kv_head(h);
    let qi = q_at(b, t, h);
    let oi = o_at(b, t, h);
    for (var i = 0u; i < d4(); i++) {
        state[row_slot(i, lane)] = vec4<f32>(0.0);
    }
    let row = row_at(b, h, t);
    let lse_t = lse[row];
    let delta_t = delta[row];
    // Four keys per step, as in the forward: keys past t reread key t with weight 0.
    for (var s = 0u; s <= t; s += 4u) {
        let valid = vec4<u32>(s) + vec4<u32>(0u, 1u, 2u, 3u) <= vec4<u32>(t);
        let keys = min(vec4<u32>(s) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(t));
        let k0 = k_at(b, keys.x, g);
        let k1 = k_at(b, keys.y, g);
        let k2 = k_at(b, keys.z, g);
        let k3 = k_at(b, keys.w, g);
        let v0 = v_at(b, keys.x, g);
        let v1 = v_at(b, keys.y, g);
        let v2 = v_at(b, keys.z, g);
        let v3 = v_at(b, keys.w, g);
        var score = vec4<f32>(0.0);
        var da = vec4<f32>(0.0);
        for (var i = 0u; i < d4(); i++) {
            let qv = qkv[qi + i];
            let dv = d_o[oi + i];
            score += vec4<f32>(dot(qv, qkv[k0 + i]), dot(qv, qkv[k1 + i]), dot(qv, qkv[k2 + i]), dot(qv, qkv[k3 + i]));
            da += vec4<f32>(dot(dv, qkv[v0 + i]), dot(dv, qkv[v1 + i]), dot(dv, qkv[v2 + i]), dot(dv, qkv[v3 + i]));
        }
        let p = select(vec4<f32>(0.0), exp(score * params.scale - lse_t), valid);
        let a = vec4<f32>(dropped(p.x, row, s), dropped(p.y, row, s + 1u), dropped(p.z, row, s + 2u), dropped(p.w, row, s + 3u));
        let ds = a * da - p * delta_t;
        for (var i = 0u; i < d4(); i++) {
            state[row_slot(i, lane)] += ds.x * qkv[k0 + i] + ds.y * qkv[k1 + i] + ds.z * qkv[k2 + i] + ds.w * qkv[k3 + i];
        }
    }
    for (var i = 0u; i < d4(); i++) {
        dqkv[qi + i] = state[row_slot(i, lane)] * params.scale;
    }
}

// ---- unfused baseline: the T×T probabilities materialized in `scores` [B, H, T, T], one invocation
// per output element and plain loops (what fusing is measured against). Forward: scores, softmax,
// output. Backward (after attention_backward_delta): value_grad, score_grad (overwrites the
// probabilities with dS), query_grad, key_grad.

// scale·q·k of query t and key s in head (b, h), one plain loop over D.
fn scaled_score(b: u32, h: u32, t: u32, s: u32) -> f32 {
    let qi = q_at(b, t, h);
    let ki = k_at(b, s, kv_head(h));
    var score = 0.0;
    for (var i = 0u; i < d4(); i++) {
        score += dot(qkv[qi + i], qkv[ki + i]);
    }
    return score * params.scale;
}

// Element (t, s) of the score matrix of head (b, h); grid (ceil(T² / block), B·H).
@compute @workgroup_size(block)
fn attention_unfused_scores(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let e = group.x * block + local.x;
    let t = e / params.seq;
    let s = e % params.seq;
    let b = group.y / params.heads;
    let h = group.y % params.heads;
    if t >= params.seq {
        return;
    }
    var score = 0.0;
    if s <= t {
        score = scaled_score(b, h, t, s);
    }
    scores[row_at(b, h, t) * params.seq + s] = score;
}

// Element (t, s) of head (b, h)'s attention probabilities, recomputed from the saved lse: exp(scale·q·k
// - lse) for s ≤ t and 0 above the diagonal, before dropout. The fused forward never stores them; this
// is what a caller who wants to look at them (wgpt inspect) dispatches. Grid as attention_unfused_scores.
@compute @workgroup_size(block)
fn attention_probabilities(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let e = group.x * block + local.x;
    let t = e / params.seq;
    let s = e % params.seq;
    let b = group.y / params.heads;
    let h = group.y % params.heads;
    if t >= params.seq {
        return;
    }
    var p = 0.0;
    if s <= t {
        p = exp(scaled_score(b, h, t, s) - lse[row_at(b, h, t)]);
    }
    scores[row_at(b, h, t) * params.seq + s] = p;
}

// Row t of head (b, h): scores → probabilities in place, and lse. Grid as the forward.
@compute @workgroup_size(ROWS)
fn attention_unfused_softmax(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let t = group.x * ROWS + local.x;
    let b = group.y / params.heads;
    let h = group.y % params.heads;
    if t >= params.seq {
        return;
    }
    let row = row_at(b, h, t);
    let base = row * params.seq;
    var m = scores[base];
    for (var s = 1u; s <= t; s++) {
        m = max(m, scores[base + s]);
    }
    var l = 0.0;
    for (var s = 0u; s <= t; s++) {
        l += exp(scores[base + s] - m);
    }
    let lse_t = m + log(l);
    for (var s = 0u; s <= t; s++) {
        scores[base + s] = exp(scores[base + s] - lse_t);
    }
    lse[row] = lse_t;
}

// One vec4 of O: (b, h, t, column block c); grid (ceil(T·D/4 / block), B·H).
@compute @workgroup_size(block)
fn attention_unfused_output(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let e = group.x * block + local.x;
    let t = e / d4();
    let c = e % d4();
    let b = group.y / params.heads;
    let h = group.y % params.heads;
    if t >= params.seq {
        return;
    }
    let g = kv_head(h);
    let row = row_at(b, h, t);
    var acc = vec4<f32>(0.0);
    for (var s = 0u; s <= t; s++) {
        acc += dropped(scores[row * params.seq + s], row, s) * qkv[v_at(b, s, g) + c];
    }
    o[o_at(b, t, h) + c] = acc;
}

// One vec4 of dv: (b, g, s, column block c); grid (ceil(T·D/4 / block), B·Hkv).
@compute @workgroup_size(block)
fn attention_unfused_value_grad(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let e = group.x * block + local.x;
    let s = e / d4();
    let c = e % d4();
    let b = group.y / params.kv_heads;
    let g = group.y % params.kv_heads;
    if s >= params.seq {
        return;
    }
    let group_size = params.heads / params.kv_heads;
    var acc = vec4<f32>(0.0);
    for (var h = g * group_size; h < (g + 1u) * group_size; h++) {
        for (var t = s; t < params.seq; t++) {
            let row = row_at(b, h, t);
            acc += dropped(scores[row * params.seq + s], row, s) * d_o[o_at(b, t, h) + c];
        }
    }
    dqkv[v_at(b, s, g) + c] = acc;
}

// Element (t, s ≤ t) of head (b, h): P → dS in place. Grid as attention_unfused_scores.
@compute @workgroup_size(block)
fn attention_unfused_score_grad(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let e = group.x * block + local.x;
    let t = e / params.seq;
    let s = e % params.seq;
    let b = group.y / params.heads;
    let h = group.y % params.heads;
    if t >= params.seq || s > t {
        return;
    }
    let oi = o_at(b, t, h);
    let vi = v_at(b, s, kv_head(h));
    var da = 0.0;
    for (var i = 0u; i < d4(); i++) {
        da += dot(d_o[oi + i], qkv[vi + i]);
    }
    let row = row_at(b, h, t);
    let p = scores[row * params.seq + s];
    scores[row * params.seq + s] = dropped(p, row, s) * da - p * delta[row];
}

// One vec4 of dq: (b, h, t, column block c); grid as attention_unfused_output.
@compute @workgroup_size(block)
fn attention_unfused_query_grad(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let e = group.x * block + local.x;
    let t = e / d4();
    let c = e % d4();
    let b = group.y / params.heads;
    let h = group.y % params.heads;
    if t >= params.seq {
        return;
    }
    let g = kv_head(h);
    let row = row_at(b, h, t);
    var acc = vec4<f32>(0.0);
    for (var s = 0u; s <= t; s++) {
        acc += scores[row * params.seq + s] * qkv[k_at(b, s, g) + c];
    }
    dqkv[q_at(b, t, h) + c] = acc * params.scale;
}

// One vec4 of dk: (b, g, s, column block c); grid as attention_unfused_value_grad.
@compute @workgroup_size(block)
fn attention_unfused_key_grad(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let e = group.x * block + local.x;
    let s = e / d4();
    let c = e % d4();
    let b = group.y / params.kv_heads;
    let g = group.y % params.kv_heads;
    if s >= params.seq {
        return;
    }
    let group_size = params.heads / params.kv_heads;
    var acc = vec4<f32>(0.0);
    for (var h = g * group_size; h < (g + 1u) * group_size; h++) {
        for (var t = s; t < params.seq; t++) {
            acc += scores[row_at(b, h, t) * params.seq + s] * qkv[q_at(b, t, h) + c];
        }
    }
    dqkv[k_at(b, s, g) + c] = acc * params.scale;
}
