//! What the app remembers between runs (eframe storage). Runtime state lives elsewhere.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::{CropMode, Interpolation, RandomResizedCrop, TestTransform, TrainTransform};
use crate::model::Recipe;
use crate::size::SizeSetup;

/// How many recent folders and weights files the menu keeps.
const RECENT: usize = 8;

/// The persisted settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// K_train.
    pub train_res: usize,
    /// K_test.
    pub test_res: usize,
    /// K_test / resize side of the test transform.
    pub crop_ratio: f64,
    /// How the test transform fits an image to its resize side.
    pub crop_mode: CropMode,
    /// RandomResizedCrop's area range.
    pub scale: (f64, f64),
    /// RandomResizedCrop's aspect-ratio range.
    pub ratio: (f64, f64),
    /// Resampling filter for both transforms.
    pub interpolation: Interpolation,
    /// Moving one resolution slider moves the other by the same factor.
    pub lock_ratio: bool,
    /// Seed of the train crops shown.
    pub seed: u64,
    /// How many train crops are shown.
    pub train_crops: usize,
    /// Images the activation plot runs the model on.
    pub activation_images: usize,
    /// Accuracy sweep: first, last and step of the test resolutions.
    pub sweep: (usize, usize, usize),
    /// Recently opened ImageFolders, newest first.
    pub recent_data: Vec<PathBuf>,
    /// Recently opened weights, newest first.
    pub recent_weights: Vec<PathBuf>,
    /// Where plots and tables are exported.
    pub export_dir: PathBuf,
}

impl Default for Settings {
    fn default() -> Self {
        let crop = RandomResizedCrop::default();
        Self {
            train_res: 224,
            test_res: 224,
            crop_ratio: 0.875,
            crop_mode: CropMode::Center,
            scale: crop.scale,
            ratio: crop.ratio,
            interpolation: Interpolation::Bilinear,
            lock_ratio: false,
            seed: 0,
            train_crops: 3,
            activation_images: 64,
            sweep: (128, 384, 32),
            recent_data: Vec::new(),
            recent_weights: Vec::new(),
            export_dir: PathBuf::from("fixres-exports"),
        }
    }
}

impl Settings {
    /// The RandomResizedCrop sampler.
    #[must_use]
    pub fn sampler(&self) -> RandomResizedCrop {
        RandomResizedCrop {
            scale: (self.scale.0.min(self.scale.1), self.scale.0.max(self.scale.1)),
            ratio: (self.ratio.0.min(self.ratio.1), self.ratio.0.max(self.ratio.1)),
        }
    }

    /// The test transform at K_test, for `model`'s recipe (torchvision's without a model: the
    /// border mode's padding is the normalisation mean's colour).
    #[must_use]
    pub fn test_transform(&self, model: Option<&Recipe>) -> TestTransform {
        self.recipe_for(model.unwrap_or(&Recipe::default()))
            .test_transform(self.test_res)
    }

    /// The train transform at K_train.
    #[must_use]
    pub fn train_transform(&self) -> TrainTransform {
        TrainTransform {
            res: self.train_res,
            crop: self.sampler(),
            interpolation: self.interpolation,
            hflip: true,
        }
    }

    /// The apparent-size setup.
    #[must_use]
    pub fn size_setup(&self) -> SizeSetup {
        SizeSetup {
            train_res: self.train_res,
            test_res: self.test_res,
            crop_ratio: self.crop_ratio,
            crop: self.sampler(),
        }
    }

    /// `model`'s recipe with the test transform these settings choose (crop ratio, crop mode,
    /// filter); the normalisation stays the model's. What every view that runs the model uses.
    #[must_use]
    pub fn recipe_for(&self, model: &Recipe) -> Recipe {
        Recipe {
            crop_ratio: self.crop_ratio,
            crop_mode: self.crop_mode,
            interpolation: self.interpolation,
            ..*model
        }
    }

    /// The sweep's test resolutions.
    #[must_use]
    pub fn sweep_resolutions(&self) -> Vec<usize> {
        let (from, to, step) = self.sweep;
        (from.min(to)..=to.max(from)).step_by(step.max(1)).collect()
    }

    /// Puts `path` first in a recent list.
    pub fn remember(list: &mut Vec<PathBuf>, path: &Path) {
        list.retain(|p| p != path);
        list.insert(0, path.to_owned());
        list.truncate(RECENT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_settings_files_fill_in_new_fields() {
        let s: Settings = serde_json::from_str(r#"{"train_res": 128}"#).unwrap();
        assert_eq!(s.train_res, 128);
        assert_eq!(s.test_res, Settings::default().test_res);
    }

    #[test]
    fn recent_lists_are_newest_first_without_repeats() {
        let mut list = Vec::new();
        for p in ["a", "b", "a"] {
            Settings::remember(&mut list, Path::new(p));
        }
        assert_eq!(list, vec![PathBuf::from("a"), PathBuf::from("b")]);
    }

    #[test]
    fn sweep_includes_both_ends_when_the_step_fits() {
        let s = Settings {
            sweep: (128, 256, 64),
            ..Settings::default()
        };
        assert_eq!(s.sweep_resolutions(), vec![128, 192, 256]);
    }
}
