// copy: y = x, elementwise. Its bench row is the adapter's achievable bandwidth, the yardstick for every
// memory-bound kernel.
//
// Bindings: x, y, params. Like every elementwise shader here it has two entry points: `_vec4` moves
// whole vec4s (params.n counts vec4s) and is used when the element count is a multiple of 4; the plain
// one moves single elements (params.n counts elements). A grid-stride loop covers tensors larger than
// one dispatch dimension.

struct Params {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn copy_forward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    for (var i = id.x; i < params.n; i += groups.x * WG) {
        y[i] = x[i];
    }
}

@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> y4: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn copy_forward_vec4(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    for (var i = id.x; i < params.n; i += groups.x * WG) {
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

@compute @workgroup_size(WG)
fn copy_columns(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let p = columns;
    for (var i = id.x; i < p.rows * p.width; i += groups.x * WG) {
        let r = i / p.width;
        let c = i - r * p.width;
        y[r * p.y_cols + p.y_first + c] = x[r * p.x_cols + p.x_first + c];
    }
}
