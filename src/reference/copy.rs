//! `copy` on the CPU: `y = x`.

pub fn forward(x: &[f32]) -> Vec<f32> {
    x.to_vec()
}

/// `y[:, y_first .. y_first + width] = x[:, x_first .. x_first + width]` for row-major `x: [rows,
/// x_cols]` and `y: [rows, y_cols]`.
pub fn columns(
    (x, x_cols, x_first): (&[f32], usize, usize),
    (y, y_cols, y_first): (&mut [f32], usize, usize),
    width: usize,
) {
    for (xr, yr) in x.chunks(x_cols).zip(y.chunks_mut(y_cols)) {
        yr[y_first..y_first + width].copy_from_slice(&xr[x_first..x_first + width]);
    }
}

/// `t[c, r] = w[r, c]` for row-major `w: [rows, cols]`: `t: [cols, rows]`.
pub fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols * rows)
        .map(|j| w[(j % rows) * cols + j / rows])
        .collect()
}

/// Row-major `t: [rows, cols]` interleaved as [`crate::kernels::weights::Layout::Interleaved`] lays it
/// out, `chunk` values for each vec4 of words (4 in f32, 8 in 16 bits): rows in groups of 8 (the last
/// of what remains), each group taking `chunk` values of every row in turn.
pub fn interleave(t: &[f32], rows: usize, cols: usize, chunk: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows * cols);
    for first in (0..rows).step_by(8) {
        let group = first..(first + 8).min(rows);
        for c in (0..cols).step_by(chunk) {
            for r in group.clone() {
                out.extend_from_slice(&t[r * cols + c..r * cols + (c + chunk).min(cols)]);
            }
        }
    }
    out
}
