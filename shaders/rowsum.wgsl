// rowsum: one workgroup's sum of a vec2 over its `wg` invocations, for the kernels that give each row
// of a matrix to one workgroup (layernorm, rmsnorm). Used as a prelude; the tree's order is fixed, so
// results are the same run to run.

// Invocations per row, a power of two up to ROWSUM_MAX (src/kernels/grid.rs picks it per adapter).
override wg: u32 = 64u;
const ROWSUM_MAX: u32 = 256u;

var<workgroup> rowsum_scratch: array<vec2<f32>, ROWSUM_MAX>;

// Every invocation of the workgroup calls this with its partial sum and gets the total back.
fn rowsum(partial: vec2<f32>, lane: u32) -> vec2<f32> {
    rowsum_scratch[lane] = partial;
    workgroupBarrier();
    for (var half = wg / 2u; half > 0u; half /= 2u) {
        if lane < half {
            rowsum_scratch[lane] += rowsum_scratch[lane + half];
        }
        workgroupBarrier();
    }
    let total = rowsum_scratch[0];
    // The next call overwrites the scratch: everyone must have read the total first.
    workgroupBarrier();
    return total;
}
