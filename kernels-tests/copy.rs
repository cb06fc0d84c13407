//! copy: the GPU copy equals its input bit for bit, including past one dispatch dimension of workgroups.

use wgpt::kernels::copy;
use wgpt::reference::copy as reference;

use crate::common::{assert_within, gpu, random};

#[test]
fn copy_is_exact_for_awkward_sizes_and_past_the_dispatch_limit() {
    let gpu = gpu();
    // Multiples of 4 take the vec4 entry point. 65535 · 256 + 5 elements need the shader's grid-stride loop (one dispatch dimension holds 65535
    // workgroups of 256).
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
