// kvcache: key/value caches of N sequences, and one decode step of attention over them.
//
//   fill       k_cache[n, t, :] = k[b, t],  v_cache[n, t, :] = v[b, t]   for t < T, b = n mod B     (writes)
//   append     k_cache[n, pos, :] = k[n],  v_cache[n, pos, :] = v[n]                              (writes)
//   attention  out[n, h, :] = softmax(scale · q[n, h] · k_cache[n, 0..=pos, g]ᵀ) · v_cache[n, 0..=pos, g]
//                                                                                                 (writes)
//
// k_cache, v_cache: [N, ctx, Hkv·D], one cache per sequence. fill reads qkv: [B, T, (H + 2·Hkv)·D] (a
// prefill's c_attn output, B = 1 filling every sequence's cache from one prompt, or B = N); append and
// attention read qkv: [N, (H + 2·Hkv)·D], each sequence's new token's q (H heads), k and v (Hkv heads
// each), and out: [N, H·D]. position: [1] u32, the new tokens' position `pos` (the same for every
// sequence), written before each step (the dispatches never change). Query head h uses kv head
// g = h / (H / Hkv). A position at or beyond ctx writes nothing and attends over the whole cache.
//
// The attention runs one workgroup per (query head, sequence): the WG invocations score WG keys at a
// time into workgroup memory; each takes the chunk's max and turns its own score into a weight (one exp
// per key, not per key and invocation); then every invocation folds the chunk's weights into the same
// running max and sum (an online softmax, so the cache length needs no workgroup array) and into the
// output columns it owns, c = tid + r·WG. Per invocation that is about D + 4·WG loop iterations per
// chunk of WG keys.
//
// On CPU adapters (lavapipe) the append and the attention have a twin, kvcache_attention_lanes, for head
// rows of whole vec4s (D a multiple of 4 in f32, of 8 in 16 bits): a workgroup of LANES invocations per
// (query head, sequence), each walking its own keys j = lane, lane + LANES, ... with the query, its
// online softmax state and its output row in registers, reading each cache row as vec4s; the lane
// whose keys include the new position appends the new rows first (one dispatch a step instead of two,
// a dispatch costing lavapipe some 50 us); the lanes' partial results meet once, in workgroup memory,
// after the last key. There an invocation is a SIMD lane: the chunked
// kernel's three barriers per 64 keys and its scalar loads cost ten times the bytes it reads.
//
// The caches may be stored in 16 bits (dtype.wgsl, the prelude, sets `dtype`): bound as u32 words, a
// cache row of Hkv·D values (even) is Hkv·D / 2 words; fill and append write a word (two values,
// rounded) per item, the attention widens what it reads. qkv and out are f32.

struct Params {
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    context: u32,
    scale: f32,
    // The caches' sequences N; fill's qkv batch B and length T (1 and 1 for append and attention).
    sequences: u32,
    batch: u32,
    seq: u32,
}

// Invocations per workgroup (and keys per chunk); the largest head dimension, as in attention.
const WG: u32 = 64u;
const MAX_D: u32 = 128u;
const COLUMNS_PER_INVOCATION: u32 = MAX_D / WG;

// ---- append. Bindings: qkv, position, k_cache, v_cache, params.
@group(0) @binding(0) var<storage, read> qkv: array<f32>;
@group(0) @binding(1) var<storage, read> position: array<u32>;
@group(0) @binding(2) var<storage, read_write> k_cache: array<u32>;
@group(0) @binding(3) var<storage, read_write> v_cache: array<u32>;

// The cache word holding qkv values source .. source + per_word - 1.
fn cache_word(source: u32) -> u32 {
    if dtype == DTYPE_F32 {
        return bitcast<u32>(qkv[source]);
    }
    return dtype_pack2(vec2(qkv[source], qkv[source + 1u]));
}
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn kvcache_append(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let pos = position[0];
    if pos >= params.context {
        return;
    }
    let width = params.kv_heads * params.head_dim;
    let row = params.heads * params.head_dim + 2u * width;
    let k0 = params.heads * params.head_dim;
    // One item per cache word.
    let words = width / dtype_per_word();
    for (var i = id.x; i < params.sequences * words; i += groups.x * WG) {
        let n = i / words;
        let w = i - n * words;
        let at = (n * params.context + pos) * words + w;
        let c = w * dtype_per_word();
        k_cache[at] = cache_word(n * row + k0 + c);
        v_cache[at] = cache_word(n * row + k0 + width + c);
    }
}

// ---- fill. Bindings: qkv, k_cache, v_cache, params.
@group(0) @binding(1) var<storage, read_write> fill_k: array<u32>;
@group(0) @binding(2) var<storage, read_write> fill_v: array<u32>;
@group(0) @binding(3) var<uniform> fill_params: Params;

@compute @workgroup_size(WG)
fn kvcache_fill(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let p = fill_params;
    let width = p.kv_heads * p.head_dim;
    let row = p.heads * p.head_dim + 2u * width;
    let k0 = p.heads * p.head_dim;
    // One item per cache word.
    let words = width / dtype_per_word();
    let per_sequence = p.seq * words;
    for (var i = id.x; i < p.sequences * per_sequence; i += groups.x * WG) {
        let n = i / per_sequence;
        let t = (i - n * per_sequence) / words;
        let w = i - n * per_sequence - t * words;
        let source = ((n % p.batch) * p.seq + t) * row + k0 + w * dtype_per_word();
        let at = (n * p.context + t) * words + w;
        fill_k[at] = cache_word(source);
        fill_v[at] = cache_word(source + width);
    }
}

// ---- attention. Bindings: qkv, position, k_cache, v_cache (read), out, params.
@group(0) @binding(2) var<storage, read> keys: array<u32>;
@group(0) @binding(3) var<storage, read> values: array<u32>;

// Value i of the key and of the value caches.
fn key(i: u32) -> f32 {
    return dtype_value(keys[dtype_word(i)], i);
}

fn value(i: u32) -> f32 {
    return dtype_value(values[dtype_word(i)], i);
}
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> attention_params: Params;

var<workgroup> query: array<f32, MAX_D>;
var<workgroup> scores: array<f32, WG>;
var<workgroup> weights: array<f32, WG>;

@compute @workgroup_size(WG)
fn kvcache_attention(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let p = attention_params;
    let d = p.head_dim;
    let h = wid.x;
    let sequence = wid.y;
    let tid = lid.x;
    let g = h / (p.heads / p.kv_heads);
    let width = p.kv_heads * d;
    let row = p.heads * d + 2u * width;
    // This sequence's cache rows start here.
    let cache = sequence * p.context * width;
    // Keys 0..=pos, clamped to the cache.
    let n = min(position[0], p.context - 1u) + 1u;
    for (var c = tid; c < d; c += WG) {
        query[c] = qkv[sequence * row + h * d + c];
    }
    workgroupBarrier();
    // A finite "minus infinity", so the first chunk's correction exp(m - m_new) is 0, never NaN.
    var m = -3.0e38;
    var l = 0.0;
    var acc: array<f32, COLUMNS_PER_INVOCATION>;
    for (var start = 0u; start < n; start += WG) {
        let j = start + tid;
        var s = -3.0e38;
        if j < n {
            let base = cache + j * width + g * d;
            var dot = 0.0;
            for (var c = 0u; c < d; c++) {
                dot += query[c] * key(base + c);
            }
            s = p.scale * dot;
        }
        scores[tid] = s;
        workgroupBarrier();
        let count = min(WG, n - start);
        var chunk_max = scores[0];
        for (var i = 1u; i < count; i++) {
            chunk_max = max(chunk_max, scores[i]);
        }
        let m_new = max(m, chunk_max);
        // Keys past n score "minus infinity": weight 0.
        weights[tid] = exp(s - m_new);
        workgroupBarrier();
        let correction = exp(m - m_new);
        l *= correction;
        for (var r = 0u; r < COLUMNS_PER_INVOCATION; r++) {
            acc[r] *= correction;
        }
        for (var i = 0u; i < count; i++) {
            let e = weights[i];
            l += e;
            let base = cache + (start + i) * width + g * d;
            for (var r = 0u; r < COLUMNS_PER_INVOCATION; r++) {
                let c = tid + r * WG;
                if c < d {
                    acc[r] += e * value(base + c);
                }
            }
        }
        m = m_new;
        // Every invocation has read this chunk's scores and weights before the next overwrites them.
        workgroupBarrier();
    }
    let o = sequence * p.heads * d + h * d;
    for (var r = 0u; r < COLUMNS_PER_INVOCATION; r++) {
        let c = tid + r * WG;
        if c < d {
            out[o + c] = acc[r] / l;
        }
    }
}

// ---- append and attention on CPU adapters. Bindings as the attention's, the caches read and written as
// vec4<u32> words.
@group(0) @binding(2) var<storage, read_write> keys4: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read_write> values4: array<vec4<u32>>;

// D / 4 (a constant by compile time, so the loops over a row unroll), at most MAX_D / 4.
override d4: u32 = 16u;

const LANES: u32 = 8u;
const MAX_D4: u32 = MAX_D / 4u;

alias Row = array<vec4<f32>, MAX_D4>;

// Each lane's softmax state and output row, for the lanes to combine.
var<workgroup> lane_max: array<f32, LANES>;
var<workgroup> lane_sum: array<f32, LANES>;
var<workgroup> lane_rows: array<Row, LANES>;

// Values 4i .. 4i + 3 of the head row at vec4<u32> `at` of a cache: f32 words are one vec4 each, 16-bit
// words hold two.
fn cache_quad(words: vec4<u32>, i: u32) -> vec4<f32> {
    if dtype == DTYPE_F32 {
        return bitcast<vec4<f32>>(words);
    }
    if i % 2u == 0u {
        return dtype_unpack4(words.xy);
    }
    return dtype_unpack4(words.zw);
}

// The vec4<u32> word of a cache holding values 4i .. 4i + 3 of the head row starting at value `start`.
fn cache_at(start: u32, i: u32) -> u32 {
    return (start / 4u + i) / select(2u, 1u, dtype == DTYPE_F32);
}

// q · (the key row at value `start`).
fn key_dot(q: ptr<function, Row>, start: u32) -> f32 {
    var sum = vec4<f32>(0.0);
    for (var i = 0u; i < d4; i++) {
        sum = fma((*q)[i], cache_quad(keys4[cache_at(start, i)], i), sum);
    }
    return sum.x + sum.y + sum.z + sum.w;
}

// acc = acc·c + e·(the value row at value `start`).
fn add_value(acc: ptr<function, Row>, c: f32, e: f32, start: u32) {
    for (var i = 0u; i < d4; i++) {
        (*acc)[i] = fma(vec4(e), cache_quad(values4[cache_at(start, i)], i), (*acc)[i] * c);
    }
}

// The cache words (a vec4<u32>) holding values c .. of qkv: 4 in f32, 8 in 16 bits, rounded as
// kvcache_append rounds them.
fn cache_quad_words(c: u32) -> vec4<u32> {
    if dtype == DTYPE_F32 {
        return bitcast<vec4<u32>>(vec4(qkv[c], qkv[c + 1u], qkv[c + 2u], qkv[c + 3u]));
    }
    return vec4(cache_word(c), cache_word(c + 2u), cache_word(c + 4u), cache_word(c + 6u));
}

// Appends kv head g's key and value row of the sequence's new token at `start` of the caches: the
// rows kvcache_append writes (every query head of the group writes the same bits).
fn append_row(k_at: u32, width: u32, start: u32) {
    let d = d4 * 4u;
    let per_vec4 = 4u * dtype_per_word();
    for (var c = 0u; c < d; c += per_vec4) {
        let at = cache_at(start, c / 4u);
        keys4[at] = cache_quad_words(k_at + c);
        values4[at] = cache_quad_words(k_at + width + c);
    }
}

@compute @workgroup_size(LANES)
fn kvcache_attention_lanes(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let p = attention_params;
    let h = wid.x;
    let sequence = wid.y;
    let lane = lid.x;
    let d = d4 * 4u;
    let g = h / (p.heads / p.kv_heads);
    let width = p.kv_heads * d;
    let pos = position[0];
    let n = min(pos, p.context - 1u) + 1u;
    let q_at = sequence * (p.heads * d + 2u * width) + h * d;
    // The lane whose keys include pos appends the new rows before it reads them (its own writes: no
    // barrier), so the step is one dispatch.
    if pos < p.context && lane == pos % LANES {
        let k_at = sequence * (p.heads * d + 2u * width) + p.heads * d + g * d;
        append_row(k_at, width, (sequence * p.context + pos) * width + g * d);
    }
    var q: Row;
    for (var i = 0u; i < d4; i++) {
        let c = q_at + 4u * i;
        q[i] = vec4(qkv[c], qkv[c + 1u], qkv[c + 2u], qkv[c + 3u]);
    }
    // A finite "minus infinity", so the first key's correction exp(m - s) is 0, never NaN; a lane
    // without keys keeps it and adds nothing below.
    var m = -3.0e38;
    var l = 0.0;
    var acc: Row;
    for (var j = lane; j < n; j += LANES) {
        let start = (sequence * p.context + j) * width + g * d;
        let s = p.scale * key_dot(&q, start);
        let m_new = max(m, s);
        let c = exp(m - m_new);
        let e = exp(s - m_new);
        l = l * c + e;
        add_value(&acc, c, e, start);
        m = m_new;
    }
    lane_max[lane] = m;
    lane_sum[lane] = l;
    lane_rows[lane] = acc;
    workgroupBarrier();
    var top = lane_max[0];
    for (var k = 1u; k < LANES; k++) {
        top = max(top, lane_max[k]);
    }
    var total = 0.0;
    for (var k = 0u; k < LANES; k++) {
        total += lane_sum[k] * exp(lane_max[k] - top);
    }
    // Lane `lane` writes the output's vec4s lane, lane + LANES, ...
    let o = sequence * p.heads * d + h * d;
    for (var i = lane; i < d4; i += LANES) {
        var sum = vec4<f32>(0.0);
        for (var k = 0u; k < LANES; k++) {
            sum = fma(lane_rows[k][i], vec4(exp(lane_max[k] - top)), sum);
        }
        let v = sum / total;
        out[o + 4u * i] = v.x;
        out[o + 4u * i + 1u] = v.y;
        out[o + 4u * i + 2u] = v.z;
        out[o + 4u * i + 3u] = v.w;
    }
}
