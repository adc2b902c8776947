//! torchvision's MobileNetV2 and MobileNetV3-Large/Small (`torchvision.models.mobilenetv2` /
//! `mobilenetv3`), under its key names: `features.0` the stem, `features.1 .. N−2` the inverted
//! residual blocks, `features.N−1` the last 1×1 convolution (its BatchNorm is the FixRes head's),
//! and the classifier: V2's `classifier.1`, V3's MLP `classifier.0` → Hardswish →
//! `classifier.3` (`pooled` is its input). Widths, kernels, expansions and squeeze-excitations
//! come from the weights; strides and activations (not in the file) are torchvision's tables.

use burn::tensor::{Device, Tensor};

use super::head::{Activation, Head, TrunkOut};
use super::layers::{BatchNorm, Bias, BnConfig, Conv, ConvBnAct, Gate, Linear, Padding, SqueezeExcite};
use super::params::Params;
use super::weights::{WeightFile, WeightsError};
use super::{Architecture, Description};

/// An inverted residual block.
#[derive(Clone, Debug)]
struct Block {
    expand: Option<ConvBnAct>,
    depthwise: ConvBnAct,
    se: Option<SqueezeExcite>,
    project: ConvBnAct,
    residual: bool,
}

impl Block {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut y = x.clone();
        if let Some(e) = &self.expand {
            y = e.forward(y);
        }
        y = self.depthwise.forward(y);
        if let Some(se) = &self.se {
            y = se.forward(y);
        }
        y = self.project.forward(y);
        if self.residual { y + x } else { y }
    }
}

/// Which network: what torchvision's tables give beside the weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    V2,
    V3Large,
    V3Small,
}

impl Version {
    /// Per block: stride, and whether it uses Hardswish (else ReLU; V2: ReLU6).
    fn table(self) -> Vec<(usize, bool)> {
        match self {
            Self::V2 => {
                // [t, c, n, s] rows of torchvision's `inverted_residual_setting`.
                let rows = [(1, 1), (2, 2), (3, 2), (4, 2), (3, 1), (3, 2), (1, 1)];
                rows.iter()
                    .flat_map(|&(n, s)| (0..n).map(move |i| (if i == 0 { s } else { 1 }, false)))
                    .collect()
            }
            Self::V3Large => [1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1]
                .iter()
                .enumerate()
                .map(|(i, &s)| (s, i >= 6))
                .collect(),
            Self::V3Small => [2, 2, 1, 2, 1, 1, 1, 1, 2, 1, 1]
                .iter()
                .enumerate()
                .map(|(i, &s)| (s, i >= 3))
                .collect(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::V2 => "mobilenet_v2",
            Self::V3Large => "mobilenet_v3_large",
            Self::V3Small => "mobilenet_v3_small",
        }
    }
}

/// A torchvision MobileNet.
#[derive(Debug)]
pub struct TvMobileNet {
    stem: ConvBnAct,
    blocks: Vec<Block>,
    last_conv: Conv,
    head: Head,
}

impl TvMobileNet {
    fn load(file: &WeightFile, device: &Device) -> Result<(Self, Description), WeightsError> {
        let v2 = file.header.contains_key("features.1.conv.0.0.weight");
        let mut p = Params::new(file, "torchvision mobilenet", device);
        let mut n = 1;
        let block_key = |i: usize| {
            if v2 {
                format!("features.{i}.conv")
            } else {
                format!("features.{i}.block")
            }
        };
        while p.has(&format!("{}.0.0.weight", block_key(n))) {
            n += 1;
        }
        let blocks_n = n - 1;
        let version = match (v2, blocks_n) {
            (true, 17) => Version::V2,
            (false, 15) => Version::V3Large,
            (false, 11) => Version::V3Small,
            (_, b) => {
                return Err(p.error(format!(
                    "features.1..{b}: {b} blocks; torchvision's MobileNetV2 has 17, V3-Large 15, V3-Small 11"
                )));
            }
        };
        p.arch = format!("torchvision {}", version.name());
        // torchvision: MobileNetV2 with PyTorch's BatchNorm defaults, V3 with ε 1e-3, momentum 0.01.
        let bn = if v2 {
            BnConfig {
                eps: 1e-5,
                momentum: 0.1,
            }
        } else {
            BnConfig {
                eps: 1e-3,
                momentum: 0.01,
            }
        };
        let stem_act = if v2 { Activation::Relu6 } else { Activation::Hardswish };
        let stem = ConvBnAct::load(
            &mut p,
            "features.0.0",
            "features.0.1",
            3,
            2,
            Padding::Centered,
            bn,
            stem_act,
        )?;
        let mut channels = stem.out();
        let mut blocks = Vec::with_capacity(blocks_n);
        for (i, (stride, hs)) in version.table().into_iter().enumerate() {
            let key = block_key(i + 1);
            let act = match (v2, hs) {
                (true, _) => Activation::Relu6,
                (false, true) => Activation::Hardswish,
                (false, false) => Activation::Relu,
            };
            let cba = |p: &mut Params, k: usize, c: usize, stride: usize, act| {
                ConvBnAct::load(
                    p,
                    &format!("{key}.{k}.0"),
                    &format!("{key}.{k}.1"),
                    c,
                    stride,
                    Padding::Centered,
                    bn,
                    act,
                )
            };
            // Sub-layers in order: [expand,] depthwise, [SE,] project.
            let expands = {
                let first = p.shape(&format!("{key}.0.0.weight"), 4)?;
                // A depthwise first layer has one input channel per group.
                !(first[1] == 1 && first[0] == channels && first[2] > 1)
            };
            let input = channels;
            let expand = if expands {
                Some(cba(&mut p, 0, channels, 1, act)?)
            } else {
                None
            };
            let mut k = usize::from(expands);
            let c = expand.as_ref().map_or(channels, ConvBnAct::out);
            let depthwise = cba(&mut p, k, c, stride, act)?;
            depthwise.conv.expect_depthwise(&p, &format!("{key}.{k}.0.weight"), c)?;
            k += 1;
            let se = if p.has(&format!("{key}.{k}.fc1.weight")) {
                let se = SqueezeExcite::load(
                    &mut p,
                    &format!("{key}.{k}.fc1"),
                    &format!("{key}.{k}.fc2"),
                    c,
                    Activation::Relu,
                    Gate::HardSigmoid,
                )?;
                k += 1;
                Some(se)
            } else {
                None
            };
            let project = if v2 {
                // V2's projection is a bare Conv2d and BatchNorm: `conv.k`, `conv.k+1`.
                let conv = Conv::load(&mut p, &format!("{key}.{k}"), c, 1, Padding::Centered, Bias::No)?;
                let norm = BatchNorm::load(&mut p, &format!("{key}.{}", k + 1), conv.out(), bn.eps, bn.momentum)?;
                ConvBnAct {
                    conv: conv.fold(&norm),
                    act: Activation::Identity,
                }
            } else {
                cba(&mut p, k, c, 1, Activation::Identity)?
            };
            channels = project.out();
            blocks.push(Block {
                expand,
                depthwise,
                se,
                project,
                residual: stride == 1 && input == channels,
            });
        }
        let last = n;
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
        let (hidden, classifier) = if v2 {
            (
                Vec::new(),
                Linear::load(&mut p, "classifier.1", width)?.dense("classifier.1"),
            )
        } else {
            let fc0 = Linear::load(&mut p, "classifier.0", width)?;
            let fc3 = Linear::load(&mut p, "classifier.3", fc0.out())?;
            (vec![fc0.dense("classifier.0")], fc3.dense("classifier.3"))
        };
        p.finish()?;
        let classes = classifier.weight.dims()[0];
        let head = Head {
            hidden,
            hidden_activation: Activation::Hardswish,
            ..norm.into_head(&format!("features.{last}.1"), stem_act, classifier)
        };
        let description = Description {
            arch: version.name().into(),
            features: width,
            classes,
        };
        Ok((
            Self {
                stem,
                blocks,
                last_conv,
                head,
            },
            description,
        ))
    }
}

impl Architecture for TvMobileNet {
    fn family() -> &'static str {
        "a torchvision MobileNet (V2, V3-Large/Small)"
    }

    fn recognises(file: &WeightFile) -> bool {
        let h = &file.header;
        h.contains_key("features.0.0.weight")
            && (h.contains_key("features.1.conv.0.0.weight") || h.contains_key("features.1.block.0.0.weight"))
    }

    fn markers() -> &'static [&'static str] {
        &[
            "features.0.0.weight",
            "features.1.conv.0.0.weight",
            "features.1.block.0.0.weight",
            "classifier.1.weight",
        ]
    }

    fn from_weights(file: &WeightFile, device: &Device) -> Result<(Self, Description), WeightsError> {
        Self::load(file, device)
    }

    /// Up to the input of the last BatchNorm: the last 1×1 convolution's output.
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
}
