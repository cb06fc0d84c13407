// cast: tensors stored in 16 bits for mixed-precision training (the packing contract of dtype.wgsl and
// src/dtype.rs; `dtype` is f16 or bf16).
//
//   cast_pack            x: [len] f32, y: [⌈len / 2⌉] u32   y = pack(x)                   (writes y): the
//                                                          16-bit working copy of the weights
//   cast_pack_rounding   the same, and x = unpack(y): x rounded in place to what y holds, so the
//                        forward's later readers see the values the backward will (writes y and x): an
//                        activation the backward keeps
//   cast_unpack          x: [⌈len / 2⌉] u32, y: [len] f32   y = unpack(x)                 (writes y)
//
// An item is one word (two values); params.n counts items and params.len values (an odd len leaves the
// last word's high half zero). Each has a `_vec4` twin over four words (eight values: two vec4<f32>
// and one vec4<u32>), used when the value count is a multiple of 8. Each workgroup walks its own run of
// the items (elementwise.wgsl, the prelude); params last.

struct Params {
    n: u32,
    len: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(2) var<uniform> params: Params;

// ---- pack. Bindings: source, words, params.
@group(0) @binding(0) var<storage, read> source: array<f32>;
@group(0) @binding(1) var<storage, read_write> packed: array<u32>;

@compute @workgroup_size(wg)
fn cast_pack(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let run = elementwise_run(params.n, group.x, groups.x);
    for (var w = run.x + lane; w < run.y; w += wg) {
        var v = vec2(source[2u * w], 0.0);
        if 2u * w + 1u < params.len {
            v.y = source[2u * w + 1u];
        }
        packed[w] = dtype_pack2(v);
    }
}

// Eight values, lo then hi, as four words.
fn pack8(lo: vec4<f32>, hi: vec4<f32>) -> vec4<u32> {
    return vec4(dtype_pack2(lo.xy), dtype_pack2(lo.zw), dtype_pack2(hi.xy), dtype_pack2(hi.zw));
}

@group(0) @binding(0) var<storage, read> source8: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> packed4: array<vec4<u32>>;

@compute @workgroup_size(wg)
fn cast_pack_vec4(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let run = elementwise_run(params.n, group.x, groups.x);
    for (var w = run.x + lane; w < run.y; w += wg) {
        packed4[w] = pack8(source8[2u * w], source8[2u * w + 1u]);
    }
}

// ---- pack_rounding. Bindings: x (rounded in place), y, params.
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<u32>;

@compute @workgroup_size(wg)
fn cast_pack_rounding(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let run = elementwise_run(params.n, group.x, groups.x);
    for (var w = run.x + lane; w < run.y; w += wg) {
        let i = 2u * w;
        let pair = i + 1u < params.len;
        var v = vec2(x[i], 0.0);
        if pair {
            v.y = x[i + 1u];
        }
        let word = dtype_pack2(v);
        y[w] = word;
        let r = dtype_unpack2(word);
        x[i] = r.x;
        if pair {
            x[i + 1u] = r.y;
        }
    }
}

@group(0) @binding(0) var<storage, read_write> x8: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> y4: array<vec4<u32>>;

@compute @workgroup_size(wg)
fn cast_pack_rounding_vec4(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let run = elementwise_run(params.n, group.x, groups.x);
    for (var w = run.x + lane; w < run.y; w += wg) {
        let words = pack8(x8[2u * w], x8[2u * w + 1u]);
        y4[w] = words;
        x8[2u * w] = dtype_unpack4(words.xy);
        x8[2u * w + 1u] = dtype_unpack4(words.zw);
    }
}

// ---- unpack. Bindings: words, values, params.
@group(0) @binding(0) var<storage, read> words: array<u32>;
@group(0) @binding(1) var<storage, read_write> values: array<f32>;

@compute @workgroup_size(wg)
fn cast_unpack(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let run = elementwise_run(params.n, group.x, groups.x);
    for (var w = run.x + lane; w < run.y; w += wg) {
        let r = dtype_unpack2(words[w]);
        values[2u * w] = r.x;
        if 2u * w + 1u < params.len {
            values[2u * w + 1u] = r.y;
        }
    }
}

@group(0) @binding(0) var<storage, read> words4: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> values8: array<vec4<f32>>;

@compute @workgroup_size(wg)
fn cast_unpack_vec4(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let run = elementwise_run(params.n, group.x, groups.x);
    for (var w = run.x + lane; w < run.y; w += wg) {
        let four = words4[w];
        values8[2u * w] = dtype_unpack4(four.xy);
        values8[2u * w + 1u] = dtype_unpack4(four.zw);
    }
}
