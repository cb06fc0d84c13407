// attention's fused kernels for CPU adapters (lavapipe), composed after attention.wgsl, whose bindings,
// Params and helpers they use. A module of its own: subgroup builtins need the device's SUBGROUP feature,
// and naga validates a whole module at once. Same math, layouts and dropout indices as attention.wgsl.
//
// On a CPU an invocation is a SIMD lane: registers and vec4 loads are cheap, workgroup memory and barriers
// are not, and every load of a storage buffer costs a loop over the lanes. So an invocation keeps its own
// rows (queries, or keys and values) and its accumulators in registers: `Row` arrays indexed only in loops
// bounded by the override `cpu_d4`, a constant by compile time, so compilers can unroll them and keep the
// arrays in registers (Mesa does at small D; at D = 128 it keeps some of these loops). A workgroup is one
// subgroup of LANES invocations, all walking the other axis in step; each vec4 of the rows they all need
// (k and v for queries, q and dO for keys) is loaded by one lane and handed to the others by
// subgroupBroadcast: LANES times fewer loads. This needs subgroups of at least LANES invocations, so that
// a workgroup is one subgroup.
//
// Four rows of the other axis per step, as in attention.wgsl. The forward and dk/dv give each lane two
// rows (queries, keys), so that each shared row serves both (a second row did not measurably help dq).
// llvmpipe stops an invocation silently after 65535 loop iterations in all; the launcher refuses shapes
// that could reach that even if no D loop were unrolled (`Variant::fits` in src/kernels/attention.rs).

// D / 4, at most MAX_D4.
override cpu_d4: u32 = 8u;

const LANES: u32 = 8u;

alias Row = array<vec4<f32>, MAX_D4>;

// Hands x from lane i to every lane as (*row)[j + i].
fn spread(row: ptr<function, Row>, j: u32, x: vec4<f32>) {
    (*row)[j] = subgroupBroadcast(x, 0u);
    (*row)[j + 1u] = subgroupBroadcast(x, 1u);
    (*row)[j + 2u] = subgroupBroadcast(x, 2u);
    (*row)[j + 3u] = subgroupBroadcast(x, 3u);
    (*row)[j + 4u] = subgroupBroadcast(x, 4u);
    (*row)[j + 5u] = subgroupBroadcast(x, 5u);
    (*row)[j + 6u] = subgroupBroadcast(x, 6u);
    (*row)[j + 7u] = subgroupBroadcast(x, 7u);
}

// The head row at vec4 offset `at` of qkv, the same for every lane: lane l loads vec4s l, l + 8, ...
fn shared_qkv(at: u32, lane: u32) -> Row {
    var row: Row;
    for (var j = 0u; j < cpu_d4; j += LANES) {
        spread(&row, j, qkv[at + min(j + lane, cpu_d4 - 1u)]);
    }
    return row;
}

// shared_qkv for a row of d_o.
fn shared_d_o(at: u32, lane: u32) -> Row {
    var row: Row;
    for (var j = 0u; j < cpu_d4; j += LANES) {
        spread(&row, j, d_o[at + min(j + lane, cpu_d4 - 1u)]);
    }
    return row;
}

// This lane's own head row at vec4 offset `at` of qkv.
fn own_qkv(at: u32) -> Row {
    var row: Row;
    for (var i = 0u; i < cpu_d4; i++) {
        row[i] = qkv[at + i];
    }
    return row;
}

fn own_d_o(at: u32) -> Row {
    var row: Row;
    for (var i = 0u; i < cpu_d4; i++) {
        row[i] = d_o[at + i];
    }
    return row;
}

// Stores row · k at vec4 offset `at` of dqkv.
fn store_dqkv(at: u32, row: ptr<function, Row>, k: f32) {
    for (var i = 0u; i < cpu_d4; i++) {
        dqkv[at + i] = (*row)[i] * k;
    }
}

// (a·r0, a·r1, a·r2, a·r3), in one loop.
fn row_dots(a: ptr<function, Row>, r0: ptr<function, Row>, r1: ptr<function, Row>, r2: ptr<function, Row>, r3: ptr<function, Row>) -> vec4<f32> {
    var s0 = vec4<f32>(0.0);
    var s1 = vec4<f32>(0.0);
    var s2 = vec4<f32>(0.0);
    var s3 = vec4<f32>(0.0);
    for (var i = 0u; i < cpu_d4; i++) {
        let x = (*a)[i];
        s0 = fma(x, (*r0)[i], s0);
        s1 = fma(x, (*r1)[i], s1);
        s2 = fma(x, (*r2)[i], s2);
        s3 = fma(x, (*r3)[i], s3);
    }
    // Row j of the transpose holds component j of every sum.
    let m = transpose(mat4x4<f32>(s0, s1, s2, s3));
    return m[0] + m[1] + m[2] + m[3];
}

fn row_scale(acc: ptr<function, Row>, k: f32) {
    for (var i = 0u; i < cpu_d4; i++) {
        (*acc)[i] *= k;
    }
}

// acc += w.x·r0 + w.y·r1 + w.z·r2 + w.w·r3.
fn row_add4(acc: ptr<function, Row>, w: vec4<f32>, r0: ptr<function, Row>, r1: ptr<function, Row>, r2: ptr<function, Row>, r3: ptr<function, Row>) {
    for (var i = 0u; i < cpu_d4; i++) {
        (*acc)[i] = fma(vec4(w.w), (*r3)[i], fma(vec4(w.z), (*r2)[i], fma(vec4(w.y), (*r1)[i], fma(vec4(w.x), (*r0)[i], (*acc)[i]))));
    }
}

// One query row's online-softmax state in the forward.
struct Softmax {
    row: u32,
    t: u32,
    // A finite start, so the first rescale is exp(-huge) = 0 rather than exp(-inf + inf) = NaN.
    m: f32,
    l: f32,
}

// Adds keys s..s+3 (rows k, values v) to query row q's softmax state and output accumulator. Keys past t
// get score -3e38, weight 0.
fn forward_step(q: ptr<function, Row>, acc: ptr<function, Row>, st: ptr<function, Softmax>, s: u32, k0: ptr<function, Row>, k1: ptr<function, Row>, k2: ptr<function, Row>, k3: ptr<function, Row>, v0: ptr<function, Row>, v1: ptr<function, Row>, v2: ptr<function, Row>, v3: ptr<function, Row>) {
    let valid = vec4<u32>(s) + vec4<u32>(0u, 1u, 2u, 3u) <= vec4<u32>((*st).t);
    let raw = row_dots(q, k0, k1, k2, k3);
    let score = select(vec4<f32>(-3.0e38), raw * params.scale, valid);
    let top = max(max(score.x, score.y), max(score.z, score.w));
    // Rescale only when the running max moves (rare after the first keys).
    if top > (*st).m {
        let c = exp((*st).m - top);
        (*st).l *= c;
        row_scale(acc, c);
        (*st).m = top;
    }
    let e = exp(score - (*st).m);
    (*st).l += e.x + e.y + e.z + e.w;
    let row = (*st).row;
    let a = vec4<f32>(dropped(e.x, row, s), dropped(e.y, row, s + 1u), dropped(e.z, row, s + 2u), dropped(e.w, row, s + 3u));
    row_add4(acc, a, v0, v1, v2, v3);
}

// Writes o and lse of a finished query row, unless it is past T.
fn forward_store(b: u32, h: u32, acc: ptr<function, Row>, st: Softmax, real: bool) {
    if real {
        let oi = o_at(b, st.t, h);
        row_scale(acc, 1.0 / st.l);
        for (var i = 0u; i < cpu_d4; i++) {
            o[oi + i] = (*acc)[i];
        }
        lse[st.row] = st.m + log(st.l);
    }
}

// Forward: lane l of workgroup (x, b·H + h) holds query rows t0 + l and t0 + 8 + l (t0 = 16x), with o and
// the softmax state in registers, and walks keys 0..t: each shared key row serves two query rows. Keys up
// to t0 + 7 go to both rows, the next eight to the second only.
// Grid: (ceil(T / (2·LANES)), B·H).
@compute @workgroup_size(LANES)
fn attention_cpu_forward(@builtin(workgroup_id) group: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    let t0 = group.x * 2u * LANES;
    let b = group.y / params.heads;
    let h = group.y % params.heads;
    let g = kv_head(h);
    // Rows past T compute row T - 1 and store nothing: every lane must take part in the broadcasts.
    let ta = min(t0 + lane, params.seq - 1u);
    let tb = min(t0 + LANES + lane, params.seq - 1u);
    var qa = own_qkv(q_at(b, ta, h));
    var qb = own_qkv(q_at(b, tb, h));
    var acc_a: Row;
    var acc_b: Row;
    var st_a = Softmax(row_at(b, h, ta), ta, -3.0e38, 0.0);
    var st_b = Softmax(row_at(b, h, tb), tb, -3.0e38, 0.0);
    let last_a = min(t0 + LANES, params.seq) - 1u;
    let last_b = min(t0 + 2u * LANES, params.seq) - 1u;
    // Keys past the block's last reread the last (their score is masked).
    for (var s = 0u; s <= last_b; s += 4u) {
        let keys = min(vec4<u32>(s) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last_b));
        var k0 = shared_qkv(k_at(b, keys.x, g), lane);
        var k1 = shared_qkv(k_at(b, keys.y, g), lane);
        var k2 = shared_qkv(k_at(b, keys.z, g), lane);
        var k3 = shared_qkv(k_at(b, keys.w, g), lane);
        var v0 = shared_qkv(v_at(b, keys.x, g), lane);
        var v1 = shared_qkv(v_at(b, keys.y, g), lane);
        var v2 = shared_qkv(v_at(b, keys.z, g), lane);
        var v3 = shared_qkv(v_at(b, keys.w, g), lane);
        if s <= last_a {
            forward_step(&qa, &acc_a, &st_a, s, &k0, &k1, &k2, &k3, &v0, &v1, &v2, &v3);
        }
        forward_step(&qb, &acc_b, &st_b, s, &k0, &k1, &k2, &k3, &v0, &v1, &v2, &v3);
    }
    forward_store(b, h, &acc_a, st_a, t0 + lane < params.seq);
    forward_store(b, h, &acc_b, st_b, t0 + LANES + lane < params.seq);
}

// Four query rows of one dk/dv step, with what they contribute to every key.
struct Queries {
    rows: vec4<u32>,
    // Whether each is a real query of this step (the step's tail rereads the first row of the block).
    real: vec4<bool>,
    // Their indices in lse and delta, and those values.
    index: vec4<u32>,
    lse: vec4<f32>,
    delta: vec4<f32>,
}

// Adds the step's queries (rows q, dO rows d_out) to key row s's dk and dv; queries before s get weight 0.
fn key_value_step(k: ptr<function, Row>, v: ptr<function, Row>, dk: ptr<function, Row>, dv: ptr<function, Row>, s: u32, qs: Queries, q0: ptr<function, Row>, q1: ptr<function, Row>, q2: ptr<function, Row>, q3: ptr<function, Row>, o0: ptr<function, Row>, o1: ptr<function, Row>, o2: ptr<function, Row>, o3: ptr<function, Row>) {
    let valid = qs.real & (qs.rows >= vec4<u32>(s));
    let score = row_dots(k, q0, q1, q2, q3);
    let da = row_dots(v, o0, o1, o2, o3);
    let p = select(vec4<f32>(0.0), exp(score * params.scale - qs.lse), valid);
    let i = qs.index;
    let a = vec4<f32>(dropped(p.x, i.x, s), dropped(p.y, i.y, s), dropped(p.z, i.z, s), dropped(p.w, i.w, s));
    row_add4(dk, a * da - p * qs.delta, q0, q1, q2, q3);
    row_add4(dv, a, o0, o1, o2, o3);
}

// Backward, dk and dv: lane l of workgroup (x, b·Hkv + g) holds key rows s0 + l and s0 + 8 + l (s0 = 16x),
// with k, v and the gradients in registers, and walks the query heads of group g and queries t ≥ s0 from
// T - 1 down: each shared query row serves both keys. Queries below s0 + 8 go to the first key only.
// Grid: (ceil(T / (2·LANES)), B·Hkv). (delta comes from attention.wgsl's attention_backward_delta.)
@compute @workgroup_size(LANES)
fn attention_cpu_backward_key_value(@builtin(workgroup_id) group: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    let s0 = group.x * 2u * LANES;
    let b = group.y / params.kv_heads;
    let g = group.y % params.kv_heads;
    // Keys past T compute key T - 1 and store nothing: every lane must take part in the broadcasts.
    let sa = min(s0 + lane, params.seq - 1u);
    let sb = min(s0 + LANES + lane, params.seq - 1u);
    var ka = own_qkv(k_at(b, sa, g));
    var va = own_qkv(v_at(b, sa, g));
    var kb = own_qkv(k_at(b, sb, g));
    var vb = own_qkv(v_at(b, sb, g));
    var dka: Row;
    var dva: Row;
    var dkb: Row;
    var dvb: Row;
    let group_size = params.heads / params.kv_heads;
    for (var r = 0u; r < group_size; r++) {
        let h = g * group_size + r;
        // Four queries per step (t - 1 down to t - 4); those below s0 reread query s0.
        for (var t = params.seq; t > s0; t -= min(4u, t - s0)) {
            let real = vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(t - s0);
            let rows = select(vec4<u32>(s0), vec4<u32>(t - 1u) - vec4<u32>(0u, 1u, 2u, 3u), real);
            let index = vec4<u32>(row_at(b, h, rows.x), row_at(b, h, rows.y), row_at(b, h, rows.z), row_at(b, h, rows.w));
            let lse4 = vec4<f32>(lse[index.x], lse[index.y], lse[index.z], lse[index.w]);
            let delta4 = vec4<f32>(delta[index.x], delta[index.y], delta[index.z], delta[index.w]);
            let qs = Queries(rows, real, index, lse4, delta4);
            var q0 = shared_qkv(q_at(b, rows.x, h), lane);
            var q1 = shared_qkv(q_at(b, rows.y, h), lane);
            var q2 = shared_qkv(q_at(b, rows.z, h), lane);
            var q3 = shared_qkv(q_at(b, rows.w, h), lane);
            var o0 = shared_d_o(o_at(b, rows.x, h), lane);
            var o1 = shared_d_o(o_at(b, rows.y, h), lane);
            var o2 = shared_d_o(o_at(b, rows.z, h), lane);
            var o3 = shared_d_o(o_at(b, rows.w, h), lane);
            key_value_step(&ka, &va, &dka, &dva, sa, qs, &q0, &q1, &q2, &q3, &o0, &o1, &o2, &o3);
            if t > s0 + LANES {
                key_value_step(&kb, &vb, &dkb, &dvb, sb, qs, &q0, &q1, &q2, &q3, &o0, &o1, &o2, &o3);
            }
        }
    }
    if s0 + lane < params.seq {
        store_dqkv(k_at(b, sa, g), &dka, params.scale);
        store_dqkv(v_at(b, sa, g), &dva, 1.0);
    }
    if s0 + LANES + lane < params.seq {
        store_dqkv(k_at(b, sb, g), &dkb, params.scale);
        store_dqkv(v_at(b, sb, g), &dvb, 1.0);
    }
}

// Backward, dq: lane l of workgroup (x, b·H + h) is query row t = 8x + l, over keys 0..t. Grid as the
// forward.
@compute @workgroup_size(LANES)
fn attention_cpu_backward_query(@builtin(workgroup_id) group: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    let t0 = group.x * LANES;
    let b = group.y / params.heads;
    let h = group.y % params.heads;
    let g = kv_head(h);
    let t = min(t0 + lane, params.seq - 1u);
    let last = min(t0 + LANES, params.seq) - 1u;
    let qi = q_at(b, t, h);
    var q = own_qkv(qi);
    var d_out = own_d_o(o_at(b, t, h));
    var dq: Row;
    let row = row_at(b, h, t);
    let lse_t = lse[row];
    let delta_t = delta[row];
    for (var s = 0u; s <= last; s += 4u) {
        let keys = min(vec4<u32>(s) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last));
        let valid = vec4<u32>(s) + vec4<u32>(0u, 1u, 2u, 3u) <= vec4<u32>(t);
        // v first, so that only four shared rows are live at a time.
        var v0 = shared_qkv(v_at(b, keys.x, g), lane);
        var v1 = shared_qkv(v_at(b, keys.y, g), lane);
        var v2 = shared_qkv(v_at(b, keys.z, g), lane);
        var v3 = shared_qkv(v_at(b, keys.w, g), lane);
        let da = row_dots(&d_out, &v0, &v1, &v2, &v3);
        var k0 = shared_qkv(k_at(b, keys.x, g), lane);
        var k1 = shared_qkv(k_at(b, keys.y, g), lane);
        var k2 = shared_qkv(k_at(b, keys.z, g), lane);
        var k3 = shared_qkv(k_at(b, keys.w, g), lane);
        let score = row_dots(&q, &k0, &k1, &k2, &k3);
        let p = select(vec4<f32>(0.0), exp(score * params.scale - lse_t), valid);
        let a = vec4<f32>(dropped(p.x, row, s), dropped(p.y, row, s + 1u), dropped(p.z, row, s + 2u), dropped(p.w, row, s + 3u));
        row_add4(&dq, a * da - p * delta_t, &k0, &k1, &k2, &k3);
    }
    if t0 + lane < params.seq {
        store_dqkv(qi, &dq, params.scale);
    }
}
