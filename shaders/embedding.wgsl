// embedding: token plus position embeddings.
//
//   forward   out[b, t, :] = wte[tokens[b, t], :] + wpe[t, :]                        (writes out)
//   backward  dwte[v, :] += Σ_{(b,t): tokens[b,t] = v} dx[b, t, :]
//             dwpe[t, :] += Σ_b dx[b, t, :]                                        (adds)
//
// tokens: [B, T] u32; wte: [V, C]; wpe: [ctx, C] (T ≤ ctx); out, dx: [B, T, C]. Rows are the B·T
// positions. The backward is deterministic without atomics: the CPU groups positions by token when the
// batch is prepared (kernels::embedding::TokenBuckets), so each token's rows are summed by one
// invocation per column in a fixed order, and so are each position's B rows.

struct Params {
    rows: u32,
    seq: u32,
    cols: u32,
    vocab: u32,
}

// Columns per workgroup; workgroup_id.y walks rows (forward) or buckets and positions (backward).
const COLUMNS: u32 = 64u;

// ---- forward. Bindings: tokens, wte, wpe, out, params.
@group(0) @binding(0) var<storage, read> tokens: array<u32>;
@group(0) @binding(1) var<storage, read> wte: array<f32>;
@group(0) @binding(2) var<storage, read> wpe: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(COLUMNS)
fn embedding_forward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let col = id.x;
    if col >= params.cols {
        return;
    }
    for (var row = id.y; row < params.rows; row += groups.y) {
        let token = tokens[row];
        var v = wpe[(row % params.seq) * params.cols + col];
        // An id outside the vocabulary (a corrupt batch) reads no memory it does not own.
        if token < params.vocab {
            v += wte[token * params.cols + col];
        }
        out[row * params.cols + col] = v;
    }
}

// ---- backward. Bindings: dx, positions, buckets, dwte, dwpe, params.
// positions: [rows] row indices grouped by token; buckets: [rows, 3] (start, count, token) for each
// distinct token, then unused slots with count 0. workgroup_id.y < rows is a bucket, the next T are
// positions.
@group(0) @binding(0) var<storage, read> dx: array<f32>;
@group(0) @binding(1) var<storage, read> positions: array<u32>;
@group(0) @binding(2) var<storage, read> buckets: array<u32>;
@group(0) @binding(3) var<storage, read_write> dwte: array<f32>;
@group(0) @binding(4) var<storage, read_write> dwpe: array<f32>;
@group(0) @binding(5) var<uniform> backward_params: Params;

@compute @workgroup_size(COLUMNS)
fn embedding_backward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let col = id.x;
    let cols = backward_params.cols;
    let rows = backward_params.rows;
    let seq = backward_params.seq;
    if col >= cols {
        return;
    }
    for (var y = id.y; y < rows + seq; y += groups.y) {
        var sum = 0.0;
        if y < rows {
            let start = buckets[3u * y];
            let count = buckets[3u * y + 1u];
            let token = buckets[3u * y + 2u];
            if count == 0u || token >= backward_params.vocab {
                continue;
            }
            for (var k = 0u; k < count; k++) {
                sum += dx[positions[start + k] * cols + col];
            }
            dwte[token * cols + col] += sum;
        } else {
            let t = y - rows;
            for (var row = t; row < rows; row += seq) {
                sum += dx[row * cols + col];
            }
            dwpe[t * cols + col] += sum;
        }
    }
}
