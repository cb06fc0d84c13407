// matmul: the products of a linear layer, reading operands as stored (never transposed in memory).
//
//   C[M, N] (= or +=) op(A)·op(B) (+ bias[N])
//   op(A) = A [M, K], or Aᵀ when A is stored [K, M] (trans_a)
//   op(B) = B [K, N], or Bᵀ when B is stored [N, K] (trans_b)
//
// A linear layer uses it three ways (weights stored [in, out] as GPT-2 does):
//   forward       Y  = X·W + b     A = X [M, K],   B = W [K, N]
//   input grad    dX = dY·Wᵀ       A = dY [M, N'], B = W stored [K', N'] read as Wᵀ (trans_b)
//   weight grad   dW += Xᵀ·dY      A = X stored [M', K'] read as Xᵀ (trans_a), accumulate
// and `matmul_bias_backward` adds colsum(dY) into db.
//
// Bindings (same order in every entry point): a, b, bias, c, params. Entry points whose names end in
// a variant (`_tiled`, `_gpu`, `_cpu`) compute the same thing; src/kernels/matmul.rs picks one.

struct Params {
    m: u32,
    k: u32,
    n: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

override trans_a: bool = false;
override trans_b: bool = false;
override accumulate: bool = false;
override has_bias: bool = false;

fn load_a(row: u32, kk: u32) -> f32 {
    if trans_a {
        return a[kk * params.m + row];
    }
    return a[row * params.k + kk];
}

fn load_b(kk: u32, col: u32) -> f32 {
    if trans_b {
        return b[col * params.k + kk];
    }
    return b[kk * params.n + col];
}

// Adds the bias and the previous value as asked, then stores one element of C.
fn store_c(row: u32, col: u32, sum: f32) {
    var v = sum;
    if has_bias {
        v += bias[col];
    }
    let i = row * params.n + col;
    if accumulate {
        v += c[i];
    }
    c[i] = v;
}

// ---- tiled: the readable baseline. One invocation per element of C; TILE×TILE tiles of A and B go
// through workgroup memory. Runs on every adapter.

override tile: u32 = 16u;
const MAX_TILE: u32 = 16u;

var<workgroup> tile_a: array<array<f32, MAX_TILE>, MAX_TILE>;
var<workgroup> tile_b: array<array<f32, MAX_TILE>, MAX_TILE>;

@compute @workgroup_size(tile, tile)
fn matmul_tiled(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let row = group.y * tile + local.y;
    let col = group.x * tile + local.x;
    var sum = 0.0;
    for (var k0 = 0u; k0 < params.k; k0 += tile) {
        // Out-of-range elements load as zero so partial tiles need no special case below.
        let ka = k0 + local.x;
        let kb = k0 + local.y;
        tile_a[local.y][local.x] = select(0.0, load_a(row, ka), row < params.m && ka < params.k);
        tile_b[local.y][local.x] = select(0.0, load_b(kb, col), kb < params.k && col < params.n);
        workgroupBarrier();
        for (var kk = 0u; kk < tile; kk++) {
            sum += tile_a[local.y][kk] * tile_b[kk][local.x];
        }
        workgroupBarrier();
    }
    if row < params.m && col < params.n {
        store_c(row, col, sum);
    }
}

// ---- bias gradient: db[n] += Σ_m dY[m, n], with dY bound as `a` ([M, N]) and db as `c`.

@compute @workgroup_size(64)
fn matmul_bias_backward(@builtin(global_invocation_id) id: vec3<u32>) {
    let col = id.x;
    if col >= params.n {
        return;
    }
    var sum = 0.0;
    for (var row = 0u; row < params.m; row++) {
        sum += a[row * params.n + col];
    }
    c[col] += sum;
}
