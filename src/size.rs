//! Apparent object size (paper §3.1): how much bigger objects look at train time
//! (RandomResizedCrop zooms in) than at test time (Resize + CenterCrop does not).
//!
//! An object r px wide in a W×H image appears r·K_train/√(w·h) px at train time (crop w×h
//! resized to K_train²) and r·S_test/min(W,H) at test time, S_test = int(K_test/crop_ratio).

use serde::Serialize;

use crate::data::transforms::test_resize_size;
use crate::data::{RandomResizedCrop, SeededRng};
use crate::stats::{Quantile, quantiles};

/// The resolutions and augmentation that set apparent sizes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SizeSetup {
    /// Train input side, K_train.
    pub train_res: usize,
    /// Test input side, K_test.
    pub test_res: usize,
    /// K_test / test resize side.
    pub crop_ratio: f64,
    /// RandomResizedCrop's ranges.
    pub crop: RandomResizedCrop,
}

impl SizeSetup {
    /// Test resize side, S_test.
    #[must_use]
    pub fn test_resize(&self) -> usize {
        test_resize_size(self.test_res, self.crop_ratio)
    }
}

/// The paper's closed form: square images, aspect ratio 1, σ ~ U[scale].
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Analytic {
    /// E[√σ]: the mean linear zoom of a train crop (0.708 for σ ~ U[0.08, 1]).
    pub mean_sqrt_sigma: f64,
    /// S_test.
    pub test_resize: usize,
    /// E[r_test / r_train] = E[√σ]·S_test/K_train (0.809 at 224/224, resize 256).
    pub mean_ratio: f64,
    /// The K_test that makes E[r_test / r_train] = 1: crop_ratio·K_train/E[√σ], rounded (277 at 224).
    pub recommended_test_res: usize,
}

/// E[√σ] for σ ~ U[s0, s1].
#[must_use]
pub fn mean_sqrt_uniform(s0: f64, s1: f64) -> f64 {
    if (s1 - s0).abs() < 1e-12 {
        return s0.sqrt();
    }
    (2.0 / 3.0) * (s1.powf(1.5) - s0.powf(1.5)) / (s1 - s0)
}

/// The K_test whose test resize makes the mean ratio 1, given the mean train zoom `zoom`.
fn recommended_test_res(setup: &SizeSetup, zoom: f64) -> usize {
    (setup.crop_ratio * setup.train_res as f64 / zoom).round() as usize
}

/// The analytic apparent-size figures.
#[must_use]
pub fn analytic(setup: &SizeSetup) -> Analytic {
    let mean_sqrt_sigma = mean_sqrt_uniform(setup.crop.scale.0, setup.crop.scale.1);
    let test_resize = setup.test_resize();
    Analytic {
        mean_sqrt_sigma,
        test_resize,
        mean_ratio: mean_sqrt_sigma * test_resize as f64 / setup.train_res as f64,
        recommended_test_res: recommended_test_res(setup, mean_sqrt_sigma),
    }
}

/// E[r_test / r_train] against K_test, for plotting: `(K_test, ratio)` for each K in `test_res`.
#[must_use]
pub fn analytic_curve(setup: &SizeSetup, test_res: impl IntoIterator<Item = usize>) -> Vec<(usize, f64)> {
    test_res
        .into_iter()
        .map(|k| (k, analytic(&SizeSetup { test_res: k, ..*setup }).mean_ratio))
        .collect()
}

/// Quantiles reported for sampled ratios.
pub const QUANTILES: [f64; 5] = [0.05, 0.25, 0.5, 0.75, 0.95];

/// The real sampler over real image sizes.
#[derive(Clone, Debug, Serialize)]
pub struct MonteCarlo {
    /// Draws made.
    pub samples: usize,
    /// Distinct image sizes drawn from.
    pub image_sizes: usize,
    /// Mean of √(w·h / (W·H)) (≈ E[√σ] on square images; 0.636 on 500×375).
    pub mean_sqrt_area_share: f64,
    /// Mean train zoom √(w·h)/min(W,H): what E[√σ] is on non-square images.
    pub mean_zoom: f64,
    /// Mean of r_test / r_train.
    pub mean_ratio: f64,
    /// Standard deviation of r_test / r_train.
    pub std_ratio: f64,
    /// Quantiles of r_test / r_train, at `QUANTILES`.
    pub quantiles: Vec<Quantile>,
    /// Share of draws that needed more than one try.
    pub multi_try_share: f64,
    /// Share of draws where all 10 tries failed (centre-crop fallback).
    pub fallback_share: f64,
    /// The K_test that makes the mean ratio 1 over these images.
    pub recommended_test_res: usize,
    /// Every sampled ratio, for histograms.
    #[serde(skip)]
    pub ratios: Vec<f64>,
}

/// Samples RandomResizedCrop `samples` times, cycling over `image_sizes` (`(W, H)`), and
/// measures r_test / r_train for each draw.
#[must_use]
pub fn monte_carlo(setup: &SizeSetup, image_sizes: &[(u32, u32)], samples: usize, seed: u64) -> MonteCarlo {
    let mut rng = SeededRng::new(seed);
    let sizes: Vec<(u32, u32)> = image_sizes.iter().copied().filter(|&(w, h)| w > 0 && h > 0).collect();
    let sizes = if sizes.is_empty() { vec![(512, 512)] } else { sizes };
    let s_test = setup.test_resize() as f64;
    let k_train = setup.train_res as f64;
    let (mut share_sum, mut zoom_sum, mut multi, mut fallback) = (0.0, 0.0, 0usize, 0usize);
    let mut ratios = Vec::with_capacity(samples);
    for i in 0..samples {
        let (w, h) = sizes[i % sizes.len()];
        let (w, h) = (w as usize, h as usize);
        let b = setup.crop.sample(w, h, &mut rng);
        let crop_side = ((b.width * b.height) as f64).sqrt();
        let short = w.min(h) as f64;
        share_sum += crop_side / ((w * h) as f64).sqrt();
        zoom_sum += crop_side / short;
        multi += usize::from(b.tries > 1);
        fallback += usize::from(b.tries > 10);
        // Test: r·S/min(W,H). Train: r·K/√(w·h).
        ratios.push((s_test / short) * crop_side / k_train);
    }
    let n = samples.max(1) as f64;
    let mean_ratio = ratios.iter().sum::<f64>() / n;
    let var = ratios.iter().map(|r| (r - mean_ratio).powi(2)).sum::<f64>() / n;
    let mut sorted = ratios.clone();
    sorted.sort_by(f64::total_cmp);
    let quantiles = quantiles(&sorted, &QUANTILES);
    let mean_zoom = zoom_sum / n;
    MonteCarlo {
        samples,
        image_sizes: sizes.len(),
        mean_sqrt_area_share: share_sum / n,
        mean_zoom,
        mean_ratio,
        std_ratio: var.sqrt(),
        quantiles,
        multi_try_share: multi as f64 / n,
        fallback_share: fallback as f64 / n,
        recommended_test_res: recommended_test_res(setup, mean_zoom),
        ratios,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(train: usize, test: usize) -> SizeSetup {
        SizeSetup {
            train_res: train,
            test_res: test,
            crop_ratio: 0.875,
            crop: RandomResizedCrop::default(),
        }
    }

    #[test]
    fn paper_numbers_at_224() {
        let a = analytic(&setup(224, 224));
        assert_eq!(format!("{:.3}", a.mean_sqrt_sigma), "0.708");
        assert_eq!(a.test_resize, 256);
        assert_eq!(format!("{:.3}", a.mean_ratio), "0.809");
        assert_eq!(a.recommended_test_res, 277);
    }

    #[test]
    fn recommended_resolution_equalises_sizes() {
        let s = setup(224, 277);
        let a = analytic(&s);
        assert!((a.mean_ratio - 1.0).abs() < 0.01, "{}", a.mean_ratio);
    }

    #[test]
    fn monte_carlo_meets_the_closed_form_where_its_assumptions_hold() {
        // Square images and crops of aspect 1 always fit, so nothing is rejected and the mean
        // zoom is E[sqrt(sigma)] = 0.708.
        let mut s = setup(224, 224);
        s.crop.ratio = (1.0, 1.0);
        let mc = monte_carlo(&s, &[(512, 512)], 100_000, 1);
        assert!(
            (mc.mean_sqrt_area_share - 0.7082).abs() < 0.003,
            "{}",
            mc.mean_sqrt_area_share
        );
        assert!((mc.mean_ratio - 0.8094).abs() < 0.004, "{}", mc.mean_ratio);
        assert_eq!(mc.multi_try_share, 0.0);
        assert!(mc.quantiles.windows(2).all(|w| w[0].value <= w[1].value));
    }

    #[test]
    fn rejections_make_real_crops_smaller_than_the_closed_form() {
        // With the usual 3/4..4/3 ratios, big crops that do not fit are redrawn: the real mean
        // zoom on square images is below 0.708 (torchvision's sampler gives 0.669 at 224x224).
        let mc = monte_carlo(&setup(224, 224), &[(224, 224)], 100_000, 1);
        assert!(
            mc.mean_sqrt_area_share < 0.68 && mc.mean_sqrt_area_share > 0.66,
            "{}",
            mc.mean_sqrt_area_share
        );
        assert!(mc.multi_try_share > 0.1);
    }
}
