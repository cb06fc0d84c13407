// matvec: products of a few rows (M = `rows` ≤ 8, a decode step) with a weight matrix that is read once,
// so they are memory-bound. The weights are f32 or 16 bits (dtype.wgsl, the prelude, sets `dtype`); x, b
// and y are f32, and every sum accumulates in f32.
//
//   matvec_forward      y[m, n] = Σ_k x[m, k] · W[k, n] (+ b[n])   W: [K, N], x: [M, K], y: [M, N]
//   matvec_transposed   y[m, y_first + v] = Σ_c x[m, c] · E[v, c]  E: [V, C], x: [M, C], y: [M, y_cols]
//
// Both write y (matvec_transposed only its columns y_first .. y_first + V). In params, `k` is the inner
// dimension (K or C) and `n` the columns computed (N or V).
//
// What each invocation reads: in matvec_forward it owns 4·quads consecutive columns and walks all of K:
// two vec4<u32> of each row of W (8 columns of f32, 16 of 16 bits), or one (8 of 16 bits) past 4 rows,
// so that every row's sums still fit in registers; a row of 8 invocations reads 256 or 512 contiguous
// bytes of each row of W; in matvec_transposed it owns 4 rows of E and walks along them, one
// vec4<u32> of each per step. x is read as vec4s shared by all columns of the step. All rows' sums stay in
// registers: the loops over rows and columns have constant trip counts (`rows`, `quads`, 4) and unroll.
// An invocation loops K/4 (forward), C/4 or C/8 (transposed) times: llvmpipe's 65535 bound is checked by
// the launcher.
//
// Entry points ending in `_vec4` read x and the weights through vec4 views; the launcher picks them when
// the inner dimension is a multiple of 4 and the weights' rows are whole vec4s of words (their length a
// multiple of 4 for f32, of 8 for 16 bits). The others read value by value, for any shape.

struct Params {
    k: u32,
    n: u32,
    y_cols: u32,
    y_first: u32,
}

override rows: u32 = 1u;
override has_bias: bool = false;
override wg: u32 = 8u;
// vec4s of columns per invocation in matvec_forward: 2, or 4 (16 bits, at most 4 rows).
override quads: u32 = 2u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w4: array<vec4<u32>>;

// x[m, k .. k + 3] of every row m < rows.
alias Xs = array<vec4<f32>, 8>;
// 16 values: columns of one row of W (matvec_forward, `quads` of them used), or one step along 4 rows
// of E (matvec_transposed).
alias Quads = array<vec4<f32>, 4>;
// Running sums: per row of x, one Quads.
alias Acc = array<Quads, 8>;

fn store(m: u32, col: u32, v: f32) {
    y[m * params.y_cols + params.y_first + col] = v;
}

// Value i of the weights, through the scalar view.
fn weight(i: u32) -> f32 {
    return dtype_value(w[dtype_word(i)], i);
}

// ---- matvec_forward: one invocation per 4·quads columns of y, all rows.

// acc[m] += x[m, kk + j] · (row kk + j of W at the invocation's columns), for every row m.
fn forward_add(acc: ptr<function, Acc>, xs: Xs, j: u32, wk: Quads) {
    for (var m = 0u; m < rows; m++) {
        let xm = vec4(xs[m][j]);
        for (var q = 0u; q < quads; q++) {
            (*acc)[m][q] = fma(xm, wk[q], (*acc)[m][q]);
        }
    }
}

// Writes the sums (plus the bias) of the columns that exist.
fn forward_store(acc: Acc, n0: u32) {
    for (var m = 0u; m < rows; m++) {
        for (var q = 0u; q < quads; q++) {
            for (var j = 0u; j < 4u; j++) {
                let n = n0 + 4u * q + j;
                if n < params.n {
                    var v = acc[m][q][j];
                    if has_bias {
                        v += bias[n];
                    }
                    store(m, n, v);
                }
            }
        }
    }
}

// Row k of W at columns n0 .. n0 + 4·quads, one or two vec4<u32> loads. Columns past N read on into the
// next row (or are clamped at the end of the buffer): their sums are never stored.
fn forward_row_vec4(k: u32, n0: u32) -> Quads {
    let i = dtype_word(k * params.n + n0) / 4u;
    let a = w4[i];
    if dtype == DTYPE_F32 {
        return Quads(bitcast<vec4<f32>>(a), bitcast<vec4<f32>>(w4[i + 1u]), vec4(0.0), vec4(0.0));
    }
    if quads == 2u {
        return Quads(dtype_unpack4(a.xy), dtype_unpack4(a.zw), vec4(0.0), vec4(0.0));
    }
    let b = w4[i + 1u];
    return Quads(dtype_unpack4(a.xy), dtype_unpack4(a.zw), dtype_unpack4(b.xy), dtype_unpack4(b.zw));
}

@compute @workgroup_size(wg)
fn matvec_forward_vec4(@builtin(global_invocation_id) id: vec3<u32>) {
    let n0 = id.x * 4u * quads;
    if n0 >= params.n {
        return;
    }
    let k4 = params.k / 4u;
    var acc: Acc;
    for (var kk = 0u; kk < params.k; kk += 4u) {
        var xs: Xs;
        for (var m = 0u; m < rows; m++) {
            xs[m] = x4[m * k4 + kk / 4u];
        }
        forward_add(&acc, xs, 0u, forward_row_vec4(kk, n0));
        forward_add(&acc, xs, 1u, forward_row_vec4(kk + 1u, n0));
        forward_add(&acc, xs, 2u, forward_row_vec4(kk + 2u, n0));
        forward_add(&acc, xs, 3u, forward_row_vec4(kk + 3u, n0));
    }
    forward_store(acc, n0);
}

// Row k of W at columns n0 .. n0 + 4·quads, value by value: zero past K; columns past N clamped to the
// last (their sums are never stored).
fn forward_row(k: u32, n0: u32) -> Quads {
    var wk: Quads;
    if k < params.k {
        for (var q = 0u; q < quads; q++) {
            for (var j = 0u; j < 4u; j++) {
                wk[q][j] = weight(k * params.n + min(n0 + 4u * q + j, params.n - 1u));
            }
        }
    }
    return wk;
}

// x[m, kk .. kk + 3] value by value, zero past K.
fn xs_at(kk: u32) -> Xs {
    var xs: Xs;
    for (var m = 0u; m < rows; m++) {
        for (var j = 0u; j < 4u; j++) {
            let k = kk + j;
            xs[m][j] = select(0.0, x[m * params.k + min(k, params.k - 1u)], k < params.k);
        }
    }
    return xs;
}

@compute @workgroup_size(wg)
fn matvec_forward(@builtin(global_invocation_id) id: vec3<u32>) {
    let n0 = id.x * 4u * quads;
    if n0 >= params.n {
        return;
    }
    var acc: Acc;
    for (var kk = 0u; kk < params.k; kk += 4u) {
        let xs = xs_at(kk);
        forward_add(&acc, xs, 0u, forward_row(kk, n0));
        forward_add(&acc, xs, 1u, forward_row(kk + 1u, n0));
        forward_add(&acc, xs, 2u, forward_row(kk + 2u, n0));
        forward_add(&acc, xs, 3u, forward_row(kk + 3u, n0));
    }
    forward_store(acc, n0);
}

// ---- matvec_transposed: one invocation per 4 columns of y (4 rows of E), all rows of x. acc[m][r] holds
// four partial sums of row v0 + r, added up at the end.

// acc[m][r] += x[m, c .. c + 3] · E[v0 + r, c .. c + 3] for every row m and r < 4.
fn transposed_add(acc: ptr<function, Acc>, xs: Xs, e: Quads) {
    for (var m = 0u; m < rows; m++) {
        for (var r = 0u; r < 4u; r++) {
            (*acc)[m][r] = fma(xs[m], e[r], (*acc)[m][r]);
        }
    }
}

fn transposed_store(acc: Acc, v0: u32) {
    for (var m = 0u; m < rows; m++) {
        for (var r = 0u; r < 4u; r++) {
            let s = acc[m][r];
            if v0 + r < params.n {
                store(m, v0 + r, (s.x + s.y) + (s.z + s.w));
            }
        }
    }
}

@compute @workgroup_size(wg)
fn matvec_transposed_vec4(@builtin(global_invocation_id) id: vec3<u32>) {
    let v0 = id.x * 4u;
    if v0 >= params.n {
        return;
    }
    // Each row of E is a whole number of vec4<u32>s; rows past V are clamped to the last (their sums
    // are never stored).
    let row = dtype_word(params.k) / 4u;
    let last = params.n - 1u;
    let e0 = v0 * row;
    let e1 = min(v0 + 1u, last) * row;
    let e2 = min(v0 + 2u, last) * row;
    let e3 = min(v0 + 3u, last) * row;
    let c4 = params.k / 4u;
    var acc: Acc;
    // One vec4<u32> of each row per step: 4 values of f32, 8 of 16 bits.
    for (var i = 0u; i < row; i++) {
        let a = w4[e0 + i];
        let b = w4[e1 + i];
        let c = w4[e2 + i];
        let d = w4[e3 + i];
        if dtype == DTYPE_F32 {
            var xs: Xs;
            for (var m = 0u; m < rows; m++) {
                xs[m] = x4[m * c4 + i];
            }
            transposed_add(&acc, xs, Quads(bitcast<vec4<f32>>(a), bitcast<vec4<f32>>(b), bitcast<vec4<f32>>(c), bitcast<vec4<f32>>(d)));
        } else {
            var lo: Xs;
            var hi: Xs;
            for (var m = 0u; m < rows; m++) {
                lo[m] = x4[m * c4 + 2u * i];
                hi[m] = x4[m * c4 + 2u * i + 1u];
            }
            transposed_add(&acc, lo, Quads(dtype_unpack4(a.xy), dtype_unpack4(b.xy), dtype_unpack4(c.xy), dtype_unpack4(d.xy)));
            transposed_add(&acc, hi, Quads(dtype_unpack4(a.zw), dtype_unpack4(b.zw), dtype_unpack4(c.zw), dtype_unpack4(d.zw)));
        }
    }
    transposed_store(acc, v0);
}

// E[v, c .. c + 3] value by value; past C zero.
fn transposed_row(v: u32, c: u32) -> vec4<f32> {
    var e = vec4(0.0);
    for (var j = 0u; j < 4u; j++) {
        if c + j < params.k {
            e[j] = weight(v * params.k + c + j);
        }
    }
    return e;
}

@compute @workgroup_size(wg)
fn matvec_transposed(@builtin(global_invocation_id) id: vec3<u32>) {
    let v0 = id.x * 4u;
    if v0 >= params.n {
        return;
    }
    let last = params.n - 1u;
    var acc: Acc;
    for (var c = 0u; c < params.k; c += 4u) {
        transposed_add(&acc, xs_at(c), Quads(transposed_row(v0, c), transposed_row(min(v0 + 1u, last), c), transposed_row(min(v0 + 2u, last), c), transposed_row(min(v0 + 3u, last), c)));
    }
    transposed_store(acc, v0);
}
