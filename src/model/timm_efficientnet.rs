//! timm's EfficientNet family (`timm.models.efficientnet`: `efficientnet_b*`, `efficientnet_lite*`,
//! their `tf_` ports) and MobileNetV3 (`timm.models.mobilenetv3`: `mobilenetv3_large_100`, ...),
//! built by timm's `_efficientnet_builder` under its key names: `conv_stem`/`bn1`, `blocks.i.j`
//! (DepthwiseSeparableConv `conv_dw`/`bn1`/`se`/`conv_pw`/`bn2`; InvertedResidual
//! `conv_pw`/`bn1`/`conv_dw`/`bn2`/`se`/`conv_pwl`/`bn3`; ConvBnAct `conv`/`bn1`), then
//! EfficientNet's `conv_head`/`bn2`/`classifier` or MobileNetV3's pooled `conv_head` (a 1×1
//! convolution with bias, after pooling) and `classifier`. Widths, kernels, expansions and SE
//! come from the weights; stage strides and activations are timm's architecture strings. The
//! `tf_` ports (TensorFlow "same" padding, BatchNorm ε 1e-3) are told by the architecture name in
//! the file's metadata or its `config.json` (the weights are laid out alike).

use burn::tensor::{Device, Tensor};

use super::head::{Activation, Dense, Head, TrunkOut};
use super::layers::{BatchNorm, Bias, BnConfig, Conv, ConvBnAct, Gate, Linear, Padding, SqueezeExcite};
use super::params::Params;
use super::recipe::architecture_name;
use super::weights::{WeightFile, WeightsError};
use super::{Architecture, Description, Recipe};
use crate::data::Interpolation;

/// One block of timm's builder.
#[derive(Clone, Debug)]
struct Block {
    /// InvertedResidual's `conv_pw` + `bn1`.
    expand: Option<ConvBnAct>,
    /// The depthwise convolution (or ConvBnAct's one convolution).
    conv: ConvBnAct,
    se: Option<SqueezeExcite>,
    /// The pointwise projection (no activation), absent in a ConvBnAct block.
    project: Option<ConvBnAct>,
    residual: bool,
}

impl Block {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut y = x.clone();
        if let Some(e) = &self.expand {
            y = e.forward(y);
        }
        y = self.conv.forward(y);
        if let Some(se) = &self.se {
            y = se.forward(y);
        }
        if let Some(p) = &self.project {
            y = p.forward(y);
        }
        if self.residual { y + x } else { y }
    }
}

/// Which network of the family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    EfficientNet,
    Lite,
    MobileNetV3Large,
    MobileNetV3Small,
}

/// A timm EfficientNet or MobileNetV3.
#[derive(Debug)]
pub struct TimmEfficientNet {
    stem: ConvBnAct,
    blocks: Vec<Block>,
    /// EfficientNet's `conv_head` (before the head's BatchNorm `bn2`); MobileNetV3 has none
    /// here: its last block's convolution feeds the head.
    conv_head: Option<Conv>,
    /// MobileNetV3: the last block, whose BatchNorm is the head's (`blocks.N.0.bn1`).
    last_conv: Option<Conv>,
    head: Head,
    recipe: Recipe,
}

impl TimmEfficientNet {
    fn load(file: &WeightFile, device: &Device) -> Result<(Self, Description), WeightsError> {
        let name = architecture_name(file)?;
        let tf = name.as_deref().is_some_and(|n| n.starts_with("tf_"));
        let mobilenet = !file.header.contains_key("bn2.weight");
        let mut p = Params::new(
            file,
            if mobilenet {
                "timm mobilenetv3"
            } else {
                "timm efficientnet"
            },
            device,
        );
        let padding = if tf { Padding::Same } else { Padding::Centered };
        // timm's `tf_` ports change only the BatchNorm ε (TensorFlow's 1e-3).
        let bn = BnConfig {
            eps: if tf { 1e-3 } else { 1e-5 },
            momentum: 0.1,
        };
        let mut stages = 0;
        while p.has(&format!("blocks.{stages}.0.bn1.weight")) {
            stages += 1;
        }
        let se_any = (0..stages).any(|s| p.has(&format!("blocks.{s}.0.se.conv_reduce.weight")));
        let kind = match (mobilenet, stages, se_any) {
            (false, 7, true) => Kind::EfficientNet,
            (false, 7, false) => Kind::Lite,
            (true, 7, _) => Kind::MobileNetV3Large,
            (true, 6, _) => Kind::MobileNetV3Small,
            (_, s, _) => {
                return Err(p.error(format!(
                    "blocks.0..{s}: {s} stages; timm's EfficientNets and MobileNetV3-Large have 7, MobileNetV3-Small 6"
                )));
            }
        };
        // timm's architecture strings: stage strides, and the activation of each stage.
        let (strides, act_of): (&[usize], fn(usize) -> Activation) = match kind {
            Kind::EfficientNet => (&[1, 2, 2, 2, 1, 2, 1], |_| Activation::Silu),
            Kind::Lite => (&[1, 2, 2, 2, 1, 2, 1], |_| Activation::Relu6),
            Kind::MobileNetV3Large => (&[1, 2, 2, 2, 1, 2, 1], |s| {
                if s < 3 { Activation::Relu } else { Activation::Hardswish }
            }),
            Kind::MobileNetV3Small => (&[2, 2, 2, 1, 2, 1], |s| {
                if s < 2 { Activation::Relu } else { Activation::Hardswish }
            }),
        };
        let (se_act, gate) = match kind {
            Kind::MobileNetV3Large | Kind::MobileNetV3Small => (Some(Activation::Relu), Gate::HardSigmoid),
            _ => (None, Gate::Sigmoid),
        };
        let stem_act = match kind {
            Kind::EfficientNet => Activation::Silu,
            Kind::Lite => Activation::Relu6,
            _ => Activation::Hardswish,
        };
        let stem = ConvBnAct::load(&mut p, "conv_stem", "bn1", 3, 2, padding, bn, stem_act)?;
        let mut channels = stem.out();
        let mut blocks = Vec::new();
        let mut last_conv = None;
        let mut head_bn = None;
        for (s, &stage_stride) in strides.iter().enumerate() {
            let act = act_of(s);
            let mut j = 0;
            while p.has(&format!("blocks.{s}.{j}.bn1.weight")) {
                let key = format!("blocks.{s}.{j}");
                let stride = if j == 0 { stage_stride } else { 1 };
                let input = channels;
                let cba = |p: &mut Params, conv: &str, norm: &str, c: usize, stride: usize, act| {
                    ConvBnAct::load(
                        p,
                        &format!("{key}.{conv}"),
                        &format!("{key}.{norm}"),
                        c,
                        stride,
                        padding,
                        bn,
                        act,
                    )
                };
                let se = |p: &mut Params, c: usize| -> Result<Option<SqueezeExcite>, WeightsError> {
                    if p.has(&format!("{key}.se.conv_reduce.weight")) {
                        let reduce = format!("{key}.se.conv_reduce");
                        let expand = format!("{key}.se.conv_expand");
                        SqueezeExcite::load(p, &reduce, &expand, c, se_act.unwrap_or(act), gate).map(Some)
                    } else {
                        Ok(None)
                    }
                };
                let block = if p.has(&format!("{key}.conv_pwl.weight")) {
                    // InvertedResidual.
                    let expand = cba(&mut p, "conv_pw", "bn1", channels, 1, act)?;
                    let dw = cba(&mut p, "conv_dw", "bn2", expand.out(), stride, act)?;
                    dw.conv
                        .expect_depthwise(&p, &format!("{key}.conv_dw.weight"), expand.out())?;
                    let se = se(&mut p, dw.out())?;
                    let project = cba(&mut p, "conv_pwl", "bn3", dw.out(), 1, Activation::Identity)?;
                    Block {
                        expand: Some(expand),
                        conv: dw,
                        se,
                        project: Some(project),
                        residual: false,
                    }
                } else if p.has(&format!("{key}.conv_dw.weight")) {
                    // DepthwiseSeparableConv.
                    let dw = cba(&mut p, "conv_dw", "bn1", channels, stride, act)?;
                    dw.conv
                        .expect_depthwise(&p, &format!("{key}.conv_dw.weight"), channels)?;
                    let se = se(&mut p, dw.out())?;
                    let project = cba(&mut p, "conv_pw", "bn2", dw.out(), 1, Activation::Identity)?;
                    Block {
                        expand: None,
                        conv: dw,
                        se,
                        project: Some(project),
                        residual: false,
                    }
                } else if mobilenet && s + 1 == strides.len() {
                    // MobileNetV3's last ConvBnAct, the stage's only block: its BatchNorm is the
                    // head's.
                    if j > 0 {
                        return Err(p.error(format!(
                            "{key}: MobileNetV3's last stage is one ConvBnAct, this file has more"
                        )));
                    }
                    let conv = Conv::load(&mut p, &format!("{key}.conv"), channels, stride, padding, Bias::No)?;
                    let norm = BatchNorm::load(&mut p, &format!("{key}.bn1"), conv.out(), bn.eps, bn.momentum)?;
                    channels = conv.out();
                    last_conv = Some(conv);
                    head_bn = Some((format!("{key}.bn1"), norm, act));
                    j += 1;
                    continue;
                } else {
                    let conv = cba(&mut p, "conv", "bn1", channels, stride, act)?;
                    Block {
                        expand: None,
                        conv,
                        se: None,
                        project: None,
                        residual: false,
                    }
                };
                channels = block.project.as_ref().unwrap_or(&block.conv).out();
                // timm skips only a block with a projection (ConvBnAct's `skip` is off here).
                let residual = block.project.is_some() && stride == 1 && input == channels;
                blocks.push(Block { residual, ..block });
                j += 1;
            }
        }
        let (conv_head, (norm_key, norm, act), hidden, features) = if mobilenet {
            let (key, norm, act) = head_bn.ok_or_else(|| {
                p.error(format!(
                    "blocks.{}.0.conv.weight: MobileNetV3's last block is missing",
                    strides.len() - 1
                ))
            })?;
            // conv_head runs on the pooled features: a Dense of the head's MLP, kept 4-D.
            let shape = p.shape("conv_head.weight", 4)?;
            let weight = p
                .tensor::<4>("conv_head.weight", [shape[0], channels, 1, 1])?
                .reshape([shape[0], channels]);
            let bias = p.tensor("conv_head.bias", [shape[0]])?;
            let dense = Dense {
                weight,
                bias,
                key: "conv_head".into(),
                conv: true,
            };
            (None, (key, norm, act), vec![dense], channels)
        } else {
            let conv = Conv::load(&mut p, "conv_head", channels, 1, padding, Bias::No)?;
            let norm = BatchNorm::load(&mut p, "bn2", conv.out(), bn.eps, bn.momentum)?;
            let width = conv.out();
            (Some(conv), ("bn2".to_owned(), norm, stem_act), Vec::new(), width)
        };
        let classifier_in = hidden.last().map_or(features, |d: &Dense| d.weight.dims()[0]);
        let fc = Linear::load(&mut p, "classifier", classifier_in)?;
        let classes = fc.out();
        p.finish()?;
        // MobileNetV3's `conv_head` is a hidden layer of the classifier, Hardswish after it.
        let head = Head {
            hidden,
            hidden_activation: Activation::Hardswish,
            ..norm.into_head(&norm_key, act, fc.dense("classifier"))
        };
        let default_name = match kind {
            Kind::EfficientNet => "efficientnet",
            Kind::Lite => "efficientnet_lite",
            Kind::MobileNetV3Large => "mobilenetv3_large",
            Kind::MobileNetV3Small => "mobilenetv3_small",
        };
        // timm's `tf_efficientnet_lite*` weights normalise with mean = std = 0.5.
        let half = name.as_deref().is_some_and(|n| n.starts_with("tf_efficientnet_lite"));
        let arch = name.unwrap_or_else(|| format!("{default_name} (timm, {} blocks)", blocks.len()));
        // timm's default for these: bicubic (EfficientNet) / bilinear (MobileNetV3), crop 0.875;
        // a `config.json` beside the weights says more.
        let recipe = Recipe {
            interpolation: if mobilenet {
                Interpolation::Bilinear
            } else {
                Interpolation::Bicubic
            },
            mean: if half { [0.5; 3] } else { Recipe::default().mean },
            std: if half { [0.5; 3] } else { Recipe::default().std },
            ..Recipe::default()
        };
        let net = Self {
            stem,
            blocks,
            conv_head,
            last_conv,
            head,
            recipe,
        };
        Ok((
            net,
            Description {
                arch,
                features,
                classes,
            },
        ))
    }
}

impl Architecture for TimmEfficientNet {
    fn family() -> &'static str {
        "a timm EfficientNet / MobileNetV3"
    }

    fn recognises(file: &WeightFile) -> bool {
        let h = &file.header;
        h.contains_key("conv_stem.weight")
            && h.contains_key("blocks.0.0.bn1.weight")
            && h.contains_key("classifier.weight")
    }

    fn markers() -> &'static [&'static str] {
        &[
            "conv_stem.weight",
            "bn1.weight",
            "blocks.0.0.bn1.weight",
            "conv_head.weight",
            "classifier.weight",
        ]
    }

    fn from_weights(file: &WeightFile, device: &Device) -> Result<(Self, Description), WeightsError> {
        Self::load(file, device)
    }

    /// Up to the head's BatchNorm: `conv_head`'s output (EfficientNet) or the last block's
    /// convolution's (MobileNetV3).
    fn trunk(&self, x: Tensor<4>) -> TrunkOut {
        let x = self.blocks.iter().fold(self.stem.forward(x), |x, b| b.forward(x));
        let conv = self
            .conv_head
            .as_ref()
            .or(self.last_conv.as_ref())
            .expect("a head convolution");
        TrunkOut {
            pre_bn: conv.forward(x),
            residual: None,
        }
    }

    fn head(&self) -> Head {
        self.head.clone()
    }

    fn recipe(&self) -> Recipe {
        self.recipe
    }

    fn library(&self) -> &'static str {
        "timm"
    }
}
