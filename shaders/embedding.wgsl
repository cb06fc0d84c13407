// embedding: token plus position embeddings.
//
//   forward   out[b, t, :] = wte[tokens[b, t], :] + wpe[t, :]                        (writes out)
//   _at       out[b, t, :] = wte[tokens[b, t], :] + wpe[start + t, :], start: [1] u32 (writes out)
//   backward  dwte[v, :] += Σ_{(b,t): tokens[b,t] = v} dx[b, t, :]
//             dwpe[t, :] += Σ_b dx[b, t, :]                                        (adds)
//
// tokens: [B, T] u32; wte: [V, C]; wpe: [ctx, C] (start + T ≤ ctx); out, dx: [B, T, C]. Rows are the B·T
// positions. The backward is deterministic without atomics: the CPU groups positions by token when the
// batch is prepared (kernels::embedding::TokenBuckets), so each token's rows are summed by one
// invocation per column in a fixed order, and so are each position's B rows.
//
// Each entry point has a `_vec4` twin over vec4s of columns, used when C is a multiple of 4 and the
// weights are f32. The forward's wte and wpe may be stored in 16 bits, both in the dtype that
// dtype.wgsl (the prelude) sets: they are bound as u32 words and widened as they are read.
//
// wte may be one piece of a larger embedding (when the whole exceeds one storage binding): the rows of
// token ids first .. first + vocab. The piece at first = 0 writes every output row (wpe, plus the
// token's row when the token is in it) and its backward also sums dwpe; a later piece adds its tokens'
// rows into out, and its backward only touches its own tokens. With one piece this is the plain
// embedding.

struct Params {
    rows: u32,
    seq: u32,
    cols: u32,
    vocab: u32,
    first: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// Invocations per workgroup of the forward, a grid-stride loop over all B·T·C outputs (or vec4s of
// them); columns per workgroup of the backward, whose workgroup_id.y walks buckets and positions.
const WG: u32 = 256u;
const COLUMNS: u32 = 64u;

// ---- forward. Bindings: tokens, wte, wpe, out, params; the `_at` entry points read the first
// position from a fifth binding, `start`, before their params.
@group(0) @binding(0) var<storage, read> tokens: array<u32>;
@group(0) @binding(1) var<storage, read> wte: array<u32>;
@group(0) @binding(2) var<storage, read> wpe: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
@group(0) @binding(4) var<storage, read> start: array<u32>;
// The uniform of the entry points with five storage bindings.
@group(0) @binding(5) var<uniform> params5: Params;

// Value i of wte and of wpe.
fn wte_value(i: u32) -> f32 {
    return dtype_value(wte[dtype_word(i)], i);
}

fn wpe_value(i: u32) -> f32 {
    return dtype_value(wpe[dtype_word(i)], i);
}

// out[b, t] = wte[tokens[b, t]] + wpe[first + t], over a grid-stride loop from `i0` by `stride`.
fn forward_rows(i0: u32, stride: u32, p: Params, first: u32) {
    let cols = p.cols;
    for (var i = i0; i < p.rows * cols; i += stride) {
        let row = i / cols;
        let col = i - row * cols;
        // Wraps for ids below the piece; an id outside the vocabulary (a corrupt batch) reads no memory
        // it does not own.
        let local = tokens[row] - p.first;
        if p.first == 0u {
            var v = wpe_value((first + row % p.seq) * cols + col);
            if local < p.vocab {
                v += wte_value(local * cols + col);
            }
            out[i] = v;
        } else if local < p.vocab {
            out[i] += wte_value(local * cols + col);
        }
    }
}

@compute @workgroup_size(WG)
fn embedding_forward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    forward_rows(id.x, groups.x * WG, params, 0u);
}

@compute @workgroup_size(WG)
fn embedding_forward_at(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    forward_rows(id.x, groups.x * WG, params5, start[0]);
}

// The same over vec4s, when C is a multiple of 4.
@group(0) @binding(1) var<storage, read> wte4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> wpe4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out4: array<vec4<f32>>;

fn forward_rows_vec4(i0: u32, stride: u32, p: Params, first: u32) {
    let cols4 = p.cols / 4u;
    for (var i = i0; i < p.rows * cols4; i += stride) {
        let row = i / cols4;
        let col = i - row * cols4;
        let local = tokens[row] - p.first;
        if p.first == 0u {
            var v = wpe4[(first + row % p.seq) * cols4 + col];
            if local < p.vocab {
                v += wte4[local * cols4 + col];
            }
            out4[i] = v;
        } else if local < p.vocab {
            out4[i] += wte4[local * cols4 + col];
        }
    }
}

@compute @workgroup_size(WG)
fn embedding_forward_vec4(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    forward_rows_vec4(id.x, groups.x * WG, params, 0u);
}

@compute @workgroup_size(WG)
fn embedding_forward_at_vec4(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    forward_rows_vec4(id.x, groups.x * WG, params5, start[0]);
}

// ---- backward. Bindings: dx, positions, buckets, dwte, dwpe, params.
// positions: [rows] row indices grouped by token; buckets: [rows, 3] (start, count, token) for each
// distinct token, then unused slots with count 0. workgroup_id.y < rows is a bucket, the next T are
// positions (for the piece at first = 0 only; buckets of tokens outside the piece are skipped).
@group(0) @binding(0) var<storage, read> dx: array<f32>;
@group(0) @binding(1) var<storage, read> positions: array<u32>;
@group(0) @binding(2) var<storage, read> buckets: array<u32>;
@group(0) @binding(3) var<storage, read_write> dwte: array<f32>;
@group(0) @binding(4) var<storage, read_write> dwpe: array<f32>;

@compute @workgroup_size(COLUMNS)
fn embedding_backward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let col = id.x;
    let cols = params5.cols;
    let rows = params5.rows;
    let seq = params5.seq;
    if col >= cols {
        return;
    }
    let end = rows + select(0u, seq, params5.first == 0u);
    for (var y = id.y; y < end; y += groups.y) {
        var sum = 0.0;
        if y < rows {
            let start = buckets[3u * y];
            let count = buckets[3u * y + 1u];
            let local = buckets[3u * y + 2u] - params5.first;
            if count == 0u || local >= params5.vocab {
                continue;
            }
            for (var k = 0u; k < count; k++) {
                sum += dx[positions[start + k] * cols + col];
            }
            dwte[local * cols + col] += sum;
        } else {
            let t = y - rows;
            for (var row = t; row < rows; row += seq) {
                sum += dx[row * cols + col];
            }
            dwpe[t * cols + col] += sum;
        }
    }
}

// The same over vec4s of columns, when C is a multiple of 4.
@group(0) @binding(0) var<storage, read> dx4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> dwte4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> dwpe4: array<vec4<f32>>;

@compute @workgroup_size(COLUMNS)
fn embedding_backward_vec4(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let col = id.x;
    let cols4 = params5.cols / 4u;
    let rows = params5.rows;
    let seq = params5.seq;
    if col >= cols4 {
        return;
    }
    let end = rows + select(0u, seq, params5.first == 0u);
    for (var y = id.y; y < end; y += groups.y) {
        var sum = vec4(0.0);
        if y < rows {
            let start = buckets[3u * y];
            let count = buckets[3u * y + 1u];
            let local = buckets[3u * y + 2u] - params5.first;
            if count == 0u || local >= params5.vocab {
                continue;
            }
            for (var k = 0u; k < count; k++) {
                sum += dx4[positions[start + k] * cols4 + col];
            }
            dwte4[local * cols4 + col] += sum;
        } else {
            let t = y - rows;
            for (var row = t; row < rows; row += seq) {
                sum += dx4[row * cols4 + col];
            }
            dwpe4[t * cols4 + col] += sum;
        }
    }
}
