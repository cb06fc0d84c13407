//! Tensors and views: a view binds exactly its part of an arena, and bad views are errors.

use wgpt::kernels::layernorm;
use wgpt::kernels::matmul::{self, Variant};
use wgpt::reference::matmul as reference;
use wgpt::Tensor;

use crate::common::{gpu, random};

#[test]
fn views_read_write_and_bind_only_their_part_of_an_arena() {
    let gpu = gpu();
    let (m, k, n) = (3, 5, 7);
    // Inputs in one arena, the output in another: WebGPU forbids reading and writing one buffer in a
    // dispatch.
    let arena = gpu.zeros("arena", &[3 * Tensor::ALIGN]).unwrap();
    let out = gpu.zeros("out", &[2 * Tensor::ALIGN]).unwrap();
    let x = arena.view(Tensor::ALIGN, &[m, k]).unwrap();
    let w = arena.view(2 * Tensor::ALIGN, &[k, n]).unwrap();
    let y = out.view(Tensor::ALIGN, &[m, n]).unwrap();
    let (xs, ws) = (random(1, m * k), random(2, k * n));
    gpu.write(&x, &xs).unwrap();
    gpu.write(&w, &ws).unwrap();
    let d = matmul::forward(gpu, Variant::Tiled, &x, &w, None, &y).unwrap();
    gpu.run_dispatches(&[d]).unwrap();
    let want = reference::forward(&xs, &ws, None, m, k, n);
    let got: Vec<f32> = gpu.read(&y).unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-5, "{g} vs {w}");
    }
    // Everything outside the views is untouched.
    let all: Vec<f32> = gpu.read(&arena).unwrap();
    assert!(all[..Tensor::ALIGN].iter().all(|&v| v == 0.0));
    assert!(all[Tensor::ALIGN + m * k..2 * Tensor::ALIGN]
        .iter()
        .all(|&v| v == 0.0));
    let all: Vec<f32> = gpu.read(&out).unwrap();
    assert!(all[..Tensor::ALIGN].iter().all(|&v| v == 0.0));
    assert!(all[Tensor::ALIGN + m * n..].iter().all(|&v| v == 0.0));
}

#[test]
fn reading_and_writing_one_buffer_in_a_dispatch_is_an_error_not_a_panic() {
    let gpu = gpu();
    let arena = gpu.zeros("arena", &[3 * Tensor::ALIGN]).unwrap();
    let x = arena.view(0, &[2, 2]).unwrap();
    let w = arena.view(Tensor::ALIGN, &[2, 2]).unwrap();
    let y = arena.view(2 * Tensor::ALIGN, &[2, 2]).unwrap();
    let err = matmul::forward(gpu, Variant::Tiled, &x, &w, None, &y).unwrap_err();
    assert!(err.to_string().contains("same buffer"), "{err}");
}

#[test]
fn writing_one_range_twice_in_a_dispatch_is_an_error_and_disjoint_views_are_not() {
    let gpu = gpu();
    let (x, g, y) = (
        gpu.zeros("x", &[2, 4]).unwrap(),
        gpu.zeros("g", &[4]).unwrap(),
        gpu.zeros("y", &[2, 4]).unwrap(),
    );
    let stats = gpu.zeros("stats", &[2 * Tensor::ALIGN]).unwrap();
    let mean = stats.view(0, &[2]).unwrap();
    let rstd = stats.view(Tensor::ALIGN, &[2]).unwrap();
    let variant = layernorm::Variant::Workgroup;
    let launch = |rstd| layernorm::forward(gpu, variant, &x, &g, None, &y, &mean, rstd, 1e-5);
    assert!(launch(&rstd).is_ok());
    let err = launch(&mean).unwrap_err();
    assert!(err.to_string().contains("overlapping"), "{err}");
}

#[test]
fn misaligned_or_oversized_views_are_errors() {
    let arena = gpu().zeros("arena", &[2 * Tensor::ALIGN]).unwrap();
    assert!(arena.view(1, &[4]).is_err());
    assert!(arena.view(Tensor::ALIGN, &[Tensor::ALIGN + 1]).is_err());
    assert!(arena.view(Tensor::ALIGN, &[Tensor::ALIGN]).is_ok());
}
