//! Element-wise activations on the CPU backend, for inference. Burn's `flex` backend computes
//! σ(x) (hence SiLU) element by element through libm's scalar `expf` on one thread: in
//! EfficientNet-B0 at 224 that was 45 % of the forward pass (perf, 2026-12-04). Here `exp` is
//! Cephes' single-precision polynomial (range reduction by ln 2, degree-6 minimax, about 1 ulp:
//! what PyTorch's vectorised Sleef `expf` gives too), written so the compiler vectorises it, and
//! the work is split over rayon's threads. Autodiff tensors and other devices keep Burn's ops
//! (`Activation::apply` decides).

use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

const LOG2E: f32 = std::f32::consts::LOG2_E;
// ln 2 split in two so that n · ln 2 is exact enough in f32 (Cephes' C1, C2).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

/// eˣ in f32, about 1 ulp over [−87, 88] (clamped outside: 0 below is reached gradually, +∞ is
/// never returned).
#[inline]
#[must_use]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // n = round(x · log₂e) by the 1.5 · 2²³ trick: no `floor` call, which on baseline x86-64
    // (no SSE4.1) is a libm call that keeps the loop from vectorising.
    const ROUND: f32 = 12_582_912.0;
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5.000_000_1e-1;
    let y = p * r * r + r + 1.0;
    // 2ⁿ through the exponent bits: n ∈ [−126, 127] after the clamp.
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// σ(x) = 1 / (1 + e⁻ˣ).
#[inline]
#[must_use]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// SiLU, x · σ(x).
#[inline]
#[must_use]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// Elements per rayon task: large enough that splitting costs nothing next to the work.
const CHUNK: usize = 1 << 14;

/// `f` applied to every value of `x`, over rayon's threads.
///
/// # Panics
/// Unless `applies(&x)`: an f32 tensor of the CPU backend.
#[must_use]
pub fn map<const D: usize>(x: Tensor<D>, f: impl Fn(f32) -> f32 + Sync + Send + Copy) -> Tensor<D> {
    let device: Device = x.device();
    let shape = x.shape();
    let mut values = x
        .into_data()
        .try_into_vec::<f32>()
        .expect("fast_math::map on an f32 tensor (`applies`)");
    values.par_chunks_mut(CHUNK).for_each(|chunk| apply(chunk, f));
    Tensor::from_data(TensorData::new(values, shape), &device)
}

/// `f` over `chunk`, compiled for AVX2 + FMA where the CPU has them (8 lanes, fused
/// multiply-adds), else for the baseline (SSE2, 4 lanes).
fn apply(chunk: &mut [f32], f: impl Fn(f32) -> f32 + Copy) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA (checked just above).
        unsafe { apply_avx2(chunk, f) };
        return;
    }
    for v in chunk {
        *v = f(*v);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn apply_avx2(chunk: &mut [f32], f: impl Fn(f32) -> f32 + Copy) {
    for v in chunk {
        *v = f(*v);
    }
}

/// Whether `x` is an f32 tensor on Burn's CPU backend without autodiff: where `map` is the
/// faster path.
#[must_use]
pub fn applies<const D: usize>(x: &Tensor<D>) -> bool {
    let device = x.device();
    !device.is_autodiff() && device == Device::flex() && x.dtype() == burn::tensor::DType::F32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Largest relative error of `ours` against `exact` (f64) over a dense grid of [−30, 30] and
    /// the extremes.
    fn worst(ours: fn(f32) -> f32, exact: fn(f64) -> f64) -> f64 {
        (-300_000..=300_000)
            .map(|i| i as f32 * 1e-4)
            .chain([-87.0, -60.0, 60.0, 88.0])
            .map(|x| {
                let e = exact(f64::from(x));
                if e == 0.0 {
                    0.0
                } else {
                    ((f64::from(ours(x)) - e) / e).abs()
                }
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn exp_is_within_two_ulp() {
        let err = worst(exp, f64::exp);
        assert!(err < 2.5e-7, "exp: relative error {err}");
    }

    #[test]
    fn sigmoid_and_silu_are_within_a_few_ulp() {
        let sig = worst(sigmoid, |x| 1.0 / (1.0 + (-x).exp()));
        let silu_err = worst(silu, |x| x / (1.0 + (-x).exp()));
        assert!(sig < 4e-7 && silu_err < 4e-7, "sigmoid {sig}, silu {silu_err}");
    }

    #[test]
    fn the_tensor_path_is_the_scalar_function() {
        let device = Device::flex();
        let values: Vec<f32> = (0..40_000).map(|i| (i as f32 - 20_000.0) * 1e-3).collect();
        let x: Tensor<2> = Tensor::from_data(TensorData::new(values.clone(), [200, 200]), &device);
        assert!(applies(&x));
        let y = map(x, silu).into_data().try_into_vec::<f32>().unwrap();
        assert!(values.iter().zip(&y).all(|(v, y)| silu(*v) == *y));
    }
}
