//! What the families built of Burn's `nn` modules (ResNet, EfficientNet-Lite) share so that they
//! train end to end as PyTorch would and write back what PyTorch loads: the BatchNorm's training
//! step, and each module's tensors under PyTorch's names and layouts.
//!
//! Burn's BatchNorm feeds its running variance with the biased batch variance; PyTorch's
//! `BatchNorm2d` with the unbiased one (`n / (n − 1)` times larger, `n` the values per channel).
//! Over a small batch at a late stage (7 images at 4×4: n = 112) that is ~1 % of the update, more
//! than a parity check allows, so the training path is `batch_norm` here. In evaluation, and in a
//! frozen layer, it is Burn's own.

use burn::module::Param;
use std::cell::Cell;

use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear};
use burn::tensor::module::batch_norm_train;
use burn::tensor::{Device, Tensor, TensorData};

use super::values;

/// A tensor under its PyTorch key: (key, shape, values), PyTorch's layout, f32.
pub type Named = (String, Vec<usize>, Vec<f32>);

thread_local! {
    /// The momentum every training BatchNorm on this thread uses instead of its own, while set.
    static MOMENTUM: Cell<Option<f64>> = const { Cell::new(None) };
}

/// Runs `f` with every BatchNorm that trains on this thread updating its running statistics with
/// momentum `m` instead of its own: `update_bn`'s cumulative average (momentum `None`) is `1/k`
/// for the `k`-th batch.
pub fn with_momentum<R>(m: f64, f: impl FnOnce() -> R) -> R {
    let outer = MOMENTUM.with(|c| c.replace(Some(m)));
    let result = f();
    MOMENTUM.with(|c| c.set(outer));
    result
}

/// `bn` on `x` (`[N, C, H, W]`): with the batch's statistics and PyTorch's running-statistics
/// update when `x` is on an autodiff device and the layer is not frozen (Burn's own rule for
/// training behaviour), else with the running statistics.
pub fn batch_norm(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    if !(x.device().is_autodiff() && bn.training.is_enabled()) {
        return bn.forward(x);
    }
    let [n, _, h, w] = x.dims();
    let count = (n * h * w) as f64;
    let result = batch_norm_train(x, bn.gamma.val(), bn.beta.val(), bn.epsilon);
    let device = result.mean.device();
    let m = MOMENTUM.with(Cell::get).unwrap_or(bn.momentum);
    let unbiased = result.variance * (count / (count - 1.0).max(1.0));
    let mean = bn.running_mean.value_sync().to_device(&device) * (1.0 - m) + result.mean * m;
    let var = bn.running_var.value_sync().to_device(&device) * (1.0 - m) + unbiased * m;
    bn.running_mean.update(mean.detach());
    bn.running_var.update(var.detach());
    result.output
}

/// A BatchNorm's four tensors under `key` (`weight`, `bias`, `running_mean`, `running_var`; the
/// running statistics as of the last update).
#[must_use]
pub fn batch_norm_state(key: &str, bn: &BatchNorm) -> [Named; 4] {
    let c = bn.gamma.val().dims()[0];
    let one = |name: &str, t: &Tensor<1>| (format!("{key}.{name}"), vec![c], values(t));
    [
        one("weight", &bn.gamma.val()),
        one("bias", &bn.beta.val()),
        one("running_mean", &bn.running_mean.value_sync()),
        one("running_var", &bn.running_var.value_sync()),
    ]
}

/// A convolution's weight (and bias, if it has one) under `key`.
#[must_use]
pub fn conv_state(key: &str, conv: &Conv2d) -> Vec<Named> {
    let w = conv.weight.val();
    let mut out = vec![(format!("{key}.weight"), w.dims().to_vec(), values(&w))];
    if let Some(b) = &conv.bias {
        let b = b.val();
        out.push((format!("{key}.bias"), b.dims().to_vec(), values(&b)));
    }
    out
}

/// A linear layer's weight, `[out, in]` as PyTorch stores it (Burn's is `[in, out]`), and bias.
#[must_use]
pub fn linear_state(key: &str, fc: &Linear) -> Vec<Named> {
    let w = fc.weight.val().transpose();
    let mut out = vec![(format!("{key}.weight"), w.dims().to_vec(), values(&w))];
    if let Some(b) = &fc.bias {
        let b = b.val();
        out.push((format!("{key}.bias"), b.dims().to_vec(), values(&b)));
    }
    out
}

/// A linear layer holding `weight` (`[out, in]`, PyTorch's layout) and `bias`, on `device`:
/// how a new classifier replaces a family's own.
#[must_use]
pub fn linear_from(weight: Vec<f32>, bias: Vec<f32>, out: usize, inp: usize, device: &Device) -> Linear {
    let w = Tensor::<2>::from_data(TensorData::new(weight, [out, inp]), device).transpose();
    let b = Tensor::<1>::from_data(TensorData::new(bias, [out]), device);
    Linear {
        weight: Param::from_tensor(w),
        bias: Some(Param::from_tensor(b)),
    }
}
