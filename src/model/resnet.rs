//! torchvision's ResNet (v1.5: the stride sits on the 3×3 convolution of Bottleneck blocks), with
//! its module tree and key names. The shapes come from the weights, so ResNet-18/34/50/101/152,
//! ResNeXt-style grouped widths and narrower test models all load through one path.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::burn_modules::{Named, batch_norm, batch_norm_state, conv_state, linear_state};
use super::head::{Activation, Head, TrunkOut};
use super::layers::{self, Conv, Padding};
use super::weights::{TensorInfo, WeightFile, WeightsError, expect_shape, load_strict};
use super::{Architecture, Description, Forward, cost};

/// `downsample`: torchvision's `Sequential(conv1x1, BatchNorm)`, keys `downsample.0` / `.1`.
#[derive(Module, Debug)]
pub struct Downsample {
    conv: Conv2d,
    bn: BatchNorm,
}

/// A BasicBlock (two 3×3 convolutions) or, with `conv3`/`bn3`, a Bottleneck (1×1, 3×3, 1×1).
#[derive(Module, Debug)]
pub struct Block {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    conv3: Option<Conv2d>,
    bn3: Option<BatchNorm>,
    downsample: Option<Downsample>,
}

impl Block {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(d) => batch_norm(&d.bn, cost::conv(&d.conv, x.clone())),
            None => x.clone(),
        };
        let out = relu(batch_norm(&self.bn1, cost::conv(&self.conv1, x)));
        let out = batch_norm(&self.bn2, cost::conv(&self.conv2, out));
        let out = match (&self.conv3, &self.bn3) {
            (Some(conv3), Some(bn3)) => batch_norm(bn3, cost::conv(conv3, relu(out))),
            _ => out,
        };
        relu(out + identity)
    }
}

/// A torchvision ResNet.
#[derive(Module, Debug)]
pub struct ResNet {
    conv1: Conv2d,
    bn1: BatchNorm,
    /// `None` for the small-image stem (3×3 stride-1 `conv1`, no max-pool).
    maxpool: Option<MaxPool2d>,
    layer1: Vec<Block>,
    layer2: Vec<Block>,
    layer3: Vec<Block>,
    layer4: Vec<Block>,
    avgpool: AdaptiveAvgPool2d,
    fc: Linear,
}

/// What the weights say the network is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResNetShape {
    /// Blocks per stage.
    pub blocks: [usize; 4],
    /// Bottleneck blocks (ResNet-50 and deeper) rather than basic ones.
    pub bottleneck: bool,
    /// Pooled feature width (the classifier's input).
    pub features: usize,
    /// Number of classes.
    pub classes: usize,
}

impl ResNetShape {
    /// torchvision's name for this depth ("resnet50"), or a description.
    #[must_use]
    pub fn name(&self) -> String {
        let known = match (self.bottleneck, self.blocks) {
            (false, [2, 2, 2, 2]) => Some("resnet18"),
            (false, [3, 4, 6, 3]) => Some("resnet34"),
            (true, [3, 4, 6, 3]) => Some("resnet50"),
            (true, [3, 4, 23, 3]) => Some("resnet101"),
            (true, [3, 8, 36, 3]) => Some("resnet152"),
            _ => None,
        };
        known.map_or_else(
            || {
                format!(
                    "resnet({} blocks {:?})",
                    if self.bottleneck { "bottleneck" } else { "basic" },
                    self.blocks
                )
            },
            str::to_owned,
        )
    }
}

/// torchvision key patterns → this module's paths.
const RENAMES: [(&str, &str); 2] = [
    (r"\.downsample\.0\.", ".downsample.conv."),
    (r"\.downsample\.1\.", ".downsample.bn."),
];

fn shape_of<'a>(
    path: &Path,
    header: &'a BTreeMap<String, TensorInfo>,
    key: &str,
    rank: usize,
) -> Result<&'a [usize], WeightsError> {
    let info = header.get(key).ok_or_else(|| WeightsError::MissingKeys {
        path: path.to_owned(),
        arch: "resnet".into(),
        keys: vec![key.to_owned()],
    })?;
    if info.shape.len() != rank {
        return Err(WeightsError::Mismatch {
            path: path.to_owned(),
            detail: format!("{key}: expected a rank-{rank} tensor, found shape {:?}", info.shape),
        });
    }
    Ok(&info.shape)
}

fn conv(shape: &[usize], stride: usize, device: &Device) -> Conv2d {
    // shape: [out, in / groups, k, k]; torchvision pads k // 2 and has no bias.
    let (out, in_per_group, k) = (shape[0], shape[1], shape[2]);
    let pad = k / 2;
    Conv2dConfig::new([in_per_group, out], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .init(device)
}

/// A grouped convolution: `Conv2dConfig` takes the full input width.
fn conv_grouped(shape: &[usize], in_channels: usize, stride: usize, device: &Device) -> Conv2d {
    let (out, in_per_group, k) = (shape[0], shape[1], shape[2]);
    let groups = in_channels / in_per_group.max(1);
    let pad = k / 2;
    Conv2dConfig::new([in_channels, out], [k, k])
        .with_stride([stride, stride])
        .with_groups(groups.max(1))
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .init(device)
}

fn bn(channels: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(channels).init(device)
}

impl ResNet {
    /// Reads the architecture from a torchvision state_dict's keys and shapes.
    pub fn shape_from_header(path: &Path, header: &BTreeMap<String, TensorInfo>) -> Result<ResNetShape, WeightsError> {
        if !header.contains_key("conv1.weight") || !header.contains_key("layer1.0.conv1.weight") {
            return Err(WeightsError::UnknownArchitecture {
                path: path.to_owned(),
                reason: "not a torchvision ResNet (no conv1.weight / layer1.0.conv1.weight)".into(),
            });
        }
        let mut blocks = [0; 4];
        for (stage, n) in blocks.iter_mut().enumerate() {
            while header.contains_key(&format!("layer{}.{}.conv1.weight", stage + 1, *n)) {
                *n += 1;
            }
        }
        let fc = shape_of(path, header, "fc.weight", 2)?;
        Ok(ResNetShape {
            blocks,
            bottleneck: header.contains_key("layer1.0.conv3.weight"),
            features: fc[1],
            classes: fc[0],
        })
    }

    /// Builds the network the weights describe (uninitialised values).
    pub fn from_header(
        path: &Path,
        header: &BTreeMap<String, TensorInfo>,
        device: &Device,
    ) -> Result<(Self, ResNetShape), WeightsError> {
        let shape = Self::shape_from_header(path, header)?;
        let s = |key: &str, rank| shape_of(path, header, key, rank);
        let stem = s("conv1.weight", 4)?;
        let stem_width = stem[0];
        // torchvision's stem is a 7×7 stride-2 convolution and a max-pool; the common variant for
        // small images (CIFAR-style, `conv1 = Conv2d(3, w, 3, 1, 1)`, `maxpool = Identity()`) is
        // recognised by its 3×3 `conv1`.
        let small_stem = stem[2] == 3;
        let arch = shape.name();
        let expect = |key: &str, actual: &[usize], expected: &[usize]| expect_shape(path, key, actual, expected, &arch);
        let kernel = if small_stem { 3 } else { 7 };
        expect("conv1.weight", stem, &[stem_width, 3, kernel, kernel])?;
        // The channels flowing into the next layer, checked against each layer's weights.
        let mut channels = stem_width;
        let (stride, pad) = if small_stem { (1, 1) } else { (2, 3) };
        let conv1 = Conv2dConfig::new([stem[1], stem_width], [stem[2], stem[3]])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
            .with_bias(false)
            .init(device);
        let mut layers: [Vec<Block>; 4] = Default::default();
        for (stage, layer) in layers.iter_mut().enumerate() {
            for index in 0..shape.blocks[stage] {
                let p = format!("layer{}.{index}", stage + 1);
                let stride = if stage > 0 && index == 0 { 2 } else { 1 };
                let c1 = s(&format!("{p}.conv1.weight"), 4)?;
                let c2 = s(&format!("{p}.conv2.weight"), 4)?;
                let k1 = if shape.bottleneck { 1 } else { 3 };
                expect(&format!("{p}.conv1.weight"), c1, &[c1[0], channels, k1, k1])?;
                // A Bottleneck's 3×3 may be grouped (ResNeXt): its input channels then divide
                // conv1's output channels.
                let grouped = shape.bottleneck && c2[1] > 0 && c1[0] % c2[1] == 0;
                let in2 = if grouped { c2[1] } else { c1[0] };
                expect(&format!("{p}.conv2.weight"), c2, &[c1[0], in2, 3, 3])?;
                let (conv1, conv2, conv3, out_channels) = if shape.bottleneck {
                    let c3 = s(&format!("{p}.conv3.weight"), 4)?;
                    expect(&format!("{p}.conv3.weight"), c3, &[c3[0], c2[0], 1, 1])?;
                    (
                        conv(c1, 1, device),
                        conv_grouped(c2, c1[0], stride, device),
                        Some(conv(c3, 1, device)),
                        c3[0],
                    )
                } else {
                    (conv(c1, stride, device), conv(c2, 1, device), None, c2[0])
                };
                let needs_downsample = stride != 1 || channels != out_channels;
                if needs_downsample && !header.contains_key(&format!("{p}.downsample.0.weight")) {
                    return Err(WeightsError::MissingKeys {
                        path: path.to_owned(),
                        arch: arch.clone(),
                        keys: vec![format!("{p}.downsample.0.weight")],
                    });
                }
                let downsample = if header.contains_key(&format!("{p}.downsample.0.weight")) {
                    let d = s(&format!("{p}.downsample.0.weight"), 4)?;
                    expect(&format!("{p}.downsample.0.weight"), d, &[out_channels, channels, 1, 1])?;
                    Some(Downsample {
                        conv: conv(d, stride, device),
                        bn: bn(d[0], device),
                    })
                } else {
                    None
                };
                channels = out_channels;
                layer.push(Block {
                    bn1: bn(c1[0], device),
                    bn2: bn(c2[0], device),
                    bn3: shape.bottleneck.then(|| bn(out_channels, device)),
                    conv1,
                    conv2,
                    conv3,
                    downsample,
                });
            }
        }
        expect("fc.weight", s("fc.weight", 2)?, &[shape.classes, channels])?;
        let [layer1, layer2, layer3, layer4] = layers;
        let net = Self {
            conv1,
            bn1: bn(stem_width, device),
            maxpool: (!small_stem).then(|| {
                MaxPool2dConfig::new([3, 3])
                    .with_strides([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .init()
            }),
            layer1,
            layer2,
            layer3,
            layer4,
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc: LinearConfig::new(shape.features, shape.classes).init(device),
        };
        Ok((net, shape))
    }

    /// Loads a torchvision ResNet state_dict (safetensors or PyTorch checkpoint), strictly.
    pub fn load(path: &Path, device: &Device) -> Result<(Self, ResNetShape), WeightsError> {
        Self::from_file(&WeightFile::open(path)?, device)
    }

    /// Builds and loads the network a torchvision ResNet state_dict describe, strictly.
    pub fn from_file(file: &WeightFile, device: &Device) -> Result<(Self, ResNetShape), WeightsError> {
        let (mut net, shape) = Self::from_header(&file.path, &file.header, device)?;
        load_strict(&mut net, file, &shape.name(), &RENAMES)?;
        Ok((net, shape))
    }

    /// The header of a torchvision-layout ResNet of BasicBlocks for training from scratch:
    /// `blocks` per stage, `widths` per stage (the stem is as wide as stage 1), a 7×7 (ImageNet)
    /// or 3×3 (small images) stem, `classes` outputs.
    /// `from_header` builds it with Burn's default initialisation.
    #[must_use]
    pub fn basic_header(
        blocks: [usize; 4],
        widths: [usize; 4],
        stem_kernel: usize,
        classes: usize,
    ) -> BTreeMap<String, TensorInfo> {
        let mut h = BTreeMap::new();
        let mut put = |key: String, shape: Vec<usize>| {
            h.insert(
                key,
                TensorInfo {
                    dtype: "F32".into(),
                    shape,
                },
            );
        };
        put("conv1.weight".into(), vec![widths[0], 3, stem_kernel, stem_kernel]);
        let mut in_channels = widths[0];
        for (stage, (&n, &w)) in blocks.iter().zip(&widths).enumerate() {
            for index in 0..n {
                let p = format!("layer{}.{index}", stage + 1);
                put(format!("{p}.conv1.weight"), vec![w, in_channels, 3, 3]);
                put(format!("{p}.conv2.weight"), vec![w, w, 3, 3]);
                if index == 0 && (stage > 0 || in_channels != w) {
                    put(format!("{p}.downsample.0.weight"), vec![w, in_channels, 1, 1]);
                }
                in_channels = w;
            }
        }
        put("fc.weight".into(), vec![classes, in_channels]);
        put("fc.bias".into(), vec![classes]);
        h
    }

    /// Every tensor under its torchvision key, PyTorch layouts, f32 (BatchNorm's
    /// `num_batches_tracked` excepted: see `batch_norm_keys`).
    #[must_use]
    pub fn state_dict(&self) -> Vec<Named> {
        let mut out = conv_state("conv1", &self.conv1);
        out.extend(batch_norm_state("bn1", &self.bn1));
        for (stage, layer) in [&self.layer1, &self.layer2, &self.layer3, &self.layer4]
            .into_iter()
            .enumerate()
        {
            for (i, b) in layer.iter().enumerate() {
                let p = format!("layer{}.{i}", stage + 1);
                out.extend(conv_state(&format!("{p}.conv1"), &b.conv1));
                out.extend(conv_state(&format!("{p}.conv2"), &b.conv2));
                out.extend(batch_norm_state(&format!("{p}.bn1"), &b.bn1));
                out.extend(batch_norm_state(&format!("{p}.bn2"), &b.bn2));
                if let (Some(c3), Some(b3)) = (&b.conv3, &b.bn3) {
                    out.extend(conv_state(&format!("{p}.conv3"), c3));
                    out.extend(batch_norm_state(&format!("{p}.bn3"), b3));
                }
                if let Some(d) = &b.downsample {
                    out.extend(conv_state(&format!("{p}.downsample.0"), &d.conv));
                    out.extend(batch_norm_state(&format!("{p}.downsample.1"), &d.bn));
                }
            }
        }
        out.extend(linear_state("fc", &self.fc));
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// This network with `fc` as its classifier (a new one, for other classes).
    #[must_use]
    pub fn with_classifier(self, fc: Linear) -> Self {
        Self { fc, ..self }
    }

    /// This network with everything before its last stage frozen (no gradients, BatchNorms in
    /// evaluation mode): `layer4` and `fc` train.
    #[must_use]
    pub fn freeze_all_but_last_stage(self) -> Self {
        Self {
            conv1: self.conv1.freeze(),
            bn1: self.bn1.freeze(),
            layer1: self.layer1.freeze(),
            layer2: self.layer2.freeze(),
            layer3: self.layer3.freeze(),
            ..self
        }
    }

    /// conv1, bn1, ReLU and (ImageNet stem) the max-pool.
    fn stem(&self, x: Tensor<4>) -> Tensor<4> {
        let x = relu(batch_norm(&self.bn1, cost::conv(&self.conv1, x)));
        match &self.maxpool {
            Some(pool) => pool.forward(x),
            None => x,
        }
    }
}

impl Architecture for ResNet {
    fn family() -> &'static str {
        "a torchvision ResNet"
    }

    fn recognises(file: &WeightFile) -> bool {
        file.header.contains_key("layer1.0.conv1.weight")
    }

    fn markers() -> &'static [&'static str] {
        &[
            "conv1.weight",
            "bn1.weight",
            "layer1.0.conv1.weight",
            "layer4.0.conv1.weight",
            "fc.weight",
        ]
    }

    fn from_weights(file: &WeightFile, device: &Device) -> Result<(Self, Description), WeightsError> {
        let (net, shape) = Self::from_file(file, device)?;
        // A name the file gives (e.g. "resnet-tiny" from `fixres train`) beats one guessed from
        // the block counts.
        let arch = file.metadata.get("arch").cloned().unwrap_or_else(|| shape.name());
        Ok((
            net,
            Description {
                arch,
                features: shape.features,
                classes: shape.classes,
            },
        ))
    }

    fn forward(&self, x: Tensor<4>) -> Forward {
        let x = self.stem(x);
        let x = [&self.layer1, &self.layer2, &self.layer3, &self.layer4]
            .into_iter()
            .flatten()
            .fold(x, |x, block| block.forward(x));
        let pooled: Tensor<2> = self.avgpool.forward(x).flatten(1, 3);
        let logits = cost::linear(&self.fc, pooled.clone());
        Forward { pooled, logits }
    }

    /// Everything up to the last block's last BatchNorm, plus the residual that block adds after
    /// it. Panics if `layer4` is empty (no weights describe such a ResNet).
    fn trunk(&self, x: Tensor<4>) -> TrunkOut {
        let x = self.stem(x);
        let (last, rest) = self.layer4.split_last().expect("layer4 has blocks");
        let x = [&self.layer1, &self.layer2, &self.layer3]
            .into_iter()
            .flatten()
            .chain(rest)
            .fold(x, |x, block| block.forward(x));
        let residual = match &last.downsample {
            Some(d) => batch_norm(&d.bn, cost::conv(&d.conv, x.clone())),
            None => x.clone(),
        };
        let out = relu(batch_norm(&last.bn1, cost::conv(&last.conv1, x)));
        let pre_bn = match &last.conv3 {
            Some(conv3) => cost::conv(conv3, relu(batch_norm(&last.bn2, cost::conv(&last.conv2, out)))),
            None => cost::conv(&last.conv2, out),
        };
        TrunkOut {
            pre_bn,
            residual: Some(residual),
        }
    }

    /// The last BatchNorm (`layer4[-1].bn2`, or `bn3` for Bottlenecks) and `fc`. Panics if
    /// `layer4` is empty.
    fn head(&self) -> Head {
        let last = self.layer4.last().expect("layer4 has blocks");
        let bn = last.bn3.as_ref().unwrap_or(&last.bn2);
        let bn_key = format!(
            "layer4.{}.{}",
            self.layer4.len() - 1,
            if last.bn3.is_some() { "bn3" } else { "bn2" }
        );
        // PyTorch's momentum (weight of the new batch) is 0.1 for torchvision models.
        Head::from_modules(bn, &self.fc, 0.1, Activation::Relu, &bn_key, "fc")
    }

    fn trains_end_to_end(&self) -> bool {
        true
    }
}

/// A Block for inference: its BatchNorms folded into the convolutions (`layers::Conv::fold`),
/// except, in the last block, the head's.
#[derive(Clone, Debug)]
struct FoldedBlock {
    conv1: Conv,
    conv2: Conv,
    conv3: Option<Conv>,
    downsample: Option<Conv>,
}

impl FoldedBlock {
    /// `block` folded; `keep_last`: its last convolution keeps its BatchNorm apart (the head's).
    fn of(block: &Block, keep_last: bool) -> Self {
        let fold = |conv: &Conv2d, bn: &BatchNorm| {
            Conv::from_burn(conv, Padding::Centered).fold(&layers::BatchNorm::from_burn(bn))
        };
        let (conv2, conv3) = match (&block.conv3, &block.bn3) {
            (Some(c3), Some(bn3)) => (
                fold(&block.conv2, &block.bn2),
                Some(if keep_last {
                    Conv::from_burn(c3, Padding::Centered)
                } else {
                    fold(c3, bn3)
                }),
            ),
            _ => (
                if keep_last {
                    Conv::from_burn(&block.conv2, Padding::Centered)
                } else {
                    fold(&block.conv2, &block.bn2)
                },
                None,
            ),
        };
        Self {
            conv1: fold(&block.conv1, &block.bn1),
            conv2,
            conv3,
            downsample: block.downsample.as_ref().map(|d| fold(&d.conv, &d.bn)),
        }
    }

    /// The block up to its last convolution's output (before the residual), and the residual.
    fn branches(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let identity = match &self.downsample {
            Some(d) => d.forward(x.clone()),
            None => x.clone(),
        };
        let out = self.conv2.forward(Activation::Relu.apply(self.conv1.forward(x)));
        let out = match &self.conv3 {
            Some(conv3) => conv3.forward(Activation::Relu.apply(out)),
            None => out,
        };
        (out, identity)
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let (out, identity) = self.branches(x);
        if super::fast_math::applies(&out) {
            // The residual sum and the ReLU in one pass over both threads.
            super::fast_math::zip_map(out, identity, |a, b| super::fast_math::relu(a + b))
        } else {
            Activation::Relu.apply(out + identity)
        }
    }
}

/// A torchvision ResNet for inference: the `ResNet` the weights load into, with every BatchNorm
/// but the head's folded into its convolution (no normalisation passes over the feature maps).
/// What `Model` runs; `ResNet` itself is what trains (`fixres train`, `model::end_to_end`).
#[derive(Debug)]
pub struct FoldedResNet {
    stem: Conv,
    maxpool: Option<MaxPool2d>,
    /// Every block but the last.
    blocks: Vec<FoldedBlock>,
    /// The last block, its last convolution unfolded.
    last: FoldedBlock,
    head: Head,
}

impl FoldedResNet {
    /// `net` folded. Panics if `layer4` is empty (no weights describe such a ResNet).
    #[must_use]
    pub fn of(net: &ResNet) -> Self {
        let (last, rest) = net.layer4.split_last().expect("layer4 has blocks");
        Self {
            stem: Conv::from_burn(&net.conv1, Padding::Centered).fold(&layers::BatchNorm::from_burn(&net.bn1)),
            maxpool: net.maxpool.clone(),
            blocks: [&net.layer1, &net.layer2, &net.layer3]
                .into_iter()
                .flatten()
                .chain(rest)
                .map(|b| FoldedBlock::of(b, false))
                .collect(),
            last: FoldedBlock::of(last, true),
            head: Architecture::head(net),
        }
    }
}

impl Architecture for FoldedResNet {
    fn family() -> &'static str {
        ResNet::family()
    }

    fn recognises(file: &WeightFile) -> bool {
        ResNet::recognises(file)
    }

    fn markers() -> &'static [&'static str] {
        ResNet::markers()
    }

    fn from_weights(file: &WeightFile, device: &Device) -> Result<(Self, Description), WeightsError> {
        let (net, description) = ResNet::from_weights(file, device)?;
        Ok((Self::of(&net), description))
    }

    fn trunk(&self, x: Tensor<4>) -> TrunkOut {
        let x = Activation::Relu.apply(self.stem.forward(x));
        let x = match &self.maxpool {
            Some(pool) => pool.forward(x),
            None => x,
        };
        let x = self.blocks.iter().fold(x, |x, b| b.forward(x));
        let (pre_bn, residual) = self.last.branches(x);
        TrunkOut {
            pre_bn,
            residual: Some(residual),
        }
    }

    fn head(&self) -> Head {
        self.head.clone()
    }

    fn trains_end_to_end(&self) -> bool {
        true
    }
}
