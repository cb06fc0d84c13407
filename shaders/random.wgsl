// random: the counter-based hash behind every dropout mask. A mask element is a pure function of
// (seed, step, site, element), so the backward regenerates the forward's mask instead of storing it.
// Used by kernels as a prelude (`shader!("dropout", ["random"])`); its CPU twin is src/reference/random.rs.

// A 32-bit integer hash with good avalanche (Chris Wellons' "lowbias32").
fn random_hash(x: u32) -> u32 {
    var h = x;
    h ^= h >> 16u;
    h *= 0x7feb352du;
    h ^= h >> 15u;
    h *= 0x846ca68bu;
    h ^= h >> 16u;
    return h;
}

// Uniform u32 for one element of one dropout site at one step.
fn random_u32(seed: u32, step: u32, site: u32, element: u32) -> u32 {
    return random_hash(random_hash(random_hash(random_hash(seed) ^ step) ^ site) ^ element);
}

// The index of `element` of micro-batch `micro` in the whole batch, when each of the batch's equal
// micro-batches holds `count` elements of this site (mod 2³²). Gradient accumulation runs a batch as
// micro-batches of rows; this numbering gives each row the mask it would get in the one big batch.
// Micro-batch 0 (a step without accumulation) keeps `element`.
fn random_element(micro: u32, count: u32, element: u32) -> u32 {
    return micro * count + element;
}

// Whether the element survives dropout: kept with probability 1 - p, where `threshold` = p · 2³²
// (see reference::random::threshold). A threshold of 0 keeps everything.
fn random_keep(seed: u32, step: u32, site: u32, element: u32, threshold: u32) -> bool {
    return random_u32(seed, step, site, element) >= threshold;
}

// Dropout of `v`, element `element` of the `count` a site has per micro-batch: v · scale (1/(1-p)) if
// kept, else 0. `state` is [seed, step, micro].
fn random_dropout(v: f32, state: vec3<u32>, site: u32, count: u32, element: u32, threshold: u32, scale: f32) -> f32 {
    let keep = random_keep(state.x, state.y, site, random_element(state.z, count, element), threshold);
    return select(0.0, v * scale, keep);
}
