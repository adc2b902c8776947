//! The FixRes fine-tune step (paper §4, official code): the network stays in eval mode except its
//! last BatchNorm before pooling, which normalises with batch statistics and updates its running
//! statistics (momentum 0.1, running variance from the UNBIASED batch variance, as PyTorch);
//! trainable are that BatchNorm's affine and the classifier. The frozen trunk runs without
//! autodiff; only this head is differentiated, so trunk outputs can be cached per (image, K).
//!
//! The head is written out in tensor operations rather than Burn's `BatchNorm` so that every
//! statistic is PyTorch's to the letter (and checked against it in tests/finetune.rs).

pub mod cache;
pub mod run;

use burn::tensor::{Device, Tensor, TensorData};

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

/// Which head parameters train.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trainable {
    /// The classifier.
    pub classifier: bool,
    /// The BatchNorm's affine (its running statistics always update).
    pub bn_affine: bool,
}

/// SGD as PyTorch's `torch.optim.SGD` (no dampening, no Nesterov): `d = g + wd·p`,
/// `buf = d` on the first step then `buf = momentum·buf + d`, `p -= lr·buf`.
#[derive(Clone, Debug)]
pub struct Sgd {
    /// Learning rate.
    pub lr: f64,
    /// Momentum.
    pub momentum: f64,
    /// Weight decay.
    pub weight_decay: f64,
    buffers: [Option<Vec<f32>>; 4],
}

impl Sgd {
    /// A fresh optimizer.
    #[must_use]
    pub fn new(lr: f64, momentum: f64, weight_decay: f64) -> Self {
        Self {
            lr,
            momentum,
            weight_decay,
            buffers: Default::default(),
        }
    }

    /// The FixRes default learning rate for a batch size: 8·1e-3·batch/512.
    #[must_use]
    pub fn fixres_lr(batch: usize) -> f64 {
        8e-3 * batch as f64 / 512.0
    }

    fn update(&mut self, slot: usize, param: &mut [f32], grad: &[f32]) {
        let (lr, m, wd) = (self.lr as f32, self.momentum as f32, self.weight_decay as f32);
        let d: Vec<f32> = param.iter().zip(grad).map(|(p, g)| g + wd * p).collect();
        let buf = match &mut self.buffers[slot] {
            Some(buf) => {
                for (b, di) in buf.iter_mut().zip(&d) {
                    *b = m * *b + di;
                }
                buf
            }
            none => none.insert(d),
        };
        for (p, b) in param.iter_mut().zip(buf.iter()) {
            *p -= lr * b;
        }
    }
}

fn values<const D: usize>(t: &Tensor<D>) -> Vec<f32> {
    t.to_data().try_to_vec::<f32>().unwrap_or_default()
}

fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// Mean over batch and space, kept as `[1, C, 1, 1]`.
fn channel_mean(x: Tensor<4>) -> Tensor<4> {
    x.mean_dim(0).mean_dim(2).mean_dim(3)
}

impl Head {
    /// Logits with the BatchNorm in eval mode (running statistics): what the fine-tuned model
    /// computes at test time.
    #[must_use]
    pub fn infer(&self, trunk: &TrunkOut) -> Tensor<2> {
        let x = trunk.pre_bn.clone();
        let [_, c, _, _] = x.dims();
        let shape = [1, c, 1, 1];
        let normed = (x - self.running_mean.clone().reshape(shape))
            / (self.running_var.clone() + self.eps).sqrt().reshape(shape);
        let mut y = normed * self.gamma.clone().reshape(shape) + self.beta.clone().reshape(shape);
        if let Some(r) = &trunk.residual {
            y = y + r.clone();
        }
        let y = match self.activation {
            Activation::Relu => y.clamp_min(0.0),
            Activation::Relu6 => y.clamp(0.0, 6.0),
        };
        let pooled: Tensor<2> = y.mean_dim(2).mean_dim(3).flatten(1, 3);
        pooled.matmul(self.fc_weight.clone().transpose()) + self.fc_bias.clone().unsqueeze::<2>()
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

    /// The head's tensors under their keys in the weights file, PyTorch layouts, f32.
    #[must_use]
    pub fn named_tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let named = |key: String, t: Vec<f32>, shape: Vec<usize>| (key, shape, t);
        let [k, f] = self.fc_weight.dims();
        let c = self.gamma.dims()[0];
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
            named(format!("{}.weight", self.fc_key), values(&self.fc_weight), vec![k, f]),
            named(format!("{}.bias", self.fc_key), values(&self.fc_bias), vec![k]),
        ]
    }

    /// Logits with the BatchNorm in training mode; also returns the batch mean and biased
    /// variance, `[C]` each.
    fn forward_train(
        &self,
        trunk: &TrunkOut,
        gamma: Tensor<1>,
        beta: Tensor<1>,
        fc_weight: Tensor<2>,
        fc_bias: Tensor<1>,
    ) -> (Tensor<2>, Tensor<1>, Tensor<1>) {
        // The trunk's outputs enter the graph as constants.
        let x = trunk.pre_bn.clone().autodiff();
        let [_, c, _, _] = x.dims();
        let mean = channel_mean(x.clone());
        let centered = x - mean.clone();
        let var = channel_mean(centered.clone().powf_scalar(2.0));
        let normed = centered / (var.clone() + self.eps).sqrt();
        let mut y = normed * gamma.reshape([1, c, 1, 1]) + beta.reshape([1, c, 1, 1]);
        if let Some(r) = &trunk.residual {
            y = y + r.clone().autodiff();
        }
        let y = match self.activation {
            Activation::Relu => y.clamp_min(0.0),
            Activation::Relu6 => y.clamp(0.0, 6.0),
        };
        let pooled: Tensor<2> = y.mean_dim(2).mean_dim(3).flatten(1, 3);
        let logits = pooled.matmul(fc_weight.transpose()) + fc_bias.unsqueeze::<2>();
        (logits, mean.flatten(0, 3), var.flatten(0, 3))
    }

    /// One SGD step on a batch: returns the loss (mean cross-entropy) before the update.
    pub fn step(
        &mut self,
        trunk: &TrunkOut,
        targets: &[usize],
        trainable: Trainable,
        sgd: &mut Sgd,
        device: &Device,
    ) -> f32 {
        let leaf = |t: &Tensor<1>| t.clone().autodiff().require_grad();
        let (gamma, beta, fc_bias) = (leaf(&self.gamma), leaf(&self.beta), leaf(&self.fc_bias));
        let fc_weight = self.fc_weight.clone().autodiff().require_grad();
        let (logits, mean, var) =
            self.forward_train(trunk, gamma.clone(), beta.clone(), fc_weight.clone(), fc_bias.clone());
        let [n, classes] = logits.dims();
        let mut one_hot = vec![0f32; n * classes];
        for (i, &t) in targets.iter().enumerate() {
            one_hot[i * classes + t] = 1.0;
        }
        let one_hot = tensor(one_hot, [n, classes], device).autodiff();
        let log_probs = burn::tensor::activation::log_softmax(logits, 1);
        let loss = (log_probs * one_hot).sum().neg() / n as f64;
        let loss_value = values(&loss)[0];
        let grads = loss.backward();

        // Running statistics: PyTorch stores the unbiased batch variance.
        let [_, c, h, w] = trunk.pre_bn.dims();
        let count = (n * h * w) as f64;
        let m = self.momentum;
        let unbiased = var.inner() * (count / (count - 1.0).max(1.0));
        self.running_mean = self.running_mean.clone() * (1.0 - m) + mean.inner() * m;
        self.running_var = self.running_var.clone() * (1.0 - m) + unbiased * m;

        let mut apply = |slot: usize, param: &mut Vec<f32>, grad: Option<Vec<f32>>| {
            if let Some(g) = grad {
                sgd.update(slot, param, &g);
            }
        };
        if trainable.bn_affine {
            let (mut g, mut b) = (values(&self.gamma), values(&self.beta));
            apply(0, &mut g, gamma.grad(&grads).map(|t| values(&t)));
            apply(1, &mut b, beta.grad(&grads).map(|t| values(&t)));
            self.gamma = tensor(g, [c], device);
            self.beta = tensor(b, [c], device);
        }
        if trainable.classifier {
            let [k, f] = self.fc_weight.dims();
            let (mut wv, mut bv) = (values(&self.fc_weight), values(&self.fc_bias));
            apply(2, &mut wv, fc_weight.grad(&grads).map(|t| values(&t)));
            apply(3, &mut bv, fc_bias.grad(&grads).map(|t| values(&t)));
            self.fc_weight = tensor(wv, [k, f], device);
            self.fc_bias = tensor(bv, [k], device);
        }
        loss_value
    }
}
