//! The FixRes fine-tune step (paper §4, official code): the network stays in eval mode except its
//! last normalisation before the classifier. A BatchNorm normalises with batch statistics and
//! updates its running statistics (momentum as the network sets it, 0.1 in torchvision; running
//! variance from the UNBIASED batch variance, as PyTorch); a LayerNorm (ConvNeXt, ViT) has no
//! statistics and only its affine trains. Trainable are that normalisation's affine and the
//! classifier (every layer of an MLP classifier). The frozen trunk runs without autodiff; only
//! this head (`model::head`) is differentiated, so trunk outputs can be cached per (image, K).
//! The network knows nothing of training: this module implements the training step on its head,
//! as every statistic of PyTorch's, to the letter (checked in the fine-tune tests).

pub mod cache;
pub mod network;
pub mod run;
pub mod trunk_parts;

use burn::tensor::{Device, Tensor, TensorData};

use crate::model::head::{Head, Layers, TrunkOut};
use crate::training::{Part, classifier_rng, linear_init};

/// Which head parameters train.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trainable {
    /// The classifier.
    pub classifier: bool,
    /// The normalisation's affine (a BatchNorm's running statistics always update).
    pub bn_affine: bool,
}

/// SGD as PyTorch's `torch.optim.SGD` (no dampening, no Nesterov): `d = g + wd·p`,
/// `buf = d` on the first step then `buf = momentum·buf + d`, `p -= lr·buf`. Parameters and
/// momentum buffers stay on the device the head runs on (tensor ops, f32 as PyTorch's): a step
/// on a GPU reads nothing back.
#[derive(Clone, Debug)]
pub struct Sgd {
    /// Learning rate.
    pub lr: f64,
    /// Momentum.
    pub momentum: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Momentum buffers by parameter slot (`Head::step` numbers its parameters), flattened.
    buffers: Vec<Option<Tensor<1>>>,
}

impl Sgd {
    /// A fresh optimizer.
    #[must_use]
    pub fn new(lr: f64, momentum: f64, weight_decay: f64) -> Self {
        Self {
            lr,
            momentum,
            weight_decay,
            buffers: Vec::new(),
        }
    }

    /// The FixRes default learning rate for a batch size: 8·1e-3·batch/512.
    #[must_use]
    pub fn fixres_lr(batch: usize) -> f64 {
        8e-3 * batch as f64 / 512.0
    }

    /// The default learning rate of a run: the FixRes fine-tune's (`new_classifier` None), a new
    /// classifier's over the frozen network (`Part::Head`), or a transfer's end to end.
    #[must_use]
    pub fn default_lr(new_classifier: Option<Part>, batch: usize) -> f64 {
        match new_classifier {
            None => Self::fixres_lr(batch),
            Some(Part::Head) => Self::transfer_lr(batch),
            Some(Part::LastStage | Part::All) => Self::finetune_lr(batch),
        }
    }

    /// The default learning rate of a transfer that trains more than the head
    /// (`Part::LastStage`, `Part::All`) for a batch size: 0.01·batch/256, the usual rate for
    /// fine-tuning a pretrained network end to end.
    #[must_use]
    pub fn finetune_lr(batch: usize) -> f64 {
        0.01 * batch as f64 / 256.0
    }

    /// The default learning rate of a new classifier for a dataset's classes (a transfer) for a
    /// batch size: 0.1·batch/256, the linear-probe rate: the classifier starts at random over
    /// features that stay fixed, so it takes ten times the usual rate for fine-tuning a
    /// pretrained network (0.01·batch/256) without the risk of unlearning them.
    #[must_use]
    pub fn transfer_lr(batch: usize) -> f64 {
        0.1 * batch as f64 / 256.0
    }

    /// The parameter in `slot` after one step with its gradient `grad`.
    fn update<const D: usize>(&mut self, slot: usize, param: Tensor<D>, grad: Tensor<D>) -> Tensor<D> {
        let shape = param.dims();
        let d = grad + param.clone().mul_scalar(self.weight_decay as f32);
        if self.buffers.len() <= slot {
            self.buffers.resize(slot + 1, None);
        }
        let buf = match self.buffers[slot].take() {
            Some(buf) => buf.reshape(shape).mul_scalar(self.momentum as f32) + d,
            None => d,
        };
        let updated = param - buf.clone().mul_scalar(self.lr as f32);
        self.buffers[slot] = Some(buf.flatten(0, D - 1));
        updated
    }
}

fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// Mean over batch and space, kept as `[1, C, 1, 1]`.
fn channel_mean(x: Tensor<4>) -> Tensor<4> {
    x.mean_dim(0).mean_dim(2).mean_dim(3)
}

// The step is the trainer's, implemented on the network's head (an inherent impl may live in any
// module of the crate): `model` needs nothing from here.
impl Head {
    /// This head with its classifier's last layer replaced by a new one with `classes` outputs,
    /// initialised as PyTorch initialises `nn.Linear` (`training::linear_init`) from the run's
    /// `seed`: the start of a transfer to a dataset's own classes. The normalisation and any
    /// hidden layers of an MLP classifier are kept as trained.
    #[must_use]
    pub fn with_new_classifier(&self, classes: usize, seed: u64, device: &Device) -> Self {
        let [_, features] = self.classifier.weight.dims();
        let mut rng = classifier_rng(seed);
        let mut head = self.clone();
        for layer in std::iter::once(&mut head.classifier).chain(head.distilled.iter_mut()) {
            let (weight, bias) = linear_init(&mut rng, classes, features);
            layer.weight = tensor(weight, [classes, features], device);
            layer.bias = tensor(bias, [classes], device);
        }
        head
    }

    /// Logits with the normalisation in training mode; for a BatchNorm also returns the batch
    /// mean and biased variance, `[C]` each.
    fn forward_train(
        &self,
        trunk: &TrunkOut,
        gamma: Tensor<1>,
        beta: Tensor<1>,
        layers: Layers,
    ) -> (Tensor<2>, Option<(Tensor<1>, Tensor<1>)>) {
        // The trunk's outputs enter the graph as constants.
        let x = trunk.pre_bn.clone().autodiff();
        let [_, c, _, _] = x.dims();
        let (y, batch_stats) = if self.running.is_some() {
            let mean = channel_mean(x.clone());
            let centered = x - mean.clone();
            let var = channel_mean(centered.clone().powf_scalar(2.0));
            let normed = centered / (var.clone() + self.eps).sqrt();
            let y = normed * gamma.reshape([1, c, 1, 1]) + beta.reshape([1, c, 1, 1]);
            (y, Some((mean.flatten(0, 3), var.flatten(0, 3))))
        } else {
            (Head::layer_norm(x, gamma, beta, self.eps), None)
        };
        let residual = trunk.residual.clone().map(Tensor::autodiff);
        (self.finish(y, residual, layers), batch_stats)
    }

    /// One SGD step on a batch: returns the loss (mean cross-entropy) before the update, `[1]`,
    /// on the device and unread (reading it waits for the step).
    pub fn step(
        &mut self,
        trunk: &TrunkOut,
        targets: &[usize],
        trainable: Trainable,
        sgd: &mut Sgd,
        device: &Device,
    ) -> Tensor<1> {
        let leaf1 = |t: &Tensor<1>| t.clone().autodiff().require_grad();
        let leaf2 = |t: &Tensor<2>| t.clone().autodiff().require_grad();
        let (gamma, beta) = (leaf1(&self.gamma), leaf1(&self.beta));
        let layers: Layers = self.layers().iter().map(|(w, b)| (leaf2(w), leaf1(b))).collect();
        let (logits, batch_stats) = self.forward_train(trunk, gamma.clone(), beta.clone(), layers.clone());
        let [n, classes] = logits.dims();
        let mut one_hot = vec![0f32; n * classes];
        for (i, &t) in targets.iter().enumerate() {
            one_hot[i * classes + t] = 1.0;
        }
        let one_hot = tensor(one_hot, [n, classes], device).autodiff();
        let log_probs = burn::tensor::activation::log_softmax(logits, 1);
        let loss = (log_probs * one_hot).sum().neg() / n as f64;
        let loss_value = loss.clone().inner();
        let grads = loss.backward();

        // Running statistics: PyTorch stores the unbiased batch variance.
        if let (Some(stats), Some((mean, var))) = (&mut self.running, batch_stats) {
            let [_, _, h, w] = trunk.pre_bn.dims();
            let count = (n * h * w) as f64;
            let m = stats.momentum;
            let unbiased = var.inner() * (count / (count - 1.0).max(1.0));
            stats.mean = stats.mean.clone() * (1.0 - m) + mean.inner() * m;
            stats.var = stats.var.clone() * (1.0 - m) + unbiased * m;
        }

        // Parameter slots of the optimizer: the norm's weight and bias, then each classifier
        // layer's weight and bias in order. A parameter without a gradient stays as it is.
        if trainable.bn_affine {
            if let Some(g) = gamma.grad(&grads) {
                self.gamma = sgd.update(0, self.gamma.clone(), g);
            }
            if let Some(g) = beta.grad(&grads) {
                self.beta = sgd.update(1, self.beta.clone(), g);
            }
        }
        if trainable.classifier {
            for (i, (layer, (w_leaf, b_leaf))) in self.dense_mut().zip(&layers).enumerate() {
                if let Some(g) = w_leaf.grad(&grads) {
                    layer.weight = sgd.update(2 + 2 * i, layer.weight.clone(), g);
                }
                if let Some(g) = b_leaf.grad(&grads) {
                    layer.bias = sgd.update(3 + 2 * i, layer.bias.clone(), g);
                }
            }
        }
        loss_value
    }
}
