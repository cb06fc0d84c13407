//! Building dispatches with `Gpu::build_parallel`: each distinct pipeline compiles once, on the
//! workers (warmed up where the driver compiles at a first dispatch), the dispatches run as if built
//! one by one, and a compile error comes back from `ready`.
//! Each test has a GPU context of its own, so that its pipeline count is its own.

use wgpt::gpu::{Binding, Dispatch, Kernel};
use wgpt::kernels::gelu;
use wgpt::reference::gelu as reference;
use wgpt::Gpu;

use crate::common::{assert_within, random};

#[test]
fn pipelines_built_in_parallel_compile_once_each_and_run() {
    let gpu = Gpu::new().expect("a GPU adapter");
    // Lengths that are and are not multiples of 4: two entry points, forward and backward.
    let lens = [64, 67];
    let xs: Vec<_> = lens
        .iter()
        .map(|&n| gpu.upload("x", &[n], &random(n as u64, n)).unwrap())
        .collect();
    let ys: Vec<_> = lens
        .iter()
        .map(|&n| gpu.zeros("y", &[n]).unwrap())
        .collect();
    let before = gpu.counts();
    let dispatches = gpu
        .build_parallel(|| {
            (0..24)
                .map(|i| {
                    let (x, y) = (&xs[i % 2], &ys[i % 2]);
                    match i % 4 < 2 {
                        true => gelu::forward(&gpu, x, y),
                        false => gelu::backward(&gpu, x, x, y),
                    }
                })
                .collect::<wgpt::Result<Vec<Dispatch>>>()
        })
        .unwrap();
    for d in &dispatches {
        d.ready().unwrap();
    }
    let after = gpu.counts();
    assert_eq!(
        after.pipelines - before.pipelines,
        4,
        "4 distinct pipelines"
    );
    // Where pipelines compile at their first dispatch, each was dispatched once, over no workgroups.
    let warm_ups = if gpu.compiles_at_first_dispatch() {
        4
    } else {
        0
    };
    assert_eq!(after.submits - before.submits, warm_ups, "warm-up submits");
    // The last two dispatches are forwards of each length; run them alone and check.
    gpu.run_dispatches(&dispatches[20..22]).unwrap();
    for (i, &n) in lens.iter().enumerate() {
        let want = reference::forward(&random(n as u64, n));
        let got: Vec<f32> = gpu.read(&ys[i]).unwrap();
        assert_within(&format!("gelu [{n}]"), &got, &want, |_| 1e-5);
    }
}

#[test]
fn a_pipeline_that_fails_to_compile_in_parallel_reports_from_ready() {
    let gpu = Gpu::new().expect("a GPU adapter");
    let x = gpu.zeros("x", &[4]).unwrap();
    let kernel = Kernel {
        shader: gelu::SHADER,
        entry: "no_such_entry_point",
        constants: vec![],
    };
    let build = || {
        Dispatch::new(
            &gpu,
            &kernel,
            &[Binding::ReadWrite(&x)],
            &[0u32; 4],
            [1, 1, 1],
        )
    };
    // Queued (with more than one core), the error comes from `ready`.
    let err = gpu.build_parallel(build).and_then(|d| d.ready());
    let err = err.unwrap_err().to_string();
    assert!(err.contains("gelu/no_such_entry_point"), "{err}");
    // Outside a parallel build the same request fails at once.
    assert!(build().is_err());
}
