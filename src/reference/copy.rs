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
