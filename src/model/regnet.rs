//! torchvision's RegNetX / RegNetY (`torchvision.models.regnet`), under its key names: `stem`,
//! `trunk_output.block{s}.block{s}-{j}` (ResBottleneckBlock: `f.a` 1×1, `f.b` 3×3 grouped and
//! strided on a stage's first block, RegNetY's `f.se`, `f.c` 1×1; `proj` where the shape
//! changes), `fc`. Widths, depths, group widths and SE come from the weights; every stage
//! starts with stride 2. The FixRes head is the last block's `f.c.1` BatchNorm, then the
//! residual and ReLU, as ResNet's.

use burn::tensor::{Device, Tensor};

use super::head::{Activation, Head, TrunkOut};
use super::layers::{BatchNorm, Bias, BnConfig, Conv, ConvBnAct, Gate, Linear, Padding, SqueezeExcite};
use super::params::Params;
use super::weights::{WeightFile, WeightsError};
use super::{Architecture, Description};

/// A ResBottleneckBlock; the last one keeps its `f.c` convolution unfolded for the head.
#[derive(Clone, Debug)]
struct Block {
    proj: Option<ConvBnAct>,
    a: ConvBnAct,
    b: ConvBnAct,
    se: Option<SqueezeExcite>,
    c: Conv,
}

impl Block {
    /// The `f.c` convolution's output and the residual it is added to.
    fn branches(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let residual = match &self.proj {
            Some(p) => p.forward(x.clone()),
            None => x.clone(),
        };
        let mut y = self.b.forward(self.a.forward(x));
        if let Some(se) = &self.se {
            y = se.forward(y);
        }
        (self.c.forward(y), residual)
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let (y, r) = self.branches(x);
        (y + r).clamp_min(0.0)
    }
}

/// A torchvision RegNet.
#[derive(Debug)]
pub struct RegNet {
    stem: ConvBnAct,
    blocks: Vec<Block>,
    head: Head,
}

const BN: BnConfig = BnConfig {
    eps: 1e-5,
    momentum: 0.1,
};

impl RegNet {
    fn load(file: &WeightFile, device: &Device) -> Result<(Self, Description), WeightsError> {
        let mut p = Params::new(file, "torchvision regnet", device);
        let relu = Activation::Relu;
        let stem = ConvBnAct::load(&mut p, "stem.0", "stem.1", 3, 2, Padding::Centered, BN, relu)?;
        let mut channels = stem.out();
        let mut blocks = Vec::new();
        let mut depths = Vec::new();
        let mut se_any = false;
        let mut last_bn = None;
        let mut s = 1;
        while p.has(&format!("trunk_output.block{s}.block{s}-0.f.a.0.weight")) {
            let mut j = 0;
            loop {
                let key = format!("trunk_output.block{s}.block{s}-{j}");
                if !p.has(&format!("{key}.f.a.0.weight")) {
                    break;
                }
                let stride = if j == 0 { 2 } else { 1 };
                let cba = |p: &mut Params, name: &str, c: usize, stride: usize, act| {
                    ConvBnAct::load(
                        p,
                        &format!("{key}.{name}.0"),
                        &format!("{key}.{name}.1"),
                        c,
                        stride,
                        Padding::Centered,
                        BN,
                        act,
                    )
                };
                let proj = if p.has(&format!("{key}.proj.0.weight")) {
                    Some(cba(&mut p, "proj", channels, stride, Activation::Identity)?)
                } else {
                    None
                };
                let a = cba(&mut p, "f.a", channels, 1, relu)?;
                let b = cba(&mut p, "f.b", a.out(), stride, relu)?;
                let se = if p.has(&format!("{key}.f.se.fc1.weight")) {
                    se_any = true;
                    Some(SqueezeExcite::load(
                        &mut p,
                        &format!("{key}.f.se.fc1"),
                        &format!("{key}.f.se.fc2"),
                        b.out(),
                        relu,
                        Gate::Sigmoid,
                    )?)
                } else {
                    None
                };
                let c_conv = Conv::load(&mut p, &format!("{key}.f.c.0"), b.out(), 1, Padding::Centered, Bias::No)?;
                let out = c_conv.out();
                let norm = BatchNorm::load(&mut p, &format!("{key}.f.c.1"), out, BN.eps, BN.momentum)?;
                let residual_width = proj.as_ref().map_or(channels, ConvBnAct::out);
                if residual_width != out || (proj.is_none() && stride != 1) {
                    return Err(p.error(format!(
                        "{key}: the block gives {out} channels but its shortcut {residual_width}{}",
                        if proj.is_none() { " (and it has no proj)" } else { "" }
                    )));
                }
                channels = out;
                // Every f.c but the network's last is folded; the last is decided below.
                blocks.push((
                    Block {
                        proj,
                        a,
                        b,
                        se,
                        c: c_conv.clone(),
                    },
                    c_conv,
                    norm.clone(),
                ));
                last_bn = Some((format!("{key}.f.c.1"), norm));
                j += 1;
            }
            depths.push(j);
            s += 1;
        }
        let (norm_key, norm) = last_bn.ok_or_else(|| p.error("trunk_output.block1.block1-0: no blocks".into()))?;
        let fc = Linear::load(&mut p, "fc", channels)?;
        let classes = fc.out();
        p.finish()?;
        let n = blocks.len();
        let blocks: Vec<Block> = blocks
            .into_iter()
            .enumerate()
            .map(|(i, (block, conv, norm))| {
                if i + 1 < n {
                    Block {
                        c: conv.fold(&norm),
                        ..block
                    }
                } else {
                    block
                }
            })
            .collect();
        let head = norm.into_head(&norm_key, relu, fc.dense("fc"));
        let arch = format!(
            "regnet_{} (torchvision, depths {depths:?}, width {channels})",
            if se_any { "y" } else { "x" }
        );
        Ok((
            Self { stem, blocks, head },
            Description {
                arch,
                features: channels,
                classes,
            },
        ))
    }
}

impl Architecture for RegNet {
    fn family() -> &'static str {
        "a torchvision RegNet (X, Y)"
    }

    fn recognises(file: &WeightFile) -> bool {
        file.header.contains_key("trunk_output.block1.block1-0.f.a.0.weight")
    }

    fn markers() -> &'static [&'static str] {
        &[
            "stem.0.weight",
            "stem.1.weight",
            "trunk_output.block1.block1-0.f.a.0.weight",
            "fc.weight",
        ]
    }

    fn from_weights(file: &WeightFile, device: &Device) -> Result<(Self, Description), WeightsError> {
        Self::load(file, device)
    }

    /// Up to the last block's `f.c.1` BatchNorm: its input and the residual added after it.
    fn trunk(&self, x: Tensor<4>) -> TrunkOut {
        let (last, rest) = self.blocks.split_last().expect("a RegNet has blocks");
        let x = rest.iter().fold(self.stem.forward(x), |x, b| b.forward(x));
        let (pre_bn, residual) = last.branches(x);
        TrunkOut {
            pre_bn,
            residual: Some(residual),
        }
    }

    fn head(&self) -> Head {
        self.head.clone()
    }
}
