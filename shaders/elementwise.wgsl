// elementwise: how the elementwise shaders (copy, residual, gelu, dropout) spread n items over a
// dispatch, the contract of src/kernels/grid.rs's `elementwise`. Placed before each of them.
//
// Workgroup g of G walks its own contiguous run of the items, [g·chunk, min((g+1)·chunk, n)) with
// chunk = ⌈⌈n / G⌉ / wg⌉·wg, its wg invocations side by side (item i goes to invocation i mod wg).
// On GPUs wg = 256 and G covers the items once (chunk = wg, one item per invocation) up to the
// dispatch limit. On CPU adapters wg = 8, one SIMD row, and G is a few items' worth per row: lavapipe
// runs the rows of a workgroup one after another, each through its whole loop, so a row that is the
// whole workgroup streams through one contiguous run, while wider workgroups interleave rows across
// the run and a grid-stride loop jumps a whole grid per step (both 2-3x slower there).

override wg: u32 = 256u;

// [start, end) of workgroup `group`'s run of `n` items among `groups` workgroups.
fn elementwise_run(n: u32, group: u32, groups: u32) -> vec2<u32> {
    let chunk = ((n + groups - 1u) / groups + wg - 1u) / wg * wg;
    let start = min(group * chunk, n);
    return vec2(start, min(start + chunk, n));
}
