//! Image classifiers in Burn with torchvision's module trees and key names, so torchvision
//! weights load as they are; every model gives the pooled features (the classifier's input) and
//! the logits.

pub mod resnet;
pub mod weights;

use burn::tensor::{Device, Tensor, TensorData};

use crate::data::RgbImage;
use crate::data::transforms::to_tensor_normalized;

/// What a forward pass returns.
#[derive(Debug, Clone)]
pub struct Forward {
    /// Globally average-pooled activations after the last ReLU: `[batch, features]`.
    pub pooled: Tensor<2>,
    /// Classifier output: `[batch, classes]`.
    pub logits: Tensor<2>,
}

/// A batch of same-sized images → the normalised `[batch, 3, K, K]` input tensor.
///
/// # Panics
/// If the images are not all square of the same side.
#[must_use]
pub fn input_batch(images: &[RgbImage], mean: [f32; 3], std: [f32; 3], device: &Device) -> Tensor<4> {
    let k = images.first().map_or(0, RgbImage::width);
    assert!(
        images.iter().all(|i| i.width() == k && i.height() == k),
        "a batch holds K×K images of one K"
    );
    let mut values = Vec::with_capacity(images.len() * 3 * k * k);
    for img in images {
        values.extend(to_tensor_normalized(img, mean, std));
    }
    Tensor::from_data(TensorData::new(values, [images.len(), 3, k, k]), device)
}

/// Rows of a `[batch, n]` tensor as vectors.
pub fn rows(t: &Tensor<2>) -> anyhow::Result<Vec<Vec<f32>>> {
    let [_, n] = t.dims();
    let data = t
        .to_data()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("reading tensor: {e:?}"))?;
    Ok(data.chunks(n.max(1)).map(<[f32]>::to_vec).collect())
}
