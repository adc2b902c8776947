//! Multiply-accumulates of a forward pass, counted from the shapes of the layers it runs (not
//! timed): every convolution, linear layer and attention product, as PyTorch's
//! `torch.utils.flop_counter.FlopCounterMode` counts them (its FLOPs are twice these; biases,
//! normalisations, activations and pooling are not counted there either). Layers report their
//! shapes here; `counting` collects them over one call on this thread and costs nothing
//! otherwise.

use std::cell::Cell;

use burn::nn::Linear;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;

thread_local! {
    static MACS: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Runs `f`, counting the multiply-accumulates of the layers it runs on this thread.
pub fn counting<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let outer = MACS.with(|m| m.replace(Some(0)));
    let result = f();
    let counted = MACS.with(|m| m.replace(outer)).unwrap_or(0);
    if let Some(n) = outer {
        MACS.with(|m| m.set(Some(n + counted)));
    }
    (result, counted)
}

fn add(macs: usize) {
    MACS.with(|m| {
        if let Some(n) = m.get() {
            m.set(Some(n + macs as u64));
        }
    });
}

/// A convolution of weight `[out, in / groups, kh, kw]` that produced `output`.
pub fn conv_done(weight: [usize; 4], output: [usize; 4]) {
    let [_, per_group, kh, kw] = weight;
    add(output.iter().product::<usize>() * per_group * kh * kw);
}

/// A matrix product `[.., m, k] · [.., k, n]` over `batch` matrices.
pub fn matmul_done(batch: usize, m: usize, k: usize, n: usize) {
    add(batch * m * k * n);
}

/// A Burn `Conv2d` module's forward, counted.
pub fn conv(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let y = conv.forward(x);
    conv_done(conv.weight.dims(), y.dims());
    y
}

/// A Burn `Linear` module's forward on `[batch, in]`, counted.
pub fn linear(fc: &Linear, x: Tensor<2>) -> Tensor<2> {
    let [rows, _] = x.dims();
    let [inp, out] = fc.weight.dims();
    matmul_done(1, rows, inp, out);
    fc.forward(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_inside_counting_and_nests() {
        conv_done([8, 3, 3, 3], [1, 8, 4, 4]);
        let ((), outer) = counting(|| {
            matmul_done(2, 3, 4, 5);
            let ((), inner) = counting(|| conv_done([8, 1, 3, 3], [1, 8, 4, 4]));
            assert_eq!(inner, 8 * 16 * 9);
        });
        assert_eq!(outer, 2 * 3 * 4 * 5 + 8 * 16 * 9);
    }
}
