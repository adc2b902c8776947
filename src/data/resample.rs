//! PIL-exact resampling: a port of Pillow's `libImaging/Resample.c` (8-bit path).
//!
//! Pillow resizes separably, with antialiasing when shrinking (the filter support grows with the
//! shrink factor), in fixed point with 22 fractional bits, and rounds the intermediate image to
//! uint8. The horizontal pass runs first, except (Pillow 13, `ImagingResampleInner`) when the
//! height shrinks by more than twice as many pixels as the width: then the vertical pass does.
//! Doing the same integer arithmetic in the same order gives the same bytes, which is what
//! "correct" means for a model trained on torchvision-on-PIL inputs.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::RgbImage;

/// Resampling filters, as PIL names them.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Interpolation {
    /// Triangle filter (PIL `BILINEAR`), torchvision's default.
    #[default]
    Bilinear,
    /// Keys cubic with a = −0.5 (PIL `BICUBIC`; torch's tensor path uses −0.75).
    Bicubic,
    /// Lanczos, 3 lobes (PIL `LANCZOS`).
    Lanczos,
}

impl Interpolation {
    /// The filter's half-width at scale 1.
    fn support(self) -> f64 {
        match self {
            Self::Bilinear => 1.0,
            Self::Bicubic => 2.0,
            Self::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Self::Bilinear => {
                let x = x.abs();
                if x < 1.0 { 1.0 - x } else { 0.0 }
            }
            Self::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Self::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }

    /// The name torchvision and PIL use.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Bilinear => "bilinear",
            Self::Bicubic => "bicubic",
            Self::Lanczos => "lanczos",
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Fixed-point filter taps for every output position along one axis.
pub(crate) struct Taps {
    /// Taps per output position (the longest filter; shorter ones are zero-padded).
    pub(crate) ksize: usize,
    /// `(first input index, number of taps)` per output position.
    pub(crate) bounds: Vec<(usize, usize)>,
    /// `ksize` fixed-point weights per output position.
    pub(crate) weights: Vec<i32>,
}

/// How `resize_window` computes a window: the taps of each pass (`None`: that axis keeps its
/// size, no pass) and the source rows the horizontal pass covers.
pub(crate) struct Plan {
    pub(crate) horizontal: Option<Taps>,
    pub(crate) vertical: Option<Taps>,
    pub(crate) first_row: usize,
    pub(crate) n_rows: usize,
    /// Both passes run and the vertical one runs first (see `vertical_first`); then the
    /// vertical pass reads `first_row..first_row + n_rows` of the source and the horizontal
    /// pass reads its output.
    pub(crate) vertical_first: bool,
}

/// Pillow 13's order of the two passes: vertical first when the height shrinks by more than
/// twice as many pixels as the width does (`ImagingResampleInner`; Pillow 12 and older always
/// ran the horizontal pass first). The order changes the rounding of the uint8 intermediate, so
/// it changes bytes.
fn vertical_first((src_w, src_h): (usize, usize), (width, height): (usize, usize)) -> bool {
    let shrink_h = src_h as i64 - height as i64;
    let shrink_w = src_w as i64 - width as i64;
    shrink_h > 0 && shrink_h > 2 * shrink_w
}

/// The plan of `resize_window(src (src_w × src_h), width, height, filter, columns, rows)`.
pub(crate) fn plan(
    (src_w, src_h): (usize, usize),
    (width, height): (usize, usize),
    filter: Interpolation,
    columns: &Range<usize>,
    rows: &Range<usize>,
) -> Plan {
    // As Pillow: a pass runs only along an axis whose size changes.
    let horizontal = (width != src_w).then(|| precompute_window(src_w, width, filter, columns));
    let vertical = (height != src_h).then(|| precompute_window(src_h, height, filter, rows));
    // Source rows the vertical pass reads (all of them contiguous, as taps move monotonically).
    let (first_row, n_rows) = match &vertical {
        Some(v) => {
            let first = v.bounds[0].0;
            let (last_min, last_n) = v.bounds[v.bounds.len() - 1];
            (first, last_min + last_n - first)
        }
        None => (rows.start, rows.len()),
    };
    let vertical_first = horizontal.is_some() && vertical.is_some() && vertical_first((src_w, src_h), (width, height));
    Plan {
        horizontal,
        vertical,
        first_row,
        n_rows,
        vertical_first,
    }
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc`, for the input span `[in0, in1)`.
#[cfg(test)]
fn precompute(in_size: usize, in0: f64, in1: f64, out_size: usize, filter: Interpolation) -> Taps {
    precompute_span(in_size, in0, in1, out_size, filter, &(0..out_size))
}

/// The taps of output positions `range` of a resize from `in_size` to `out_size`, computed for
/// those positions only (each position's taps depend on it alone): a window costs its own size,
/// not the resized image's, however wide or tall that is.
fn precompute_window(in_size: usize, out_size: usize, filter: Interpolation, range: &Range<usize>) -> Taps {
    precompute_span(in_size, 0.0, in_size as f64, out_size, filter, range)
}

/// Pillow's `precompute_coeffs` in floating point: for each output position of `range`, the
/// first input index and the normalised weights of its taps. PyTorch's antialiased
/// `interpolate` computes the same taps (`_compute_weights_aa`), so this is also the resampler
/// of float grids (timm's position embeddings, `model::vit`).
#[must_use]
pub fn float_taps(
    in_size: usize,
    in0: f64,
    in1: f64,
    out_size: usize,
    filter: Interpolation,
    range: &Range<usize>,
) -> Vec<(usize, Vec<f64>)> {
    let scale = (in1 - in0) / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    range
        .clone()
        .map(|xx| {
            let center = in0 + (xx as f64 + 0.5) * scale;
            let ss = 1.0 / filterscale;
            // C's (int) cast truncates toward zero, as `as` does.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let mut k: Vec<f64> = (xmin..xmax.max(xmin))
                .map(|x| filter.weight((x as f64 - center + 0.5) * ss))
                .collect();
            let ww: f64 = k.iter().sum();
            if ww != 0.0 {
                k.iter_mut().for_each(|w| *w /= ww);
            }
            (xmin, k)
        })
        .collect()
}

fn precompute_span(
    in_size: usize,
    in0: f64,
    in1: f64,
    out_size: usize,
    filter: Interpolation,
    range: &Range<usize>,
) -> Taps {
    let scale = (in1 - in0) / out_size as f64;
    let support = filter.support() * scale.max(1.0);
    let ksize = support.ceil() as usize * 2 + 1;
    let taps = float_taps(in_size, in0, in1, out_size, filter, range);
    let mut bounds = Vec::with_capacity(range.len());
    let mut weights = vec![0i32; range.len() * ksize];
    for (i, (xmin, k)) in taps.into_iter().enumerate() {
        let row = &mut weights[i * ksize..(i + 1) * ksize];
        for (out, w) in row.iter_mut().zip(&k) {
            let fixed = w * f64::from(1u32 << PRECISION_BITS);
            *out = if *w < 0.0 {
                (-0.5 + fixed) as i32
            } else {
                (0.5 + fixed) as i32
            };
        }
        bounds.push((xmin, k.len()));
    }
    Taps { ksize, bounds, weights }
}

#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Runs `$generic` compiled for AVX2 when the CPU has it (the passes are plain integer loops the
/// compiler vectorises; x86-64's baseline SSE2 has no 32-bit lane multiply, AVX2 does), else as is.
macro_rules! multiversion {
    ($avx2:ident, $generic:ident, fn($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        fn $avx2($($arg: $ty),*) -> $ret {
            $generic($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked on the line above.
            return unsafe { $avx2($($arg),*) };
        }
        return $generic($($arg),*);
    };
}

fn resample_horizontal(src: &RgbImage, first_row: usize, out_height: usize, taps: &Taps) -> RgbImage {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("sse4.1") {
        // SAFETY: the CPU supports SSE4.1, checked on the line above.
        return unsafe { x86::resample_horizontal_sse41(src, first_row, out_height, taps) };
    }
    resample_horizontal_generic(src, first_row, out_height, taps)
}

fn resample_vertical(src: &RgbImage, row_offset: usize, taps: &Taps) -> RgbImage {
    multiversion!(
        vertical_avx2,
        resample_vertical_generic,
        fn(src: &RgbImage, row_offset: usize, taps: &Taps) -> RgbImage
    );
}

/// Horizontal pass over input rows `first_row..first_row + out_height`. Each source row is first
/// widened to 4 lanes (RGB + a zero) so one tap is one 4-wide multiply-add the compiler can
/// vectorise; the sums are Pillow's, in Pillow's order.
fn resample_horizontal_generic(src: &RgbImage, first_row: usize, out_height: usize, taps: &Taps) -> RgbImage {
    let out_width = taps.bounds.len();
    let ksize = taps.ksize;
    let mut out = RgbImage::zeros(out_width, out_height);
    // Zero pixels past the end let every output run all `ksize` taps (the extra weights are
    // zero, so the sums do not change) in a loop of fixed length.
    let mut wide = vec![[0i32; 4]; src.width() + ksize];
    for y in 0..out_height {
        for (w, p) in wide.iter_mut().zip(src.row(first_row + y).chunks_exact(3)) {
            *w = [i32::from(p[0]), i32::from(p[1]), i32::from(p[2]), 0];
        }
        let row_out = out.row_mut(y);
        for ((&(xmin, _), k), o) in taps
            .bounds
            .iter()
            .zip(taps.weights.chunks_exact(ksize))
            .zip(row_out.chunks_exact_mut(3))
        {
            let mut acc = [HALF; 4];
            for (p, &w) in wide[xmin..xmin + ksize].iter().zip(k) {
                for (a, &v) in acc.iter_mut().zip(p) {
                    *a += v * w;
                }
            }
            o[0] = clip8(acc[0]);
            o[1] = clip8(acc[1]);
            o[2] = clip8(acc[2]);
        }
    }
    out
}

/// Vertical pass; `row_offset` is subtracted from every tap's first row. Accumulates whole rows
/// at a time (the same sums in the same order as Pillow, laid out so the compiler vectorises).
#[inline(always)]
fn resample_vertical_generic(src: &RgbImage, row_offset: usize, taps: &Taps) -> RgbImage {
    let width = src.width();
    let mut out = RgbImage::zeros(width, taps.bounds.len());
    let mut acc = vec![0i32; width * 3];
    for (yy, &(ymin, n)) in taps.bounds.iter().enumerate() {
        acc.fill(HALF);
        let k = &taps.weights[yy * taps.ksize..yy * taps.ksize + n];
        for (dy, &w) in k.iter().enumerate() {
            let row = src.row(ymin - row_offset + dy);
            for (a, &p) in acc.iter_mut().zip(row) {
                *a += i32::from(p) * w;
            }
        }
        for (o, &a) in out.row_mut(yy).iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    out
}

/// `PIL.Image.resize((width, height), filter)` of an RGB image: bit-exact with Pillow.
#[must_use]
pub fn resize(src: &RgbImage, width: usize, height: usize, filter: Interpolation) -> RgbImage {
    resize_window(src, width, height, filter, 0..width, 0..height)
}

/// The window `columns` × `rows` of `resize(src, width, height, filter)`, computing only those
/// output pixels (and the intermediate rows they read): a test-time centre crop then costs the
/// crop, not the whole resized image. Same bytes as resizing fully and cropping.
///
/// # Panics
/// If the window does not lie inside `width` × `height`.
#[must_use]
pub fn resize_window(
    src: &RgbImage,
    width: usize,
    height: usize,
    filter: Interpolation,
    columns: Range<usize>,
    rows: Range<usize>,
) -> RgbImage {
    assert!(
        columns.end <= width && rows.end <= height,
        "window outside the resized image"
    );
    if columns.is_empty() || rows.is_empty() || src.width() == 0 || src.height() == 0 {
        return RgbImage::zeros(columns.len(), rows.len());
    }
    let Plan {
        horizontal,
        vertical,
        first_row,
        n_rows,
        vertical_first,
    } = plan((src.width(), src.height()), (width, height), filter, &columns, &rows);
    if let (true, Some(h), Some(v)) = (vertical_first, &horizontal, &vertical) {
        // The window's rows over the whole source width (the horizontal pass then picks the
        // window's columns from it).
        let tmp = resample_vertical(src, 0, v);
        return resample_horizontal(&tmp, 0, rows.len(), h);
    }
    let tmp = match &horizontal {
        Some(h) => resample_horizontal(src, first_row, n_rows, h),
        None => crop_columns(src, first_row, n_rows, &columns),
    };
    match &vertical {
        Some(v) => resample_vertical(&tmp, first_row, v),
        None => tmp,
    }
}

/// Rows `first_row..first_row + n_rows`, columns `columns`, copied.
fn crop_columns(src: &RgbImage, first_row: usize, n_rows: usize, columns: &Range<usize>) -> RgbImage {
    let mut out = RgbImage::zeros(columns.len(), n_rows);
    for y in 0..n_rows {
        out.row_mut(y)
            .copy_from_slice(&src.row(first_row + y)[columns.start * 3..columns.end * 3]);
    }
    out
}

/// The horizontal pass with SSE4.1: one tap of one pixel is one 4-lane multiply-add of
/// [R, G, B, next R] × weight (the compiler, left alone, shuffles lanes across taps instead).
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi32, _mm_cvtepu8_epi32, _mm_cvtsi32_si128, _mm_cvtsi128_si32, _mm_mullo_epi32,
        _mm_packs_epi32, _mm_packus_epi16, _mm_set1_epi32, _mm_srai_epi32,
    };

    use super::{HALF, PRECISION_BITS, RgbImage, Taps};

    /// # Safety
    /// The CPU must support SSE4.1.
    #[target_feature(enable = "sse4.1")]
    pub(super) unsafe fn resample_horizontal_sse41(
        src: &RgbImage,
        first_row: usize,
        out_height: usize,
        taps: &Taps,
    ) -> RgbImage {
        let out_width = taps.bounds.len();
        let mut out = RgbImage::zeros(out_width, out_height);
        // One spare byte so the 4-byte load of the last pixel stays inside the buffer.
        let mut row = vec![0u8; src.width() * 3 + 1];
        let half = _mm_set1_epi32(HALF);
        for y in 0..out_height {
            row[..src.width() * 3].copy_from_slice(src.row(first_row + y));
            let row_out = out.row_mut(y);
            for ((&(xmin, n), k), o) in taps
                .bounds
                .iter()
                .zip(taps.weights.chunks_exact(taps.ksize))
                .zip(row_out.chunks_exact_mut(3))
            {
                let mut acc: __m128i = half;
                for (x, &w) in (xmin..xmin + n).zip(&k[..n]) {
                    let b = &row[x * 3..x * 3 + 4];
                    let px = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(i32::from_le_bytes([b[0], b[1], b[2], b[3]])));
                    acc = _mm_add_epi32(acc, _mm_mullo_epi32(px, _mm_set1_epi32(w)));
                }
                // >> 22, then clamp to 0..=255 through the saturating packs (as clip8).
                let v = _mm_srai_epi32::<{ PRECISION_BITS as i32 }>(acc);
                let packed = _mm_packus_epi16(_mm_packs_epi32(v, v), _mm_packs_epi32(v, v));
                let [r, g, b, _] = _mm_cvtsi128_si32(packed).to_le_bytes();
                o.copy_from_slice(&[r, g, b]);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: usize, h: usize) -> RgbImage {
        let data = (0..w * h * 3).map(|i| ((i * 37) % 256) as u8).collect();
        RgbImage::from_raw(w, h, data).expect("sizes match")
    }

    #[test]
    fn same_size_is_a_copy() {
        let img = gradient(7, 5);
        assert_eq!(resize(&img, 7, 5, Interpolation::Bicubic), img);
    }

    #[test]
    fn constant_image_stays_constant_for_every_filter() {
        let img = RgbImage::from_raw(9, 13, vec![77; 9 * 13 * 3]).expect("sizes match");
        for f in [Interpolation::Bilinear, Interpolation::Bicubic, Interpolation::Lanczos] {
            for (w, h) in [(4, 4), (20, 3), (9, 30)] {
                let out = resize(&img, w, h, f);
                assert!(out.as_raw().iter().all(|&v| v == 77), "{f:?} {w}x{h}");
            }
        }
    }

    #[test]
    fn a_window_is_the_same_bytes_as_resize_then_crop() {
        let img = gradient(50, 31);
        for f in [Interpolation::Bilinear, Interpolation::Bicubic, Interpolation::Lanczos] {
            // (45, 8) and (60, 10): Pillow's vertical pass first (height shrinks by 23 and 21
            // rows, width by 5 and −10 columns).
            for (w, h) in [(20, 17), (50, 12), (13, 31), (90, 70), (45, 8), (60, 10)] {
                let first = plan((50, 31), (w, h), f, &(0..w), &(0..h)).vertical_first;
                assert_eq!(first, matches!((w, h), (45, 8) | (60, 10)), "{w}x{h}");
                let full = resize(&img, w, h, f);
                let (x0, y0) = (w / 4, h / 3);
                let win = resize_window(&img, w, h, f, x0..w - 1, y0..h);
                let expect = crate::data::transforms::crop(&full, y0 as i64, x0 as i64, h - y0, w - 1 - x0);
                assert_eq!(win, expect, "{f:?} {w}x{h}");
            }
        }
    }

    #[test]
    fn simd_and_portable_horizontal_passes_agree() {
        let img = gradient(61, 9);
        for f in [Interpolation::Bilinear, Interpolation::Bicubic, Interpolation::Lanczos] {
            for w in [7, 30, 61 * 3] {
                let taps = precompute(61, 0.0, 61.0, w, f);
                assert_eq!(
                    resample_horizontal(&img, 0, 9, &taps),
                    resample_horizontal_generic(&img, 0, 9, &taps)
                );
            }
        }
    }

    #[test]
    fn taps_sum_to_one_in_fixed_point() {
        for f in [Interpolation::Bilinear, Interpolation::Bicubic] {
            let taps = precompute(500, 0.0, 500.0, 137, f);
            for (i, &(_, n)) in taps.bounds.iter().enumerate() {
                let s: i32 = taps.weights[i * taps.ksize..i * taps.ksize + n].iter().sum();
                assert!((s - (1 << PRECISION_BITS)).abs() <= n as i32, "{f:?} {i}: {s}");
            }
        }
    }
}
