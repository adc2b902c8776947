//! Weight files that must be refused, each with a message naming the file and the key.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use fixres::model::Architecture;
use fixres::model::resnet::ResNet;
use fixres::model::weights::WeightsError;
use fixres::tensorfile::{self, Tensor};

use crate::util::fixtures::{photo, resnet18_narrow, resnet18_narrow_pth};
use crate::util::images::load;
use crate::util::parity;
use crate::util::tensors::{F32Tensor, read_f32};

/// The fixture's tensors as (name, shape, f32 values); `num_batches_tracked` (int64) left out.
fn tensors() -> Vec<F32Tensor> {
    read_f32(&resnet18_narrow())
}

/// Loads `path` as a ResNet, which must succeed, and checks it is the fixture's network: its
/// pooled features and logits are PyTorch's for the reference photos.
fn loads_as_the_fixture(path: &Path) {
    let device = Device::flex();
    let (net, _) = ResNet::load(path, &device).unwrap_or_else(|e| panic!("{e}"));
    parity::compare("resnet18_narrow", |x| net.forward(x), &device);
}

fn write(dir: &Path, name: &str, tensors: &[F32Tensor]) -> PathBuf {
    let p = dir.join(name);
    let views: Vec<Tensor<'_>> = tensors.iter().map(|(n, s, v)| Tensor::f32(n, s, v)).collect();
    tensorfile::write(&p, &views, &Default::default()).unwrap();
    p
}

fn refuse(path: &Path) -> WeightsError {
    let err = ResNet::load(path, &Device::flex()).expect_err("must be refused");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    err
}

#[test]
fn the_fixture_loads_without_num_batches_tracked_too() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "no_nbt.safetensors", &tensors());
    loads_as_the_fixture(&p);
}

#[test]
fn missing_key_is_named_in_torchvision_terms() {
    let dir = tempfile::tempdir().unwrap();
    let t: Vec<_> = tensors()
        .into_iter()
        .filter(|(n, ..)| n != "layer4.1.bn2.weight")
        .collect();
    let err = refuse(&write(dir.path(), "missing.safetensors", &t));
    assert!(
        matches!(&err, WeightsError::MissingKeys { keys, .. } if keys == &["layer4.1.bn2.weight"]),
        "{err}"
    );
}

#[test]
fn unexpected_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = tensors();
    t.push(("head.extra.weight".into(), vec![2], vec![0.0, 1.0]));
    let err = refuse(&write(dir.path(), "extra.safetensors", &t));
    assert!(
        matches!(&err, WeightsError::UnexpectedKeys { keys, .. } if keys == &["head.extra.weight"]),
        "{err}"
    );
}

/// The fixture's tensors with the 1-D tensor `key` one element longer.
fn lengthened(key: &str) -> Vec<F32Tensor> {
    tensors()
        .into_iter()
        .map(|(n, s, v)| {
            if n == key {
                (n, vec![s[0] + 1], vec![1.0; s[0] + 1])
            } else {
                (n, s, v)
            }
        })
        .collect()
}

#[test]
fn shape_mismatch_names_the_key_and_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let t = lengthened("layer2.0.bn1.running_mean");
    let err = refuse(&write(dir.path(), "shape.safetensors", &t));
    let msg = err.to_string();
    assert!(matches!(err, WeightsError::Mismatch { .. }), "{msg}");
    assert!(
        msg.contains("layer2.0.bn1.running_mean") && msg.contains("16") && msg.contains("17"),
        "{msg}"
    );
    // A BatchNorm's affine weight is named as in PyTorch, not as Burn's `gamma`.
    let t = lengthened("layer2.0.bn1.weight");
    let msg = refuse(&write(dir.path(), "affine.safetensors", &t)).to_string();
    assert!(
        msg.contains("layer2.0.bn1.weight: shape [17], but") && !msg.contains("gamma"),
        "{msg}"
    );
}

#[test]
fn truncated_file() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(resnet18_narrow()).unwrap();
    let p = dir.path().join("cut.safetensors");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(refuse(&p), WeightsError::Format { .. }));
}

#[test]
fn garbage_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("garbage.safetensors");
    std::fs::write(&p, b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!").unwrap();
    assert!(matches!(refuse(&p), WeightsError::Format { .. }));
    std::fs::write(&p, b"abc").unwrap();
    assert!(matches!(refuse(&p), WeightsError::Format { .. }));
}

#[test]
fn weights_of_another_architecture() {
    let dir = tempfile::tempdir().unwrap();
    let t = vec![("features.0.0.weight".to_owned(), vec![4, 3, 3, 3], vec![0.0; 108])];
    assert!(matches!(
        refuse(&write(dir.path(), "other.safetensors", &t)),
        WeightsError::UnknownArchitecture { .. }
    ));
}

#[test]
fn nan_weights_load_with_a_warning_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let t: Vec<_> = tensors()
        .into_iter()
        .map(|(n, s, mut v)| {
            if n == "layer3.0.conv2.weight" {
                v[0] = f32::NAN;
                v[1] = f32::INFINITY;
            }
            (n, s, v)
        })
        .collect();
    let p = write(dir.path(), "nan.safetensors", &t);
    let model = fixres::model::Model::load(&p, &Device::flex()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(model.warnings.len(), 1, "{:?}", model.warnings);
    assert!(model.warnings[0].contains("layer3.0.conv2.weight") && model.warnings[0].contains("2 NaN"));
    let clean = fixres::model::Model::load(&resnet18_narrow(), &Device::flex()).unwrap();
    assert!(clean.warnings.is_empty());
}

#[test]
fn a_pytorch_checkpoint_loads_directly_and_gives_the_same_network() {
    use fixres::data::transforms::{IMAGENET_MEAN, IMAGENET_STD};
    use fixres::data::{Interpolation, TestTransform};
    use fixres::model::{Model, input_batch, rows};
    let device = Device::flex();
    let from_pth = Model::load(&resnet18_narrow_pth(), &device).unwrap_or_else(|e| panic!("{e}"));
    let from_st = Model::load(&resnet18_narrow(), &device).unwrap();
    assert_eq!(from_pth.arch, "resnet18");
    let img = TestTransform::center(64, 0.875, Interpolation::Bilinear).apply(&load(&photo("rocket.jpg")));
    let x = || input_batch(std::slice::from_ref(&img), IMAGENET_MEAN, IMAGENET_STD, &device);
    assert_eq!(
        rows(&from_pth.net.forward(x()).logits).unwrap(),
        rows(&from_st.net.forward(x()).logits).unwrap()
    );
}

/// Regression: a safetensors file whose header length has 0x80 as its first byte was taken for
/// a bare PyTorch pickle (protocol 2+ starts with 0x80) and refused.
#[test]
fn safetensors_whose_header_length_starts_with_0x80_loads() {
    let dir = tempfile::tempdir().unwrap();
    let tensors = tensors();
    let views: Vec<Tensor<'_>> = tensors.iter().map(|(n, s, v)| Tensor::f32(n, s, v)).collect();
    // Pad the metadata until the header's length ends in the byte 0x80.
    let bytes = (0..512)
        .map(|pad| {
            let metadata = [("pad".to_owned(), "x".repeat(pad))].into_iter().collect();
            tensorfile::to_bytes(&views, &metadata).unwrap()
        })
        .find(|b| b[0] == 0x80)
        .expect("some padding gives a header length ending in 0x80");
    let p = dir.path().join("x80.safetensors");
    std::fs::write(&p, bytes).unwrap();
    loads_as_the_fixture(&p);
}

/// Every weight of the fixture, one at a time, with one more input channel, output channel or
/// kernel row: PyTorch's strict loading refuses each, and so must we, naming the key, instead of
/// building a network whose forward pass stops on a shape panic (or, for a kernel size, runs).
#[test]
fn every_misshapen_weight_is_refused_before_the_forward_pass() {
    let dir = tempfile::tempdir().unwrap();
    let base = tensors();
    let mut refused = 0;
    for (i, (name, shape, _)) in base.iter().enumerate() {
        if !name.ends_with(".weight") {
            continue;
        }
        for axis in 0..shape.len().min(3) {
            let mut t = base.clone();
            t[i].1[axis] += 1;
            t[i].2 = vec![0.0; t[i].1.iter().product()];
            // `refuse` checks the message names the file; a panic would fail the test here.
            refuse(&write(dir.path(), "misshapen.safetensors", &t));
            refused += 1;
        }
    }
    assert!(refused >= 50, "only {refused} variants tried");
}

/// A training checkpoint (`{"state_dict", "epoch", "optimizer"}`, made by
/// `tests/fixtures/make_checkpoint.py`) loads as its model. It used to be refused ("no known
/// architecture"): the optimizer's momentum buffers were read as the model's tensors. Nothing
/// beside the model is reported as left out of it (it printed 73 warnings, one per optimizer
/// setting).
#[test]
fn a_training_checkpoint_with_an_optimizer_loads_its_state_dict() {
    let path = crate::util::fixtures::model("resnet18_narrow__checkpoint.pth");
    loads_as_the_fixture(&path);
    let file = fixres::model::weights::WeightFile::open(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(file.skipped.is_empty(), "{:?}", file.skipped);
    let fixture = fixres::model::weights::WeightFile::open(&resnet18_narrow()).unwrap();
    assert!(
        file.header.keys().eq(fixture.header.keys()),
        "exactly the model's keys, num_batches_tracked included"
    );
}
