//! ConvNeXt (no BatchNorm: LayerNorm and layer scale) under both libraries' key names:
//! torchvision's (`features.0` stem, `features.{1,3,5,7}` stages of `CNBlock`s with `block.0`
//! depthwise 7×7, `block.2` LayerNorm, `block.3`/`block.5` the MLP and `layer_scale`,
//! `features.{2,4,6}` downsampling, `classifier.0` LayerNorm2d + `classifier.2` Linear) and
//! timm's (`stem`, `stages.i.downsample`, `stages.i.blocks.j.{conv_dw, norm, mlp.fc1, mlp.fc2,
//! gamma}`, `head.norm`, `head.fc`). Widths and depths come from the weights. The FixRes head
//! is the LayerNorm of the pooled features and the Linear: its affine trains, it has no
//! statistics.

use burn::tensor::{Device, Tensor};

use super::head::{Activation, Head, TrunkOut};
use super::layers::{Bias, Conv, LayerNorm, Linear, Padding};
use super::params::Params;
use super::weights::{WeightFile, WeightsError};
use super::{Architecture, Description, Recipe};

/// Both libraries' ConvNeXt LayerNorms use ε = 1e-6.
const EPS: f64 = 1e-6;

/// Which library's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Library {
    Torchvision,
    Timm,
}

/// The key names of one library.
impl Library {
    fn stem(self) -> (&'static str, &'static str) {
        match self {
            Self::Torchvision => ("features.0.0", "features.0.1"),
            Self::Timm => ("stem.0", "stem.1"),
        }
    }

    /// Stage `i`'s (LayerNorm, conv) downsampling before its blocks (stages 1..).
    fn downsample(self, i: usize) -> (String, String) {
        match self {
            Self::Torchvision => (format!("features.{}.0", 2 * i), format!("features.{}.1", 2 * i)),
            Self::Timm => (format!("stages.{i}.downsample.0"), format!("stages.{i}.downsample.1")),
        }
    }

    /// Block `j` of stage `i`: depthwise conv, LayerNorm, fc1, fc2, layer scale.
    fn block(self, i: usize, j: usize) -> [String; 5] {
        match self {
            Self::Torchvision => {
                let b = format!("features.{}.{j}", 2 * i + 1);
                [
                    format!("{b}.block.0"),
                    format!("{b}.block.2"),
                    format!("{b}.block.3"),
                    format!("{b}.block.5"),
                    format!("{b}.layer_scale"),
                ]
            }
            Self::Timm => {
                let b = format!("stages.{i}.blocks.{j}");
                [
                    format!("{b}.conv_dw"),
                    format!("{b}.norm"),
                    format!("{b}.mlp.fc1"),
                    format!("{b}.mlp.fc2"),
                    format!("{b}.gamma"),
                ]
            }
        }
    }

    fn head(self) -> (&'static str, &'static str) {
        match self {
            Self::Torchvision => ("classifier.0", "classifier.2"),
            Self::Timm => ("head.norm", "head.fc"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Torchvision => "torchvision",
            Self::Timm => "timm",
        }
    }
}

#[derive(Clone, Debug)]
struct Block {
    dw: Conv,
    norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    /// Layer scale, `[C]`.
    scale: Tensor<1>,
}

impl Block {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, c, _, _] = x.dims();
        // Channels last for the LayerNorm and the MLP, as both libraries.
        let y = self.dw.forward(x.clone()).permute([0, 2, 3, 1]);
        let y = self
            .fc2
            .forward(Activation::Gelu.apply(self.fc1.forward(self.norm.forward(y))));
        let y = y.permute([0, 3, 1, 2]) * self.scale.clone().reshape([1, c, 1, 1]);
        y + x
    }
}

#[derive(Clone, Debug)]
struct Stage {
    downsample: Option<(LayerNorm, Conv)>,
    blocks: Vec<Block>,
}

/// A ConvNeXt of either library.
#[derive(Debug)]
pub struct ConvNeXt {
    library: Library,
    recipe: Recipe,
    stem: (Conv, LayerNorm),
    stages: Vec<Stage>,
    head: Head,
}

impl ConvNeXt {
    fn load(file: &WeightFile, device: &Device) -> Result<(Self, Description), WeightsError> {
        let lib = if file.header.contains_key("stem.0.weight") {
            Library::Timm
        } else {
            Library::Torchvision
        };
        let mut p = Params::new(file, &format!("{} convnext", lib.name()), device);
        let (stem_conv, stem_norm) = lib.stem();
        let conv = Conv::load(&mut p, stem_conv, 3, 4, Padding::Zero, Bias::Yes)?;
        let mut channels = conv.out();
        let stem = (conv, LayerNorm::load(&mut p, stem_norm, channels, EPS)?);
        let mut stages = Vec::new();
        let mut depths = Vec::new();
        for i in 0.. {
            let downsample = if i == 0 {
                None
            } else {
                let (norm, conv) = lib.downsample(i);
                if !p.has(&format!("{conv}.weight")) {
                    break;
                }
                let norm = LayerNorm::load(&mut p, &norm, channels, EPS)?;
                let conv = Conv::load(&mut p, &conv, channels, 2, Padding::Zero, Bias::Yes)?;
                channels = conv.out();
                Some((norm, conv))
            };
            let mut blocks = Vec::new();
            loop {
                let [dw_key, norm, fc1, fc2, scale] = lib.block(i, blocks.len());
                if !p.has(&format!("{dw_key}.weight")) {
                    break;
                }
                let dw = Conv::load(&mut p, &dw_key, channels, 1, Padding::Centered, Bias::Yes)?;
                dw.expect_depthwise(&p, &format!("{dw_key}.weight"), channels)?;
                let norm = LayerNorm::load(&mut p, &norm, channels, EPS)?;
                let fc1 = Linear::load(&mut p, &fc1, channels)?;
                let fc2_key = fc2;
                let fc2 = Linear::load(&mut p, &fc2_key, fc1.out())?;
                if fc2.out() != channels {
                    return Err(p.error(format!(
                        "{fc2_key}.weight: gives {} channels in a stage of {channels}",
                        fc2.out()
                    )));
                }
                let scale = match lib {
                    // torchvision keeps the layer scale as [C, 1, 1].
                    Library::Torchvision => p.tensor::<3>(&scale, [channels, 1, 1])?.reshape([channels]),
                    Library::Timm => p.tensor(&scale, [channels])?,
                };
                blocks.push(Block {
                    dw,
                    norm,
                    fc1,
                    fc2,
                    scale,
                });
            }
            if blocks.is_empty() {
                return Err(p.error(format!("{}: stage {i} has no blocks", lib.block(i, 0)[0])));
            }
            depths.push(blocks.len());
            stages.push(Stage { downsample, blocks });
        }
        let (norm_key, fc_key) = lib.head();
        let norm = LayerNorm::load(&mut p, norm_key, channels, EPS)?;
        let fc = Linear::load(&mut p, fc_key, channels)?;
        let classes = fc.out();
        p.finish()?;
        let head = norm.into_head(norm_key, fc.dense(fc_key));
        let widths: Vec<usize> = stages.iter().map(|s| s.blocks[0].dw.out()).collect();
        let arch = match (depths.as_slice(), widths.as_slice()) {
            ([3, 3, 9, 3], [96, 192, 384, 768]) => "convnext_tiny".to_owned(),
            ([3, 3, 27, 3], [96, 192, 384, 768]) => "convnext_small".to_owned(),
            ([3, 3, 27, 3], [128, 256, 512, 1024]) => "convnext_base".to_owned(),
            ([3, 3, 27, 3], [192, 384, 768, 1536]) => "convnext_large".to_owned(),
            _ => format!("convnext (depths {depths:?}, widths {widths:?})"),
        };
        // torchvision's ImageNet weights: bilinear, crop 224 of resize 236 (T), 230 (S), 232 (B, L);
        // timm's default: bicubic, 0.875 (a `config.json` says more).
        let recipe = match lib {
            Library::Torchvision => {
                let resize = match arch.as_str() {
                    "convnext_tiny" => 236.0,
                    "convnext_small" => 230.0,
                    _ => 232.0,
                };
                Recipe {
                    crop_ratio: 224.0 / resize,
                    ..Recipe::default()
                }
            }
            Library::Timm => Recipe {
                interpolation: crate::data::Interpolation::Bicubic,
                ..Recipe::default()
            },
        };
        Ok((
            Self {
                library: lib,
                recipe,
                stem,
                stages,
                head,
            },
            Description {
                arch,
                features: channels,
                classes,
            },
        ))
    }
}

impl Architecture for ConvNeXt {
    fn family() -> &'static str {
        "a ConvNeXt (torchvision or timm)"
    }

    fn recognises(file: &WeightFile) -> bool {
        let h = &file.header;
        h.contains_key("features.1.0.layer_scale")
            || (h.contains_key("stages.0.blocks.0.conv_dw.weight") && h.contains_key("stem.0.weight"))
    }

    fn markers() -> &'static [&'static str] {
        &[
            "stem.0.weight",
            "stages.0.blocks.0.conv_dw.weight",
            "head.norm.weight",
            "head.fc.weight",
            "features.1.0.layer_scale",
        ]
    }

    fn from_weights(file: &WeightFile, device: &Device) -> Result<(Self, Description), WeightsError> {
        Self::load(file, device)
    }

    /// Up to the head's LayerNorm: the pooled features, `[batch, C, 1, 1]`.
    fn trunk(&self, x: Tensor<4>) -> TrunkOut {
        let (conv, norm) = &self.stem;
        let mut x = norm.forward_2d(conv.forward(x));
        for stage in &self.stages {
            if let Some((norm, conv)) = &stage.downsample {
                x = conv.forward(norm.forward_2d(x));
            }
            x = stage.blocks.iter().fold(x, |x, b| b.forward(x));
        }
        TrunkOut {
            pre_bn: x.mean_dim(2).mean_dim(3),
            residual: None,
        }
    }

    fn head(&self) -> Head {
        self.head.clone()
    }

    fn library(&self) -> &'static str {
        self.library.name()
    }

    fn recipe(&self) -> Recipe {
        self.recipe
    }
}
