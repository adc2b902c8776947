//! Element-wise activations on the CPU backend, for inference. Burn's `flex` backend computes
//! σ(x) (hence SiLU) and GELU element by element through libm's scalar `expf` / `erff` on one
//! thread: in EfficientNet-B0 at 224 that was 45 % of the forward pass, in ConvNeXt-T 20 %
//! (perf, 2026-12-04). Here `exp` is
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

/// eˣ in f32, about 1 ulp over [−87, 88] (clamped outside: below −87 it gives e⁻⁸⁷ ≈ 1.6e-38, +∞ is
/// never returned).
#[inline]
#[must_use]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // n = round(x · log₂e) by the 1.5 · 2²³ trick: no `floor` call, which on baseline x86-64
    // (no SSE4.1) is a libm call that keeps the loop from vectorising. The integer n is then
    // the low mantissa bits of `t`, which give 2ⁿ's exponent bits without a float-to-int cast
    // (Rust's saturating cast is lane by lane).
    const ROUND: f32 = 12_582_912.0;
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5; // Cephes: 5.0000001201e-1, which is 0.5 in f32
    let y = p * r * r + r + 1.0;
    // 2ⁿ through the exponent bits: n ∈ [−126, 127] after the clamp, and `t`'s bits shifted
    // by 23 keep exactly n · 2²³ (mod 2³²).
    y * f32::from_bits((t.to_bits() << 23).wrapping_add(127 << 23))
}

/// ReLU, NaN kept (as PyTorch's): Burn's `flex` clamps element by element on one thread.
#[inline]
#[must_use]
pub fn relu(x: f32) -> f32 {
    if x < 0.0 { 0.0 } else { x }
}

/// ReLU6, NaN kept (as PyTorch's).
#[inline]
#[must_use]
pub fn relu6(x: f32) -> f32 {
    x.clamp(0.0, 6.0)
}

/// Hardswish, x · relu6(x + 3) / 6, in PyTorch's order of operations.
#[inline]
#[must_use]
pub fn hardswish(x: f32) -> f32 {
    x * (x + 3.0).clamp(0.0, 6.0) / 6.0
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

/// erfc(z) for z ≥ 0: Numerical Recipes' Chebyshev fit (`erfcc`, fractional error below
/// 1.2e-7 everywhere), with `exp` above.
#[inline]
fn erfc_nonnegative(z: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * z);
    let mut p = 0.170_872_77_f32;
    p = p * t - 0.822_152_23;
    p = p * t + 1.488_515_9;
    p = p * t - 1.135_204;
    p = p * t + 0.278_868_07;
    p = p * t - 0.186_288_06;
    p = p * t + 0.096_784_18;
    p = p * t + 0.374_091_96;
    p = p * t + 1.000_023_7;
    p = p * t - 1.265_512_2;
    t * exp(-z * z + p)
}

/// GELU, exact form: x · Φ(x) = ½ x · erfc(−x / √2), as PyTorch's default. Through erfc, so
/// that the small values of negative x keep their relative precision.
#[inline]
#[must_use]
pub fn gelu(x: f32) -> f32 {
    let z = x * -std::f32::consts::FRAC_1_SQRT_2;
    let e = erfc_nonnegative(z.abs());
    let erfc = if z >= 0.0 { e } else { 2.0 - e };
    0.5 * x * erfc
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

/// `f(a, b)` of every pair of values of `a` and `b` (same shape), over rayon's threads: a fused
/// pass where Burn would make two (ResNet's residual sum and its ReLU).
///
/// # Panics
/// Unless `applies` to both, and their shapes agree.
#[must_use]
pub fn zip_map<const D: usize>(
    a: Tensor<D>,
    b: Tensor<D>,
    f: impl Fn(f32, f32) -> f32 + Sync + Send + Copy,
) -> Tensor<D> {
    assert_eq!(a.shape(), b.shape(), "fast_math::zip_map on tensors of one shape");
    let device: Device = a.device();
    let shape = a.shape();
    let values = |t: Tensor<D>| {
        t.into_data()
            .try_into_vec::<f32>()
            .expect("fast_math::zip_map on f32 tensors (`applies`)")
    };
    let (mut a, b) = (values(a), values(b));
    a.par_chunks_mut(CHUNK)
        .zip(b.par_chunks(CHUNK))
        .for_each(|(x, y)| apply_zip(x, y, f));
    Tensor::from_data(TensorData::new(a, shape), &device)
}

fn apply_zip(x: &mut [f32], y: &[f32], f: impl Fn(f32, f32) -> f32 + Copy) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA (checked just above).
        unsafe { apply_zip_avx2(x, y, f) };
        return;
    }
    for (v, w) in x.iter_mut().zip(y) {
        *v = f(*v, *w);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn apply_zip_avx2(x: &mut [f32], y: &[f32], f: impl Fn(f32, f32) -> f32 + Copy) {
    for (v, w) in x.iter_mut().zip(y) {
        *v = f(*v, *w);
    }
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
    /// the extremes, where the exact value is at least `floor` in size (below it, the absolute
    /// error must be under `floor` · 1e-5).
    fn worst_above(ours: fn(f32) -> f32, exact: fn(f64) -> f64, floor: f64) -> f64 {
        (-300_000..=300_000)
            .map(|i| i as f32 * 1e-4)
            .chain([-87.0, -60.0, 60.0, 88.0])
            .map(|x| {
                let (o, e) = (f64::from(ours(x)), exact(f64::from(x)));
                if e.abs() >= floor {
                    ((o - e) / e).abs()
                } else {
                    assert!((o - e).abs() < floor * 1e-5, "{x}: {o} vs {e}");
                    0.0
                }
            })
            .fold(0.0, f64::max)
    }

    /// `worst_above` for values of any size a network holds.
    fn worst(ours: fn(f32) -> f32, exact: fn(f64) -> f64) -> f64 {
        worst_above(ours, exact, 1e-30)
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

    /// The erfc fit's 1.2e-7 and f32's rounding of −z² give about 2.3e-6 relative at the
    /// smallest values (GELU of x ≈ −4.2 is −5e-5); next to a layer's largest activation, which
    /// the parity tests measure against, that is nothing.
    #[test]
    fn gelu_is_within_3e_6_of_the_exact_form() {
        let exact = |x: f64| 0.5 * x * libm::erfc(-x * std::f64::consts::FRAC_1_SQRT_2);
        let err = worst_above(gelu, exact, 1e-6);
        assert!(err < 3e-6, "gelu: relative error {err}");
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

    #[test]
    fn relus_and_hardswish_are_burns_and_the_fused_sum_is_the_two_passes() {
        let device = Device::flex();
        let values: Vec<f32> = (0..40_000).map(|i| (i as f32 - 20_000.0) * 1e-3).collect();
        let other: Vec<f32> = values.iter().map(|v| (v * 7.0).sin() * 3.0).collect();
        let t = |v: &[f32]| Tensor::<2>::from_data(TensorData::new(v.to_vec(), [200, 200]), &device);
        let read = |x: Tensor<2>| x.into_data().try_into_vec::<f32>().unwrap();
        assert_eq!(read(map(t(&values), relu)), read(t(&values).clamp_min(0.0)));
        assert_eq!(read(map(t(&values), relu6)), read(t(&values).clamp(0.0, 6.0)));
        let burns_hardswish = t(&values) * (t(&values) + 3.0).clamp(0.0, 6.0) / 6.0;
        assert_eq!(read(map(t(&values), hardswish)), read(burns_hardswish));
        let fused = read(zip_map(t(&values), t(&other), |a, b| relu(a + b)));
        assert_eq!(fused, read((t(&values) + t(&other)).clamp_min(0.0)));
        // PyTorch's ReLU and ReLU6 pass NaN through.
        assert!(relu(f32::NAN).is_nan() && relu6(f32::NAN).is_nan());
        assert_eq!((relu(-0.5), relu6(7.0), relu6(3.0)), (0.0, 6.0, 3.0));
    }
}
