//! EfficientNet-Lite0–4 as the `efficientnet-lite-pytorch` package builds it (key names kept,
//! underscores and all): MBConv blocks without squeeze-excitation, ReLU6, BatchNorm ε = 1e-3,
//! and TensorFlow's "same" padding, computed from each input's size at run time (the package's
//! static padding is only right at the size it was built for).

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
use burn::tensor::ops::PadMode;
use burn::tensor::{Device, Tensor};

use super::burn_modules::{Named, batch_norm, batch_norm_state, conv_state, linear_state};
use super::head::{Activation, Head, TrunkOut};
use super::layers::{self, Conv, Padding, same_padding};
use super::weights::{TensorInfo, WeightFile, WeightsError, expect_shape, load_strict};
use super::{Architecture, Description, Forward, cost};

fn relu6(x: Tensor<4>) -> Tensor<4> {
    x.clamp(0.0, 6.0)
}

/// TensorFlow "same" padding for `conv` on `x`: output = ceil(input / stride), the odd pixel of
/// padding after (bottom/right), as the package's `Conv2dDynamicSamePadding`.
fn same_conv(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    let pad = same_padding;
    let ph = pad(h, conv.kernel_size[0], conv.stride[0], conv.dilation[0]);
    let pw = pad(w, conv.kernel_size[1], conv.stride[1], conv.dilation[1]);
    let x = if ph == (0, 0) && pw == (0, 0) {
        x
    } else {
        x.pad([ph, pw], PadMode::Constant(0.0))
    };
    cost::conv(conv, x)
}

/// Mobile inverted bottleneck, without squeeze-excitation.
#[derive(Module, Debug)]
pub struct MbConv {
    _expand_conv: Option<Conv2d>,
    _bn0: Option<BatchNorm>,
    _depthwise_conv: Conv2d,
    _bn1: BatchNorm,
    _project_conv: Conv2d,
    _bn2: BatchNorm,
}

impl MbConv {
    fn forward(&self, inputs: Tensor<4>) -> Tensor<4> {
        let mut x = inputs.clone();
        if let (Some(conv), Some(bn)) = (&self._expand_conv, &self._bn0) {
            x = relu6(batch_norm(bn, cost::conv(conv, x)));
        }
        x = relu6(batch_norm(&self._bn1, same_conv(&self._depthwise_conv, x)));
        x = batch_norm(&self._bn2, cost::conv(&self._project_conv, x));
        let [_, c_in, ..] = inputs.dims();
        let [_, c_out, ..] = x.dims();
        if self._depthwise_conv.stride == [1, 1] && c_in == c_out {
            x + inputs
        } else {
            x
        }
    }
}

/// EfficientNet-Lite.
#[derive(Module, Debug)]
pub struct EfficientNetLite {
    _conv_stem: Conv2d,
    _bn0: BatchNorm,
    _blocks: Vec<MbConv>,
    _conv_head: Conv2d,
    _bn1: BatchNorm,
    _avg_pooling: AdaptiveAvgPool2d,
    _fc: Linear,
}

/// What the weights say the network is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EfficientNetShape {
    /// Output channels of each stage's blocks.
    pub stage_channels: Vec<usize>,
    /// Blocks in all.
    pub blocks: usize,
    /// Pooled feature width.
    pub features: usize,
    /// Number of classes.
    pub classes: usize,
}

impl EfficientNetShape {
    /// "efficientnet-lite0" where recognised.
    #[must_use]
    pub fn name(&self) -> String {
        if self.blocks == 16 && self.stage_channels == [16, 24, 40, 80, 112, 192, 320] {
            "efficientnet-lite0".into()
        } else {
            format!("efficientnet-lite ({} blocks)", self.blocks)
        }
    }
}

/// The package's BatchNorm: ε = 1e-3, momentum 1 − 0.99 (TensorFlow's decay 0.99), which a
/// network training end to end updates its running statistics with.
fn bn(channels: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(channels)
        .with_epsilon(1e-3)
        .with_momentum(0.01)
        .init(device)
}

/// A convolution with no built-in padding (`same_conv` pads).
fn conv(shape: &[usize], stride: usize, groups: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([shape[1] * groups, shape[0]], [shape[2], shape[3]])
        .with_stride([stride, stride])
        .with_groups(groups)
        .with_bias(false)
        .init(device)
}

impl EfficientNetLite {
    /// Builds the network the weights describe.
    pub fn from_header(
        path: &Path,
        header: &BTreeMap<String, TensorInfo>,
        device: &Device,
    ) -> Result<(Self, EfficientNetShape), WeightsError> {
        let get = |key: &str, rank: usize| -> Result<&[usize], WeightsError> {
            let info = header.get(key).ok_or_else(|| WeightsError::MissingKeys {
                path: path.to_owned(),
                arch: "efficientnet-lite".into(),
                keys: vec![key.to_owned()],
            })?;
            if info.shape.len() == rank {
                Ok(&info.shape)
            } else {
                Err(WeightsError::Mismatch {
                    path: path.to_owned(),
                    detail: format!("{key}: expected a rank-{rank} tensor, found shape {:?}", info.shape),
                })
            }
        };
        let mut n = 0;
        while header.contains_key(&format!("_blocks.{n}._depthwise_conv.weight")) {
            n += 1;
        }
        // Stages are runs of blocks with the same output width; the lite builder's strides are
        // 1, 2, 2, 2, 1, 2, 1 over its seven stages.
        let mut outs = Vec::with_capacity(n);
        for i in 0..n {
            outs.push(get(&format!("_blocks.{i}._project_conv.weight"), 4)?[0]);
        }
        let mut stage_channels: Vec<usize> = outs.clone();
        stage_channels.dedup();
        if stage_channels.len() != 7 {
            return Err(WeightsError::UnknownArchitecture {
                path: path.to_owned(),
                reason: format!(
                    "EfficientNet-Lite has 7 stages; these weights have {}",
                    stage_channels.len()
                ),
            });
        }
        const STAGE_STRIDES: [usize; 7] = [1, 2, 2, 2, 1, 2, 1];
        // The depthwise kernels of every EfficientNet (B0 and the Lite family) by stage.
        const STAGE_KERNELS: [usize; 7] = [3, 3, 5, 3, 5, 5, 3];
        let expect = |key: &str, actual: &[usize], expected: &[usize]| {
            expect_shape(path, key, actual, expected, "efficientnet-lite")
        };
        let stem = get("_conv_stem.weight", 4)?;
        expect("_conv_stem.weight", stem, &[stem[0], 3, 3, 3])?;
        // The channels flowing into the next layer, checked against each layer's weights.
        let mut channels = stem[0];
        let mut blocks = Vec::with_capacity(n);
        let mut stage = 0;
        for i in 0..n {
            let first_of_stage = i == 0 || outs[i] != outs[i - 1];
            if first_of_stage && i > 0 {
                stage += 1;
            }
            let stride = if first_of_stage { STAGE_STRIDES[stage] } else { 1 };
            let p = format!("_blocks.{i}");
            let expand = match header.get(&format!("{p}._expand_conv.weight")) {
                Some(_) => {
                    let s = get(&format!("{p}._expand_conv.weight"), 4)?;
                    expect(&format!("{p}._expand_conv.weight"), s, &[s[0], channels, 1, 1])?;
                    channels = s[0];
                    (Some(conv(s, 1, 1, device)), Some(bn(s[0], device)))
                }
                None => (None, None),
            };
            let dw = get(&format!("{p}._depthwise_conv.weight"), 4)?;
            let pr = get(&format!("{p}._project_conv.weight"), 4)?;
            let k = STAGE_KERNELS[stage];
            expect(&format!("{p}._depthwise_conv.weight"), dw, &[channels, 1, k, k])?;
            expect(&format!("{p}._project_conv.weight"), pr, &[pr[0], channels, 1, 1])?;
            channels = pr[0];
            blocks.push(MbConv {
                _expand_conv: expand.0,
                _bn0: expand.1,
                _depthwise_conv: conv(dw, stride, dw[0], device),
                _bn1: bn(dw[0], device),
                _project_conv: conv(pr, 1, 1, device),
                _bn2: bn(pr[0], device),
            });
        }
        let head = get("_conv_head.weight", 4)?;
        expect("_conv_head.weight", head, &[head[0], channels, 1, 1])?;
        let fc = get("_fc.weight", 2)?;
        expect("_fc.weight", fc, &[fc[0], head[0]])?;
        let shape = EfficientNetShape {
            stage_channels,
            blocks: n,
            features: fc[1],
            classes: fc[0],
        };
        let net = Self {
            _conv_stem: conv(stem, 2, 1, device),
            _bn0: bn(stem[0], device),
            _blocks: blocks,
            _conv_head: conv(head, 1, 1, device),
            _bn1: bn(head[0], device),
            _avg_pooling: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            _fc: LinearConfig::new(fc[1], fc[0]).init(device),
        };
        Ok((net, shape))
    }

    /// Loads `efficientnet-lite-pytorch` weights (safetensors or PyTorch checkpoint), strictly.
    pub fn load(path: &Path, device: &Device) -> Result<(Self, EfficientNetShape), WeightsError> {
        Self::from_file(&WeightFile::open(path)?, device)
    }

    /// Builds and loads the network `efficientnet-lite-pytorch` weights describe, strictly.
    pub fn from_file(file: &WeightFile, device: &Device) -> Result<(Self, EfficientNetShape), WeightsError> {
        let (mut net, shape) = Self::from_header(&file.path, &file.header, device)?;
        load_strict(&mut net, file, &shape.name(), &[])?;
        Ok((net, shape))
    }

    /// Every tensor under its `efficientnet-lite-pytorch` key, PyTorch layouts, f32 (BatchNorm's
    /// `num_batches_tracked` excepted).
    #[must_use]
    pub fn state_dict(&self) -> Vec<Named> {
        let mut out = conv_state("_conv_stem", &self._conv_stem);
        out.extend(batch_norm_state("_bn0", &self._bn0));
        for (i, b) in self._blocks.iter().enumerate() {
            let p = format!("_blocks.{i}");
            if let (Some(conv), Some(bn)) = (&b._expand_conv, &b._bn0) {
                out.extend(conv_state(&format!("{p}._expand_conv"), conv));
                out.extend(batch_norm_state(&format!("{p}._bn0"), bn));
            }
            out.extend(conv_state(&format!("{p}._depthwise_conv"), &b._depthwise_conv));
            out.extend(batch_norm_state(&format!("{p}._bn1"), &b._bn1));
            out.extend(conv_state(&format!("{p}._project_conv"), &b._project_conv));
            out.extend(batch_norm_state(&format!("{p}._bn2"), &b._bn2));
        }
        out.extend(conv_state("_conv_head", &self._conv_head));
        out.extend(batch_norm_state("_bn1", &self._bn1));
        out.extend(linear_state("_fc", &self._fc));
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// This network with `fc` as its classifier (a new one, for other classes).
    #[must_use]
    pub fn with_classifier(self, fc: Linear) -> Self {
        Self { _fc: fc, ..self }
    }

    /// This network with everything before its last stage frozen (no gradients, BatchNorms in
    /// evaluation mode): the last stage's blocks (the trailing run of the last block's output
    /// width: one block in Lite0), `_conv_head`, `_bn1` and `_fc` train.
    #[must_use]
    pub fn freeze_all_but_last_stage(self) -> Self {
        let width = |b: &MbConv| b._project_conv.weight.dims()[0];
        let last = self._blocks.last().map(width);
        let first_trainable = self
            ._blocks
            .iter()
            .rposition(|b| Some(width(b)) != last)
            .map_or(0, |i| i + 1);
        let blocks = self
            ._blocks
            .into_iter()
            .enumerate()
            .map(|(i, b)| if i < first_trainable { b.freeze() } else { b })
            .collect();
        Self {
            _conv_stem: self._conv_stem.freeze(),
            _bn0: self._bn0.freeze(),
            _blocks: blocks,
            ..self
        }
    }

    /// The stem and the MBConv blocks, which `forward` and `trunk` share.
    fn body(&self, x: Tensor<4>) -> Tensor<4> {
        let x = relu6(batch_norm(&self._bn0, same_conv(&self._conv_stem, x)));
        self._blocks.iter().fold(x, |x, b| b.forward(x))
    }
}

impl Architecture for EfficientNetLite {
    fn family() -> &'static str {
        "an EfficientNet-Lite"
    }

    fn recognises(file: &WeightFile) -> bool {
        file.header.contains_key("_conv_stem.weight")
    }

    fn markers() -> &'static [&'static str] {
        &[
            "_conv_stem.weight",
            "_bn0.weight",
            "_blocks.0._depthwise_conv.weight",
            "_conv_head.weight",
            "_fc.weight",
        ]
    }

    fn from_weights(file: &WeightFile, device: &Device) -> Result<(Self, Description), WeightsError> {
        let (net, shape) = Self::from_file(file, device)?;
        Ok((
            net,
            Description {
                arch: shape.name(),
                features: shape.features,
                classes: shape.classes,
            },
        ))
    }

    fn forward(&self, x: Tensor<4>) -> Forward {
        let x = self.body(x);
        let x = relu6(batch_norm(&self._bn1, cost::conv(&self._conv_head, x)));
        let pooled: Tensor<2> = self._avg_pooling.forward(x).flatten(1, 3);
        let logits = cost::linear(&self._fc, pooled.clone());
        Forward { pooled, logits }
    }

    /// Everything up to the head BatchNorm's input (the output of `_conv_head`).
    fn trunk(&self, x: Tensor<4>) -> TrunkOut {
        TrunkOut {
            pre_bn: cost::conv(&self._conv_head, self.body(x)),
            residual: None,
        }
    }

    /// `_bn1` (after `_conv_head`) and `_fc`.
    fn head(&self) -> Head {
        // The package builds its BatchNorms with momentum 1 - 0.99 (TensorFlow's 0.99).
        Head::from_modules(&self._bn1, &self._fc, 0.01, Activation::Relu6, "_bn1", "_fc")
    }

    fn library(&self) -> &'static str {
        "efficientnet-lite-pytorch"
    }

    fn trains_end_to_end(&self) -> bool {
        true
    }

    // The recipe is the default: ImageNet mean/std and bilinear, as efficientnet-lite-pytorch's
    // own example, with TF EfficientNet's eval crop of 224/256.
}

/// An MBConv block for inference: its BatchNorms folded into the convolutions.
#[derive(Clone, Debug)]
struct FoldedMbConv {
    expand: Option<Conv>,
    depthwise: Conv,
    project: Conv,
    /// Whether the input is added (stride 1, as many channels out as in).
    residual: bool,
}

impl FoldedMbConv {
    fn of(b: &MbConv) -> Self {
        let fold = |conv: &Conv2d, bn: &BatchNorm| {
            Conv::from_burn(conv, Padding::Same).fold(&layers::BatchNorm::from_burn(bn))
        };
        let [c_out, ..] = b._project_conv.weight.dims();
        let c_in = match &b._expand_conv {
            Some(e) => e.weight.dims()[1],
            None => b._depthwise_conv.weight.dims()[0],
        };
        Self {
            expand: match (&b._expand_conv, &b._bn0) {
                (Some(conv), Some(bn)) => Some(fold(conv, bn)),
                _ => None,
            },
            depthwise: fold(&b._depthwise_conv, &b._bn1),
            project: fold(&b._project_conv, &b._bn2),
            residual: b._depthwise_conv.stride == [1, 1] && c_in == c_out,
        }
    }

    fn forward(&self, inputs: Tensor<4>) -> Tensor<4> {
        let x = match &self.expand {
            Some(e) => Activation::Relu6.apply(e.forward(inputs.clone())),
            None => inputs.clone(),
        };
        let x = self.project.forward(Activation::Relu6.apply(self.depthwise.forward(x)));
        if self.residual { x + inputs } else { x }
    }
}

/// EfficientNet-Lite for inference: the `EfficientNetLite` the weights load into, with every
/// BatchNorm but the head's (`_bn1`) folded into its convolution. What `Model` runs;
/// `EfficientNetLite` itself is what trains (`model::end_to_end`).
#[derive(Debug)]
pub struct FoldedLite {
    stem: Conv,
    blocks: Vec<FoldedMbConv>,
    conv_head: Conv,
    head: Head,
}

impl FoldedLite {
    /// `net` folded.
    #[must_use]
    pub fn of(net: &EfficientNetLite) -> Self {
        Self {
            stem: Conv::from_burn(&net._conv_stem, Padding::Same).fold(&layers::BatchNorm::from_burn(&net._bn0)),
            blocks: net._blocks.iter().map(FoldedMbConv::of).collect(),
            conv_head: Conv::from_burn(&net._conv_head, Padding::Same),
            head: Architecture::head(net),
        }
    }
}

impl Architecture for FoldedLite {
    fn family() -> &'static str {
        EfficientNetLite::family()
    }

    fn recognises(file: &WeightFile) -> bool {
        EfficientNetLite::recognises(file)
    }

    fn markers() -> &'static [&'static str] {
        EfficientNetLite::markers()
    }

    fn from_weights(file: &WeightFile, device: &Device) -> Result<(Self, Description), WeightsError> {
        let (net, description) = EfficientNetLite::from_weights(file, device)?;
        Ok((Self::of(&net), description))
    }

    fn trunk(&self, x: Tensor<4>) -> TrunkOut {
        let x = Activation::Relu6.apply(self.stem.forward(x));
        let x = self.blocks.iter().fold(x, |x, b| b.forward(x));
        TrunkOut {
            pre_bn: self.conv_head.forward(x),
            residual: None,
        }
    }

    fn head(&self) -> Head {
        self.head.clone()
    }

    fn library(&self) -> &'static str {
        "efficientnet-lite-pytorch"
    }

    fn trains_end_to_end(&self) -> bool {
        true
    }
}
