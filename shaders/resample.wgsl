// PIL-exact separable resampling on the GPU: the same fixed-point sums as Pillow's Resample.c
// (and src/data/resample.rs), in the same order, so the bytes match the CPU path. The CPU
// computes the taps (bounds and 22-bit weights) once per (size, filter); the image is uploaded
// once and resampled for every resolution of a sweep.
//
// Pixels are packed RGB8 in a u32 (r | g << 8 | b << 16). An image too large for one storage
// buffer is uploaded in bands of rows; the horizontal pass then runs once per band.
// `horizontal`: source rows → tmp rows tmp_row.. (window columns only), or a column copy (mode 1).
// `vertical`: tmp → the window, packed (if asked), and the normalised network input, f32 [3, H, W], at
// input_offset (a batch's slot, in the buffer of a Burn tensor when the device is shared).

struct Params {
    src_width: u32,   // horizontal: source width; vertical: tmp width (= out_width)
    out_width: u32,
    out_height: u32,
    ksize: u32,
    row_offset: u32,  // horizontal: first row to read in src; vertical: first source row of tmp
    mode: u32,        // 0: taps, 1: copy (the axis keeps its size)
    col_offset: u32,  // horizontal copy: first column of the window
    input_offset: u32,  // vertical: where this image's input starts in `input`, in f32s
    tmp_row: u32,     // horizontal: the tmp row the first row read goes to
    write_crop: u32,  // vertical: 1 to write the packed crop to dst (a batch for Burn needs none)
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read> bounds: array<u32>;   // (first, count) per output
@group(0) @binding(3) var<storage, read> weights: array<i32>;  // ksize per output
@group(0) @binding(4) var<storage, read_write> dst: array<u32>;
@group(0) @binding(5) var<storage, read_write> input: array<f32>;
// ToTensor + Normalize of each channel value, computed on the CPU by the CPU path's own formula
// (`transforms::normalization_table`): a lookup is exact on every GPU, where WGSL's f32 division
// may round differently.
@group(0) @binding(6) var<storage, read> table: array<f32>;  // [channel * 256 + value]

const PRECISION_BITS: u32 = 22u;
const HALF: i32 = 2097152; // 1 << (PRECISION_BITS - 1)

fn unpack(p: u32) -> vec3<i32> {
    return vec3<i32>(i32(p & 0xffu), i32((p >> 8u) & 0xffu), i32((p >> 16u) & 0xffu));
}

fn clip8(acc: vec3<i32>) -> vec3<u32> {
    return vec3<u32>(clamp(acc >> vec3<u32>(PRECISION_BITS), vec3<i32>(0), vec3<i32>(255)));
}

fn pack(c: vec3<u32>) -> u32 {
    return c.x | (c.y << 8u) | (c.z << 16u);
}

@compute @workgroup_size(8, 8)
fn horizontal(@builtin(global_invocation_id) id: vec3<u32>) {
    let x = id.x;
    let y = id.y;
    if (x >= params.out_width || y >= params.out_height) {
        return;
    }
    let row = (params.row_offset + y) * params.src_width;
    let out = (params.tmp_row + y) * params.out_width + x;
    if (params.mode == 1u) {
        dst[out] = src[row + params.col_offset + x];
        return;
    }
    let first = bounds[2u * x];
    let count = bounds[2u * x + 1u];
    var acc = vec3<i32>(HALF);
    for (var k = 0u; k < count; k = k + 1u) {
        acc = acc + unpack(src[row + first + k]) * weights[x * params.ksize + k];
    }
    dst[out] = pack(clip8(acc));
}

@compute @workgroup_size(8, 8)
fn vertical(@builtin(global_invocation_id) id: vec3<u32>) {
    let x = id.x;
    let y = id.y;
    if (x >= params.out_width || y >= params.out_height) {
        return;
    }
    var c: vec3<u32>;
    if (params.mode == 1u) {
        c = vec3<u32>(unpack(src[y * params.src_width + x]));
    } else {
        let first = bounds[2u * y] - params.row_offset;
        let count = bounds[2u * y + 1u];
        var acc = vec3<i32>(HALF);
        for (var k = 0u; k < count; k = k + 1u) {
            acc = acc + unpack(src[(first + k) * params.src_width + x]) * weights[y * params.ksize + k];
        }
        c = clip8(acc);
    }
    let i = y * params.out_width + x;
    if (params.write_crop == 1u) {
        dst[i] = pack(c);
    }
    let plane = params.out_width * params.out_height;
    let at = params.input_offset + i;
    input[at] = table[c.x];
    input[plane + at] = table[256u + c.y];
    input[2u * plane + at] = table[512u + c.z];
}
