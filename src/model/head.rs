//! The split of a classifier into a frozen trunk and a head: the last BatchNorm before pooling,
//! its activation, the pooling and the classifier. It is a property of the network (each family
//! says where its head starts, `Architecture::trunk` / `head`); `finetune` trains the head.
//!
//! The head is written out in tensor operations rather than Burn's `BatchNorm` so that every
//! statistic is PyTorch's to the letter (and checked against it in the fine-tune tests).

use burn::nn::{BatchNorm, Linear};
use burn::tensor::Tensor;

use super::values;

/// What the frozen trunk hands the head: the last BatchNorm's input and the residual to add
/// after it (ResNet), `[batch, C, H, W]` each.
#[derive(Clone, Debug)]
pub struct TrunkOut {
    /// Input of the last BatchNorm.
    pub pre_bn: Tensor<4>,
    /// Residual added after it (ResNet's identity branch), if any.
    pub residual: Option<Tensor<4>>,
}

/// The activation after the last BatchNorm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// ReLU (ResNet).
    Relu,
    /// ReLU6 (EfficientNet-Lite).
    Relu6,
}

impl Activation {
    /// The activation applied to `x`.
    #[must_use]
    pub fn apply(self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Self::Relu => x.clamp_min(0.0),
            Self::Relu6 => x.clamp(0.0, 6.0),
        }
    }
}

/// The trainable head: the last BatchNorm and the classifier, in PyTorch's layouts.
#[derive(Clone, Debug)]
pub struct Head {
    /// BatchNorm weight, `[C]`.
    pub gamma: Tensor<1>,
    /// BatchNorm bias, `[C]`.
    pub beta: Tensor<1>,
    /// Running mean, `[C]`.
    pub running_mean: Tensor<1>,
    /// Running (unbiased) variance, `[C]`.
    pub running_var: Tensor<1>,
    /// Classifier weight, `[classes, C]` (PyTorch's layout).
    pub fc_weight: Tensor<2>,
    /// Classifier bias, `[classes]`.
    pub fc_bias: Tensor<1>,
    /// BatchNorm epsilon.
    pub eps: f64,
    /// Running-statistics momentum (PyTorch's convention: weight of the new batch).
    pub momentum: f64,
    /// Activation after the BatchNorm.
    pub activation: Activation,
    /// Key prefix of the BatchNorm in the weights file ("layer4.1.bn2").
    pub bn_key: String,
    /// Key prefix of the classifier ("fc").
    pub fc_key: String,
}

/// What follows the normalisation, in training and in inference alike: the residual, the
/// activation, global average pooling and the classifier; `[batch, C, H, W]` → `[batch, classes]`.
/// The classifier is given apart from the head so that training can pass its autodiff leaves.
#[must_use]
pub fn finish(
    normalized: Tensor<4>,
    residual: Option<Tensor<4>>,
    activation: Activation,
    fc_weight: Tensor<2>,
    fc_bias: Tensor<1>,
) -> Tensor<2> {
    let y = match residual {
        Some(r) => normalized + r,
        None => normalized,
    };
    let pooled: Tensor<2> = activation.apply(y).mean_dim(2).mean_dim(3).flatten(1, 3);
    pooled.matmul(fc_weight.transpose()) + fc_bias.unsqueeze::<2>()
}

impl Head {
    /// The head made of a network's last BatchNorm and its classifier (with `momentum`, PyTorch's
    /// convention, and the keys they have in the weights file).
    #[must_use]
    pub fn from_modules(
        bn: &BatchNorm,
        fc: &Linear,
        momentum: f64,
        activation: Activation,
        bn_key: &str,
        fc_key: &str,
    ) -> Self {
        let [_, classes] = fc.weight.dims();
        Self {
            gamma: bn.gamma.val(),
            beta: bn.beta.val(),
            running_mean: bn.running_mean.value(),
            running_var: bn.running_var.value(),
            // Burn stores Linear as [in, out]; the head keeps PyTorch's [out, in].
            fc_weight: fc.weight.val().transpose(),
            fc_bias: fc
                .bias
                .as_ref()
                .map_or_else(|| Tensor::zeros([classes], &fc.weight.device()), |b| b.val()),
            eps: bn.epsilon,
            momentum,
            activation,
            bn_key: bn_key.to_owned(),
            fc_key: fc_key.to_owned(),
        }
    }

    /// Logits with the BatchNorm in eval mode (running statistics): what the fine-tuned model
    /// computes at test time.
    #[must_use]
    pub fn infer(&self, trunk: &TrunkOut) -> Tensor<2> {
        let x = trunk.pre_bn.clone();
        let [_, c, _, _] = x.dims();
        let shape = [1, c, 1, 1];
        let normed = (x - self.running_mean.clone().reshape(shape))
            / (self.running_var.clone() + self.eps).sqrt().reshape(shape);
        let y = normed * self.gamma.clone().reshape(shape) + self.beta.clone().reshape(shape);
        finish(
            y,
            trunk.residual.clone(),
            self.activation,
            self.fc_weight.clone(),
            self.fc_bias.clone(),
        )
    }

    /// Whether every value of the head is finite.
    #[must_use]
    pub fn is_finite(&self) -> bool {
        [
            &self.gamma,
            &self.beta,
            &self.running_mean,
            &self.running_var,
            &self.fc_bias,
        ]
        .into_iter()
        .all(|t| values(t).iter().all(|v| v.is_finite()))
            && values(&self.fc_weight).iter().all(|v| v.is_finite())
    }

    /// The classifier's keys in the weights file: its weight, then its bias.
    #[must_use]
    pub fn classifier_keys(&self) -> [String; 2] {
        [format!("{}.weight", self.fc_key), format!("{}.bias", self.fc_key)]
    }

    /// The head's tensors under their keys in the weights file, PyTorch layouts, f32.
    #[must_use]
    pub fn named_tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let named = |key: String, t: Vec<f32>, shape: Vec<usize>| (key, shape, t);
        let [k, f] = self.fc_weight.dims();
        let c = self.gamma.dims()[0];
        let [fc_weight, fc_bias] = self.classifier_keys();
        vec![
            named(format!("{}.weight", self.bn_key), values(&self.gamma), vec![c]),
            named(format!("{}.bias", self.bn_key), values(&self.beta), vec![c]),
            named(
                format!("{}.running_mean", self.bn_key),
                values(&self.running_mean),
                vec![c],
            ),
            named(
                format!("{}.running_var", self.bn_key),
                values(&self.running_var),
                vec![c],
            ),
            named(fc_weight, values(&self.fc_weight), vec![k, f]),
            named(fc_bias, values(&self.fc_bias), vec![k]),
        ]
    }
}
