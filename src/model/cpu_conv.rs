//! Convolutions on the CPU backend, for inference: im2col of ours, then one batched matrix
//! product in NCHW. Burn flex's general convolution (every one that is neither 1×1 nor
//! depthwise) transposes its input to NHWC in a single-threaded scalar loop, and builds and
//! multiplies im2col tiles per output tile and per group, scattering each result element by
//! element: in RegNetY-400MF (3×3 convolutions in groups of 8 channels) that was 48 % of the
//! forward pass (perf, 2026-12-06). Here the columns are built a row at a time (contiguous
//! copies at stride 1) over rayon's threads, and the product writes NCHW directly.

use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

/// The largest column buffer built (bytes; the output's size is about the input's over the
/// stride, squared): beyond it, memory
/// traffic ate the gain. ResNet-50 at batch 8: at 224 (columns up to 58 MB) this path was
/// 1.07–1.13× Burn's, at 320 (118 MB) 0.88–0.93×, so there the largest layers stay Burn's.
const COLS_CAP: usize = 64 << 20;

/// Whether `conv` handles a convolution of `weight` (`[out, in/groups, kh, kw]`) with `groups`
/// and `stride` on `x`: not 1×1 (Burn's own path skips im2col there), not depthwise (Burn's
/// direct loop is better there), columns within `COLS_CAP`, on an f32 tensor of the CPU backend.
#[must_use]
pub fn handles(x: &Tensor<4>, weight_dims: [usize; 4], groups: usize, stride: usize) -> bool {
    let [out, per_group, kh, kw] = weight_dims;
    let depthwise = per_group == 1 && groups == out;
    let [n, c, h, w] = x.dims();
    let cols_bytes = 4 * n * c * kh * kw * h.div_ceil(stride) * w.div_ceil(stride);
    cols_bytes <= COLS_CAP && super::fast_math::applies(x) && (kh, kw) != (1, 1) && !depthwise
}

/// The convolution of `x` (`[n, c, h, w]`) with `weight`, `bias`, `stride`, symmetric zero
/// `padding` `[ph, pw]` and `groups` (no dilation), as PyTorch's `conv2d`.
///
/// # Panics
/// Unless `handles` says so, and the shapes chain.
#[must_use]
pub fn conv(
    x: Tensor<4>,
    weight: &Tensor<4>,
    bias: Option<&Tensor<1>>,
    stride: usize,
    padding: [usize; 2],
    groups: usize,
) -> Tensor<4> {
    let device = x.device();
    let [n, c, h, w] = x.dims();
    let [out, per_group, kh, kw] = weight.dims();
    assert_eq!(
        per_group * groups,
        c,
        "cpu_conv: {c} channels in, groups {groups} of {per_group}"
    );
    let [ph, pw] = padding;
    let ho = (h + 2 * ph - kh) / stride + 1;
    let wo = (w + 2 * pw - kw) / stride + 1;
    let (k, l) = (per_group * kh * kw, ho * wo);
    let xs = x
        .into_data()
        .try_into_vec::<f32>()
        .expect("cpu_conv on an f32 tensor (`handles`)");
    // cols[n][g][(ci·kh + ki)·kw + kj][oy·wo + ox]: one chunk of kh·kw rows per input channel.
    let mut cols = vec![0f32; n * c * kh * kw * l];
    cols.par_chunks_mut(kh * kw * l).enumerate().for_each(|(nc, rows)| {
        let plane = &xs[nc * h * w..(nc + 1) * h * w];
        for ki in 0..kh {
            for kj in 0..kw {
                let row = &mut rows[(ki * kw + kj) * l..(ki * kw + kj + 1) * l];
                // Output columns whose input column is inside the image: ox·s + kj − pw ∈ [0, w).
                let first = (pw.saturating_sub(kj)).div_ceil(stride);
                let end = ((w + pw).saturating_sub(kj)).div_ceil(stride).min(wo);
                for oy in 0..ho {
                    let iy = oy * stride + ki;
                    if iy < ph || iy - ph >= h || first >= end {
                        continue; // zero padding: the row stays 0
                    }
                    let src = &plane[(iy - ph) * w..(iy - ph + 1) * w];
                    let dst = &mut row[oy * wo..(oy + 1) * wo];
                    let ix0 = first * stride + kj - pw;
                    if stride == 1 {
                        dst[first..end].copy_from_slice(&src[ix0..ix0 + (end - first)]);
                    } else {
                        for (j, d) in dst[first..end].iter_mut().enumerate() {
                            *d = src[ix0 + j * stride];
                        }
                    }
                }
            }
        }
    });
    let cols: Tensor<4> = Tensor::from_data(TensorData::new(cols, [n, groups, k, l]), &device);
    let w = weight.clone().reshape([1, groups, out / groups, k]);
    let y = w.matmul(cols).reshape([n, out, ho, wo]);
    match bias {
        Some(b) => y + b.clone().reshape([1, out, 1, 1]),
        None => y,
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::module::conv2d;
    use burn::tensor::ops::ConvOptions;
    use burn::tensor::{Device, Distribution};

    use super::*;

    #[test]
    fn matches_burns_convolution() {
        let device = Device::flex();
        // (channels in, out, kernel, stride, padding, groups, size): ResNet's stem and 3×3s,
        // RegNet's grouped 3×3s, odd sizes and a kernel wider than the padding.
        let cases = [
            (3, 8, 7, 2, 3, 1, 23),
            (16, 16, 3, 1, 1, 1, 9),
            (16, 24, 3, 2, 1, 1, 10),
            (24, 24, 3, 1, 1, 3, 8),
            (24, 48, 3, 2, 1, 3, 7),
            (8, 8, 5, 1, 0, 2, 11),
        ];
        for (cin, cout, k, s, p, g, size) in cases {
            let x: Tensor<4> = Tensor::random([2, cin, size, size + 1], Distribution::Normal(0.0, 1.0), &device);
            let wt: Tensor<4> = Tensor::random([cout, cin / g, k, k], Distribution::Normal(0.0, 1.0), &device);
            let b: Tensor<1> = Tensor::random([cout], Distribution::Normal(0.0, 1.0), &device);
            assert!(handles(&x, wt.dims(), g, s));
            let theirs = conv2d(
                x.clone(),
                wt.clone(),
                Some(b.clone()),
                ConvOptions::new([s, s], [p, p], [1, 1], g),
            );
            let ours = conv(x, &wt, Some(&b), s, [p, p], g);
            assert_eq!(ours.dims(), theirs.dims(), "case {cin} {cout} {k} {s} {p} {g}");
            let (a, b) = (
                ours.into_data().try_into_vec::<f32>().unwrap(),
                theirs.into_data().try_into_vec::<f32>().unwrap(),
            );
            let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(
                worst < 1e-4,
                "case {cin} {cout} {k} {s} {p} {g}: max difference {worst}"
            );
        }
    }
}
