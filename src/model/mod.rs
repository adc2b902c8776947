//! Image classifiers in Burn with the module trees and key names of the libraries that wrote their
//! weights (torchvision, timm, efficientnet-lite-pytorch), so their state_dicts load as they are;
//! every model gives the pooled features (the classifier's input) and the logits.

pub mod burn_modules;
pub mod convnext;
pub mod cost;
pub mod cpu_conv;
pub mod efficientnet;
pub mod end_to_end;
pub mod export;
pub mod fast_math;
pub mod head;
pub mod imagenet;
pub mod layers;
pub mod params;
pub mod recipe;
pub mod regnet;
pub mod resnet;
pub mod timm_efficientnet;
pub mod tv_efficientnet;
pub mod tv_mobilenet;
pub mod vit;
pub mod weights;

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};

use crate::data::RgbImage;
use crate::data::transforms::to_tensor_normalized;
use convnext::ConvNeXt;
use efficientnet::FoldedLite;
use head::{Head, TrunkOut};
use recipe::Config;
pub use recipe::Recipe;
use regnet::RegNet;
use resnet::FoldedResNet;
use timm_efficientnet::TimmEfficientNet;
use tv_efficientnet::TvEfficientNet;
use tv_mobilenet::TvMobileNet;
use vit::VisionTransformer;
use weights::{WeightFile, WeightsError};

/// An architecture family: how its weights are recognised and loaded, and what the rest of the
/// tool asks of a loaded network (the forward pass, and the trunk / head split of the FixRes
/// fine-tune). A family is one file (or folder) implementing this, plus one line in `FAMILIES`;
/// nothing else matches on architectures.
pub trait Architecture: std::fmt::Debug + Send + Sync {
    /// How the "no known architecture" message names the family ("a torchvision ResNet").
    fn family() -> &'static str
    where
        Self: Sized;

    /// Whether the file's keys are this family's: a cheap look at the header that picks the
    /// loader (`from_weights` then checks everything and gives the precise error).
    fn recognises(file: &WeightFile) -> bool
    where
        Self: Sized;

    /// Keys every file of the family has (as many as tell it apart): how the message for a
    /// file no family recognises finds the closest one.
    fn markers() -> &'static [&'static str]
    where
        Self: Sized;

    /// Builds the network the file describes and loads its weights, strictly.
    fn from_weights(file: &WeightFile, device: &Device) -> Result<(Self, Description), WeightsError>
    where
        Self: Sized;

    /// `[batch, 3, K, K]` normalised images → pooled features and logits: by default the head
    /// (in eval mode) after the trunk.
    fn forward(&self, x: Tensor<4>) -> Forward {
        self.head().forward(&self.trunk(x))
    }

    /// The frozen part of the FixRes fine-tune: everything up to the input of the last
    /// normalisation (a BatchNorm before pooling, or the LayerNorm of the pooled features or
    /// class tokens), and the residual added after it, if any.
    fn trunk(&self, x: Tensor<4>) -> TrunkOut;

    /// The trainable part of the FixRes fine-tune: that normalisation and the classifier, whose
    /// `infer` after `trunk` is `forward`'s logits.
    fn head(&self) -> Head;

    /// How the network wants its images: torchvision's ImageNet recipe unless the family says
    /// otherwise (a config beside the weights overrides it, `Model::from_file`).
    fn recipe(&self) -> Recipe {
        Recipe::default()
    }

    /// The library whose module tree and key names the weights have.
    fn library(&self) -> &'static str {
        "torchvision"
    }

    /// Whether the whole network can train (`model::end_to_end`), not only its head.
    fn trains_end_to_end(&self) -> bool {
        false
    }
}

/// What a family's loader read off the weights, for `Model`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Description {
    /// Architecture name, e.g. "resnet50".
    pub arch: String,
    /// Width of the pooled features.
    pub features: usize,
    /// Number of outputs.
    pub classes: usize,
}

/// A network of any family, and what its loader read off the weights.
type Loaded = (Box<dyn Architecture>, Description);

/// One entry of `FAMILIES`: a family's loader side as plain functions, so that families of
/// different types sit in one list.
struct Family {
    name: fn() -> &'static str,
    recognises: fn(&WeightFile) -> bool,
    markers: fn() -> &'static [&'static str],
    load: fn(&WeightFile, &Device) -> Result<Loaded, WeightsError>,
}

impl Family {
    const fn of<A: Architecture + 'static>() -> Self {
        Self {
            name: A::family,
            recognises: A::recognises,
            markers: A::markers,
            load: load_boxed::<A>,
        }
    }
}

fn load_boxed<A: Architecture + 'static>(file: &WeightFile, device: &Device) -> Result<Loaded, WeightsError> {
    let (net, description) = A::from_weights(file, device)?;
    Ok((Box::new(net), description))
}

/// The families `Model::from_file` tries, in order: the first that recognises a file loads it.
const FAMILIES: [Family; 8] = [
    Family::of::<FoldedResNet>(),
    Family::of::<FoldedLite>(),
    Family::of::<TvEfficientNet>(),
    Family::of::<TvMobileNet>(),
    Family::of::<RegNet>(),
    Family::of::<ConvNeXt>(),
    Family::of::<VisionTransformer>(),
    Family::of::<TimmEfficientNet>(),
];

/// "a, b or c": the families named in the "no known architecture" message.
fn family_list() -> String {
    let names: Vec<&str> = FAMILIES.iter().map(|f| (f.name)()).collect();
    match names.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// "; closest: F (has k, lacks m)" for the family with the largest share of its marker keys in
/// `file`, or nothing when it shares none.
fn closest_family(file: &WeightFile) -> String {
    let score = |f: &Family| {
        let markers = (f.markers)();
        let (has, lacks): (Vec<&str>, Vec<&str>) = markers.iter().partition(|k| file.header.contains_key(**k));
        (has.len() as f64 / markers.len().max(1) as f64, has, lacks)
    };
    let best = FAMILIES
        .iter()
        .map(|f| (f, score(f)))
        .filter(|(_, (s, ..))| *s > 0.0)
        .max_by(|a, b| a.1.0.total_cmp(&b.1.0));
    match best {
        Some((f, (_, has, lacks))) => format!(
            "; closest by its keys: {} (has {}; lacks {})",
            (f.name)(),
            has.join(", "),
            lacks.join(", ")
        ),
        None => String::new(),
    }
}

/// A loaded classifier and what is known about it.
#[derive(Debug)]
pub struct Model {
    /// The network.
    pub net: Box<dyn Architecture>,
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
    /// Where the recipe came from: the family's default, or the config file beside the weights.
    pub recipe_source: String,
    /// The library whose names the weights have ("torchvision", "timm").
    pub library: &'static str,
    /// Problems that did not stop the load (NaN or infinite weights, entries of a PyTorch
    /// checkpoint that are not tensors), for the user to see.
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
        let family =
            FAMILIES
                .iter()
                .find(|f| (f.recognises)(file))
                .ok_or_else(|| WeightsError::UnknownArchitecture {
                    path: path.to_owned(),
                    reason: format!(
                        "no known architecture matches these keys (expected {}){}",
                        family_list(),
                        closest_family(file)
                    ),
                })?;
        let (net, found) = (family.load)(file, device)?;
        let mut warnings: Vec<String> = file
            .non_finite_tensors()?
            .into_iter()
            .map(|(key, n)| format!("{}: {key} holds {n} NaN or infinite value(s)", path.display()))
            .collect();
        warnings.extend(file.skipped.iter().map(|s| format!("{}: {s}", path.display())));
        // A config beside the weights, else one in their metadata, else the family's default.
        let (recipe, recipe_source) = match (Config::beside(path)?, Config::in_metadata(file)?) {
            (Some(config), _) => (config.apply(net.recipe()), config.path.display().to_string()),
            (None, Some(config)) => (
                config.apply(net.recipe()),
                format!("{} (metadata pretrained_cfg)", path.display()),
            ),
            (None, None) => (net.recipe(), format!("{}'s default", net.library())),
        };
        Ok(Self {
            library: net.library(),
            recipe_source,
            net,
            class_names: names(found.classes),
            arch: found.arch,
            features: found.features,
            classes: found.classes,
            recipe,
            warnings,
        })
    }
}

/// What a forward pass returns.
#[derive(Debug, Clone)]
pub struct Forward {
    /// The classifier's input: globally average-pooled activations after the last norm's
    /// activation (ViT: the final-normed class token; DeiT: the mean of its two tokens):
    /// `[batch, features]`.
    pub pooled: Tensor<2>,
    /// Classifier output: `[batch, classes]`.
    pub logits: Tensor<2>,
}

/// A batch of same-sized images → the normalised `[batch, 3, K, K]` input tensor.
///
/// # Panics
/// If the images are not all square of the same side.
#[must_use]
pub fn input_batch<'a>(
    images: impl IntoIterator<Item = &'a RgbImage>,
    mean: [f32; 3],
    std: [f32; 3],
    device: &Device,
) -> Tensor<4> {
    let mut images = images.into_iter().peekable();
    let k = images.peek().map_or(0, |i| i.width());
    let (mut values, mut n) = (Vec::with_capacity(images.size_hint().0 * 3 * k * k), 0);
    for img in images {
        assert!(
            img.width() == k && img.height() == k,
            "a batch holds K×K images of one K"
        );
        values.extend(to_tensor_normalized(img, mean, std));
        n += 1;
    }
    Tensor::from_data(TensorData::new(values, [n, 3, k, k]), device)
}

/// Every value of a tensor as f32, in order (empty if it does not hold f32: the networks and
/// heads here hold nothing else).
#[must_use]
pub fn values<const D: usize>(t: &Tensor<D>) -> Vec<f32> {
    t.to_data().try_to_vec::<f32>().unwrap_or_default()
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
