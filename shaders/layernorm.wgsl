// layernorm over each row of `cols` features (rowsum.wgsl is the prelude):
//
//   forward   mean = Σx/C,  rstd = 1/√(Σ(x - mean)²/C + eps),  x̂ = (x - mean)·rstd
//             y = x̂·gain (+ bias)                                  (writes y, mean, rstd)
//   backward  g = dy·gain
//             dx = rstd · (g - mean(g) - x̂·mean(g·x̂))              (writes dx)
//   params    dgain += Σ_rows dy·x̂,  dbias += Σ_rows dy            (adds; _gain: dgain only)
//
// x, y, dy: [rows, cols]; gain, bias: [cols]; mean, rstd: [rows]. Forward and backward give each row
// to one workgroup of `wg` invocations (a grid-stride loop over rows), or, in their `_row` variants, to
// one invocation; the parameter gradients give each column to one invocation, which sums over rows in
// order, so they are deterministic without atomics.
//
// Every entry point has a `_vec4` twin reading rows as vec4s (16-byte loads, 2-2.5x faster on
// lavapipe), used when `cols` is a multiple of 4; the parameter-gradient twins give each invocation
// four columns.

struct Params {
    rows: u32,
    cols: u32,
    eps: f32,
    _pad: u32,
}

override has_bias: bool = true;

fn mean_of(s: vec2<f32>) -> vec2<f32> {
    return s / f32(params.cols);
}

fn sum4(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}

// ---- forward. Bindings: x, gain, bias, y, mean, rstd, params.
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gain: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> mean_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> rstd_out: array<f32>;
@group(0) @binding(6) var<uniform> params: Params;

@compute @workgroup_size(wg)
fn layernorm_forward(
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let lane = local.x;
    for (var row = group.x; row < params.rows; row += groups.x) {
        let base = row * params.cols;
        var s = 0.0;
        for (var j = lane; j < params.cols; j += wg) {
            s += x[base + j];
        }
        let mean = mean_of(rowsum(vec2(s, 0.0), lane)).x;
        // Two passes (mean, then squared deviations): no cancellation when |mean| ≫ std.
        var v = 0.0;
        for (var j = lane; j < params.cols; j += wg) {
            let d = x[base + j] - mean;
            v += d * d;
        }
        let rstd = 1.0 / sqrt(mean_of(rowsum(vec2(v, 0.0), lane)).x + params.eps);
        for (var j = lane; j < params.cols; j += wg) {
            var out = (x[base + j] - mean) * rstd * gain[j];
            if has_bias {
                out += bias[j];
            }
            y[base + j] = out;
        }
        if lane == 0u {
            mean_out[row] = mean;
            rstd_out[row] = rstd;
        }
    }
}

@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> gain4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y4: array<vec4<f32>>;

@compute @workgroup_size(wg)
fn layernorm_forward_vec4(
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let lane = local.x;
    let cols4 = params.cols / 4u;
    for (var row = group.x; row < params.rows; row += groups.x) {
        let base = row * cols4;
        var s = vec4(0.0);
        for (var j = lane; j < cols4; j += wg) {
            s += x4[base + j];
        }
        let mean = mean_of(rowsum(vec2(sum4(s), 0.0), lane)).x;
        var v = vec4(0.0);
        for (var j = lane; j < cols4; j += wg) {
            let d = x4[base + j] - mean;
            v += d * d;
        }
        let rstd = 1.0 / sqrt(mean_of(rowsum(vec2(sum4(v), 0.0), lane)).x + params.eps);
        for (var j = lane; j < cols4; j += wg) {
            var out = (x4[base + j] - mean) * rstd * gain4[j];
            if has_bias {
                out += bias4[j];
            }
            y4[base + j] = out;
        }
        if lane == 0u {
            mean_out[row] = mean;
            rstd_out[row] = rstd;
        }
    }
}

// One invocation per row (the `_row` entry points, for CPU adapters whose invocations are SIMD lanes):
// no workgroup memory, no barriers, and `row_cols` (C, an override) makes every loop over a row a
// constant-trip-count loop that the compiler unrolls. A grid-stride loop over rows. The forward reads
// the row twice, not three times: one pass sums x - k and (x - k)² with k = the row's first element
// (a shift that keeps the variance free of cancellation unless |mean - k| ≫ std), a second writes y.
override row_cols: u32 = 4u;
override row_cols4: u32 = row_cols / 4u;

// (mean, rstd) from the sums of d = x - k and d² over a row.
fn shifted_stats(k: f32, s: f32, q: f32) -> vec2<f32> {
    let ds = s / f32(row_cols);
    return vec2(k + ds, 1.0 / sqrt(max(q / f32(row_cols) - ds * ds, 0.0) + params.eps));
}

@compute @workgroup_size(wg)
fn layernorm_forward_row(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    for (var row = id.x; row < params.rows; row += groups.x * wg) {
        let base = row * row_cols;
        let k = x[base];
        var s = 0.0;
        var q = 0.0;
        for (var j = 0u; j < row_cols; j++) {
            let d = x[base + j] - k;
            s += d;
            q += d * d;
        }
        let stats = shifted_stats(k, s, q);
        for (var j = 0u; j < row_cols; j++) {
            var out = (x[base + j] - stats.x) * stats.y * gain[j];
            if has_bias {
                out += bias[j];
            }
            y[base + j] = out;
        }
        mean_out[row] = stats.x;
        rstd_out[row] = stats.y;
    }
}

@compute @workgroup_size(wg)
fn layernorm_forward_row_vec4(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    for (var row = id.x; row < params.rows; row += groups.x * wg) {
        let base = row * row_cols4;
        let k = x4[base].x;
        var s = vec4(0.0);
        var q = vec4(0.0);
        for (var j = 0u; j < row_cols4; j++) {
            let d = x4[base + j] - k;
            s += d;
            q += d * d;
        }
        let stats = shifted_stats(k, sum4(s), sum4(q));
        for (var j = 0u; j < row_cols4; j++) {
            var out = (x4[base + j] - stats.x) * stats.y * gain4[j];
            if has_bias {
                out += bias4[j];
            }
            y4[base + j] = out;
        }
        mean_out[row] = stats.x;
        rstd_out[row] = stats.y;
    }
}

// ---- backward (dx). Bindings: x, gain, mean, rstd, dy, dx, params.
@group(0) @binding(2) var<storage, read> mean_in: array<f32>;
@group(0) @binding(3) var<storage, read> rstd_in: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(wg)
fn layernorm_backward(
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let lane = local.x;
    for (var row = group.x; row < params.rows; row += groups.x) {
        let base = row * params.cols;
        let mean = mean_in[row];
        let rstd = rstd_in[row];
        var s = vec2(0.0);
        for (var j = lane; j < params.cols; j += wg) {
            let g = dy[base + j] * gain[j];
            s += vec2(g, g * (x[base + j] - mean) * rstd);
        }
        let m = mean_of(rowsum(s, lane));
        for (var j = lane; j < params.cols; j += wg) {
            let g = dy[base + j] * gain[j];
            let xhat = (x[base + j] - mean) * rstd;
            dx[base + j] = rstd * (g - m.x - xhat * m.y);
        }
    }
}

@group(0) @binding(4) var<storage, read> dy4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> dx4: array<vec4<f32>>;

@compute @workgroup_size(wg)
fn layernorm_backward_vec4(
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let lane = local.x;
    let cols4 = params.cols / 4u;
    for (var row = group.x; row < params.rows; row += groups.x) {
        let base = row * cols4;
        let mean = mean_in[row];
        let rstd = rstd_in[row];
        var s = vec2(0.0);
        for (var j = lane; j < cols4; j += wg) {
            let g = dy4[base + j] * gain4[j];
            s += vec2(sum4(g), sum4(g * (x4[base + j] - mean) * rstd));
        }
        let m = mean_of(rowsum(s, lane));
        for (var j = lane; j < cols4; j += wg) {
            let g = dy4[base + j] * gain4[j];
            let xhat = (x4[base + j] - mean) * rstd;
            dx4[base + j] = rstd * (g - m.x - xhat * m.y);
        }
    }
}

@compute @workgroup_size(wg)
fn layernorm_backward_row(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    for (var row = id.x; row < params.rows; row += groups.x * wg) {
        let base = row * row_cols;
        let mean = mean_in[row];
        let rstd = rstd_in[row];
        var s = vec2(0.0);
        for (var j = 0u; j < row_cols; j++) {
            let g = dy[base + j] * gain[j];
            s += vec2(g, g * (x[base + j] - mean) * rstd);
        }
        let m = s / f32(row_cols);
        for (var j = 0u; j < row_cols; j++) {
            let g = dy[base + j] * gain[j];
            let xhat = (x[base + j] - mean) * rstd;
            dx[base + j] = rstd * (g - m.x - xhat * m.y);
        }
    }
}

@compute @workgroup_size(wg)
fn layernorm_backward_row_vec4(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    for (var row = id.x; row < params.rows; row += groups.x * wg) {
        let base = row * row_cols4;
        let mean = mean_in[row];
        let rstd = rstd_in[row];
        var sg = vec4(0.0);
        var sgx = vec4(0.0);
        for (var j = 0u; j < row_cols4; j++) {
            let g = dy4[base + j] * gain4[j];
            sg += g;
            sgx += g * (x4[base + j] - mean) * rstd;
        }
        let m = vec2(sum4(sg), sum4(sgx)) / f32(row_cols);
        for (var j = 0u; j < row_cols4; j++) {
            let g = dy4[base + j] * gain4[j];
            let xhat = (x4[base + j] - mean) * rstd;
            dx4[base + j] = rstd * (g - m.x - xhat * m.y);
        }
    }
}

// ---- parameter gradients. Bindings: x, mean, rstd, dy, dgain, dbias, params (with a bias), or
// x, mean, rstd, dy, dgain, params (without).
@group(0) @binding(1) var<storage, read> p_mean: array<f32>;
@group(0) @binding(2) var<storage, read> p_rstd: array<f32>;
@group(0) @binding(3) var<storage, read> p_dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dgain: array<f32>;
@group(0) @binding(5) var<storage, read_write> dbias: array<f32>;
@group(0) @binding(5) var<uniform> gain_params: Params;

override columns: u32 = 64u;

// (Σ_rows dy·x̂, Σ_rows dy) for one column, summed in row order.
fn column_sums(col: u32, rows: u32, cols: u32) -> vec2<f32> {
    var s = vec2(0.0);
    for (var row = 0u; row < rows; row++) {
        let i = row * cols + col;
        let d = p_dy[i];
        s += vec2(d * (x[i] - p_mean[row]) * p_rstd[row], d);
    }
    return s;
}

@compute @workgroup_size(columns)
fn layernorm_backward_params(@builtin(global_invocation_id) id: vec3<u32>) {
    let col = id.x;
    if col < params.cols {
        let s = column_sums(col, params.rows, params.cols);
        dgain[col] += s.x;
        dbias[col] += s.y;
    }
}

@compute @workgroup_size(columns)
fn layernorm_backward_gain(@builtin(global_invocation_id) id: vec3<u32>) {
    let col = id.x;
    if col < gain_params.cols {
        dgain[col] += column_sums(col, gain_params.rows, gain_params.cols).x;
    }
}

// The same over four columns per invocation.
@group(0) @binding(3) var<storage, read> p_dy4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> dgain4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> dbias4: array<vec4<f32>>;

fn column_sums4(col4: u32, rows: u32, cols4: u32) -> array<vec4<f32>, 2> {
    var sg = vec4(0.0);
    var sb = vec4(0.0);
    for (var row = 0u; row < rows; row++) {
        let i = row * cols4 + col4;
        let d = p_dy4[i];
        sg += d * (x4[i] - p_mean[row]) * p_rstd[row];
        sb += d;
    }
    return array(sg, sb);
}

@compute @workgroup_size(columns)
fn layernorm_backward_params_vec4(@builtin(global_invocation_id) id: vec3<u32>) {
    let col4 = id.x;
    if col4 < params.cols / 4u {
        let s = column_sums4(col4, params.rows, params.cols / 4u);
        dgain4[col4] += s[0];
        dbias4[col4] += s[1];
    }
}

@compute @workgroup_size(columns)
fn layernorm_backward_gain_vec4(@builtin(global_invocation_id) id: vec3<u32>) {
    let col4 = id.x;
    if col4 < gain_params.cols / 4u {
        dgain4[col4] += column_sums4(col4, gain_params.rows, gain_params.cols / 4u)[0];
    }
}
