//! copy: the GPU copy equals its input bit for bit, including past one dispatch dimension of workgroups;
//! so do a block of columns and a weight matrix's transpose in every dtype.

use wgpt::dtype::Dtype;
use wgpt::kernels::copy;
use wgpt::kernels::matvec::{Layout, Weights};
use wgpt::reference::copy as reference;

use crate::common::{assert_within, gpu, random};

#[test]
fn copy_is_exact_for_awkward_sizes_and_past_the_dispatch_limit() {
    let gpu = gpu();
    // Multiples of 4 take the vec4 entry point. Each workgroup walks its own run of the items: on GPUs
    // 65535 · 256 + 5 elements are past one dispatch dimension of 256-wide workgroups, so runs are
    // longer than a workgroup; on CPU adapters every run is (2048 elements per 8-wide workgroup).
    for (i, n) in [1, 4, 5, 97, 65 * 97, 255, 257, 97 * 768, 65535 * 256 + 5]
        .into_iter()
        .enumerate()
    {
        let x = random(500 + i as u64, n);
        let xt = gpu.upload("x", &[n], &x).unwrap();
        let yt = gpu.zeros("y", &[n]).unwrap();
        gpu.run_dispatches(&[copy::forward(gpu, &xt, &yt).unwrap()])
            .unwrap();
        // A copy moves bits: no rounding anywhere.
        assert_within(
            &format!("copy {n}"),
            &gpu.read(&yt).unwrap(),
            &reference::forward(&x),
            |_| 0.0,
        );
    }
}

#[test]
fn copy_columns_moves_exactly_its_block_and_leaves_the_rest() {
    let gpu = gpu();
    // A piece of odd width into the middle of wider rows and back out; 3 rows and 700 rows.
    for (rows, wide, narrow, first) in [(3, 97, 40, 33), (700, 501, 251, 250)] {
        let x = random(600 + rows as u64, rows * narrow);
        let y0 = random(700 + rows as u64, rows * wide);
        let xt = gpu.upload("x", &[rows, narrow], &x).unwrap();
        let yt = gpu.upload("y", &[rows, wide], &y0).unwrap();
        let back = gpu.zeros("back", &[rows, narrow]).unwrap();
        let dispatches = [
            copy::columns(gpu, &xt, 0, &yt, first, narrow).unwrap(),
            copy::columns(gpu, &yt, first, &back, 0, narrow).unwrap(),
        ];
        gpu.run_dispatches(&dispatches).unwrap();
        let mut want = y0.clone();
        reference::columns((&x, narrow, 0), (&mut want, wide, first), narrow);
        // Copies move bits: exact.
        let case = format!("columns {rows}x{narrow} into {rows}x{wide} at {first}");
        assert_within(&case, &gpu.read(&yt).unwrap(), &want, |_| 0.0);
        assert_within(
            &format!("{case}, back"),
            &gpu.read(&back).unwrap(),
            &x,
            |_| 0.0,
        );
    }
    let xt = gpu.zeros("x", &[3, 10]).unwrap();
    let yt = gpu.zeros("y", &[3, 20]).unwrap();
    assert!(copy::columns(gpu, &xt, 0, &yt, 11, 10).is_err());
}

#[test]
fn copy_transpose_moves_every_value_of_every_dtype_exactly_in_either_layout() {
    let gpu = gpu();
    // Odd sizes (a 16-bit matrix whose values end in the low half of its last word, rows that straddle
    // words), a single row and column, and GPT-2's attention-out shape; interleaved, where the
    // transpose's rows are whole vec4s of words: a single partial group of 8 rows (8x3), a whole one
    // and a partial one (64x13), three whole ones (16x24), and GPT-2's.
    for dtype in Dtype::ALL {
        for (rows, cols) in [
            (1, 1),
            (1, 9),
            (7, 1),
            (3, 5),
            (33, 64),
            (97, 50),
            (8, 3),
            (64, 13),
            (16, 24),
            (768, 768),
        ] {
            let w = dtype.round(&random(800 + (rows * cols) as u64, rows * cols));
            let words = dtype.pack(&w);
            let wt = gpu.upload("w", &[words.len()], &words).unwrap();
            let weights = Weights::packed(&wt, dtype, rows, cols).unwrap();
            for layout in [Layout::Rows, Layout::Interleaved] {
                let tt = gpu.zeros("t", &[words.len()]).unwrap();
                let t = Weights::packed(&tt, dtype, cols, rows).unwrap();
                // Interleaving needs rows of whole vec4s of words.
                let Ok(t) = t.laid_out(layout) else {
                    assert!(layout == Layout::Interleaved && rows % (4 * dtype.per_word()) != 0);
                    continue;
                };
                gpu.run_dispatches(&[copy::transpose(gpu, weights, t).unwrap()])
                    .unwrap();
                // A transpose moves bits: exact, and a 16-bit last word's spare half stays zero. The
                // words are compared through their f32 views (finite: a 16-bit value in [-1, 1) in the
                // high half makes a finite f32), as the browser test replays the case, then bit for
                // bit.
                let got: Vec<f32> = gpu.read(&tt).unwrap();
                let case = format!("transpose {} {rows}x{cols} {layout:?}", dtype.name());
                let mut want = reference::transpose(&w, rows, cols);
                if layout == Layout::Interleaved {
                    want = reference::interleave(&want, cols, rows, 4 * dtype.per_word());
                }
                let want = dtype.pack(&want);
                let view: Vec<f32> = want.iter().map(|&b| f32::from_bits(b)).collect();
                assert_within(&case, &got, &view, |_| 0.0);
                let bits: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
                assert_eq!(bits, want, "{case}");
            }
        }
    }
    // The output must hold the transpose: its words, and its shape and dtype.
    let wt = gpu.zeros("w", &[6]).unwrap();
    let weights = Weights::packed(&wt, Dtype::F32, 2, 3).unwrap();
    let short = gpu.zeros("t", &[5]).unwrap();
    let t = Weights::packed(&short, Dtype::F32, 1, 5).unwrap();
    assert!(copy::transpose(gpu, weights, t).is_err());
    let tt = gpu.zeros("t", &[6]).unwrap();
    let t = Weights::packed(&tt, Dtype::F32, 2, 3).unwrap();
    assert!(copy::transpose(gpu, weights, t).is_err());
    let t = Weights::packed(&tt, Dtype::F32, 3, 2).unwrap();
    assert!(copy::transpose(gpu, weights, t).is_ok());
    // It reads its input row by row only.
    let wt = gpu.zeros("w", &[8]).unwrap();
    let weights = Weights::packed(&wt, Dtype::F32, 2, 4).unwrap();
    let tt = gpu.zeros("t", &[8]).unwrap();
    let t = Weights::packed(&tt, Dtype::F32, 4, 2).unwrap();
    assert!(copy::transpose(gpu, weights, t).is_ok());
    let interleaved = weights.laid_out(Layout::Interleaved).unwrap();
    assert!(copy::transpose(gpu, interleaved, t).is_err());
}
