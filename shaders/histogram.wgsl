// Histogram, min, max and sum of pooled activations on the GPU (the live activation plot's
// statistics). One invocation per value; bins over [0, top], as eval::StatsAccumulator:
// bin = clamp(floor(v / top * bins), 0, bins - 1). Min and max go through atomics on an
// order-preserving integer image of the floats; the sum is reduced per workgroup, and the CPU
// adds the partial sums.

struct Params {
    n: u32,
    bins: u32,
    top: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> values: array<f32>;
@group(0) @binding(2) var<storage, read_write> counts: array<atomic<u32>>;
@group(0) @binding(3) var<storage, read_write> extremes: array<atomic<u32>, 2>; // [min, max]
@group(0) @binding(4) var<storage, read_write> partial_sums: array<f32>;

var<workgroup> sums: array<f32, 256>;

// Monotonic map f32 -> u32: flip all bits of negatives, only the sign bit of the rest.
fn ordered(v: f32) -> u32 {
    let b = bitcast<u32>(v);
    if ((b & 0x80000000u) != 0u) {
        return ~b;
    }
    return b | 0x80000000u;
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(local_invocation_index) local: u32,
        @builtin(workgroup_id) group: vec3<u32>) {
    var v = 0.0;
    if (id.x < params.n) {
        v = values[id.x];
        let b = clamp(floor(v / params.top * f32(params.bins)), 0.0, f32(params.bins - 1u));
        atomicAdd(&counts[u32(b)], 1u);
        atomicMin(&extremes[0], ordered(v));
        atomicMax(&extremes[1], ordered(v));
    }
    sums[local] = v;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride = stride / 2u) {
        if (local < stride) {
            sums[local] = sums[local] + sums[local + stride];
        }
        workgroupBarrier();
    }
    if (local == 0u) {
        partial_sums[group.x] = sums[0];
    }
}
