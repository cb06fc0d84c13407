// matmul's cpu variant with op(A)'s pieces shared across lanes (composed after matmul.wgsl, whose bindings
// and helpers it uses). A module of its own: subgroup builtins need the device's SUBGROUP feature, and
// naga validates a whole module at once.
//
// In matmul_cpu every lane loads all 32 pieces of op(A) for a k step, though all lanes of a workgroup need
// the same ones. Here lane l of a subgroup loads only the pieces ≡ l (mod cpu_lanes) of each block of 8,
// and lanes 0..cpu_lanes-1 hand them to the whole subgroup through subgroupBroadcast: cpu_lanes times
// fewer loads of A. Every lane of a workgroup works on the same rows, so this is correct for any subgroup
// of at least cpu_lanes (4 or 8) lanes, whatever its size and however the workgroup is split.

override cpu_lanes: u32 = 8u;
// Rows of C per invocation: 32, or 64 for large products (more work per shared load of B, at the cost
// of a longer compile), chosen by the launcher.
override cpu_rows: u32 = 32u;

// The block of 8 pieces from this subgroup's loads: with 8 lanes lane s loaded piece s (`lo`); with 4,
// lane s loaded pieces s (`lo`) and 4 + s (`hi`).
fn cpu_shared(lo: vec4<f32>, hi: vec4<f32>) -> Block {
    if cpu_lanes == 8u {
        return Block(subgroupBroadcast(lo, 0u), subgroupBroadcast(lo, 1u), subgroupBroadcast(lo, 2u), subgroupBroadcast(lo, 3u), subgroupBroadcast(lo, 4u), subgroupBroadcast(lo, 5u), subgroupBroadcast(lo, 6u), subgroupBroadcast(lo, 7u));
    }
    return Block(subgroupBroadcast(lo, 0u), subgroupBroadcast(lo, 1u), subgroupBroadcast(lo, 2u), subgroupBroadcast(lo, 3u), subgroupBroadcast(hi, 0u), subgroupBroadcast(hi, 1u), subgroupBroadcast(hi, 2u), subgroupBroadcast(hi, 3u));
}

fn cpu_shared_pieces(row0: u32, kk: u32, first: u32, lane: u32) -> Block {
    let s = lane % cpu_lanes;
    var hi = vec4(0.0);
    if cpu_lanes == 4u {
        hi = cpu_piece(row0, kk, first + 4u + s);
    }
    return cpu_shared(cpu_piece(row0, kk, first + s), hi);
}

fn cpu_shared_pieces_vec4(row0: u32, kk: u32, first: u32, lane: u32) -> Block {
    let s = lane % cpu_lanes;
    var hi = vec4(0.0);
    if cpu_lanes == 4u {
        hi = cpu_piece_vec4(row0, kk, first + 4u + s);
    }
    return cpu_shared(cpu_piece_vec4(row0, kk, first + s), hi);
}

@compute @workgroup_size(cpu_width)
fn matmul_cpu_subgroup(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_index) index: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let row0 = group.x * cpu_rows;
    let col = (group.y * cpu_width + index) * 4u;
    var acc0: Block;
    var acc1: Block;
    var acc2: Block;
    var acc3: Block;
    var acc4: Block;
    var acc5: Block;
    var acc6: Block;
    var acc7: Block;
    for (var kk = 0u; kk < params.k; kk += 4u) {
        let bb = cpu_b(kk, col);
        cpu_apply(&acc0, cpu_shared_pieces(row0, kk, 0u, lane), bb);
        cpu_apply(&acc1, cpu_shared_pieces(row0, kk, 8u, lane), bb);
        cpu_apply(&acc2, cpu_shared_pieces(row0, kk, 16u, lane), bb);
        cpu_apply(&acc3, cpu_shared_pieces(row0, kk, 24u, lane), bb);
        if cpu_rows == 64u {
            cpu_apply(&acc4, cpu_shared_pieces(row0, kk, 32u, lane), bb);
            cpu_apply(&acc5, cpu_shared_pieces(row0, kk, 40u, lane), bb);
            cpu_apply(&acc6, cpu_shared_pieces(row0, kk, 48u, lane), bb);
            cpu_apply(&acc7, cpu_shared_pieces(row0, kk, 56u, lane), bb);
        }
    }
    let b = cpu_bias(col);
    cpu_store(acc0, row0, col, b);
    cpu_store(acc1, row0 + 8u, col, b);
    cpu_store(acc2, row0 + 16u, col, b);
    cpu_store(acc3, row0 + 24u, col, b);
    if cpu_rows == 64u {
        cpu_store(acc4, row0 + 32u, col, b);
        cpu_store(acc5, row0 + 40u, col, b);
        cpu_store(acc6, row0 + 48u, col, b);
        cpu_store(acc7, row0 + 56u, col, b);
    }
    cpu_finish(row0, cpu_rows, col);
}

// matmul_cpu_subgroup with op(A) through the vec4 view, op(B) and C through the scalar ones: for products
// whose op(A) has its contiguous axis in fours while op(B) or C do not (a head over a vocabulary of 65 or
// 50257). Each piece of A is then one load for lavapipe instead of four: at 768x128x65 the forward ran
// 1.1x and the weight gradient 2.2x as fast. 32 rows, as through the scalar views.
@compute @workgroup_size(cpu_width)
fn matmul_cpu_subgroup_a4(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_index) index: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let row0 = group.x * 32u;
    let col = (group.y * cpu_width + index) * 4u;
    var acc0: Block;
    var acc1: Block;
    var acc2: Block;
    var acc3: Block;
    for (var kk = 0u; kk < params.k; kk += 4u) {
        let bb = cpu_b(kk, col);
        cpu_apply(&acc0, cpu_shared_pieces_vec4(row0, kk, 0u, lane), bb);
        cpu_apply(&acc1, cpu_shared_pieces_vec4(row0, kk, 8u, lane), bb);
        cpu_apply(&acc2, cpu_shared_pieces_vec4(row0, kk, 16u, lane), bb);
        cpu_apply(&acc3, cpu_shared_pieces_vec4(row0, kk, 24u, lane), bb);
    }
    let b = cpu_bias(col);
    cpu_store(acc0, row0, col, b);
    cpu_store(acc1, row0 + 8u, col, b);
    cpu_store(acc2, row0 + 16u, col, b);
    cpu_store(acc3, row0 + 24u, col, b);
    cpu_finish(row0, 32u, col);
}

// matmul_cpu_subgroup through the vec4 views.
@compute @workgroup_size(cpu_width)
fn matmul_cpu_subgroup_vec4(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_index) index: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let row0 = group.x * cpu_rows;
    let col = (group.y * cpu_width + index) * 4u;
    var acc0: Block;
    var acc1: Block;
    var acc2: Block;
    var acc3: Block;
    var acc4: Block;
    var acc5: Block;
    var acc6: Block;
    var acc7: Block;
    for (var kk = 0u; kk < params.k; kk += 4u) {
        let bb = cpu_b_vec4(kk, col);
        cpu_apply(&acc0, cpu_shared_pieces_vec4(row0, kk, 0u, lane), bb);
        cpu_apply(&acc1, cpu_shared_pieces_vec4(row0, kk, 8u, lane), bb);
        cpu_apply(&acc2, cpu_shared_pieces_vec4(row0, kk, 16u, lane), bb);
        cpu_apply(&acc3, cpu_shared_pieces_vec4(row0, kk, 24u, lane), bb);
        if cpu_rows == 64u {
            cpu_apply(&acc4, cpu_shared_pieces_vec4(row0, kk, 32u, lane), bb);
            cpu_apply(&acc5, cpu_shared_pieces_vec4(row0, kk, 40u, lane), bb);
            cpu_apply(&acc6, cpu_shared_pieces_vec4(row0, kk, 48u, lane), bb);
            cpu_apply(&acc7, cpu_shared_pieces_vec4(row0, kk, 56u, lane), bb);
        }
    }
    let b = cpu_bias(col);
    cpu_store_vec4(acc0, row0, col, b);
    cpu_store_vec4(acc1, row0 + 8u, col, b);
    cpu_store_vec4(acc2, row0 + 16u, col, b);
    cpu_store_vec4(acc3, row0 + 24u, col, b);
    if cpu_rows == 64u {
        cpu_store_vec4(acc4, row0 + 32u, col, b);
        cpu_store_vec4(acc5, row0 + 40u, col, b);
        cpu_store_vec4(acc6, row0 + 48u, col, b);
        cpu_store_vec4(acc7, row0 + 56u, col, b);
    }
    cpu_finish_vec4(row0, cpu_rows, col);
}
