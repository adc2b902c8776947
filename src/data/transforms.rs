//! torchvision's transforms on PIL images, to the pixel: Resize(int), CenterCrop,
//! RandomResizedCrop, horizontal flip, ToTensor + Normalize.

use serde::{Deserialize, Serialize};

use super::RgbImage;
use super::resample::{Interpolation, resize, resize_window};
use super::rng::SeededRng;

/// ImageNet channel means, as torchvision's reference recipes use them.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// torchvision `Resize(size: int)`: the shorter side becomes `size`, the longer
/// `int(size * long / short)` (truncated). Returns `(width, height)`.
#[must_use]
pub fn resized_size(width: usize, height: usize, size: usize) -> (usize, usize) {
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    if short == 0 {
        return (width, height);
    }
    let new_long = ((size * long) as f64 / short as f64) as usize;
    if width <= height {
        (size, new_long)
    } else {
        (new_long, size)
    }
}

/// torchvision `Resize(size: int, interpolation)` on a PIL image.
#[must_use]
pub fn resize_shorter(img: &RgbImage, size: usize, filter: Interpolation) -> RgbImage {
    let (w, h) = resized_size(img.width(), img.height(), size);
    resize(img, w, h, filter)
}

/// The resize side of the test transform: `int(res / crop_ratio)` (256 for 224 at 0.875).
#[must_use]
pub fn test_resize_size(res: usize, crop_ratio: f64) -> usize {
    (res as f64 / crop_ratio) as usize
}

/// The crop ratio whose test transform at K = `res` resizes to exactly `resize` (torchvision's
/// `--val-resize-size 232 --val-crop-size 224`): `res / resize`, moved by the few ulps that make
/// `int(res / ratio)` land on `resize` where float division falls just short (224 / (224 / 232)
/// is 232 in exact arithmetic, but such quotients can come out a hair below an integer).
#[must_use]
pub fn crop_ratio_for(res: usize, resize: usize) -> f64 {
    let mut ratio = res as f64 / resize.max(1) as f64;
    for _ in 0..64 {
        match test_resize_size(res, ratio).cmp(&resize) {
            std::cmp::Ordering::Less => ratio = f64::from_bits(ratio.to_bits() - 1),
            std::cmp::Ordering::Greater => ratio = f64::from_bits(ratio.to_bits() + 1),
            std::cmp::Ordering::Equal => break,
        }
    }
    ratio
}

/// PIL `img.crop((left, top, left + width, top + height))`: pixels outside the image are black.
#[must_use]
pub fn crop(img: &RgbImage, top: i64, left: i64, height: usize, width: usize) -> RgbImage {
    crop_filled(img, top, left, height, width, [0; 3])
}

/// `crop`, with the pixels outside the image `fill` (torchvision's `F.pad(fill=…)` then the crop).
#[must_use]
pub fn crop_filled(img: &RgbImage, top: i64, left: i64, height: usize, width: usize, fill: [u8; 3]) -> RgbImage {
    let mut out = if fill == [0; 3] {
        RgbImage::zeros(width, height)
    } else {
        RgbImage::from_raw(width, height, fill.repeat(width * height)).expect("width·height·3 bytes")
    };
    let x0 = left.max(0);
    let x1 = (left + width as i64).min(img.width() as i64);
    if x1 <= x0 {
        return out;
    }
    for y in 0..height {
        let sy = top + y as i64;
        if sy < 0 || sy >= img.height() as i64 {
            continue;
        }
        let src = &img.row(sy as usize)[x0 as usize * 3..x1 as usize * 3];
        let dx = (x0 - left) as usize * 3;
        out.row_mut(y)[dx..dx + src.len()].copy_from_slice(src);
    }
    out
}

/// Python's `round()` on a float: half to even.
fn round_half_even(x: f64) -> i64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 {
        (2.0 * (x / 2.0).round()) as i64
    } else {
        r as i64
    }
}

/// Where torchvision's `CenterCrop(size)` takes its crop: `(top, left)`, possibly negative when
/// the image is smaller than the crop (the missing border is zero-padded, as torchvision pads).
#[must_use]
pub fn center_crop_origin(width: usize, height: usize, crop_w: usize, crop_h: usize) -> (i64, i64) {
    let axis = |size: usize, crop: usize| -> i64 {
        if crop > size {
            // torchvision pads (crop - size) // 2 before, the rest after, then crops at 0.
            -(((crop - size) / 2) as i64)
        } else {
            round_half_even((size - crop) as f64 / 2.0)
        }
    };
    (axis(height, crop_h), axis(width, crop_w))
}

/// torchvision `CenterCrop(size)`.
#[must_use]
pub fn center_crop(img: &RgbImage, size: usize) -> RgbImage {
    let (top, left) = center_crop_origin(img.width(), img.height(), size, size);
    if (top, left) == (0, 0) && (img.width(), img.height()) == (size, size) {
        return img.clone();
    }
    crop(img, top, left, size, size)
}

/// Horizontal mirror.
#[must_use]
pub fn hflip(img: &RgbImage) -> RgbImage {
    let mut out = img.clone();
    for y in 0..img.height() {
        let row = out.row_mut(y);
        let w = row.len() / 3;
        for x in 0..w / 2 {
            for c in 0..3 {
                row.swap(x * 3 + c, (w - 1 - x) * 3 + c);
            }
        }
    }
    out
}

/// `ToTensor()` then `Normalize(mean, std)`: CHW f32, computed in f32 in torch's order.
#[must_use]
pub fn to_tensor_normalized(img: &RgbImage, mean: [f32; 3], std: [f32; 3]) -> Vec<f32> {
    let table = normalization_table(mean, std);
    let plane = img.width() * img.height();
    let mut out = vec![0f32; 3 * plane];
    for (i, px) in img.as_raw().chunks_exact(3).enumerate() {
        for c in 0..3 {
            out[c * plane + i] = table[c * 256 + usize::from(px[c])];
        }
    }
    out
}

/// ToTensor + Normalize of every channel value, `[channel * 256 + value]`: `(v / 255 - mean) /
/// std` in f32, as torchvision. The one formula of the CPU path and the GPU's (`resample.wgsl`
/// looks it up), so both give the same floats on any GPU.
#[must_use]
pub fn normalization_table(mean: [f32; 3], std: [f32; 3]) -> Vec<f32> {
    (0..3)
        .flat_map(|c| (0..=255u8).map(move |v| (f32::from(v) / 255.0 - mean[c]) / std[c]))
        .collect()
}

/// A crop rectangle in source pixels, and how many tries the sampler needed to find it
/// (11 means all 10 tries failed and the fallback centre crop was used).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CropBox {
    /// First row.
    pub top: usize,
    /// First column.
    pub left: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Tries used, 1..=10, or 11 for the fallback.
    pub tries: u8,
}

/// The parameters of torchvision's `RandomResizedCrop`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RandomResizedCrop {
    /// Range of the crop's area as a share of the image's.
    pub scale: (f64, f64),
    /// Range of the crop's aspect ratio (width / height).
    pub ratio: (f64, f64),
}

impl Default for RandomResizedCrop {
    fn default() -> Self {
        Self {
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
        }
    }
}

/// Python's `round()` to an integer, for the crop sides.
fn py_round(x: f64) -> i64 {
    round_half_even(x)
}

impl RandomResizedCrop {
    /// torchvision `RandomResizedCrop.get_params`: up to 10 tries, then a centre crop clamped to
    /// the ratio range.
    pub fn sample(&self, width: usize, height: usize, rng: &mut SeededRng) -> CropBox {
        let area = (width * height) as f64;
        let (log_r0, log_r1) = (self.ratio.0.ln(), self.ratio.1.ln());
        for tries in 1..=10u8 {
            let target_area = area * rng.uniform(self.scale.0, self.scale.1);
            let aspect = rng.uniform(log_r0, log_r1).exp();
            let w = py_round((target_area * aspect).sqrt());
            let h = py_round((target_area / aspect).sqrt());
            if 0 < w && w <= width as i64 && 0 < h && h <= height as i64 {
                let (w, h) = (w as usize, h as usize);
                let top = rng.below((height - h + 1) as u64) as usize;
                let left = rng.below((width - w + 1) as u64) as usize;
                return CropBox {
                    top,
                    left,
                    height: h,
                    width: w,
                    tries,
                };
            }
        }
        let in_ratio = width as f64 / height as f64;
        let (min_r, max_r) = (self.ratio.0.min(self.ratio.1), self.ratio.0.max(self.ratio.1));
        let (w, h) = if in_ratio < min_r {
            (width, py_round(width as f64 / min_r) as usize)
        } else if in_ratio > max_r {
            (py_round(height as f64 * max_r) as usize, height)
        } else {
            (width, height)
        };
        CropBox {
            top: (height - h) / 2,
            left: (width - w) / 2,
            height: h,
            width: w,
            tries: 11,
        }
    }
}

/// How the test transform fits an image to the resize side `s = int(res / crop_ratio)` before its
/// center crop of `res` (timm's eval `crop_mode`, `timm.data.transforms_imagenet_eval`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum CropMode {
    /// The shorter side to `s`, the aspect ratio kept (torchvision's `Resize(s)`; timm's default):
    /// the crop loses the longer side's ends.
    #[default]
    Center,
    /// Both sides to `s` (`Resize((s, s))`): the aspect ratio is not kept; nothing is lost when
    /// `crop_ratio` is 1.
    Squash,
    /// The longer side to `s`, the aspect ratio kept (timm's `ResizeKeepRatio(longest=1)`), then
    /// padded to `res` with the mean colour (`CenterCropOrPad`): nothing is lost when
    /// `crop_ratio` is 1.
    Border,
}

impl CropMode {
    /// timm's name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Center => "center",
            Self::Squash => "squash",
            Self::Border => "border",
        }
    }

    /// The mode timm calls `name`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Center, Self::Squash, Self::Border]
            .into_iter()
            .find(|m| m.name() == name)
    }
}

/// timm's fill of the border mode's padding: `round(255 · mean)` per channel (Python's `round`).
#[must_use]
pub fn border_fill(mean: [f32; 3]) -> [u8; 3] {
    mean.map(|m| round_half_even(255.0 * f64::from(m)).clamp(0, 255) as u8)
}

/// The test-time transform: a resize to `int(res / crop_ratio)` as the crop mode says, then
/// `CenterCrop(res)` (padding where the resized image is smaller).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestTransform {
    /// Network input side, K_test.
    pub res: usize,
    /// K_test / resize side (0.875 in torchvision's recipes).
    pub crop_ratio: f64,
    /// Resampling filter.
    pub interpolation: Interpolation,
    /// How the image is fitted to the resize side.
    pub crop_mode: CropMode,
    /// The colour of the padding in `CropMode::Border` (`border_fill` of the normalisation's
    /// mean); the other modes pad black, as torchvision's `CenterCrop`.
    pub border_fill: [u8; 3],
}

impl TestTransform {
    /// torchvision's test transform: `Resize(int(res / crop_ratio))` + `CenterCrop(res)`.
    #[must_use]
    pub fn center(res: usize, crop_ratio: f64, interpolation: Interpolation) -> Self {
        Self {
            res,
            crop_ratio,
            interpolation,
            crop_mode: CropMode::Center,
            border_fill: [0; 3],
        }
    }

    /// The size `(width, height)` an image of `width`×`height` is resized to before the crop.
    #[must_use]
    pub fn resized_size(&self, width: usize, height: usize) -> (usize, usize) {
        let s = test_resize_size(self.res, self.crop_ratio);
        match self.crop_mode {
            CropMode::Center => resized_size(width, height, s),
            CropMode::Squash => (s, s),
            CropMode::Border => {
                // timm's ResizeKeepRatio.get_params with longest = 1: the larger of the two
                // ratios, each side round(side / ratio), in Python's float arithmetic.
                if width == 0 || height == 0 {
                    return (width, height);
                }
                let (w, h) = (width as f64, height as f64);
                let ratio = (h / s as f64).max(w / s as f64);
                let side = |x: f64| round_half_even(x / ratio).max(0) as usize;
                (side(w), side(h))
            }
        }
    }

    /// The uint8 network input, `res`×`res`.
    #[must_use]
    pub fn apply(&self, img: &RgbImage) -> RgbImage {
        let k = self.res;
        let (w, h) = self.resized_size(img.width(), img.height());
        let (top, left) = center_crop_origin(w, h, k, k);
        if top >= 0 && left >= 0 && top as usize + k <= h && left as usize + k <= w {
            let (top, left) = (top as usize, left as usize);
            resize_window(img, w, h, self.interpolation, left..left + k, top..top + k)
        } else {
            // The crop reaches past the resized image: resize all of it, then pad.
            let fill = match self.crop_mode {
                CropMode::Border => self.border_fill,
                CropMode::Center | CropMode::Squash => [0; 3],
            };
            crop_filled(&resize(img, w, h, self.interpolation), top, left, k, k, fill)
        }
    }

    /// The source-pixel rectangle the test crop shows: `(left, top, width, height)` in the
    /// original image's coordinates (fractional, as resizing scales it).
    #[must_use]
    pub fn source_rect(&self, width: usize, height: usize) -> (f64, f64, f64, f64) {
        let (rw, rh) = self.resized_size(width, height);
        let (top, left) = center_crop_origin(rw, rh, self.res, self.res);
        let (sx, sy) = (width as f64 / rw as f64, height as f64 / rh as f64);
        (
            left as f64 * sx,
            top as f64 * sy,
            self.res as f64 * sx,
            self.res as f64 * sy,
        )
    }
}

/// The train-time transform: `RandomResizedCrop(res)` + `RandomHorizontalFlip()`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainTransform {
    /// Network input side, K_train.
    pub res: usize,
    /// Crop sampler.
    pub crop: RandomResizedCrop,
    /// Resampling filter.
    pub interpolation: Interpolation,
    /// Flip with probability 0.5.
    pub hflip: bool,
}

/// One train-time sample: the network input, where it came from, and whether it was mirrored.
#[derive(Clone, Debug)]
pub struct TrainSample {
    /// `res`×`res` uint8 input.
    pub image: RgbImage,
    /// The source rectangle.
    pub crop: CropBox,
    /// Mirrored.
    pub flipped: bool,
}

impl TrainTransform {
    /// Samples a crop, resizes it to `res`×`res`, maybe flips it.
    pub fn apply(&self, img: &RgbImage, rng: &mut SeededRng) -> TrainSample {
        let (crop, flipped) = self.sample_params(img.width(), img.height(), rng);
        self.apply_params(img, crop, flipped)
    }

    /// The random draws of `apply` for a `width`×`height` image, in the same order (the crop,
    /// then the flip), so a view can draw the boxes at once and render the crops later.
    pub fn sample_params(&self, width: usize, height: usize, rng: &mut SeededRng) -> (CropBox, bool) {
        let b = self.crop.sample(width, height, rng);
        let flipped = self.hflip && rng.next_f64() < 0.5;
        (b, flipped)
    }

    /// `apply` with its draws given.
    #[must_use]
    pub fn apply_params(&self, img: &RgbImage, b: CropBox, flipped: bool) -> TrainSample {
        let cropped = crop(img, b.top as i64, b.left as i64, b.height, b.width);
        let mut image = resize(&cropped, self.res, self.res, self.interpolation);
        if flipped {
            image = hflip(&image);
        }
        TrainSample {
            image,
            crop: b,
            flipped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_resize_side_is_the_one_resized_to() {
        // Every pair a torchvision recipe could name, including those whose plain quotient
        // truncates one short (17 / (17 / 25) = 24.999…).
        for res in 16..=640 {
            for resize in res..=res * 3 / 2 {
                let ratio = crop_ratio_for(res, resize);
                assert_eq!(test_resize_size(res, ratio), resize, "{res} / {resize}");
                assert!((ratio - res as f64 / resize as f64).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn resize_rule_truncates_the_long_side() {
        assert_eq!(resized_size(500, 375, 256), (341, 256));
        assert_eq!(resized_size(375, 500, 256), (256, 341));
        assert_eq!(resized_size(300, 300, 256), (256, 256));
        assert_eq!(test_resize_size(224, 0.875), 256);
        assert_eq!(test_resize_size(288, 0.875), 329);
    }

    #[test]
    fn center_crop_rounds_half_to_even_like_python() {
        // (41 - 0) / 2 = 20.5 → 20; (43 - 0) / 2 = 21.5 → 22.
        assert_eq!(center_crop_origin(41, 43, 0, 0), (22, 20));
        assert_eq!(center_crop_origin(256, 341, 224, 224), (58, 16));
    }

    #[test]
    fn center_crop_pads_small_images_with_black() {
        let img = RgbImage::from_raw(2, 1, vec![9; 6]).expect("sizes match");
        let out = center_crop(&img, 4);
        // torchvision pads left (4-2)//2 = 1, top (4-1)//2 = 1.
        let px = |x: usize, y: usize| out.row(y)[x * 3];
        assert_eq!((px(0, 1), px(1, 1), px(2, 1), px(3, 1)), (0, 9, 9, 0));
        assert!(out.row(0).iter().chain(out.row(2)).all(|&v| v == 0));
    }

    #[test]
    fn flip_twice_is_identity() {
        let img = RgbImage::from_raw(3, 2, (0..18).collect()).expect("sizes match");
        assert_eq!(hflip(&hflip(&img)), img);
        assert_eq!(&hflip(&img).row(0)[..3], &[6, 7, 8]);
    }

    #[test]
    fn random_crops_fit_and_keep_their_ratio() {
        let rrc = RandomResizedCrop::default();
        let mut rng = SeededRng::new(5);
        for _ in 0..10_000 {
            let b = rrc.sample(500, 375, &mut rng);
            assert!(b.left + b.width <= 500 && b.top + b.height <= 375);
            assert!(b.width > 0 && b.height > 0);
        }
        // No crop of a 100:1 strip fits the ratio range: every try fails and the fallback
        // takes the widest 4:3 centre crop, round(10 * 4/3) = 13 wide.
        let b = rrc.sample(1000, 10, &mut SeededRng::new(1));
        assert_eq!(
            b,
            CropBox {
                top: 0,
                left: 493,
                height: 10,
                width: 13,
                tries: 11
            }
        );
    }

    #[test]
    fn normalize_matches_torch_formula() {
        let img = RgbImage::from_raw(1, 1, vec![0, 128, 255]).expect("sizes match");
        let t = to_tensor_normalized(&img, IMAGENET_MEAN, IMAGENET_STD);
        assert_eq!(t[0], (0.0f32 / 255.0 - 0.485) / 0.229);
        assert_eq!(t[2], (255.0f32 / 255.0 - 0.406) / 0.225);
    }
}
