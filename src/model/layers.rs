//! The layers the tensor-built families share (EfficientNet, MobileNet, RegNet, ConvNeXt, ViT):
//! each loaded from `Params` under the source library's key names and run with Burn's
//! functional ops. An inference BatchNorm after a convolution is folded into it at load
//! (`w·γ/√(σ²+ε)`, bias `β − μ·γ/√(σ²+ε)`), one multiply-add fewer per activation; the last
//! BatchNorm before pooling is the FixRes head's and stays apart (`model::head`).

use burn::tensor::module::conv2d;
use burn::tensor::ops::{ConvOptions, PadMode};
use burn::tensor::{Tensor, activation};

use super::head::{Activation, Dense, Head, RunningStats};
use super::params::Params;
use super::weights::WeightsError;

/// How a convolution pads its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// PyTorch's symmetric padding of `(k − 1) / 2 · dilation` (torchvision, timm's default).
    Centered,
    /// None (a patchifying convolution: kernel = stride).
    Zero,
    /// TensorFlow's "same": output = ⌈input / stride⌉, the odd pixel of padding after
    /// (bottom/right), computed from each input's size (timm's `tf_` models).
    Same,
}

/// A 2-D convolution (with a BatchNorm folded in, where it had one).
#[derive(Clone, Debug)]
pub struct Conv {
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: usize,
    groups: usize,
    padding: Padding,
}

/// TensorFlow "same" padding of one side: (before, after) for `size` with kernel `k`,
/// stride `s`, dilation `d`.
#[must_use]
pub fn same_padding(size: usize, k: usize, s: usize, d: usize) -> (usize, usize) {
    let out = size.div_ceil(s);
    let total = ((out - 1) * s + (k - 1) * d + 1).saturating_sub(size);
    (total / 2, total - total / 2)
}

/// Whether a bias is part of the layer in the source library.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bias {
    /// `{key}.bias` is taken.
    Yes,
    /// The layer has none (a BatchNorm follows).
    No,
}

impl Conv {
    /// `{key}.weight` (and `{key}.bias`), a `[out, in / groups, k, k]` convolution of `in_ch`
    /// input channels (the groups follow from the shape); its output channels are `out()`.
    pub fn load(
        p: &mut Params,
        key: &str,
        in_ch: usize,
        stride: usize,
        padding: Padding,
        bias: Bias,
    ) -> Result<Self, WeightsError> {
        let wkey = format!("{key}.weight");
        let shape = p.shape(&wkey, 4)?;
        let (out, per_group, kh, kw) = (shape[0], shape[1], shape[2], shape[3]);
        if per_group == 0 || !in_ch.is_multiple_of(per_group) || !out.is_multiple_of(in_ch / per_group) {
            return Err(p.error(format!(
                "{wkey}: shape {shape:?} does not fit the {in_ch} channels that reach it"
            )));
        }
        let groups = in_ch / per_group;
        let weight = p.tensor(&wkey, [out, per_group, kh, kw])?;
        let bias = match bias {
            Bias::Yes => Some(p.tensor(&format!("{key}.bias"), [out])?),
            Bias::No => None,
        };
        Ok(Self {
            weight,
            bias,
            stride,
            groups,
            padding,
        })
    }

    /// A convolution of Burn's `nn` module (no dilation), padded as `padding` says: how the
    /// Burn-built families (ResNet, EfficientNet-Lite) fold their BatchNorms for inference.
    #[must_use]
    pub fn from_burn(conv: &burn::nn::conv::Conv2d, padding: Padding) -> Self {
        Self {
            weight: conv.weight.val(),
            bias: conv.bias.as_ref().map(burn::module::Param::val),
            stride: conv.stride[0],
            groups: conv.groups,
            padding,
        }
    }

    /// Output channels.
    #[must_use]
    pub fn out(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Refuses this convolution (key `key`) unless it is depthwise over `channels`: one group a
    /// channel, as many outputs. The groups are read off the weight's shape, so a dense
    /// convolution where the architecture has a depthwise one would otherwise load, where
    /// PyTorch's strict load refuses its shape.
    pub fn expect_depthwise(&self, p: &Params, key: &str, channels: usize) -> Result<(), WeightsError> {
        let [out, per_group, kh, kw] = self.weight.dims();
        p.expect(key, &[out, per_group, kh, kw], &[channels, 1, kh, kw])
    }

    /// The convolution of `x`.
    #[must_use]
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, kh, kw] = self.weight.dims();
        let s = self.stride;
        let (x, pad) = match self.padding {
            Padding::Centered => (x, [(kh - 1) / 2, (kw - 1) / 2]),
            Padding::Zero => (x, [0, 0]),
            Padding::Same => {
                let [_, _, h, w] = x.dims();
                let (ph, pw) = (same_padding(h, kh, s, 1), same_padding(w, kw, s, 1));
                let x = if ph == (0, 0) && pw == (0, 0) {
                    x
                } else {
                    x.pad([ph, pw], PadMode::Constant(0.0))
                };
                (x, [0, 0])
            }
        };
        let y = if super::cpu_conv::handles(&x, self.weight.dims(), self.groups, s) {
            super::cpu_conv::conv(x, &self.weight, self.bias.as_ref(), s, pad, self.groups)
        } else {
            conv2d(
                x,
                self.weight.clone(),
                self.bias.clone(),
                ConvOptions::new([s, s], pad, [1, 1], self.groups),
            )
        };
        super::cost::conv_done(self.weight.dims(), y.dims());
        y
    }

    /// This convolution with the inference BatchNorm `bn` folded in.
    #[must_use]
    pub fn fold(self, bn: &BatchNorm) -> Self {
        let [out, ..] = self.weight.dims();
        let scale = bn.gamma.clone() / (bn.stats.var.clone() + bn.eps).sqrt();
        let shift = bn.beta.clone() - bn.stats.mean.clone() * scale.clone();
        let bias = match self.bias {
            Some(b) => b * scale.clone() + shift,
            None => shift,
        };
        Self {
            weight: self.weight * scale.reshape([out, 1, 1, 1]),
            bias: Some(bias),
            ..self
        }
    }
}

/// A BatchNorm's parameters and statistics, as PyTorch names them.
#[derive(Clone, Debug)]
pub struct BatchNorm {
    /// `weight`.
    pub gamma: Tensor<1>,
    /// `bias`.
    pub beta: Tensor<1>,
    /// `running_mean`, `running_var` (and the momentum they update with, for the head).
    pub stats: RunningStats,
    /// Epsilon (not in the file: the library's, given by the family).
    pub eps: f64,
}

impl BatchNorm {
    /// An inference BatchNorm of Burn's `nn` module.
    #[must_use]
    pub fn from_burn(bn: &burn::nn::BatchNorm) -> Self {
        Self {
            gamma: bn.gamma.val(),
            beta: bn.beta.val(),
            stats: RunningStats {
                mean: bn.running_mean.value(),
                var: bn.running_var.value(),
                momentum: bn.momentum,
            },
            eps: bn.epsilon,
        }
    }

    /// `{key}.weight/bias/running_mean/running_var` of `channels`.
    pub fn load(p: &mut Params, key: &str, channels: usize, eps: f64, momentum: f64) -> Result<Self, WeightsError> {
        let mut get = |name: &str| p.tensor(&format!("{key}.{name}"), [channels]);
        let (gamma, beta, mean, var) = (get("weight")?, get("bias")?, get("running_mean")?, get("running_var")?);
        p.take_batch_count(key);
        Ok(Self {
            gamma,
            beta,
            stats: RunningStats { mean, var, momentum },
            eps,
        })
    }
}

impl BatchNorm {
    /// The FixRes head made of this (the last) BatchNorm under `key`, its `activation`, and a
    /// one-Linear `classifier`.
    #[must_use]
    pub fn into_head(self, key: &str, activation: Activation, classifier: Dense) -> Head {
        Head {
            gamma: self.gamma,
            beta: self.beta,
            eps: self.eps,
            running: Some(self.stats),
            norm_key: key.to_owned(),
            activation,
            hidden: Vec::new(),
            hidden_activation: Activation::Identity,
            classifier,
            distilled: None,
        }
    }
}

/// A convolution followed by a BatchNorm (folded in) and an activation: torchvision's
/// `Conv2dNormActivation`, timm's `ConvBnAct`.
#[derive(Clone, Debug)]
pub struct ConvBnAct {
    /// The convolution, BatchNorm folded in.
    pub conv: Conv,
    /// The activation after it.
    pub act: Activation,
}

/// How the family's BatchNorms are made (not stored in the files).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BnConfig {
    /// Epsilon.
    pub eps: f64,
    /// Momentum (PyTorch's convention).
    pub momentum: f64,
}

impl ConvBnAct {
    /// Convolution `conv_key` on `in_ch` channels, BatchNorm `bn_key`, then `act`.
    #[allow(clippy::too_many_arguments)]
    pub fn load(
        p: &mut Params,
        conv_key: &str,
        bn_key: &str,
        in_ch: usize,
        stride: usize,
        padding: Padding,
        bn: BnConfig,
        act: Activation,
    ) -> Result<Self, WeightsError> {
        let conv = Conv::load(p, conv_key, in_ch, stride, padding, Bias::No)?;
        let norm = BatchNorm::load(p, bn_key, conv.out(), bn.eps, bn.momentum)?;
        Ok(Self {
            conv: conv.fold(&norm),
            act,
        })
    }

    /// Output channels.
    #[must_use]
    pub fn out(&self) -> usize {
        self.conv.out()
    }

    /// `act(bn(conv(x)))`.
    #[must_use]
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.act.apply(self.conv.forward(x))
    }
}

/// The gate of a squeeze-excitation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// σ(x) (EfficientNet, RegNetY).
    Sigmoid,
    /// PyTorch's hardsigmoid, relu6(x + 3) / 6 (MobileNetV3).
    HardSigmoid,
}

/// Squeeze-and-excitation: `x · gate(expand(act(reduce(mean(x)))))`, both 1×1 convolutions with
/// bias.
#[derive(Clone, Debug)]
pub struct SqueezeExcite {
    reduce: Conv,
    expand: Conv,
    act: Activation,
    gate: Gate,
}

impl SqueezeExcite {
    /// `{reduce}` then `{expand}` (keys as the library names them) on `channels`.
    pub fn load(
        p: &mut Params,
        reduce: &str,
        expand: &str,
        channels: usize,
        act: Activation,
        gate: Gate,
    ) -> Result<Self, WeightsError> {
        let reduce = Conv::load(p, reduce, channels, 1, Padding::Centered, Bias::Yes)?;
        let expand = Conv::load(p, expand, reduce.out(), 1, Padding::Centered, Bias::Yes)?;
        if expand.out() != channels {
            return Err(p.error(format!(
                "squeeze-excitation {}: gives {} channels for a block of {channels}",
                p.arch,
                expand.out()
            )));
        }
        Ok(Self {
            reduce,
            expand,
            act,
            gate,
        })
    }

    /// The gated `x`.
    #[must_use]
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let s = x.clone().mean_dim(2).mean_dim(3);
        let s = self.expand.forward(self.act.apply(self.reduce.forward(s)));
        let gate = match self.gate {
            Gate::Sigmoid if super::fast_math::applies(&s) => super::fast_math::map(s, super::fast_math::sigmoid),
            Gate::Sigmoid => activation::sigmoid(s),
            Gate::HardSigmoid => (s + 3.0).clamp(0.0, 6.0) / 6.0,
        };
        x * gate
    }
}

/// A fully connected layer, `[out, in]` as PyTorch stores it.
#[derive(Clone, Debug)]
pub struct Linear {
    weight: Tensor<2>,
    bias: Tensor<1>,
}

impl Linear {
    /// `{key}.weight` `[out, in_features]` and `{key}.bias`.
    pub fn load(p: &mut Params, key: &str, in_features: usize) -> Result<Self, WeightsError> {
        let wkey = format!("{key}.weight");
        let out = p.shape(&wkey, 2)?[0];
        Ok(Self {
            weight: p.tensor(&wkey, [out, in_features])?,
            bias: p.tensor(&format!("{key}.bias"), [out])?,
        })
    }

    /// Output features.
    #[must_use]
    pub fn out(&self) -> usize {
        self.weight.dims()[0]
    }

    /// `x · Wᵀ + b` over the last dimension of `x` (the leading ones flattened into rows for
    /// one matrix product).
    #[must_use]
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let mut dims = x.dims();
        let width = dims[D - 1];
        let rows = x.reshape([dims.iter().product::<usize>() / width.max(1), width]);
        super::cost::matmul_done(1, rows.dims()[0], width, self.out());
        let y = rows.matmul(self.weight.clone().transpose()) + self.bias.clone().unsqueeze::<2>();
        dims[D - 1] = self.out();
        y.reshape(dims)
    }

    /// The layer as a head's `Dense`, under `key`.
    #[must_use]
    pub fn dense(&self, key: &str) -> Dense {
        Dense {
            weight: self.weight.clone(),
            bias: self.bias.clone(),
            key: key.to_owned(),
            conv: false,
        }
    }
}

/// A LayerNorm's affine and epsilon.
#[derive(Clone, Debug)]
pub struct LayerNorm {
    /// `weight`.
    pub gamma: Tensor<1>,
    /// `bias`.
    pub beta: Tensor<1>,
    /// Epsilon (the library's).
    pub eps: f64,
}

impl LayerNorm {
    /// `{key}.weight` and `{key}.bias` of `width`.
    pub fn load(p: &mut Params, key: &str, width: usize, eps: f64) -> Result<Self, WeightsError> {
        Ok(Self {
            gamma: p.tensor(&format!("{key}.weight"), [width])?,
            beta: p.tensor(&format!("{key}.bias"), [width])?,
            eps,
        })
    }

    /// Normalised over the last dimension (`[.., C]`), biased variance as PyTorch.
    #[must_use]
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let mean = x.clone().mean_dim(D - 1);
        let centered = x - mean;
        let var = centered.clone().powf_scalar(2.0).mean_dim(D - 1);
        let normed = centered / (var + self.eps).sqrt();
        normed * self.gamma.clone().unsqueeze::<D>() + self.beta.clone().unsqueeze::<D>()
    }

    /// The FixRes head made of this (the last) LayerNorm under `key` and a one-Linear
    /// `classifier`.
    #[must_use]
    pub fn into_head(self, key: &str, classifier: Dense) -> Head {
        Head {
            gamma: self.gamma,
            beta: self.beta,
            eps: self.eps,
            running: None,
            norm_key: key.to_owned(),
            activation: Activation::Identity,
            hidden: Vec::new(),
            hidden_activation: Activation::Identity,
            classifier,
            distilled: None,
        }
    }

    /// Normalised over the channels of each position of `[B, C, H, W]` (`LayerNorm2d`).
    #[must_use]
    pub fn forward_2d(&self, x: Tensor<4>) -> Tensor<4> {
        super::head::Head::layer_norm(x, self.gamma.clone(), self.beta.clone(), self.eps)
    }
}
