//! torchvision's EfficientNet B0–B7 and EfficientNetV2-S/M/L (`torchvision.models.efficientnet`),
//! under its key names: `features.0` the stem, `features.1 .. N−2` the stages of MBConv (SE with
//! SiLU and sigmoid) or FusedMBConv blocks, `features.N−1` the last 1×1 convolution, whose
//! BatchNorm is the FixRes head's, and `classifier.1` the Linear. Widths, depths, kernels and
//! block kinds come from the weights; the stage strides (not in the file) are torchvision's.

use burn::tensor::{Device, Tensor};

use super::head::{Activation, Head, TrunkOut};
use super::layers::{BatchNorm, Bias, BnConfig, Conv, ConvBnAct, Gate, Linear, Padding, SqueezeExcite};
use super::params::Params;
use super::weights::{WeightFile, WeightsError};
use super::{Architecture, Description, Recipe};
use crate::data::Interpolation;

/// One block: torchvision's `MBConv` or `FusedMBConv`.
#[derive(Clone, Debug)]
struct Block {
    /// The expansion (`MBConv`'s 1×1, `FusedMBConv`'s k×k strided), if the block expands.
    expand: Option<ConvBnAct>,
    /// `MBConv`'s depthwise convolution and squeeze-excitation.
    depthwise: Option<(ConvBnAct, SqueezeExcite)>,
    /// The projection (no activation), or for an unexpanded `FusedMBConv` its one k×k
    /// convolution (with SiLU).
    project: ConvBnAct,
    residual: bool,
}

impl Block {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut y = x.clone();
        if let Some(e) = &self.expand {
            y = e.forward(y);
        }
        if let Some((dw, se)) = &self.depthwise {
            y = se.forward(dw.forward(y));
        }
        y = self.project.forward(y);
        if self.residual { y + x } else { y }
    }
}

/// A torchvision EfficientNet.
#[derive(Debug)]
pub struct TvEfficientNet {
    stem: ConvBnAct,
    blocks: Vec<Block>,
    last_conv: Conv,
    head: Head,
    recipe: Recipe,
}

/// torchvision's `_make_divisible(v, 8)`.
fn make_divisible(v: f64) -> usize {
    let mut new_v = ((v + 4.0) as usize / 8 * 8).max(8);
    if (new_v as f64) < 0.9 * v {
        new_v += 8;
    }
    new_v
}

/// What identifies a variant in its weights: stem width, each stage's (output width, blocks)
/// and the last convolution's width.
type Signature = (usize, Vec<(usize, usize)>, usize);

/// torchvision's variants with the weights recipe of their ImageNet weights (crop, resize,
/// interpolation): B0–B7 from width and depth multipliers of B0's stages, V2 from its tables.
fn variants() -> Vec<(&'static str, Signature, (usize, usize, Interpolation))> {
    const B0: [(usize, usize); 7] = [(16, 1), (24, 2), (40, 2), (80, 3), (112, 3), (192, 4), (320, 1)];
    let bicubic = Interpolation::Bicubic;
    let b = |name, w: f64, d: f64, recipe| {
        let stages: Vec<(usize, usize)> = B0
            .iter()
            .map(|&(c, n)| (make_divisible(c as f64 * w), (n as f64 * d).ceil() as usize))
            .collect();
        let head = 4 * stages[6].0;
        (name, (make_divisible(32.0 * w), stages, head), recipe)
    };
    let v2 = |name, stem, stages: &[(usize, usize)], recipe| (name, (stem, stages.to_vec(), 1280), recipe);
    vec![
        b("efficientnet_b0", 1.0, 1.0, (224, 256, bicubic)),
        b("efficientnet_b1", 1.0, 1.1, (240, 256, bicubic)),
        b("efficientnet_b2", 1.1, 1.2, (288, 288, bicubic)),
        b("efficientnet_b3", 1.2, 1.4, (300, 320, bicubic)),
        b("efficientnet_b4", 1.4, 1.8, (380, 384, bicubic)),
        b("efficientnet_b5", 1.6, 2.2, (456, 456, bicubic)),
        b("efficientnet_b6", 1.8, 2.6, (528, 528, bicubic)),
        b("efficientnet_b7", 2.0, 3.1, (600, 600, bicubic)),
        v2(
            "efficientnet_v2_s",
            24,
            &[(24, 2), (48, 4), (64, 4), (128, 6), (160, 9), (256, 15)],
            (384, 384, Interpolation::Bilinear),
        ),
        v2(
            "efficientnet_v2_m",
            24,
            &[(24, 3), (48, 5), (80, 5), (160, 7), (176, 14), (304, 18), (512, 5)],
            (480, 480, Interpolation::Bilinear),
        ),
        v2(
            "efficientnet_v2_l",
            32,
            &[(32, 4), (64, 7), (96, 7), (192, 10), (224, 19), (384, 25), (640, 7)],
            (480, 480, bicubic),
        ),
    ]
}

/// The variant signature of the `n` `features` of a file, from its shapes (`None` where a
/// shape is missing: the loader then names the key).
fn signature(p: &Params, n: usize) -> Option<Signature> {
    let out = |key: String| p.shape(&key, 4).ok().map(|s| s[0]);
    let stem = out("features.0.0.weight".into())?;
    let mut stages = Vec::new();
    for s in 1..n - 1 {
        let mut j = 0usize;
        while p.has(&format!("features.{s}.{j}.block.0.0.weight")) {
            j += 1;
        }
        // The projection is the block's last Conv2dNormActivation.
        let last = j.checked_sub(1)?;
        let k = (0..4)
            .rev()
            .find(|k| p.has(&format!("features.{s}.{last}.block.{k}.0.weight")))?;
        stages.push((out(format!("features.{s}.{last}.block.{k}.0.weight"))?, j));
    }
    Some((stem, stages, out(format!("features.{}.0.weight", n - 1))?))
}

impl TvEfficientNet {
    fn load(file: &WeightFile, device: &Device) -> Result<(Self, Description), WeightsError> {
        let mut p = Params::new(file, "torchvision efficientnet", device);
        // features.0 is the stem; features.1 .. last−1 the stages; the last the 1×1 head conv.
        let mut n = 0;
        while p.has(&format!("features.{n}.0.weight")) || p.has(&format!("features.{n}.0.block.0.0.weight")) {
            n += 1;
        }
        if n < 3 {
            return Err(p.error("features.*: fewer than a stem, a stage and a last convolution".into()));
        }
        let stages = n - 2;
        let fused_any = (1..=stages).any(|s| {
            !p.has(&format!("features.{s}.0.block.1.fc1.weight"))
                && !p.has(&format!("features.{s}.0.block.2.fc1.weight"))
        });
        let found = signature(&p, n);
        let known = variants().into_iter().find(|(_, sig, _)| Some(sig) == found.as_ref());
        // torchvision's BatchNorms (not in the file): V2 (the variants with FusedMBConv) with
        // ε = 1e-3; B5–B7 with ε = 1e-3 and momentum 0.01; B0–B4 with PyTorch's defaults.
        let bn = match known.as_ref().map(|(name, ..)| *name) {
            Some("efficientnet_b5" | "efficientnet_b6" | "efficientnet_b7") => BnConfig {
                eps: 1e-3,
                momentum: 0.01,
            },
            _ if fused_any => BnConfig {
                eps: 1e-3,
                momentum: 0.1,
            },
            _ => BnConfig {
                eps: 1e-5,
                momentum: 0.1,
            },
        };
        // torchvision's stage strides: B0–B7 and V2-M/L have seven stages, V2-S six.
        let strides: &[usize] = match stages {
            7 => &[1, 2, 2, 2, 1, 2, 1],
            6 => &[1, 2, 2, 2, 1, 2],
            s => {
                return Err(p.error(format!(
                    "features.1..{}: {s} stages, but torchvision's EfficientNets have 6 or 7",
                    n - 2
                )));
            }
        };
        let silu = Activation::Silu;
        let stem = ConvBnAct::load(
            &mut p,
            "features.0.0",
            "features.0.1",
            3,
            2,
            Padding::Centered,
            bn,
            silu,
        )?;
        let mut channels = stem.out();
        let mut blocks = Vec::new();
        for (s, &stride) in strides.iter().enumerate() {
            let stage = s + 1;
            let mut j = 0;
            while p.has(&format!("features.{stage}.{j}.block.0.0.weight")) {
                let key = format!("features.{stage}.{j}.block");
                let stride = if j == 0 { stride } else { 1 };
                let cba = |p: &mut Params, i: usize, c: usize, stride: usize, act| {
                    ConvBnAct::load(
                        p,
                        &format!("{key}.{i}.0"),
                        &format!("{key}.{i}.1"),
                        c,
                        stride,
                        Padding::Centered,
                        bn,
                        act,
                    )
                };
                let input = channels;
                let se_at = [1, 2].into_iter().find(|i| p.has(&format!("{key}.{i}.fc1.weight")));
                let block = match se_at {
                    // MBConv: [expand 1×1,] depthwise, SE, project.
                    Some(se_at) => {
                        let expand = if se_at == 2 {
                            Some(cba(&mut p, 0, channels, 1, silu)?)
                        } else {
                            None
                        };
                        let c = expand.as_ref().map_or(channels, ConvBnAct::out);
                        let dw = cba(&mut p, se_at - 1, c, stride, silu)?;
                        dw.conv
                            .expect_depthwise(&p, &format!("{key}.{}.0.weight", se_at - 1), c)?;
                        let se = SqueezeExcite::load(
                            &mut p,
                            &format!("{key}.{se_at}.fc1"),
                            &format!("{key}.{se_at}.fc2"),
                            c,
                            silu,
                            Gate::Sigmoid,
                        )?;
                        let project = cba(&mut p, se_at + 1, c, 1, Activation::Identity)?;
                        Block {
                            expand,
                            depthwise: Some((dw, se)),
                            project,
                            residual: false,
                        }
                    }
                    // FusedMBConv: k×k strided [then project 1×1].
                    None if p.has(&format!("{key}.1.0.weight")) => {
                        let expand = cba(&mut p, 0, channels, stride, silu)?;
                        let project = cba(&mut p, 1, expand.out(), 1, Activation::Identity)?;
                        Block {
                            expand: Some(expand),
                            depthwise: None,
                            project,
                            residual: false,
                        }
                    }
                    None => {
                        let project = cba(&mut p, 0, channels, stride, silu)?;
                        Block {
                            expand: None,
                            depthwise: None,
                            project,
                            residual: false,
                        }
                    }
                };
                channels = block.project.out();
                blocks.push(Block {
                    residual: stride == 1 && input == channels,
                    ..block
                });
                j += 1;
            }
            if j == 0 {
                return Err(p.error(format!("features.{stage}: a stage without blocks")));
            }
        }
        let last = n - 1;
        let last_conv = Conv::load(
            &mut p,
            &format!("features.{last}.0"),
            channels,
            1,
            Padding::Centered,
            Bias::No,
        )?;
        let width = last_conv.out();
        let norm = BatchNorm::load(&mut p, &format!("features.{last}.1"), width, bn.eps, bn.momentum)?;
        let fc = Linear::load(&mut p, "classifier.1", width)?;
        let classes = fc.out();
        p.finish()?;
        let head = norm.into_head(&format!("features.{last}.1"), silu, fc.dense("classifier.1"));
        let arch = known.as_ref().map_or_else(
            || format!("efficientnet (torchvision, {} stages, {} blocks)", stages, blocks.len()),
            |(name, ..)| (*name).to_owned(),
        );
        // The recipe of torchvision's ImageNet weights for a recognised variant; else the default.
        // V2-L's weights (ported from TensorFlow) normalise with mean = std = 0.5.
        let recipe = known.map_or_else(Recipe::default, |(name, _, (crop, resize, interpolation))| {
            let half = name == "efficientnet_v2_l";
            Recipe {
                interpolation,
                crop_ratio: crop as f64 / resize as f64,
                mean: if half { [0.5; 3] } else { Recipe::default().mean },
                std: if half { [0.5; 3] } else { Recipe::default().std },
                crop_mode: crate::data::CropMode::Center,
            }
        });
        let description = Description {
            arch,
            features: width,
            classes,
        };
        Ok((
            Self {
                stem,
                blocks,
                last_conv,
                head,
                recipe,
            },
            description,
        ))
    }
}

impl Architecture for TvEfficientNet {
    fn family() -> &'static str {
        "a torchvision EfficientNet (B0–B7, V2)"
    }

    fn recognises(file: &WeightFile) -> bool {
        file.header.contains_key("features.0.0.weight")
            && file.header.contains_key("features.1.0.block.0.0.weight")
            && file.header.contains_key("classifier.1.weight")
    }

    fn markers() -> &'static [&'static str] {
        &[
            "features.0.0.weight",
            "features.1.0.block.0.0.weight",
            "classifier.1.weight",
        ]
    }

    fn from_weights(file: &WeightFile, device: &Device) -> Result<(Self, Description), WeightsError> {
        Self::load(file, device)
    }

    /// Up to the input of the last BatchNorm (`features.N−1.1`): the last 1×1 convolution's output.
    fn trunk(&self, x: Tensor<4>) -> TrunkOut {
        let x = self.blocks.iter().fold(self.stem.forward(x), |x, b| b.forward(x));
        TrunkOut {
            pre_bn: self.last_conv.forward(x),
            residual: None,
        }
    }

    fn head(&self) -> Head {
        self.head.clone()
    }

    fn recipe(&self) -> Recipe {
        self.recipe
    }
}
