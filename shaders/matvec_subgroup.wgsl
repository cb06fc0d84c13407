// matvec's vec4 products with x shared across lanes (composed after matvec.wgsl, whose bindings and
// helpers they use). A module of its own: subgroup builtins need the device's SUBGROUP feature, and
// naga validates a whole module at once.
//
// In matvec_forward_vec4 and matvec_transposed_vec4 every lane loads x[m, k .. k + 3] for every row m,
// though all lanes of a workgroup need the same values: on lavapipe each such load is a loop over the
// lanes, as costly as a load of weights, so with 8 rows of x a step of the forward made 8 loads of x
// for its 16 of weights. Here lane m loads row m's vec4 and subgroupBroadcast hands it to the others:
// one load a step, whatever the rows. A workgroup must be one subgroup (wg lanes, subgroups of at least
// wg), and every lane must reach each broadcast: lanes past the columns compute on clamped reads and
// store nothing, instead of returning early.

// x[m, k .. k + 3] for every row m < rows, row m loaded by lane m.
fn xs_shared(k: u32, lane: u32) -> Xs {
    let mine = x4[min(lane, rows - 1u) * (params.k / 4u) + k / 4u];
    var xs: Xs;
    xs[0] = subgroupBroadcast(mine, 0u);
    if rows > 1u { xs[1] = subgroupBroadcast(mine, 1u); }
    if rows > 2u { xs[2] = subgroupBroadcast(mine, 2u); }
    if rows > 3u { xs[3] = subgroupBroadcast(mine, 3u); }
    if rows > 4u { xs[4] = subgroupBroadcast(mine, 4u); }
    if rows > 5u { xs[5] = subgroupBroadcast(mine, 5u); }
    if rows > 6u { xs[6] = subgroupBroadcast(mine, 6u); }
    if rows > 7u { xs[7] = subgroupBroadcast(mine, 7u); }
    return xs;
}

// matvec_forward_vec4 with x shared.
@compute @workgroup_size(wg)
fn matvec_forward_shared_x(@builtin(global_invocation_id) id: vec3<u32>, @builtin(workgroup_id) group: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    let n0 = id.x * 16u;
    let piece = forward_piece(group);
    var acc: Acc;
    for (var k = piece.x; k < piece.y; k += 4u) {
        forward_step(&acc, xs_shared(k, lane), k, n0);
    }
    forward_store(acc, n0, group.y * rows * params.n);
}

// matvec_transposed_vec4 with x shared (lanes past V read the last rows of E).
@compute @workgroup_size(wg)
fn matvec_transposed_shared_x(@builtin(global_invocation_id) id: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    let v0 = id.x * 8u * groups;
    let row = dtype_word(params.k) / 4u;
    let e = transposed_rows16(v0, row);
    var acc: array<Sums8, 2>;
    for (var i = 0u; i < row; i++) {
        if dtype == DTYPE_F32 {
            transposed_steps(&acc, e, i, xs_shared(4u * i, lane), Xs());
        } else {
            transposed_steps(&acc, e, i, xs_shared(8u * i, lane), xs_shared(8u * i + 4u, lane));
        }
    }
    transposed_stores(acc, v0);
}
