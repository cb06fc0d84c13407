// copy: y = x, elementwise. Its bench row is the adapter's achievable bandwidth, the yardstick for every
// memory-bound kernel. Also copy_columns (a block of columns) and copy_transpose (a weight matrix's
// transpose, in the dtype it is stored in: dtype.wgsl, the prelude, sets `dtype`).
//
// Bindings: x, y, params. Like every elementwise shader here it has two entry points: `_vec4` moves
// whole vec4s (params.n counts vec4s) and is used when the element count is a multiple of 4; the plain
// one moves single elements (params.n counts elements). Each workgroup walks its own contiguous run of
// the items (elementwise.wgsl, the prelude), which covers tensors larger than one dispatch dimension.

struct Params {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(wg)
fn copy_forward(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let run = elementwise_run(params.n, group.x, groups.x);
    for (var i = run.x + lane; i < run.y; i += wg) {
        y[i] = x[i];
    }
}

@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> y4: array<vec4<f32>>;

@compute @workgroup_size(wg)
fn copy_forward_vec4(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let run = elementwise_run(params.n, group.x, groups.x);
    for (var i = run.x + lane; i < run.y; i += wg) {
        y4[i] = x4[i];
    }
}

// ---- copy_columns: a block of columns from one row-major matrix to another with the same rows,
//   y[r, y_first + c] = x[r, x_first + c]   for r < rows, c < width   (writes that block of y only)
// (a piece of the logits placed into all of them, or taken out). Bindings: x, y, columns.
struct Columns {
    rows: u32,
    width: u32,
    x_cols: u32,
    x_first: u32,
    y_cols: u32,
    y_first: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(2) var<uniform> columns: Columns;

// The rows · width items of the block are spread as elementwise.wgsl spreads n items.
@compute @workgroup_size(wg)
fn copy_columns(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let p = columns;
    let run = elementwise_run(p.rows * p.width, group.x, groups.x);
    for (var i = run.x + lane; i < run.y; i += wg) {
        let r = i / p.width;
        let c = i - r * p.width;
        y[r * p.y_cols + p.y_first + c] = x[r * p.x_cols + p.x_first + c];
    }
}

// ---- copy_transpose: t[c, r] = w[r, c] for a matrix w: [rows, cols] of `dtype` values packed in u32
// words (dtype.wgsl), t: [cols, rows] packed alike (writes t), its rows in order or, with `interleaved`,
// in groups of 8 (the last of what remains) whose vec4s of words alternate: vec4 i of the group's row
// r at vec4 R·first + n·i + r of t, with `first` the group's first row, n its rows, R the vec4s of a
// row (t's rows, `rows` values, are whole vec4s then). One item per word of a row-major t, per vec4 of
// words of an interleaved one: its values (one a word in f32, two in 16 bits) come from w, their bits
// moved, not rounded. A last word of a row-major t past its values gets zero bits. Bindings: w, t,
// transpose.
struct Transpose {
    rows: u32,
    cols: u32,
    // Words of t.
    words: u32,
    _pad: u32,
}

override interleaved: bool = false;

@group(0) @binding(0) var<storage, read> w_words: array<u32>;
@group(0) @binding(1) var<storage, read_write> t_words: array<u32>;
@group(0) @binding(2) var<uniform> transpose: Transpose;

// The bits of value `source` of w (in the low 16 bits for a 16-bit dtype).
fn w_bits(source: u32) -> u32 {
    if dtype == DTYPE_F32 {
        return w_words[source];
    }
    return (w_words[source / 2u] >> (16u * (source % 2u))) & 0xffffu;
}

// The bits of value j of the row-major t; zero past the last.
fn transposed_bits(j: u32) -> u32 {
    let p = transpose;
    if j >= p.rows * p.cols {
        return 0u;
    }
    return w_bits((j % p.rows) * p.cols + j / p.rows);
}

// The word of t holding values c and c + 1 (16 bits) or c (f32) of t's row v: w[c.., v].
fn transposed_word(v: u32, c: u32) -> u32 {
    let cols = transpose.cols;
    if dtype == DTYPE_F32 {
        return w_bits(c * cols + v);
    }
    return w_bits(c * cols + v) | (w_bits((c + 1u) * cols + v) << 16u);
}

// The interleaved t, one vec4 of words an item (where t's row and column are found once for 4 words).
fn transpose_interleaved(group: vec3<u32>, groups: vec3<u32>, lane: u32) {
    let per_word = select(2u, 1u, dtype == DTYPE_F32);
    let vec4s = dtype_word(transpose.rows) / 4u;
    let run = elementwise_run(transpose.words / 4u, group.x, groups.x);
    for (var u = run.x + lane; u < run.y; u += wg) {
        let first = u / (8u * vec4s) * 8u;
        let at = u - first * vec4s;
        let n = min(8u, transpose.cols - first);
        let v = first + at % n;
        let c = at / n * 4u * per_word;
        for (var q = 0u; q < 4u; q++) {
            t_words[4u * u + q] = transposed_word(v, c + q * per_word);
        }
    }
}

@compute @workgroup_size(wg)
fn copy_transpose(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    if interleaved {
        transpose_interleaved(group, groups, lane);
        return;
    }
    let run = elementwise_run(transpose.words, group.x, groups.x);
    for (var i = run.x + lane; i < run.y; i += wg) {
        if dtype == DTYPE_F32 {
            t_words[i] = transposed_bits(i);
        } else {
            t_words[i] = transposed_bits(2u * i) | (transposed_bits(2u * i + 1u) << 16u);
        }
    }
}
