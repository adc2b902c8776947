//! The split of a classifier into a frozen trunk and a head: the last normalisation before the
//! classifier (a BatchNorm before pooling, or a LayerNorm of the pooled features or class token),
//! its activation, the pooling and the classifier (one Linear, or an MLP). It is a property of
//! the network (each family says where its head starts, `Architecture::trunk` / `head`);
//! `finetune` trains the head.
//!
//! The head is written out in tensor operations rather than Burn's `BatchNorm` / `LayerNorm` so
//! that every statistic is PyTorch's to the letter (and checked against it in the fine-tune
//! tests).

use burn::nn::{BatchNorm, Linear};
use burn::tensor::Tensor;

use super::{Forward, values};

/// What the frozen trunk hands the head: the last normalisation's input and the residual to add
/// after it (ResNet), `[batch, C, H, W]` each. For a LayerNorm head the trunk has already pooled
/// (or picked the class token): `[batch, C, 1, 1]`, DeiT's two tokens `[batch, C, 1, 2]`.
#[derive(Clone, Debug)]
pub struct TrunkOut {
    /// Input of the last normalisation.
    pub pre_bn: Tensor<4>,
    /// Residual added after it (ResNet's identity branch), if any.
    pub residual: Option<Tensor<4>>,
}

/// An activation of the head: after its normalisation, or between the layers of an MLP
/// classifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// None (ConvNeXt and ViT: the LayerNorm feeds the classifier).
    Identity,
    /// ReLU (ResNet, RegNet, MobileNetV2's ReLU6 aside).
    Relu,
    /// ReLU6 (EfficientNet-Lite, MobileNetV2).
    Relu6,
    /// SiLU (EfficientNet).
    Silu,
    /// Hardswish (MobileNetV3).
    Hardswish,
    /// GELU, exact (erf) as PyTorch's default (ConvNeXt's and ViT's MLPs).
    Gelu,
}

impl Activation {
    /// The activation applied to `x`.
    #[must_use]
    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Self::Identity => x,
            Self::Relu if super::fast_math::applies(&x) => super::fast_math::map(x, super::fast_math::relu),
            Self::Relu => x.clamp_min(0.0),
            Self::Relu6 if super::fast_math::applies(&x) => super::fast_math::map(x, super::fast_math::relu6),
            Self::Relu6 => x.clamp(0.0, 6.0),
            // Burn's CPU SiLU is scalar libm `expf` on one thread (`fast_math`).
            Self::Silu if super::fast_math::applies(&x) => super::fast_math::map(x, super::fast_math::silu),
            Self::Silu => burn::tensor::activation::silu(x),
            // PyTorch's: x · relu6(x + 3) / 6.
            Self::Hardswish if super::fast_math::applies(&x) => super::fast_math::map(x, super::fast_math::hardswish),
            Self::Hardswish => x.clone() * (x + 3.0).clamp(0.0, 6.0) / 6.0,
            Self::Gelu if super::fast_math::applies(&x) => super::fast_math::map(x, super::fast_math::gelu),
            Self::Gelu => burn::tensor::activation::gelu(x),
        }
    }
}

/// A fully connected layer of the classifier, in PyTorch's layout.
#[derive(Clone, Debug)]
pub struct Dense {
    /// Weight, `[out, in]`.
    pub weight: Tensor<2>,
    /// Bias, `[out]`.
    pub bias: Tensor<1>,
    /// Key prefix in the weights file ("fc", "classifier.3").
    pub key: String,
    /// Whether the file stores it as a 1×1 convolution (`[out, in, 1, 1]`: timm's
    /// MobileNetV3 `conv_head`).
    pub conv: bool,
}

impl Dense {
    /// A Burn `Linear` as PyTorch lays it out (Burn stores `[in, out]`), under `key`.
    #[must_use]
    pub fn from_linear(fc: &Linear, key: &str) -> Self {
        let [_, out] = fc.weight.dims();
        Self {
            weight: fc.weight.val().transpose(),
            bias: fc
                .bias
                .as_ref()
                .map_or_else(|| Tensor::zeros([out], &fc.weight.device()), |b| b.val()),
            key: key.to_owned(),
            conv: false,
        }
    }

    /// `x · Wᵀ + b`, `[batch, in]` → `[batch, out]`, for any weight and bias given (training
    /// passes its autodiff leaves).
    #[must_use]
    pub fn apply(x: Tensor<2>, weight: Tensor<2>, bias: Tensor<1>) -> Tensor<2> {
        let ([rows, inp], [out, _]) = (x.dims(), weight.dims());
        super::cost::matmul_done(1, rows, inp, out);
        x.matmul(weight.transpose()) + bias.unsqueeze::<2>()
    }

    fn named_tensors(&self) -> [(String, Vec<usize>, Vec<f32>); 2] {
        let [out, inp] = self.weight.dims();
        let shape = if self.conv {
            vec![out, inp, 1, 1]
        } else {
            vec![out, inp]
        };
        [
            (format!("{}.weight", self.key), shape, values(&self.weight)),
            (format!("{}.bias", self.key), vec![out], values(&self.bias)),
        ]
    }
}

/// A BatchNorm's running statistics (a LayerNorm has none).
#[derive(Clone, Debug)]
pub struct RunningStats {
    /// Running mean, `[C]`.
    pub mean: Tensor<1>,
    /// Running (unbiased) variance, `[C]`.
    pub var: Tensor<1>,
    /// Update momentum (PyTorch's convention: weight of the new batch).
    pub momentum: f64,
}

/// The trainable head: the last normalisation and the classifier, in PyTorch's layouts.
#[derive(Clone, Debug)]
pub struct Head {
    /// Normalisation weight, `[C]`.
    pub gamma: Tensor<1>,
    /// Normalisation bias, `[C]`.
    pub beta: Tensor<1>,
    /// Normalisation epsilon.
    pub eps: f64,
    /// A BatchNorm's running statistics; `None` for a LayerNorm (normalising over the channels
    /// of each position of the pooled `[batch, C, 1, 1]` trunk output).
    pub running: Option<RunningStats>,
    /// Key prefix of the normalisation in the weights file ("layer4.1.bn2", "head.norm").
    pub norm_key: String,
    /// Activation after the normalisation (and residual).
    pub activation: Activation,
    /// Layers of an MLP classifier before its last (MobileNetV3), each followed by
    /// `hidden_activation`; empty for a single Linear.
    pub hidden: Vec<Dense>,
    /// Activation between the MLP's layers.
    pub hidden_activation: Activation,
    /// The last Linear, whose outputs are the classes.
    pub classifier: Dense,
    /// DeiT's distillation head (`head_dist`): the trunk hands over two tokens (`[batch, C, 1,
    /// 2]`: class, distillation), `classifier` reads the first, this the second, and the logits
    /// are their mean, as timm's in eval mode.
    pub distilled: Option<Dense>,
}

/// The classifier's parameters as passed through `finish`: each layer's weight and bias, the
/// hidden layers first.
pub type Layers = Vec<(Tensor<2>, Tensor<1>)>;

impl Head {
    /// The head made of a network's last BatchNorm and its one Linear classifier (with
    /// `momentum`, PyTorch's convention, and the keys they have in the weights file).
    #[must_use]
    pub fn from_modules(
        bn: &BatchNorm,
        fc: &Linear,
        momentum: f64,
        activation: Activation,
        bn_key: &str,
        fc_key: &str,
    ) -> Self {
        Self {
            gamma: bn.gamma.val(),
            beta: bn.beta.val(),
            eps: bn.epsilon,
            running: Some(RunningStats {
                mean: bn.running_mean.value(),
                var: bn.running_var.value(),
                momentum,
            }),
            norm_key: bn_key.to_owned(),
            activation,
            hidden: Vec::new(),
            hidden_activation: Activation::Identity,
            classifier: Dense::from_linear(fc, fc_key),
            distilled: None,
        }
    }

    /// This head with `a·x + b` applied to every value of the classifier's input, folded into
    /// the layers that read it (the first of an MLP, or the classifier and the distillation
    /// head): `W(a·x + b) + c = (a·W)·x + (c + b·ΣW)`, row sums per output.
    #[must_use]
    pub fn with_affine_input(&self, a: f32, b: f32) -> Self {
        let mut head = self.clone();
        let first: Vec<&mut Dense> = if head.hidden.is_empty() {
            std::iter::once(&mut head.classifier)
                .chain(head.distilled.iter_mut())
                .collect()
        } else {
            vec![&mut head.hidden[0]]
        };
        for layer in first {
            let row_sums = layer.weight.clone().sum_dim(1).flatten::<1>(0, 1);
            layer.bias = layer.bias.clone() + row_sums * b;
            layer.weight = layer.weight.clone() * a;
        }
        head
    }

    /// "BatchNorm" or "LayerNorm": what the head normalises with, for the user.
    #[must_use]
    pub fn norm_name(&self) -> &'static str {
        if self.running.is_some() {
            "BatchNorm"
        } else {
            "LayerNorm"
        }
    }

    /// The classifier's layers in order: the hidden ones, the last, the distillation head.
    pub fn dense(&self) -> impl Iterator<Item = &Dense> {
        self.hidden
            .iter()
            .chain(std::iter::once(&self.classifier))
            .chain(self.distilled.iter())
    }

    /// `dense`, to update.
    pub fn dense_mut(&mut self) -> impl Iterator<Item = &mut Dense> {
        self.hidden
            .iter_mut()
            .chain(std::iter::once(&mut self.classifier))
            .chain(self.distilled.iter_mut())
    }

    /// The classifier's weights and biases (`dense`'s order), for `finish`.
    #[must_use]
    pub fn layers(&self) -> Layers {
        self.dense().map(|d| (d.weight.clone(), d.bias.clone())).collect()
    }

    /// What follows the normalisation, in training and in inference alike, up to the
    /// classifier's input: the residual, the activation and global average pooling;
    /// `[batch, C, H, W]` → `[batch, C]`.
    #[must_use]
    pub fn pool(&self, normalized: Tensor<4>, residual: Option<Tensor<4>>) -> Tensor<2> {
        let y = match residual {
            Some(r) => normalized + r,
            None => normalized,
        };
        self.activation.apply(y).mean_dim(2).mean_dim(3).flatten(1, 3)
    }

    /// The classifier (`layers`, the hidden ones first) on the pooled features. The layers are
    /// given apart from the head so that training can pass its autodiff leaves.
    #[must_use]
    pub fn classify(&self, pooled: Tensor<2>, layers: Layers) -> Tensor<2> {
        let last = layers.len().saturating_sub(1);
        let mut x = pooled;
        for (i, (w, b)) in layers.into_iter().enumerate() {
            x = Dense::apply(x, w, b);
            if i < last {
                x = self.hidden_activation.apply(x);
            }
        }
        x
    }

    /// `pool` then `classify`: `[batch, C, H, W]` → `[batch, classes]`; with a distillation
    /// head, the mean of both heads on their tokens.
    #[must_use]
    pub fn finish(&self, normalized: Tensor<4>, residual: Option<Tensor<4>>, mut layers: Layers) -> Tensor<2> {
        if self.distilled.is_some() {
            debug_assert!(
                self.hidden.is_empty() && layers.len() == 2,
                "a distilled head has two Linears"
            );
            let [b, c, _, _] = normalized.dims();
            let token = |i: usize| normalized.clone().narrow(3, i, 1).reshape([b, c]);
            let (wd, bd) = layers.pop().expect("two layers");
            let (w, bias) = layers.pop().expect("two layers");
            return (Dense::apply(token(0), w, bias) + Dense::apply(token(1), wd, bd)) / 2.0;
        }
        self.classify(self.pool(normalized, residual), layers)
    }

    /// A LayerNorm over the channels of each position (ConvNeXt's `LayerNorm2d`, ViT's `norm`
    /// on the class token), biased variance as PyTorch.
    #[must_use]
    pub fn layer_norm(x: Tensor<4>, gamma: Tensor<1>, beta: Tensor<1>, eps: f64) -> Tensor<4> {
        let [_, c, _, _] = x.dims();
        let mean = x.clone().mean_dim(1);
        let centered = x - mean;
        let var = centered.clone().powf_scalar(2.0).mean_dim(1);
        let normed = centered / (var + eps).sqrt();
        normed * gamma.reshape([1, c, 1, 1]) + beta.reshape([1, c, 1, 1])
    }

    /// The normalisation in eval mode (a BatchNorm's running statistics).
    fn normalize(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, c, _, _] = x.dims();
        let shape = [1, c, 1, 1];
        match &self.running {
            Some(stats) => {
                let normed =
                    (x - stats.mean.clone().reshape(shape)) / (stats.var.clone() + self.eps).sqrt().reshape(shape);
                normed * self.gamma.clone().reshape(shape) + self.beta.clone().reshape(shape)
            }
            None => Self::layer_norm(x, self.gamma.clone(), self.beta.clone(), self.eps),
        }
    }

    /// Pooled features and logits with the normalisation in eval mode: what the network (or the
    /// fine-tuned model) computes at test time.
    #[must_use]
    pub fn forward(&self, trunk: &TrunkOut) -> Forward {
        let normalized = self.normalize(trunk.pre_bn.clone());
        let pooled = self.pool(normalized.clone(), trunk.residual.clone());
        let logits = if self.distilled.is_some() {
            self.finish(normalized, None, self.layers())
        } else {
            self.classify(pooled.clone(), self.layers())
        };
        Forward { pooled, logits }
    }

    /// Logits with the normalisation in eval mode.
    #[must_use]
    pub fn infer(&self, trunk: &TrunkOut) -> Tensor<2> {
        self.forward(trunk).logits
    }

    /// Whether every value of the head is finite.
    #[must_use]
    pub fn is_finite(&self) -> bool {
        self.named_tensors()
            .iter()
            .all(|(_, _, v)| v.iter().all(|x| x.is_finite()))
    }

    /// The classifier's keys in the weights file (its last layer's weight, then bias, and the
    /// distillation head's): those whose shape changes with the number of classes.
    #[must_use]
    pub fn classifier_keys(&self) -> Vec<String> {
        std::iter::once(&self.classifier)
            .chain(self.distilled.iter())
            .flat_map(|d| [format!("{}.weight", d.key), format!("{}.bias", d.key)])
            .collect()
    }

    /// The head's tensors under their keys in the weights file, PyTorch layouts, f32.
    #[must_use]
    pub fn named_tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let c = self.gamma.dims()[0];
        let key = &self.norm_key;
        let mut out = vec![
            (format!("{key}.weight"), vec![c], values(&self.gamma)),
            (format!("{key}.bias"), vec![c], values(&self.beta)),
        ];
        if let Some(stats) = &self.running {
            out.push((format!("{key}.running_mean"), vec![c], values(&stats.mean)));
            out.push((format!("{key}.running_var"), vec![c], values(&stats.var)));
        }
        for layer in self.dense() {
            out.extend(layer.named_tensors());
        }
        out
    }
}
