// layernorm over each row of `cols` features (rowsum.wgsl is the prelude):
//
//   forward   mean = Σx/C,  rstd = 1/√(Σ(x - mean)²/C + eps),  x̂ = (x - mean)·rstd
//             y = x̂·gain (+ bias)                                  (writes y, mean, rstd)
//   backward  g = dy·gain
//             dx = rstd · (g - mean(g) - x̂·mean(g·x̂))              (writes dx)
//   params    dgain += Σ_rows dy·x̂,  dbias += Σ_rows dy            (adds; _gain: dgain only)
//
// x, y, dy: [rows, cols]; gain, bias: [cols]; mean, rstd: [rows]. Forward and backward give each row
// to one workgroup of `wg` invocations (a grid-stride loop over rows); the parameter gradients give each
// column to one invocation, which sums over rows in order, so they are deterministic without atomics.

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

// ---- parameter gradients. Bindings: x, mean, rstd, dy, dgain, dbias, params (with a bias), or
// x, mean, rstd, dy, dgain, params (without).
@group(0) @binding(1) var<storage, read> p_mean: array<f32>;
@group(0) @binding(2) var<storage, read> p_rstd: array<f32>;
@group(0) @binding(3) var<storage, read> p_dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dgain: array<f32>;
@group(0) @binding(5) var<storage, read_write> dbias: array<f32>;
@group(0) @binding(5) var<uniform> gain_params: Params;

const COLUMNS: u32 = 64u;

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

@compute @workgroup_size(COLUMNS)
fn layernorm_backward_params(@builtin(global_invocation_id) id: vec3<u32>) {
    let col = id.x;
    if col < params.cols {
        let s = column_sums(col, params.rows, params.cols);
        dgain[col] += s.x;
        dbias[col] += s.y;
    }
}

@compute @workgroup_size(COLUMNS)
fn layernorm_backward_gain(@builtin(global_invocation_id) id: vec3<u32>) {
    let col = id.x;
    if col < gain_params.cols {
        dgain[col] += column_sums(col, gain_params.rows, gain_params.cols).x;
    }
}
