//! Image classifiers in Burn with torchvision's module trees and key names, so torchvision
//! weights load as they are; every model gives the pooled features (the classifier's input) and
//! the logits.

pub mod efficientnet;
pub mod resnet;
pub mod weights;

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;

use crate::data::transforms::{IMAGENET_MEAN, IMAGENET_STD, to_tensor_normalized};
use crate::data::{Interpolation, RgbImage};
use resnet::ResNet;
use weights::{WeightFile, WeightsError};

/// The networks this tool runs.
#[derive(Debug)]
pub enum Network {
    /// torchvision ResNet.
    ResNet(Box<ResNet>),
    /// EfficientNet-Lite (efficientnet-lite-pytorch layout).
    EfficientNetLite(Box<efficientnet::EfficientNetLite>),
}

impl Network {
    /// The frozen trunk of the FixRes fine-tune.
    #[must_use]
    pub fn trunk(&self, x: Tensor<4>) -> crate::finetune::TrunkOut {
        match self {
            Self::ResNet(n) => n.trunk(x),
            Self::EfficientNetLite(n) => n.trunk(x),
        }
    }

    /// The trainable head of the FixRes fine-tune.
    #[must_use]
    pub fn head(&self) -> crate::finetune::Head {
        match self {
            Self::ResNet(n) => n.head(),
            Self::EfficientNetLite(n) => n.head(),
        }
    }

    /// `[batch, 3, K, K]` normalised images → pooled features and logits.
    #[must_use]
    pub fn forward(&self, x: Tensor<4>) -> Forward {
        match self {
            Self::ResNet(n) => n.forward(x),
            Self::EfficientNetLite(n) => n.forward(x),
        }
    }
}

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
}

impl Default for Recipe {
    /// torchvision's ImageNet recipe.
    fn default() -> Self {
        Self {
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            interpolation: Interpolation::Bilinear,
            crop_ratio: 0.875,
        }
    }
}

/// A loaded classifier and what is known about it.
#[derive(Debug)]
pub struct Model {
    /// The network.
    pub net: Network,
    /// Architecture name, e.g. "resnet50".
    pub arch: String,
    /// Width of the pooled features.
    pub features: usize,
    /// Number of outputs.
    pub classes: usize,
    /// Class names, when the file's metadata has them (key `classes`, a JSON list).
    pub class_names: Option<Vec<String>>,
    /// Preprocessing.
    pub recipe: Recipe,
    /// Problems that did not stop the load (NaN or infinite weights), for the user to see.
    pub warnings: Vec<String>,
}

impl Model {
    /// Loads a state_dict (safetensors, or a PyTorch checkpoint), working out the architecture
    /// from its keys and shapes.
    pub fn load(path: &Path, device: &Device) -> Result<Self, WeightsError> {
        Self::from_file(&WeightFile::open(path)?, device)
    }

    /// Loads a weights file already read.
    pub fn from_file(file: &WeightFile, device: &Device) -> Result<Self, WeightsError> {
        let path = &file.path;
        let names = |classes: usize| {
            file.metadata
                .get("classes")
                .and_then(|c| serde_json::from_str::<Vec<String>>(c).ok())
                .filter(|names| names.len() == classes)
        };
        let (net, arch, features, classes) = if file.header.contains_key("layer1.0.conv1.weight") {
            let (net, shape) = ResNet::from_file(file, device)?;
            // A name the file gives (e.g. "resnet-tiny" from `fixres train`) beats one guessed
            // from the block counts.
            let name = file.metadata.get("arch").cloned().unwrap_or_else(|| shape.name());
            (Network::ResNet(Box::new(net)), name, shape.features, shape.classes)
        } else if file.header.contains_key("_conv_stem.weight") {
            let (net, shape) = efficientnet::EfficientNetLite::from_file(file, device)?;
            (
                Network::EfficientNetLite(Box::new(net)),
                shape.name(),
                shape.features,
                shape.classes,
            )
        } else {
            return Err(WeightsError::UnknownArchitecture {
                path: path.to_owned(),
                reason:
                    "no known architecture matches these keys (expected a torchvision ResNet or an EfficientNet-Lite)"
                        .into(),
            });
        };
        // Both use torchvision's ImageNet recipe; for EfficientNet-Lite it is what
        // efficientnet-lite-pytorch's own example does (ImageNet mean/std, bilinear), with TF
        // EfficientNet's eval crop of 224/256.
        let warnings = file
            .non_finite_tensors()?
            .into_iter()
            .map(|(key, n)| format!("{}: {key} holds {n} NaN or infinite value(s)", path.display()))
            .collect();
        Ok(Self {
            net,
            arch,
            features,
            classes,
            class_names: names(classes),
            recipe: Recipe::default(),
            warnings,
        })
    }
}

/// What a forward pass returns.
#[derive(Debug, Clone)]
pub struct Forward {
    /// Globally average-pooled activations after the last ReLU: `[batch, features]`.
    pub pooled: Tensor<2>,
    /// Classifier output: `[batch, classes]`.
    pub logits: Tensor<2>,
}

/// A batch of same-sized images → the normalised `[batch, 3, K, K]` input tensor.
///
/// # Panics
/// If the images are not all square of the same side.
#[must_use]
pub fn input_batch(images: &[RgbImage], mean: [f32; 3], std: [f32; 3], device: &Device) -> Tensor<4> {
    let k = images.first().map_or(0, RgbImage::width);
    assert!(
        images.iter().all(|i| i.width() == k && i.height() == k),
        "a batch holds K×K images of one K"
    );
    let mut values = Vec::with_capacity(images.len() * 3 * k * k);
    for img in images {
        values.extend(to_tensor_normalized(img, mean, std));
    }
    Tensor::from_data(TensorData::new(values, [images.len(), 3, k, k]), device)
}

/// Rows of a `[batch, n]` tensor as vectors.
pub fn rows(t: &Tensor<2>) -> anyhow::Result<Vec<Vec<f32>>> {
    let [_, n] = t.dims();
    let data = t
        .to_data()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("reading tensor: {e:?}"))?;
    Ok(data.chunks(n.max(1)).map(<[f32]>::to_vec).collect())
}
