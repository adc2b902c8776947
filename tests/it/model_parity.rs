//! The forward pass against PyTorch (references from tests/fixtures/make_model_reference.py):
//! narrow torchvision ResNets (basic and bottleneck blocks) with perturbed BatchNorm, on real
//! photos at two resolutions, on Burn's CPU backend.

use burn::tensor::Device;
use fixres::data::transforms::{IMAGENET_MEAN, IMAGENET_STD};
use fixres::data::{Interpolation, TestTransform};
use fixres::model::resnet::ResNet;
use fixres::model::{Architecture, input_batch, rows};

use crate::util::fixtures::{efficientnet_lite0, fashion_model, model, photo, resnet18_narrow};
use crate::util::images::load;
use crate::util::parity::{compare, reference};
use crate::util::tensors::relative_error;

fn check(name: &str, expect_features: usize) {
    let device = Device::flex();
    let (net, shape) = ResNet::load(&model(&format!("{name}.safetensors")), &device).unwrap_or_else(|e| panic!("{e}"));
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
    let (net, shape) = ResNet::load(&fashion_model(), &device).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((shape.features, shape.classes), (64, 10));
    compare("resnet_tiny_k20", |x| net.forward(x), &device);
}

/// The same forward on Burn's wgpu backend (lavapipe in CI, a GPU where there is one) agrees
/// with the CPU backend: a small smoke of both networks (convolutions, pooling, BatchNorm, TF
/// padding) and of every zoo family (grouped and depthwise convolutions, squeeze-excitation,
/// LayerNorm, attention, the position embedding resampled to a 4×4 grid), so the GPU path
/// cannot rot unseen.
#[test]
fn wgpu_forward_agrees_with_cpu() {
    let img = TestTransform::center(64, 0.875, Interpolation::Bilinear).apply(&load(&photo("chelsea.png")));
    // One model of each tensor-built family of the zoo too (tests/it/zoo.rs checks them on the CPU).
    let zoo = [
        "tv_efficientnet_b0",
        "tv_mobilenet_v3_large",
        "tv_regnet_y_400mf",
        "timm_convnext_tiny",
        "timm_tf_efficientnet_lite0",
        "timm_deit_small_distilled_patch16_224",
    ]
    .map(|name| model(&format!("zoo/{name}.safetensors")));
    for weights in [resnet18_narrow(), efficientnet_lite0()].into_iter().chain(zoo) {
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
    let model = fixres::model::Model::load(&efficientnet_lite0(), &device).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (model.arch.as_str(), model.features, model.classes),
        ("efficientnet-lite0", 1280, 1000)
    );
    let names = model.class_names.as_ref().expect("class names in the metadata");
    let photos = reference("efficientnet_lite0").0;
    for (k, ours, theirs) in compare("efficientnet_lite0", |x| model.net.forward(x), &device) {
        for (i, row) in ours.iter().enumerate() {
            let mine = fixres::stats::top_k(row, 1)[0];
            let torch = fixres::stats::top_k(&theirs[i * 1000..(i + 1) * 1000], 1)[0];
            println!("  {} at {k}: {} (PyTorch: {})", photos[i], names[mine], names[torch]);
            assert_eq!(mine, torch, "{} at {k}", photos[i]);
        }
    }
}
