//! How a model wants its images (the test transform and normalisation), and where that came
//! from: the family's default (torchvision's ImageNet recipe, or the recipe of the library's
//! weights for a recognised variant), or timm's `pretrained_cfg` as the Hugging Face hub ships
//! it beside the weights (`config.json`, or a bare `pretrained_cfg.json`), or in the safetensors
//! metadata (`pretrained_cfg`).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::weights::{WeightFile, WeightsError};
use crate::data::transforms::{IMAGENET_MEAN, IMAGENET_STD, border_fill, test_resize_size};
use crate::data::{CropMode, Interpolation, TestTransform};

/// How a model wants its images: what the test transform and normalisation must be.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Recipe {
    /// Channel means.
    pub mean: [f32; 3],
    /// Channel standard deviations.
    pub std: [f32; 3],
    /// Resampling filter.
    pub interpolation: Interpolation,
    /// K / resize side of the test transform.
    pub crop_ratio: f64,
    /// How the test transform fits an image to its resize side (timm's `crop_mode`).
    pub crop_mode: CropMode,
}

impl Default for Recipe {
    /// torchvision's ImageNet recipe.
    fn default() -> Self {
        Self {
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            interpolation: Interpolation::Bilinear,
            crop_ratio: 0.875,
            crop_mode: CropMode::Center,
        }
    }
}

impl Recipe {
    /// The test transform at K = `res`.
    #[must_use]
    pub fn test_transform(&self, res: usize) -> TestTransform {
        TestTransform {
            res,
            crop_ratio: self.crop_ratio,
            interpolation: self.interpolation,
            crop_mode: self.crop_mode,
            border_fill: border_fill(self.mean),
        }
    }

    /// The test transform at K = `res` as a torchvision `transforms.Compose` (PIL images in),
    /// which gives the same bytes as `fixres preprocess`: the resize side is the integer the tool
    /// resizes to. The border mode has no torchvision transform: its resize and pad are timm's
    /// (`timm.data.transforms`), as timm's eval transform builds them.
    #[must_use]
    pub fn torchvision_code(&self, res: usize) -> String {
        let mode = match self.interpolation {
            Interpolation::Bilinear => "BILINEAR",
            Interpolation::Bicubic => "BICUBIC",
            Interpolation::Lanczos => "LANCZOS",
        };
        let list = |v: [f32; 3]| format!("[{}, {}, {}]", v[0], v[1], v[2]);
        let s = test_resize_size(res, self.crop_ratio);
        let (import, fit) = match self.crop_mode {
            CropMode::Center => (
                String::new(),
                format!("T.Resize({s}, interpolation=T.InterpolationMode.{mode}),\n    T.CenterCrop({res}),"),
            ),
            CropMode::Squash => (
                String::new(),
                format!("T.Resize(({s}, {s}), interpolation=T.InterpolationMode.{mode}),\n    T.CenterCrop({res}),"),
            ),
            CropMode::Border => (
                "from timm.data.transforms import CenterCropOrPad, ResizeKeepRatio\n".to_owned(),
                format!(
                    "ResizeKeepRatio({s}, interpolation=\"{}\", longest=1.0),\n    CenterCropOrPad({res}, fill={:?}),",
                    self.interpolation.name(),
                    border_fill(self.mean)
                ),
            ),
        };
        format!(
            "from torchvision import transforms as T\n\
             {import}\n\
             transform = T.Compose([\n    \
             {fit}\n    \
             T.ToTensor(),\n    \
             T.Normalize(mean={}, std={}),\n\
             ])\n",
            list(self.mean),
            list(self.std),
        )
    }

    /// The recipe as a timm `pretrained_cfg` fragment, at K = `res` when given (`input_size`).
    #[must_use]
    pub fn timm_cfg(&self, res: Option<usize>) -> serde_json::Value {
        // The f32 values as written (0.485, not 0.48500001430511475).
        let decimal = |v: [f32; 3]| v.map(|x| x.to_string().parse::<f64>().unwrap_or(f64::from(x)));
        let mut cfg = serde_json::json!({
            "interpolation": self.interpolation.name(),
            "crop_pct": self.crop_ratio,
            "crop_mode": self.crop_mode.name(),
            "mean": decimal(self.mean),
            "std": decimal(self.std),
        });
        if let Some(k) = res {
            cfg["input_size"] = serde_json::json!([3, k, k]);
        }
        cfg
    }
}

/// What a timm `pretrained_cfg` says, read from the file beside the weights.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// timm's architecture name (`tf_efficientnet_b0`), without the weights' tag.
    pub architecture: Option<String>,
    /// The recipe with what the file sets applied over `base`.
    recipe: RecipeFields,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct RecipeFields {
    mean: Option<[f32; 3]>,
    std: Option<[f32; 3]>,
    interpolation: Option<Interpolation>,
    crop_ratio: Option<f64>,
    crop_mode: Option<CropMode>,
}

/// The names beside the weights a config is looked for under, in order.
const CONFIG_NAMES: [&str; 2] = ["config.json", "pretrained_cfg.json"];

impl Config {
    /// The config beside `weights`, if there is one; a config that is not JSON, or whose
    /// recipe fields are malformed, is refused with the file and key named. A JSON file that says
    /// none of timm's fields (another library's `config.json`) is not a config.
    pub fn beside(weights: &Path) -> Result<Option<Self>, WeightsError> {
        let dir = weights.parent().unwrap_or(Path::new("."));
        for name in CONFIG_NAMES {
            let path = dir.join(name);
            if path.is_file() {
                let config = Self::read(&path)?;
                return Ok(
                    (config.architecture.is_some() || config.recipe != RecipeFields::default()).then_some(config),
                );
            }
        }
        Ok(None)
    }

    /// Reads a timm `config.json` (the recipe under `pretrained_cfg`) or a bare
    /// `pretrained_cfg.json`.
    pub fn read(path: &Path) -> Result<Self, WeightsError> {
        let text = std::fs::read_to_string(path).map_err(|source| WeightsError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path, "")
    }

    /// The `pretrained_cfg` a safetensors file carries in its metadata (key `pretrained_cfg`,
    /// JSON), if any.
    pub fn in_metadata(file: &WeightFile) -> Result<Option<Self>, WeightsError> {
        file.metadata
            .get("pretrained_cfg")
            .map(|text| Self::parse(text, &file.path, "metadata pretrained_cfg: "))
            .transpose()
    }

    /// A config from its JSON `text`; errors name `path` and start with `context`.
    fn parse(text: &str, path: &Path, context: &str) -> Result<Self, WeightsError> {
        let bad = |reason: String| WeightsError::Format {
            path: path.to_owned(),
            reason: format!("{context}{reason}"),
        };
        let json: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let cfg = json.get("pretrained_cfg").unwrap_or(&json);
        let architecture = json
            .get("architecture")
            .or_else(|| cfg.get("architecture"))
            .and_then(serde_json::Value::as_str)
            .map(|a| a.split('.').next().unwrap_or(a).to_owned());
        let triple = |key: &str| -> Result<Option<[f32; 3]>, WeightsError> {
            let Some(v) = cfg.get(key) else { return Ok(None) };
            // Every entry a number: `["a", 0.5, 0.5, 0.5]` is refused, not read as three.
            let values: Option<Vec<f32>> = v
                .as_array()
                .and_then(|a| a.iter().map(|x| x.as_f64().map(|x| x as f32)).collect());
            match values.as_deref() {
                Some(&[a, b, c]) if key != "std" || [a, b, c].iter().all(|s| *s > 0.0) => Ok(Some([a, b, c])),
                _ => Err(bad(format!(
                    "{key}: expected three numbers{}, found {v}",
                    if key == "std" { " > 0" } else { "" }
                ))),
            }
        };
        let interpolation = match cfg.get("interpolation") {
            None => None,
            Some(v) => Some(match v.as_str() {
                Some("bilinear") => Interpolation::Bilinear,
                Some("bicubic") => Interpolation::Bicubic,
                Some("lanczos") => Interpolation::Lanczos,
                _ => {
                    return Err(bad(format!(
                        "interpolation: {v} is not one this tool resamples with (bilinear, bicubic, lanczos)"
                    )));
                }
            }),
        };
        let crop_ratio = match cfg.get("crop_pct") {
            None => None,
            Some(v) => Some(
                v.as_f64()
                    .filter(|c| *c > 0.0 && *c <= 1.0)
                    .ok_or_else(|| bad(format!("crop_pct: expected a number in (0, 1], found {v}")))?,
            ),
        };
        let crop_mode = match cfg.get("crop_mode") {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(v.as_str().and_then(CropMode::from_name).ok_or_else(|| {
                bad(format!(
                    "crop_mode: {v} is not one of timm's (\"center\", \"squash\", \"border\")"
                ))
            })?),
        };
        Ok(Self {
            path: path.to_owned(),
            architecture,
            recipe: RecipeFields {
                mean: triple("mean")?,
                std: triple("std")?,
                interpolation,
                crop_ratio,
                crop_mode,
            },
        })
    }

    /// `base` with what this config sets.
    #[must_use]
    pub fn apply(&self, base: Recipe) -> Recipe {
        let r = &self.recipe;
        Recipe {
            mean: r.mean.unwrap_or(base.mean),
            std: r.std.unwrap_or(base.std),
            interpolation: r.interpolation.unwrap_or(base.interpolation),
            crop_ratio: r.crop_ratio.unwrap_or(base.crop_ratio),
            crop_mode: r.crop_mode.unwrap_or(base.crop_mode),
        }
    }
}

/// The architecture name of the weights (tag dropped): their config file's, else their metadata's
/// (`architecture`, or its `pretrained_cfg`'s), in the order `Model::from_file` takes the recipe;
/// what tells the weights' variant where the keys cannot (timm's `tf_` ports).
pub fn architecture_name(file: &WeightFile) -> Result<Option<String>, WeightsError> {
    if let Some(a) = Config::beside(&file.path)?.and_then(|c| c.architecture) {
        return Ok(Some(a));
    }
    if let Some(a) = file.metadata.get("architecture") {
        return Ok(Some(a.split('.').next().unwrap_or(a).to_owned()));
    }
    Ok(Config::in_metadata(file)?.and_then(|c| c.architecture))
}
