// matvec: products of a few rows (M = `rows` ≤ 8, a decode step) with a weight matrix that is read once,
// so they are memory-bound. The weights are f32 or 16 bits (dtype.wgsl, the prelude, sets `dtype`); x, b
// and y are f32, and every sum accumulates in f32.
//
//   matvec_forward      y[m, n] = Σ_k x[m, k] · W[k, n] (+ b[n])   W: [K, N], x: [M, K], y: [M, N]
//   matvec_transposed   y[m, y_first + v] = Σ_c x[m, c] · E[v, c] (+ b[v])
//                                                                  E: [V, C], x: [M, C], y: [M, y_cols]
//
// Both write y (matvec_transposed only its columns y_first .. y_first + V, and through its `epilogue`:
// see below). In params, `k` is the inner dimension (K or C) and `n` the columns computed (N or V).
//
// matvec_forward_vec4 may split K into pieces of `params.piece` rows, one per workgroup row of the grid,
// each writing its partial sums to a scratch [pieces, M, N] that matvec_forward_sum adds up (with the
// bias). The launcher does so on CPU adapters when a product has few columns for its rows: GPT-2's MLP
// out (3072 -> 768) has 6 workgroups of 16 columns a lane, which streamed W at about 60% of the GB/s of
// the 24 of MLP in (768 -> 3072); in 4 pieces it reads 1.4-1.7x as fast (3.6-4.1 -> 5.5-6.3 GB/s f32,
// 3.7-3.9 -> 5.2-5.4 bf16), the sum pass included. Pieces shorter than 768 rows did not pay.
//
// What each invocation reads. In matvec_forward it owns 16 consecutive columns and walks K (or its
// piece of K), 64 bytes of each row of W in f32 (four vec4s), 32 in 16 bits (two vec4<u32>), so a row
// of 8 invocations reads 512 or 256 contiguous bytes of each row. The width matters on lavapipe, whose
// CPU prefetchers see only that strip of each row: f32 strips of 256 bytes ran at half the speed once W
// was not in cache, of 128 at a third. In matvec_transposed it owns a group of 8 rows of E (two on CPU
// adapters when E's rows are in order: see `groups`) and walks along them, one vec4<u32> of each per
// step (from 8 places in memory, or from one when E is interleaved, which lavapipe's prefetchers follow
// better: see `interleaved`). x comes as vec4s shared by all the columns of a step. Every row's sums
// stay in registers: the code over rows is written out, guarded by the constant `rows` (lavapipe keeps
// only fully unrolled code in registers, and NIR does not unroll a loop over `rows`: such loops made
// M = 4 twice as slow). An invocation loops K/4 (forward) or C/4
// (transposed) times: llvmpipe's 65535 bound is checked by the launcher.
//
// What a load costs on lavapipe (Mesa 22.3): a storage load whose address is not a constant becomes a
// loop over the 8 lanes with a bounds check and a scalar load per component, so the time goes with the
// number of 32-bit words loaded, not with the bytes, and a load of x that every lane shares costs as
// much as a load of weights. That is why the transposed product owns 8 rows of E rather than 4: each x
// vec4 serves twice the weights, which took the 16-bit head from about half the f32 head's GB/s to the
// same (0.49 -> 0.99 of the copy row for bf16, f32 0.72 -> 0.87, medians of 6 interleaved runs).
// Tried and dropped for matvec_forward: 32 or 64 columns per invocation (fewer workgroups, no faster);
// lanes owning interleaved vec4s instead of 16 consecutive columns (slower, 0.98 -> 0.64 of copy);
// workgroups of 24-48 invocations with a barrier per step so lavapipe interleaves their rows over whole
// rows of W (slower); 8 rows of K per iteration (no change). Reading the weights as vec4<u64>
// (SHADER_INT64) halves the loads per byte: with W in L1 the f32 forward rose from 1.0-1.2x to 1.4x the
// copy row's GB/s, but from memory the gain was lost in the noise of a shared machine (-10% to +60% on
// f32, none on 16 bits, no clear change in decode), and WebGPU and GL have no 64-bit integers, so it
// would need a module of its own: not taken.
// Also measured and dropped, in a probe over 64 MiB (medians of 5): a workgroup per slab of 16 rows of W
// whose lanes take turns along them (K split in slabs, then a sum pass): 10 GB/s against 4-5 for rows of
// 16 KiB, but on GPT-2's shapes no faster once the sum pass is paid; for E, lanes taking turns along
// 8 rows with their sums meeting in workgroup memory (6.6 against 8.6 GB/s: the barrier) or through
// subgroupAdd (8.2 against 10.4); reading W from an rgba32uint texture (textureLoad is one 128-bit load
// per lane, not four checked scalar loads): 11.2 against 10.2 GB/s, too little for weights held twice.
// And for the 16-bit transposed product, in a probe of its own (bf16, GPT-2's head and QKV shapes): x
// from a uniform buffer (whose loads lavapipe gathers) 1.06x, too little for a binding of its own. A profile
// of the compiled kernel (perf) puts a third of its samples on the per-lane loads and a quarter on the
// products waiting for them; the host's own loop reads the same memory at 25 GB/s on one core.
// On Mesa 25.0, whose storage loads are gathers, the same kernels read f32 weights 0.7-2.0x as fast
// (the head 1.6-1.9x), 16-bit ones 0.8-1.6x, and the copy row 1.0-1.6x (two benches, same runs).
// What else bounds decode on lavapipe: a dispatch costs 35-55 us of the driver's thread-pool handoff
// in this VM (an empty kernel's; 1 us with LP_NUM_THREADS=0, which runs on one core), so GPT-2's 91
// dispatches a token cost about 4 ms.
//
// Entry points ending in `_vec4` read x and the weights through vec4 views; the launcher picks them when
// the inner dimension is a multiple of 4 and the weights' rows are whole vec4s of words (their length a
// multiple of 4 for f32, of 8 for 16 bits). The others read value by value, for any shape. With more
// than one row of x, CPU adapters with subgroups take matvec_subgroup.wgsl's twins of the `_vec4`
// entry points instead, which load each vec4 of x once for all lanes.

struct Params {
    k: u32,
    n: u32,
    y_cols: u32,
    y_first: u32,
    // matvec_forward_vec4: rows of W per workgroup row (all K in one piece).
    piece: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

override rows: u32 = 1u;
override has_bias: bool = false;
override wg: u32 = 8u;
// What matvec_transposed's store applies to a sum (with its bias): nothing; GELU (the sum goes to `side`
// as the pre-activation, its GELU to y); or a residual add (y = side + sum, side the stream). The
// same bits as the gelu and residual kernels after a plain product, in one dispatch instead of two.
const EPILOGUE_NONE: u32 = 0u;
const EPILOGUE_GELU: u32 = 1u;
const EPILOGUE_RESIDUAL: u32 = 2u;
override epilogue: u32 = EPILOGUE_NONE;
// matvec_transposed's E: rows in order, or interleaved in groups of 8 (the last of what remains) a vec4
// of words at a time (the vec4 entry points only): vec4 i of the group's row r at vec4 R·v0 + n·i + r,
// v0 the group's first row, n its rows, R the vec4s of a row. An invocation owns a group and reads it
// as one stream; in order, it reads 8 streams side by side, which lavapipe read 1.1-1.35x slower.
override interleaved: bool = false;
// matvec_transposed's groups of 8 rows of E per invocation, 1 or 2 (the launcher says when: each x vec4
// loaded then serves 16 rows). A second group is the rows after the first (clamped as the first is).
override groups: u32 = 1u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
// The epilogue's pre-activation or stream, shaped as y (an unused slot for the other entry points).
@group(0) @binding(4) var<storage, read_write> side: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w4: array<vec4<u32>>;

// Four consecutive values of x in every row m < rows.
alias Xs = array<vec4<f32>, 8>;
// 16 values: the invocation's columns of one row of W (matvec_forward), or one step along 4 rows of E
// (matvec_transposed).
alias Quads = array<vec4<f32>, 4>;
// Running sums: one Quads per row of x (matvec_forward: 16 columns).
alias Acc = array<Quads, 8>;
// Running sums of matvec_transposed: one vec4 per row of x, component r for row v0 + r of E (or
// v0 + 4 + r, ..).
alias Sums = array<vec4<f32>, 8>;

// Where y[m, col] (of the columns computed) is; the epilogue's side tensor is laid out alike.
fn y_at(m: u32, col: u32) -> u32 {
    return m * params.y_cols + params.y_first + col;
}

fn store(m: u32, col: u32, v: f32) {
    y[y_at(m, col)] = v;
}

// Value i of the weights, through the scalar view.
fn weight(i: u32) -> f32 {
    return dtype_value(w[dtype_word(i)], i);
}

// x[m, k .. k + 3] through the vec4 view (K a multiple of 4), every row.
fn xs_vec4(k: u32) -> Xs {
    let k4 = params.k / 4u;
    let q = k / 4u;
    var xs: Xs;
    xs[0] = x4[q];
    if rows > 1u { xs[1] = x4[k4 + q]; }
    if rows > 2u { xs[2] = x4[2u * k4 + q]; }
    if rows > 3u { xs[3] = x4[3u * k4 + q]; }
    if rows > 4u { xs[4] = x4[4u * k4 + q]; }
    if rows > 5u { xs[5] = x4[5u * k4 + q]; }
    if rows > 6u { xs[6] = x4[6u * k4 + q]; }
    if rows > 7u { xs[7] = x4[7u * k4 + q]; }
    return xs;
}

// x[m, k .. k + 3] value by value, zero past K.
fn x_quad(m: u32, k: u32) -> vec4<f32> {
    var v = vec4(0.0);
    for (var j = 0u; j < 4u; j++) {
        if k + j < params.k {
            v[j] = x[m * params.k + k + j];
        }
    }
    return v;
}

fn xs_scalar(k: u32) -> Xs {
    var xs: Xs;
    xs[0] = x_quad(0u, k);
    if rows > 1u { xs[1] = x_quad(1u, k); }
    if rows > 2u { xs[2] = x_quad(2u, k); }
    if rows > 3u { xs[3] = x_quad(3u, k); }
    if rows > 4u { xs[4] = x_quad(4u, k); }
    if rows > 5u { xs[5] = x_quad(5u, k); }
    if rows > 6u { xs[6] = x_quad(6u, k); }
    if rows > 7u { xs[7] = x_quad(7u, k); }
    return xs;
}

// ---- matvec_forward: one invocation per 16 columns of y, all rows.

// a + s · wk over the invocation's columns.
fn forward_fma(a: Quads, s: f32, wk: Quads) -> Quads {
    let sv = vec4(s);
    return Quads(fma(sv, wk[0], a[0]), fma(sv, wk[1], a[1]), fma(sv, wk[2], a[2]), fma(sv, wk[3], a[3]));
}

// acc[m] += x[m, k + j] · (row k + j of W at the invocation's columns), for every row m.
fn forward_add(acc: ptr<function, Acc>, xs: Xs, j: u32, wk: Quads) {
    (*acc)[0] = forward_fma((*acc)[0], xs[0][j], wk);
    if rows > 1u { (*acc)[1] = forward_fma((*acc)[1], xs[1][j], wk); }
    if rows > 2u { (*acc)[2] = forward_fma((*acc)[2], xs[2][j], wk); }
    if rows > 3u { (*acc)[3] = forward_fma((*acc)[3], xs[3][j], wk); }
    if rows > 4u { (*acc)[4] = forward_fma((*acc)[4], xs[4][j], wk); }
    if rows > 5u { (*acc)[5] = forward_fma((*acc)[5], xs[5][j], wk); }
    if rows > 6u { (*acc)[6] = forward_fma((*acc)[6], xs[6][j], wk); }
    if rows > 7u { (*acc)[7] = forward_fma((*acc)[7], xs[7][j], wk); }
}

// Writes row m's sums (plus the bias) of the columns that exist, row m of y starting at base + m · N.
fn forward_store_row(m: u32, a: Quads, n0: u32, base: u32) {
    for (var q = 0u; q < 4u; q++) {
        for (var j = 0u; j < 4u; j++) {
            let n = n0 + 4u * q + j;
            if n < params.n {
                var v = a[q][j];
                if has_bias {
                    v += bias[n];
                }
                y[base + m * params.n + n] = v;
            }
        }
    }
}

fn forward_store(acc: Acc, n0: u32, base: u32) {
    forward_store_row(0u, acc[0], n0, base);
    if rows > 1u { forward_store_row(1u, acc[1], n0, base); }
    if rows > 2u { forward_store_row(2u, acc[2], n0, base); }
    if rows > 3u { forward_store_row(3u, acc[3], n0, base); }
    if rows > 4u { forward_store_row(4u, acc[4], n0, base); }
    if rows > 5u { forward_store_row(5u, acc[5], n0, base); }
    if rows > 6u { forward_store_row(6u, acc[6], n0, base); }
    if rows > 7u { forward_store_row(7u, acc[7], n0, base); }
}

// Row k of W at columns n0 .. n0 + 15: four vec4 loads of f32, two vec4<u32> of 16 bits. Columns past
// N read on into the next row (or are clamped at the end of the buffer): their sums are never stored.
fn forward_row_vec4(k: u32, n0: u32) -> Quads {
    let i = dtype_word(k * params.n + n0) / 4u;
    if dtype == DTYPE_F32 {
        return Quads(bitcast<vec4<f32>>(w4[i]), bitcast<vec4<f32>>(w4[i + 1u]), bitcast<vec4<f32>>(w4[i + 2u]), bitcast<vec4<f32>>(w4[i + 3u]));
    }
    let a = w4[i];
    let b = w4[i + 1u];
    return Quads(dtype_unpack4(a.xy), dtype_unpack4(a.zw), dtype_unpack4(b.xy), dtype_unpack4(b.zw));
}

// acc += the 4 rows k .. k + 3 of W at columns n0 .. n0 + 15, times x[.., k .. k + 3] (xs).
fn forward_step(acc: ptr<function, Acc>, xs: Xs, k: u32, n0: u32) {
    forward_add(acc, xs, 0u, forward_row_vec4(k, n0));
    forward_add(acc, xs, 1u, forward_row_vec4(k + 1u, n0));
    forward_add(acc, xs, 2u, forward_row_vec4(k + 2u, n0));
    forward_add(acc, xs, 3u, forward_row_vec4(k + 3u, n0));
}

// Rows group.y · piece .. of K, min(piece, what is left) of them (a multiple of 4).
fn forward_piece(group: vec3<u32>) -> vec2<u32> {
    let first = group.y * params.piece;
    return vec2(first, min(first + params.piece, params.k));
}

// Workgroup row group.y sums over its piece of K and writes the sums to y (one piece) or to its part
// of the partial sums, [group.y, M, N] (several pieces; no bias).
@compute @workgroup_size(wg)
fn matvec_forward_vec4(@builtin(global_invocation_id) id: vec3<u32>, @builtin(workgroup_id) group: vec3<u32>) {
    let n0 = id.x * 16u;
    if n0 >= params.n {
        return;
    }
    let piece = forward_piece(group);
    var acc: Acc;
    for (var k = piece.x; k < piece.y; k += 4u) {
        forward_step(&acc, xs_vec4(k), k, n0);
    }
    forward_store(acc, n0, group.y * rows * params.n);
}

// Row k of W at columns n0 .. n0 + 15, value by value: zero past K; columns past N clamped to the last
// (their sums are never stored).
fn forward_row(k: u32, n0: u32) -> Quads {
    var wk: Quads;
    if k < params.k {
        for (var q = 0u; q < 4u; q++) {
            for (var j = 0u; j < 4u; j++) {
                wk[q][j] = weight(k * params.n + min(n0 + 4u * q + j, params.n - 1u));
            }
        }
    }
    return wk;
}

// matvec_forward_vec4 value by value (x and W read as zero past K).
@compute @workgroup_size(wg)
fn matvec_forward(@builtin(global_invocation_id) id: vec3<u32>) {
    let n0 = id.x * 16u;
    if n0 >= params.n {
        return;
    }
    var acc: Acc;
    for (var k = 0u; k < params.k; k += 4u) {
        let xs = xs_scalar(k);
        forward_add(&acc, xs, 0u, forward_row(k, n0));
        forward_add(&acc, xs, 1u, forward_row(k + 1u, n0));
        forward_add(&acc, xs, 2u, forward_row(k + 2u, n0));
        forward_add(&acc, xs, 3u, forward_row(k + 3u, n0));
    }
    forward_store(acc, n0, 0u);
}

// ---- matvec_transposed: one invocation per `groups` groups of 8 columns of y (rows v0 .. of E), all
// rows of x. A group's sums are two Sums of 4 rows each (Sums8): acc[m][r] is row v0 + r's running sum,
// each step adding a dot product of four values (one register per row of E and of x, where a vec4 of
// partial sums took four).

// a[r] += xm · e[r] for the 4 rows of E.
fn transposed_dot(a: vec4<f32>, xm: vec4<f32>, e: Quads) -> vec4<f32> {
    return a + vec4(dot(xm, e[0]), dot(xm, e[1]), dot(xm, e[2]), dot(xm, e[3]));
}

// acc with acc[m][r] += x[m, c .. c + 3] · E[v0 + r, c .. c + 3] for every row m.
fn transposed_add(acc: Sums, xs: Xs, e: Quads) -> Sums {
    var a = acc;
    a[0] = transposed_dot(a[0], xs[0], e);
    if rows > 1u { a[1] = transposed_dot(a[1], xs[1], e); }
    if rows > 2u { a[2] = transposed_dot(a[2], xs[2], e); }
    if rows > 3u { a[3] = transposed_dot(a[3], xs[3], e); }
    if rows > 4u { a[4] = transposed_dot(a[4], xs[4], e); }
    if rows > 5u { a[5] = transposed_dot(a[5], xs[5], e); }
    if rows > 6u { a[6] = transposed_dot(a[6], xs[6], e); }
    if rows > 7u { a[7] = transposed_dot(a[7], xs[7], e); }
    return a;
}

// The sums of a group of 8 rows of E: rows v0 .. v0 + 3 in a, the others in b.
struct Sums8 {
    a: Sums,
    b: Sums,
}

fn transposed_store_row(m: u32, a: vec4<f32>, v0: u32) {
    for (var r = 0u; r < 4u; r++) {
        if v0 + r < params.n {
            var sum = a[r];
            if has_bias {
                sum += bias[v0 + r];
            }
            let at = y_at(m, v0 + r);
            if epilogue == EPILOGUE_GELU {
                side[at] = sum;
                y[at] = gelu_f32(sum);
            } else if epilogue == EPILOGUE_RESIDUAL {
                y[at] = sum + side[at];
            } else {
                y[at] = sum;
            }
        }
    }
}

fn transposed_store(acc: Sums, v0: u32) {
    transposed_store_row(0u, acc[0], v0);
    if rows > 1u { transposed_store_row(1u, acc[1], v0); }
    if rows > 2u { transposed_store_row(2u, acc[2], v0); }
    if rows > 3u { transposed_store_row(3u, acc[3], v0); }
    if rows > 4u { transposed_store_row(4u, acc[4], v0); }
    if rows > 5u { transposed_store_row(5u, acc[5], v0); }
    if rows > 6u { transposed_store_row(6u, acc[6], v0); }
    if rows > 7u { transposed_store_row(7u, acc[7], v0); }
}

// Rows v0 .. v0 + 7 of E, as the vec4 entry points find them: where each starts (rows v0 .. v0 + 3 in a,
// the others in b), in vec4s of words, and the stride between a row's vec4s. Rows past V read the last
// row (their sums are never stored); an invocation past V reads the last group.
struct Rows8 {
    a: vec4<u32>,
    b: vec4<u32>,
    stride: u32,
}

// `row`: the vec4s of a row.
fn transposed_rows(v0: u32, row: u32) -> Rows8 {
    if interleaved {
        let first = min(v0, (params.n - 1u) / 8u * 8u);
        let n = min(8u, params.n - first);
        let at = vec4(first * row);
        let last = vec4(n - 1u);
        return Rows8(at + min(vec4(0u, 1u, 2u, 3u), last), at + min(vec4(4u, 5u, 6u, 7u), last), n);
    }
    let last = vec4(params.n - 1u);
    let a = min(vec4(v0) + vec4(0u, 1u, 2u, 3u), last);
    let b = min(vec4(v0) + vec4(4u, 5u, 6u, 7u), last);
    return Rows8(a * row, b * row, 1u);
}

// Step i along 4 rows of E (starting at e): one vec4<u32> of each (4 values of f32, 8 of 16 bits).
fn transposed_words(e: vec4<u32>, stride: u32, i: u32) -> array<vec4<u32>, 4> {
    let at = vec4(i * stride);
    let e4 = e + at;
    return array(w4[e4.x], w4[e4.y], w4[e4.z], w4[e4.w]);
}

// The step's f32 values, one vec4 per row.
fn transposed_f32(w: array<vec4<u32>, 4>) -> Quads {
    return Quads(bitcast<vec4<f32>>(w[0]), bitcast<vec4<f32>>(w[1]), bitcast<vec4<f32>>(w[2]), bitcast<vec4<f32>>(w[3]));
}

// The step's first (half = 0) or last 4 16-bit values of each row.
fn transposed_16(w: array<vec4<u32>, 4>, half: u32) -> Quads {
    if half == 0u {
        return Quads(dtype_unpack4(w[0].xy), dtype_unpack4(w[1].xy), dtype_unpack4(w[2].xy), dtype_unpack4(w[3].xy));
    }
    return Quads(dtype_unpack4(w[0].zw), dtype_unpack4(w[1].zw), dtype_unpack4(w[2].zw), dtype_unpack4(w[3].zw));
}

// acc after step i along a group of 8 rows of E (e), with x[.., 4i ..] as lo (f32), or x[.., 8i ..] as
// lo and x[.., 8i + 4 ..] as hi (16 bits).
fn transposed_step(acc: Sums8, e: Rows8, i: u32, lo: Xs, hi: Xs) -> Sums8 {
    let a = transposed_words(e.a, e.stride, i);
    let b = transposed_words(e.b, e.stride, i);
    if dtype == DTYPE_F32 {
        return Sums8(transposed_add(acc.a, lo, transposed_f32(a)), transposed_add(acc.b, lo, transposed_f32(b)));
    }
    let half = Sums8(transposed_add(acc.a, lo, transposed_16(a, 0u)), transposed_add(acc.b, lo, transposed_16(b, 0u)));
    return Sums8(transposed_add(half.a, hi, transposed_16(a, 1u)), transposed_add(half.b, hi, transposed_16(b, 1u)));
}

// The invocation's groups of E, rows v0 .. v0 + 7 and (when `groups` is 2) v0 + 8 .. v0 + 15, where the
// vec4 entry points find them.
struct Rows16 {
    first: Rows8,
    second: Rows8,
}

fn transposed_rows16(v0: u32, row: u32) -> Rows16 {
    var e = Rows16(transposed_rows(v0, row), Rows8());
    if groups > 1u {
        e.second = transposed_rows(v0 + 8u, row);
    }
    return e;
}

// Step i along the invocation's groups of E (acc[g] the sums of group g), with x as transposed_step
// takes it: the x loaded for a step serves all of their rows.
fn transposed_steps(acc: ptr<function, array<Sums8, 2>>, e: Rows16, i: u32, lo: Xs, hi: Xs) {
    (*acc)[0] = transposed_step((*acc)[0], e.first, i, lo, hi);
    if groups > 1u {
        (*acc)[1] = transposed_step((*acc)[1], e.second, i, lo, hi);
    }
}

fn transposed_stores(acc: array<Sums8, 2>, v0: u32) {
    transposed_store(acc[0].a, v0);
    transposed_store(acc[0].b, v0 + 4u);
    if groups > 1u {
        transposed_store(acc[1].a, v0 + 8u);
        transposed_store(acc[1].b, v0 + 12u);
    }
}

@compute @workgroup_size(wg)
fn matvec_transposed_vec4(@builtin(global_invocation_id) id: vec3<u32>) {
    let v0 = id.x * 8u * groups;
    if v0 >= params.n {
        return;
    }
    // Each row of E is a whole number of vec4<u32>s.
    let row = dtype_word(params.k) / 4u;
    let e = transposed_rows16(v0, row);
    var acc: array<Sums8, 2>;
    for (var i = 0u; i < row; i++) {
        if dtype == DTYPE_F32 {
            transposed_steps(&acc, e, i, xs_vec4(4u * i), Xs());
        } else {
            transposed_steps(&acc, e, i, xs_vec4(8u * i), xs_vec4(8u * i + 4u));
        }
    }
    transposed_stores(acc, v0);
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

// E[v .. v + 3, c .. c + 3] value by value, rows past V clamped to the last.
fn transposed_quads(v: u32, c: u32) -> Quads {
    let last = params.n - 1u;
    return Quads(transposed_row(min(v, last), c), transposed_row(min(v + 1u, last), c), transposed_row(min(v + 2u, last), c), transposed_row(min(v + 3u, last), c));
}

// acc after the step at c along the group of 8 rows of E from v0, value by value.
fn transposed_scalar_step(acc: Sums8, xs: Xs, v0: u32, c: u32) -> Sums8 {
    return Sums8(transposed_add(acc.a, xs, transposed_quads(v0, c)), transposed_add(acc.b, xs, transposed_quads(v0 + 4u, c)));
}

@compute @workgroup_size(wg)
fn matvec_transposed(@builtin(global_invocation_id) id: vec3<u32>) {
    let v0 = id.x * 8u * groups;
    if v0 >= params.n {
        return;
    }
    var acc: array<Sums8, 2>;
    for (var c = 0u; c < params.k; c += 4u) {
        let xs = xs_scalar(c);
        acc[0] = transposed_scalar_step(acc[0], xs, v0, c);
        if groups > 1u {
            acc[1] = transposed_scalar_step(acc[1], xs, v0 + 8u, c);
        }
    }
    transposed_stores(acc, v0);
}

// ---- matvec_forward_sum: adds up the partial sums of matvec_forward_vec4 over pieces of K.

// The output as vec4s.
@group(0) @binding(3) var<storage, read_write> y4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias4: array<vec4<f32>>;

// y[m, 4q .. 4q + 3] = Σ_s part[s, m, 4q ..] (+ b): one invocation per vec4 of y. `params.k` is the
// number of pieces here.
@compute @workgroup_size(wg)
fn matvec_forward_sum(@builtin(global_invocation_id) id: vec3<u32>) {
    let n4 = params.n / 4u;
    let q = id.x;
    if q >= rows * n4 {
        return;
    }
    let m = q / n4;
    let col = q % n4;
    var sum = vec4(0.0);
    for (var s = 0u; s < params.k; s++) {
        sum += x4[(s * rows + m) * n4 + col];
    }
    if has_bias {
        sum += bias4[col];
    }
    y4[q] = sum;
}
