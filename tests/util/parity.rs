//! The forward pass against PyTorch's, on the references `make_model_reference.py` (and its
//! siblings) wrote: `models/<name>__reference.safetensors` holds pooled features and logits of
//! real photos at a few resolutions.

use burn::tensor::{Device, Tensor};
use fixres::data::transforms::{IMAGENET_MEAN, IMAGENET_STD};
use fixres::data::{Interpolation, TestTransform};
use fixres::model::{Forward, input_batch, rows};

use super::fixtures::{model, photo, root};
use super::images::load;
use super::tensors::{f32_tensor, metadata, relative_error};

/// The photos of reference `name` (fixture photo names, or paths from the repository's root)
/// and its resolutions.
pub fn reference(name: &str) -> (Vec<String>, Vec<usize>) {
    let meta = metadata(&model(&format!("{name}__reference.safetensors")));
    let photos = serde_json::from_str(&meta["photos"]).unwrap();
    let resolutions = serde_json::from_str(&meta["resolutions"]).unwrap();
    (photos, resolutions)
}

/// Our logits at one resolution against PyTorch's: (K, ours per photo, PyTorch's flattened).
pub type Logits = (usize, Vec<Vec<f32>>, Vec<f32>);

/// Runs `forward` on the photos of reference `name` at each of its resolutions (Resize to
/// K/0.875, centre crop K, bilinear, ImageNet normalisation, as the references were made) and
/// asserts that pooled features and logits have PyTorch's shapes and are within 1e-4 of its
/// values (relative to the largest); returns our logits and PyTorch's per resolution.
pub fn compare(name: &str, forward: impl Fn(Tensor<4>) -> Forward, device: &Device) -> Vec<Logits> {
    let file = model(&format!("{name}__reference.safetensors"));
    let (photos, resolutions) = reference(name);
    let images: Vec<_> = photos
        .iter()
        .map(|p| load(&if p.contains('/') { root().join(p) } else { photo(p) }))
        .collect();
    let mut logits = Vec::new();
    for k in resolutions {
        let t = TestTransform::center(k, 0.875, Interpolation::Bilinear);
        let batch: Vec<_> = images.iter().map(|i| t.apply(i)).collect();
        let out = forward(input_batch(&batch, IMAGENET_MEAN, IMAGENET_STD, device));
        for (what, tensor) in [("pooled", &out.pooled), ("logits", &out.logits)] {
            let ours: Vec<f32> = rows(tensor).unwrap().concat();
            let (shape, theirs) = f32_tensor(&file, &format!("{what}_{k}"));
            assert_eq!(tensor.dims().to_vec(), shape, "{name} {what} at {k}");
            let err = relative_error(&ours, &theirs);
            println!("{name} {what} at {k}: relative error {err:.2e}");
            assert!(err <= 1e-4, "{name} {what} at {k}: relative error {err}");
        }
        logits.push((
            k,
            rows(&out.logits).unwrap(),
            f32_tensor(&file, &format!("logits_{k}")).1,
        ));
    }
    logits
}
