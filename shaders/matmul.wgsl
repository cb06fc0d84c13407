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
// B may be stored in 16 bits (dtype.wgsl, the prelude, sets `dtype`; the weights of a model loaded with
// --dtype, a mixed-precision step's working copy): it is bound as u32 words, read through load_b, or
// through the vec4 view b4 by the cpu entry points ending in `_vec4`; with `dtype` f32 (the default)
// both read the same f32 values. A, bias and C are f32.
//
// Epilogues (the `epilogue` switch) finish the stored value v = op(A)·op(B) (+ bias) with the next
// elementwise op of the graph, saving its dispatch and a pass over C:
//   EPILOGUE_GELU       forward: c = v (the pre-activation, kept for the backward), aux = gelu(v)
//   EPILOGUE_RESIDUAL   forward: c = aux + v (the residual stream plus the branch)
//   EPILOGUE_DROPOUT_RESIDUAL  forward: c = aux + dropout(v), the mask drawn from `state` as
//                       dropout.wgsl draws it for a [M, N] tensor at params.site
//   EPILOGUE_GELU_GRAD  input grad: c = gelu_grad(aux, v) (aux the pre-activation: dX of GELU's input)
// Each evaluates the same f32 expressions as the separate gelu, dropout and residual kernels
// (gelu_math.wgsl, random.wgsl), so a fused step gives the same bits as an unfused one.
//
// Bindings (same order in every entry point): a, b, bias, c, aux, state, params. Entry points whose
// names end in
// a variant (`_tiled`, `_gpu`, `_cpu`, `_cpu_vec4`, and `_cpu_subgroup*` in matmul_subgroup.wgsl) compute
// the same thing; src/kernels/matmul.rs picks one.

struct Params {
    m: u32,
    k: u32,
    n: u32,
    // EPILOGUE_DROPOUT_RESIDUAL's site, threshold p·2³² and scale 1/(1-p).
    site: u32,
    threshold: u32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<u32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
// The epilogue's second tensor (any tensor, unread, without one); read_write for EPILOGUE_GELU's output.
@group(0) @binding(4) var<storage, read_write> aux: array<f32>;
// [seed, step, micro] for EPILOGUE_DROPOUT_RESIDUAL (any tensor, unread, otherwise).
@group(0) @binding(5) var<storage, read> state: array<u32>;
@group(0) @binding(6) var<uniform> params: Params;

override trans_a: bool = false;
override trans_b: bool = false;
override accumulate: bool = false;
override has_bias: bool = false;
// 0: none; else one of these.
override epilogue: u32 = 0u;
const EPILOGUE_GELU: u32 = 1u;
const EPILOGUE_RESIDUAL: u32 = 2u;
const EPILOGUE_DROPOUT_RESIDUAL: u32 = 3u;
const EPILOGUE_GELU_GRAD: u32 = 4u;

// Dropout of element i of C.
fn dropout_c(v: f32, i: u32) -> f32 {
    let s = vec3(state[0], state[1], state[2]);
    return random_dropout(v, s, params.site, params.m * params.n, i, params.threshold, params.scale);
}

fn load_a(row: u32, kk: u32) -> f32 {
    if trans_a {
        return a[kk * params.m + row];
    }
    return a[row * params.k + kk];
}

fn load_b(kk: u32, col: u32) -> f32 {
    var i = kk * params.n + col;
    if trans_b {
        i = col * params.k + kk;
    }
    return dtype_value(b[dtype_word(i)], i);
}

// The bias of column col (zero without one).
fn bias_at(col: u32) -> f32 {
    if has_bias {
        return bias[col];
    }
    return 0.0;
}

// Element i of C before any epilogue: the sum, plus the bias b when there is one, plus C's previous value
// when accumulating.
fn c_value(i: u32, sum: f32, b: f32) -> f32 {
    var v = sum;
    if has_bias {
        v += b;
    }
    if accumulate {
        v += c[i];
    }
    return v;
}

// Element i of C after the epilogue, from its value v before it (EPILOGUE_GELU also writes aux).
fn epilogue_c(i: u32, v: f32) -> f32 {
    if epilogue == EPILOGUE_GELU {
        aux[i] = gelu_f32(v);
    } else if epilogue == EPILOGUE_RESIDUAL {
        return aux[i] + v;
    } else if epilogue == EPILOGUE_DROPOUT_RESIDUAL {
        return aux[i] + dropout_c(v, i);
    } else if epilogue == EPILOGUE_GELU_GRAD {
        return gelu_grad_f32(aux[i], v);
    }
    return v;
}

// Stores one element of C, the epilogue applied.
fn store_c(row: u32, col: u32, sum: f32) {
    let i = row * params.n + col;
    c[i] = epilogue_c(i, c_value(i, sum, bias_at(col)));
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

// ---- cpu: for CPU adapters (lavapipe, llvmpipe), where an invocation is one SIMD lane, every load of a
// storage buffer costs a loop over the lanes (about 40 instructions per lane for a vec4, against one
// instruction for an 8-lane multiply-add), and workgroup memory and barriers are slow. Loads, not
// arithmetic, bound these kernels (about 70% of their time at 64 rows), so an invocation keeps as large a
// block of C in registers as compile time allows: 32 rows × 4 adjacent columns (four blocks of 8 rows), or
// 64 rows in matmul_subgroup.wgsl, and walks K four steps at a time, so each vec4 of op(B) it loads feeds
// 128 (256) multiply-adds. No workgroup memory, no barriers. A workgroup is one or four 8-lane SIMD
// vectors side by side on the same rows (cpu_width = 8 or 32, chosen by the launcher; the thin kernels
// below use up to 64), and workgroup x walks row blocks so that neighbouring workgroups share B's
// columns in cache.
//
// Everything inside the K loop is written out, not looped: lavapipe keeps only fully unrolled code in
// registers, and it stops any invocation after 65535 loop iterations in all (so K < 262140 here).
//
// What lavapipe (Mesa 22.3, LLVM 15) makes of the K loop of matmul_cpu_subgroup_vec4 at 64 rows, read
// from its machine code under perf: each non-constant load is a loop over the 8 lanes (the address
// worked out per lane, a bounds check and a masked load per component); fma() arrives split into a
// multiply and an add; every write of an accumulator is blended with the execution mask; the 256
// accumulator vectors live on the stack. Replacing all loads of A, or all of B, by constants made the
// product 1.6-1.7x as fast, yet none of these, each of which loads less per multiply-add, ran faster
// within the noise (medians of interleaved runs at 1024³ and baby's shapes): 8 columns per invocation
// (2.5x the compile time), 128 rows, A and B read as vec2<u64> or A as vec4<u64> over 8 k steps
// (SHADER_INT64), all loads of a step issued before its arithmetic or one step ahead, offsets worked
// out before the loop, workgroups of four row blocks sharing B's columns instead of A's rows, 16-lane
// SIMD (LP_NATIVE_VECTOR_WIDTH=512), K walked 8 steps at a time. Reading B's rows from a 16-row
// footprint, as a packed panel of B would, made 1024³ 1.15x as fast and baby's shapes no faster. Reading
// B through a texture (textureLoad of rgba32float: one 16-byte fetch per lane, not a loop per
// component) made a standalone copy of this kernel 1.14x (64 rows) to 1.2x (32 rows) as fast, but every
// product's B would have to be copied into a texture first; not taken. With no loads at all (values
// made from the indices) it ran at 3.5x: the loads, not the arithmetic, are what bounds it.
//
// op(A)'s values for a k step come in "pieces" of four: piece i of the rows from row0, k from kk, is
//   without trans_a: row row0 + i at k = kk..kk+3 (contiguous in A [M, K]);
//   with trans_a:    rows row0 + 4(i/4) .. +3 at k = kk + i % 4 (contiguous in A stored [K, M]),
//                    so four pieces are a transposed 4×4 block.
// Here every invocation loads all pieces itself; matmul_subgroup.wgsl shares them across lanes.
//
// Entry points ending in `_vec4` read a, b and c through vec4 views; the launcher picks them when op(A)'s,
// op(B)'s and C's contiguous axes are multiples of 4. No entry point uses both views of one buffer.

// Invocations per workgroup, each 4 columns wide.
override cpu_width: u32 = 8u;

@group(0) @binding(0) var<storage, read> a4: array<vec4<f32>>;
// B in fours: four f32 values, or the words of eight 16-bit values.
@group(0) @binding(1) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> aux4: array<vec4<f32>>;

alias Block = array<vec4<f32>, 8>;
alias Rows4 = array<vec4<f32>, 4>;

// Piece i of op(A) (see above). Rows past M and k past K are clamped in range: those sums are never
// stored, and op(B) is zero past K.
fn cpu_piece(row0: u32, kk: u32, i: u32) -> vec4<f32> {
    let last_row = params.m - 1u;
    let last_k = params.k - 1u;
    if trans_a {
        let r = row0 + 4u * (i / 4u);
        let k = min(kk + i % 4u, last_k);
        return vec4(load_a(min(r, last_row), k), load_a(min(r + 1u, last_row), k), load_a(min(r + 2u, last_row), k), load_a(min(r + 3u, last_row), k));
    }
    let r = min(row0 + i, last_row);
    return vec4(load_a(r, kk), load_a(r, min(kk + 1u, last_k)), load_a(r, min(kk + 2u, last_k)), load_a(r, min(kk + 3u, last_k)));
}

// cpu_piece through the vec4 view: K % 4 == 0 without trans_a, M % 4 == 0 with it.
fn cpu_piece_vec4(row0: u32, kk: u32, i: u32) -> vec4<f32> {
    if trans_a {
        let r = min(row0 + 4u * (i / 4u), params.m - 4u);
        return a4[(min(kk + i % 4u, params.k - 1u) * params.m + r) / 4u];
    }
    return a4[(min(row0 + i, params.m - 1u) * params.k + kk) / 4u];
}

fn cpu_pieces(row0: u32, kk: u32, first: u32) -> Block {
    return Block(cpu_piece(row0, kk, first), cpu_piece(row0, kk, first + 1u), cpu_piece(row0, kk, first + 2u), cpu_piece(row0, kk, first + 3u), cpu_piece(row0, kk, first + 4u), cpu_piece(row0, kk, first + 5u), cpu_piece(row0, kk, first + 6u), cpu_piece(row0, kk, first + 7u));
}

fn cpu_pieces_vec4(row0: u32, kk: u32, first: u32) -> Block {
    return Block(cpu_piece_vec4(row0, kk, first), cpu_piece_vec4(row0, kk, first + 1u), cpu_piece_vec4(row0, kk, first + 2u), cpu_piece_vec4(row0, kk, first + 3u), cpu_piece_vec4(row0, kk, first + 4u), cpu_piece_vec4(row0, kk, first + 5u), cpu_piece_vec4(row0, kk, first + 6u), cpu_piece_vec4(row0, kk, first + 7u));
}

// Row kj of op(B) at columns col..col+3: zero past K, so the K tail adds nothing; columns past N are
// clamped in range (their sums are never stored).
fn cpu_b_row(kj: u32, col: u32) -> vec4<f32> {
    let k = min(kj, params.k - 1u);
    let last = params.n - 1u;
    let v = vec4(load_b(k, min(col, last)), load_b(k, min(col + 1u, last)), load_b(k, min(col + 2u, last)), load_b(k, min(col + 3u, last)));
    return select(vec4(0.0), v, kj < params.k);
}

fn cpu_b(kk: u32, col: u32) -> Rows4 {
    return Rows4(cpu_b_row(kk, col), cpu_b_row(kk + 1u, col), cpu_b_row(kk + 2u, col), cpu_b_row(kk + 3u, col));
}

// cpu_b through the vec4 view: K % 4 == 0 and N % 4 == 0 (read along K, transposed, with trans_b), so a
// 16-bit B is whole vec4s of words.
fn cpu_b_vec4(kk: u32, col: u32) -> Rows4 {
    let c = min(col, params.n - 4u);
    if trans_b {
        let k = params.k;
        let t = transpose(mat4x4<f32>(b_quad(c * k + kk), b_quad((c + 1u) * k + kk), b_quad((c + 2u) * k + kk), b_quad((c + 3u) * k + kk)));
        return Rows4(t[0], t[1], t[2], t[3]);
    }
    return Rows4(cpu_b_row_vec4(kk, c), cpu_b_row_vec4(kk + 1u, c), cpu_b_row_vec4(kk + 2u, c), cpu_b_row_vec4(kk + 3u, c));
}

fn cpu_b_row_vec4(kj: u32, c: u32) -> vec4<f32> {
    return select(vec4(0.0), b_quad(min(kj, params.k - 1u) * params.n + c), kj < params.k);
}

// Values i..i+3 of B as stored (i % 4 == 0): a vec4 of f32, or half of one holding eight 16-bit values
// (their bits: loading and bitcasting does no arithmetic). A view of word pairs read 16-bit B 1.0-1.9x
// as fast again, but an entry point has one view of a binding, and reading f32 B as two pairs made f32
// products up to a quarter slower (lavapipe, at 1024³ and a 16-token prefill's shapes).
fn b_quad(i: u32) -> vec4<f32> {
    if dtype == DTYPE_F32 {
        return b4[i / 4u];
    }
    let words = bitcast<vec4<u32>>(b4[i / 8u]);
    return dtype_unpack4(select(words.xy, words.zw, (i & 4u) != 0u));
}

// acc + Σ_j a[j]·bb[j]: one row of C, four k steps.
fn cpu_fma(acc: vec4<f32>, a: vec4<f32>, bb: Rows4) -> vec4<f32> {
    return fma(vec4(a.w), bb[3], fma(vec4(a.z), bb[2], fma(vec4(a.y), bb[1], fma(vec4(a.x), bb[0], acc))));
}

// Adds eight pieces of op(A) (rows row0+first.. +7) times op(B)'s four rows into a block of accumulators.
fn cpu_apply(acc: ptr<function, Block>, pieces: Block, bb: Rows4) {
    var p = pieces;
    if trans_a {
        // Each four pieces hold a 4×4 block k-major; make them row-major.
        let lo = transpose(mat4x4<f32>(p[0], p[1], p[2], p[3]));
        let hi = transpose(mat4x4<f32>(p[4], p[5], p[6], p[7]));
        p = Block(lo[0], lo[1], lo[2], lo[3], hi[0], hi[1], hi[2], hi[3]);
    }
    (*acc)[0] = cpu_fma((*acc)[0], p[0], bb);
    (*acc)[1] = cpu_fma((*acc)[1], p[1], bb);
    (*acc)[2] = cpu_fma((*acc)[2], p[2], bb);
    (*acc)[3] = cpu_fma((*acc)[3], p[3], bb);
    (*acc)[4] = cpu_fma((*acc)[4], p[4], bb);
    (*acc)[5] = cpu_fma((*acc)[5], p[5], bb);
    (*acc)[6] = cpu_fma((*acc)[6], p[6], bb);
    (*acc)[7] = cpu_fma((*acc)[7], p[7], bb);
}

// The bias of columns col..col+3 (zero without one; columns past N clamped in range), loaded once per
// invocation: every row of its block adds the same.
fn cpu_bias(col: u32) -> vec4<f32> {
    if !has_bias {
        return vec4(0.0);
    }
    let last = params.n - 1u;
    return vec4(bias[min(col, last)], bias[min(col + 1u, last)], bias[min(col + 2u, last)], bias[min(col + 3u, last)]);
}

// Stores one row of a block, 4 columns from col: the sums v, with the bias b and C's previous value as
// asked, but no epilogue (cpu_finish applies it).
fn cpu_store_row(row: u32, col: u32, v: vec4<f32>, b: vec4<f32>) {
    if row >= params.m || col >= params.n {
        return;
    }
    // A loop of a count known only at run time, which the driver compiles as a loop: one store per row
    // to compile, not four (lavapipe compiled a weight gradient's product in half the time).
    for (var i = 0u; i < min(4u, params.n - col); i++) {
        let j = row * params.n + col + i;
        c[j] = c_value(j, v[i], b[i]);
    }
}

// cpu_store_row through the vec4 view (N % 4 == 0).
fn cpu_store_row_vec4(row: u32, col: u32, v: vec4<f32>, b: vec4<f32>) {
    if row >= params.m || col >= params.n {
        return;
    }
    let i = (row * params.n + col) / 4u;
    var out = v;
    if has_bias {
        out += b;
    }
    if accumulate {
        out += c4[i];
    }
    c4[i] = out;
}

// Stores a block of 8 rows from row0, written out as the K loop is (lavapipe keeps only fully unrolled
// code in registers).
fn cpu_store(acc: Block, row0: u32, col: u32, b: vec4<f32>) {
    cpu_store_row(row0, col, acc[0], b);
    cpu_store_row(row0 + 1u, col, acc[1], b);
    cpu_store_row(row0 + 2u, col, acc[2], b);
    cpu_store_row(row0 + 3u, col, acc[3], b);
    cpu_store_row(row0 + 4u, col, acc[4], b);
    cpu_store_row(row0 + 5u, col, acc[5], b);
    cpu_store_row(row0 + 6u, col, acc[6], b);
    cpu_store_row(row0 + 7u, col, acc[7], b);
}

fn cpu_store_vec4(acc: Block, row0: u32, col: u32, b: vec4<f32>) {
    cpu_store_row_vec4(row0, col, acc[0], b);
    cpu_store_row_vec4(row0 + 1u, col, acc[1], b);
    cpu_store_row_vec4(row0 + 2u, col, acc[2], b);
    cpu_store_row_vec4(row0 + 3u, col, acc[3], b);
    cpu_store_row_vec4(row0 + 4u, col, acc[4], b);
    cpu_store_row_vec4(row0 + 5u, col, acc[5], b);
    cpu_store_row_vec4(row0 + 6u, col, acc[6], b);
    cpu_store_row_vec4(row0 + 7u, col, acc[7], b);
}

// The epilogue over rows row0 .. row0 + rows - 1 of the columns col..col+3, once the block is stored:
// it reads C back, in a loop whose count is known only at run time, so the driver compiles the epilogue
// once instead of once per row (written out in the stores above, a GELU gradient cost lavapipe seconds
// of compiling per pipeline, and its copies' registers made the product run twice as long).
fn cpu_finish(row0: u32, rows: u32, col: u32) {
    if epilogue == 0u || col >= params.n {
        return;
    }
    let end = min(row0 + rows, params.m);
    for (var row = row0; row < end; row++) {
        for (var i = 0u; i < min(4u, params.n - col); i++) {
            let j = row * params.n + col + i;
            c[j] = epilogue_c(j, c[j]);
        }
    }
}

// epilogue_c through the vec4 views: elements 4i..4i+3 of C.
fn epilogue_c4(i: u32, v: vec4<f32>) -> vec4<f32> {
    if epilogue == EPILOGUE_GELU {
        aux4[i] = gelu(v);
    } else if epilogue == EPILOGUE_RESIDUAL {
        return aux4[i] + v;
    } else if epilogue == EPILOGUE_DROPOUT_RESIDUAL {
        let e = 4u * i;
        return aux4[i] + vec4(dropout_c(v.x, e), dropout_c(v.y, e + 1u), dropout_c(v.z, e + 2u), dropout_c(v.w, e + 3u));
    } else if epilogue == EPILOGUE_GELU_GRAD {
        return gelu_grad(aux4[i], v);
    }
    return v;
}

// cpu_finish through the vec4 views (N % 4 == 0).
fn cpu_finish_vec4(row0: u32, rows: u32, col: u32) {
    if epilogue == 0u || col >= params.n {
        return;
    }
    let end = min(row0 + rows, params.m);
    for (var row = row0; row < end; row++) {
        let i = (row * params.n + col) / 4u;
        c4[i] = epilogue_c4(i, c4[i]);
    }
}

@compute @workgroup_size(cpu_width)
fn matmul_cpu(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let row0 = group.x * 32u;
    let col = (group.y * cpu_width + lane) * 4u;
    var acc0: Block;
    var acc1: Block;
    var acc2: Block;
    var acc3: Block;
    for (var kk = 0u; kk < params.k; kk += 4u) {
        let bb = cpu_b(kk, col);
        cpu_apply(&acc0, cpu_pieces(row0, kk, 0u), bb);
        cpu_apply(&acc1, cpu_pieces(row0, kk, 8u), bb);
        cpu_apply(&acc2, cpu_pieces(row0, kk, 16u), bb);
        cpu_apply(&acc3, cpu_pieces(row0, kk, 24u), bb);
    }
    let b = cpu_bias(col);
    cpu_store(acc0, row0, col, b);
    cpu_store(acc1, row0 + 8u, col, b);
    cpu_store(acc2, row0 + 16u, col, b);
    cpu_store(acc3, row0 + 24u, col, b);
    cpu_finish(row0, 32u, col);
}

// matmul_cpu through the vec4 views.
@compute @workgroup_size(cpu_width)
fn matmul_cpu_vec4(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let row0 = group.x * 32u;
    let col = (group.y * cpu_width + lane) * 4u;
    var acc0: Block;
    var acc1: Block;
    var acc2: Block;
    var acc3: Block;
    for (var kk = 0u; kk < params.k; kk += 4u) {
        let bb = cpu_b_vec4(kk, col);
        cpu_apply(&acc0, cpu_pieces_vec4(row0, kk, 0u), bb);
        cpu_apply(&acc1, cpu_pieces_vec4(row0, kk, 8u), bb);
        cpu_apply(&acc2, cpu_pieces_vec4(row0, kk, 16u), bb);
        cpu_apply(&acc3, cpu_pieces_vec4(row0, kk, 24u), bb);
    }
    let b = cpu_bias(col);
    cpu_store_vec4(acc0, row0, col, b);
    cpu_store_vec4(acc1, row0 + 8u, col, b);
    cpu_store_vec4(acc2, row0 + 16u, col, b);
    cpu_store_vec4(acc3, row0 + 24u, col, b);
    cpu_finish_vec4(row0, 32u, col);
}

// ---- thin: products with few rows (a decode step has M = 1). Each invocation keeps 4 columns of 4 rows
// of C in registers: the 32-row blocks above would do 32/M times the useful work, while here the cost
// is reading op(B) once per 4 rows, which at M = 1 is all there is. Same helpers, same clamping.

@compute @workgroup_size(cpu_width)
fn matmul_cpu_thin(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let row0 = group.x * 4u;
    let col = (group.y * cpu_width + lane) * 4u;
    var acc: Rows4;
    for (var kk = 0u; kk < params.k; kk += 4u) {
        let bb = cpu_b(kk, col);
        acc[0] = cpu_fma(acc[0], cpu_piece(row0, kk, 0u), bb);
        acc[1] = cpu_fma(acc[1], cpu_piece(row0, kk, 1u), bb);
        acc[2] = cpu_fma(acc[2], cpu_piece(row0, kk, 2u), bb);
        acc[3] = cpu_fma(acc[3], cpu_piece(row0, kk, 3u), bb);
    }
    let b = cpu_bias(col);
    cpu_store_row(row0, col, acc[0], b);
    cpu_store_row(row0 + 1u, col, acc[1], b);
    cpu_store_row(row0 + 2u, col, acc[2], b);
    cpu_store_row(row0 + 3u, col, acc[3], b);
    cpu_finish(row0, 4u, col);
}

// matmul_cpu_thin through the vec4 views.
@compute @workgroup_size(cpu_width)
fn matmul_cpu_thin_vec4(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let row0 = group.x * 4u;
    let col = (group.y * cpu_width + lane) * 4u;
    var acc: Rows4;
    for (var kk = 0u; kk < params.k; kk += 4u) {
        let bb = cpu_b_vec4(kk, col);
        acc[0] = cpu_fma(acc[0], cpu_piece_vec4(row0, kk, 0u), bb);
        acc[1] = cpu_fma(acc[1], cpu_piece_vec4(row0, kk, 1u), bb);
        acc[2] = cpu_fma(acc[2], cpu_piece_vec4(row0, kk, 2u), bb);
        acc[3] = cpu_fma(acc[3], cpu_piece_vec4(row0, kk, 3u), bb);
    }
    let b = cpu_bias(col);
    cpu_store_row_vec4(row0, col, acc[0], b);
    cpu_store_row_vec4(row0 + 1u, col, acc[1], b);
    cpu_store_row_vec4(row0 + 2u, col, acc[2], b);
    cpu_store_row_vec4(row0 + 3u, col, acc[3], b);
    cpu_finish_vec4(row0, 4u, col);
}

// ---- gpu: for real GPUs. A workgroup of gpu_threads × gpu_threads invocations computes a 4·gpu_threads
// square tile of C; each invocation a 4×4 register block (rows 4y.., columns 4x..). Per step of gpu_tile_k
// along K the workgroup stages op(A)'s and op(B)'s tiles in workgroup memory as vec4s, so the inner loop
// reads one vec4 of A (four rows) and one of B (four columns) per 16 multiply-adds. Global loads are
// arranged so that neighbouring invocations read neighbouring addresses of the operand as stored
// (coalesced, whether transposed or not); elements past the matrix load as zero.

override gpu_threads: u32 = 16u;
override gpu_tile_k: u32 = 16u;
// Workgroup arrays are sized for the largest settings: gpu_threads ≤ 16 (256 invocations, WebGPU's default
// limit) and gpu_tile_k ≤ 32 (16 KiB of workgroup memory, its default limit).
const GPU_MAX_TILE: u32 = 64u; // 4 · gpu_threads
const GPU_MAX_TILE_K: u32 = 32u;

// gpu_tile_a[k][m / 4]: op(A)'s tile stored K-major, four rows per vec4; gpu_tile_b[k][n / 4] likewise for
// op(B)'s four columns.
var<workgroup> gpu_tile_a: array<vec4<f32>, GPU_MAX_TILE_K * GPU_MAX_TILE / 4u>;
var<workgroup> gpu_tile_b: array<vec4<f32>, GPU_MAX_TILE_K * GPU_MAX_TILE / 4u>;

fn gpu_load_a(row: u32, kk: u32) -> f32 {
    return select(0.0, load_a(min(row, params.m - 1u), min(kk, params.k - 1u)), row < params.m && kk < params.k);
}

fn gpu_load_b(kk: u32, col: u32) -> f32 {
    return select(0.0, load_b(min(kk, params.k - 1u), min(col, params.n - 1u)), kk < params.k && col < params.n);
}

@compute @workgroup_size(gpu_threads, gpu_threads)
fn matmul_gpu(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(local_invocation_index) index: u32,
) {
    let tile = 4u * gpu_threads;
    let quads = gpu_threads; // vec4s across a tile
    let row0 = group.y * tile;
    let col0 = group.x * tile;
    let threads = gpu_threads * gpu_threads;
    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < params.k; k0 += gpu_tile_k) {
        // Each slot is one vec4 of a tile: (k, quad of four rows or columns).
        for (var s = index; s < gpu_tile_k * quads; s += threads) {
            // A [M, K] is contiguous along K: neighbours take neighbouring k. Aᵀ along M: neighbouring quads.
            var ka = s % gpu_tile_k;
            var qa = s / gpu_tile_k;
            if trans_a {
                ka = s / quads;
                qa = s % quads;
            }
            let ra = row0 + 4u * qa;
            gpu_tile_a[ka * quads + qa] = vec4(
                gpu_load_a(ra, k0 + ka),
                gpu_load_a(ra + 1u, k0 + ka),
                gpu_load_a(ra + 2u, k0 + ka),
                gpu_load_a(ra + 3u, k0 + ka),
            );
            // B [K, N] is contiguous along N; Bᵀ (stored [N, K]) along K.
            var kb = s / quads;
            var qb = s % quads;
            if trans_b {
                kb = s % gpu_tile_k;
                qb = s / gpu_tile_k;
            }
            let cb = col0 + 4u * qb;
            gpu_tile_b[kb * quads + qb] = vec4(
                gpu_load_b(k0 + kb, cb),
                gpu_load_b(k0 + kb, cb + 1u),
                gpu_load_b(k0 + kb, cb + 2u),
                gpu_load_b(k0 + kb, cb + 3u),
            );
        }
        workgroupBarrier();
        for (var kk = 0u; kk < gpu_tile_k; kk++) {
            let av = gpu_tile_a[kk * quads + local.y];
            let bv = gpu_tile_b[kk * quads + local.x];
            acc[0] = fma(vec4(av.x), bv, acc[0]);
            acc[1] = fma(vec4(av.y), bv, acc[1]);
            acc[2] = fma(vec4(av.z), bv, acc[2]);
            acc[3] = fma(vec4(av.w), bv, acc[3]);
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + 4u * local.y + i;
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + 4u * local.x + j;
            if row < params.m && col < params.n {
                store_c(row, col, acc[i][j]);
            }
        }
    }
}

// ---- bias gradient: db[n] += Σ_m dY[m, n], with dY bound as `a` ([M, N]) and db as `c`, one
// invocation per column summing rows in order (deterministic); `_vec4` gives it four columns (N a
// multiple of 4). `columns` invocations per workgroup: few on CPUs, so the columns spread over threads.

override columns: u32 = 64u;

@compute @workgroup_size(columns)
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

@compute @workgroup_size(columns)
fn matmul_bias_backward_vec4(@builtin(global_invocation_id) id: vec3<u32>) {
    let col4 = id.x;
    let n4 = params.n / 4u;
    if col4 >= n4 {
        return;
    }
    var sum = vec4(0.0);
    for (var row = 0u; row < params.m; row++) {
        sum += a4[row * n4 + col4];
    }
    c4[col4] += sum;
}
