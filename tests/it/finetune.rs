//! The FixRes fine-tune step against PyTorch: 3 SGD steps (tests/fixtures/make_finetune_reference.py).

use std::path::Path;

use burn::tensor::{Device, Tensor};
use fixres::data::transforms::{IMAGENET_MEAN, IMAGENET_STD};
use fixres::data::{Interpolation, TestTransform};
use fixres::finetune::{Sgd, Trainable};
use fixres::model::input_batch;

use crate::util::cmd::fixres_ok;
use crate::util::fixtures::{efficientnet_lite0, model, photo, resnet18_narrow};
use crate::util::folders::Folder;
use crate::util::images::load;
use crate::util::tensors::{self, Stored, metadata, relative_error};

fn values<const D: usize>(t: &Tensor<D>) -> Vec<f32> {
    t.to_data().try_to_vec::<f32>().unwrap()
}

/// 3 SGD steps of the fine-tune of `weights`' head against PyTorch's (`reference`, from a
/// fixture script): the loss of each step, and every head tensor after the last, found in the
/// reference under its key in the weights file, or under `renamed`'s name for it.
pub fn three_sgd_steps(weights: &Path, reference: &str, renamed: impl Fn(&str) -> String) {
    let file = model(reference);
    let meta = metadata(&file);
    let photos: Vec<String> = serde_json::from_str(&meta["photos"]).unwrap();
    let labels: Vec<usize> = serde_json::from_str(&meta["labels"]).unwrap();
    let res: usize = meta["res"].parse().unwrap();
    let stored = tensors::read_f32(&file);
    let reference = |key: &str| stored.iter().find(|(k, ..)| k == key).map(|(.., v)| v.clone());

    let device = Device::flex();
    let model = fixres::model::Model::load(weights, &device).unwrap_or_else(|e| panic!("{e}"));
    let t = TestTransform::center(res, 0.875, Interpolation::Bilinear);
    let batch: Vec<_> = photos.iter().map(|p| t.apply(&load(&photo(p)))).collect();
    // The trunk runs once (frozen, eval mode); every step reuses its output.
    let trunk = model
        .net
        .trunk(input_batch(&batch, IMAGENET_MEAN, IMAGENET_STD, &device));
    let mut head = model.net.head();
    let initial = head.named_tensors();
    let mut sgd = Sgd::new(0.001, 0.9, 1e-4);
    let trainable = Trainable {
        classifier: true,
        bn_affine: true,
    };
    for step in 0..3 {
        let loss = values(&head.step(&trunk, &labels, trainable, &mut sgd, &device))[0];
        let expect = reference(&format!("loss_{step}")).unwrap()[0];
        println!("step {step}: loss {loss} (PyTorch {expect})");
        assert!(
            ((loss - expect) / expect).abs() <= 1e-3,
            "step {step}: {loss} vs {expect}"
        );
    }
    let after = head.named_tensors();
    assert!(after.len() >= 4, "a head has a norm's affine and a classifier");
    for ((key, _, ours), (_, _, before)) in after.iter().zip(&initial) {
        let theirs = reference(key)
            .or_else(|| reference(&renamed(key)))
            .unwrap_or_else(|| panic!("{key} is not in the reference"));
        let err = relative_error(ours, &theirs);
        let moved = relative_error(ours, before);
        println!("{key}: relative error {err:.2e}, moved {moved:.2e} from its initial value");
        assert!(moved > 10.0 * err, "{key} must change more than the tolerance: {moved}");
        assert!(err <= 1e-3, "{key}: relative error {err}");
    }
}

#[test]
fn three_sgd_steps_match_pytorch() {
    // The ResNet reference names the head "bn" and "fc".
    three_sgd_steps(&resnet18_narrow(), "resnet18_narrow__finetune.safetensors", |key| {
        key.replace("layer4.1.bn2", "bn")
    });
}

#[test]
fn trunk_then_head_is_the_whole_network() {
    let device = Device::flex();
    let img = TestTransform::center(96, 0.875, Interpolation::Bilinear).apply(&load(&photo("grace_hopper.jpg")));
    for weights in [model("resnet50_narrow.safetensors"), efficientnet_lite0()] {
        let model = fixres::model::Model::load(&weights, &device).unwrap();
        let x = || input_batch(std::slice::from_ref(&img), IMAGENET_MEAN, IMAGENET_STD, &device);
        let whole = values(&model.net.forward(x()).logits);
        let split = values(&model.net.head().infer(&model.net.trunk(x())));
        let err = relative_error(&split, &whole);
        assert!(err <= 1e-5, "{}: {err}", weights.display());
    }
}

/// A 10-class folder of fixture photos (three classes used, three copies each) for the narrow
/// ResNet-18.
fn small_dataset(dir: &Path) {
    let photos = [
        "rocket.jpg",
        "grace_hopper.jpg",
        "chelsea.png",
        "hubble_tall.jpg",
        "coffee_cmyk.jpg",
        "camera_grey.jpg",
    ];
    let folder = Folder::new(dir);
    folder.classes((0..10).map(|c| format!("c{c}")));
    for (i, p) in photos.iter().enumerate() {
        for copy in 0..3 {
            folder.photo_as(&format!("c{}", i % 3), p, &format!("{copy}-{p}"));
        }
    }
}

type Tensors = Vec<Stored>;

/// `fixres finetune` of the narrow ResNet-18 on `small_dataset` (made in `dir` on first use) at
/// K = 96, batch 8, with `extra` arguments: the JSON summary and the exported tensors.
fn finetune(dir: &Path, name: &str, extra: &[&str]) -> (serde_json::Value, Tensors) {
    let data = dir.join("data");
    if !data.exists() {
        small_dataset(&data);
    }
    let (weights, out) = (resnet18_narrow(), dir.join(name));
    let mut args = vec![
        "finetune",
        "--weights",
        weights.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--res",
        "96",
        "--batch",
        "8",
        "--device",
        "cpu",
        "--curve",
        "96",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    (fixres_ok(&args).json(), tensors::read(&out))
}

#[test]
fn finetune_exports_every_tensor_with_only_the_head_changed() {
    let dir = tempfile::tempdir().unwrap();
    let (summary, after) = finetune(dir.path(), "ft.safetensors", &["--epochs", "2"]);
    assert_eq!(summary["epochs"].as_array().unwrap().len(), 2);
    assert_eq!(
        summary["train_images"].as_u64().unwrap() + summary["val_images"].as_u64().unwrap(),
        18
    );
    assert!(summary["stopped"].is_null());
    let sidecar: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("ft.safetensors.json")).unwrap()).unwrap();
    assert_eq!(sidecar["val_top1_after"], summary["val_top1_after"]);

    let before = tensors::read(&resnet18_narrow());
    assert_eq!(
        before.iter().map(|t| &t.name).collect::<Vec<_>>(),
        after.iter().map(|t| &t.name).collect::<Vec<_>>()
    );
    for (b, a) in before.iter().zip(&after) {
        let name = &b.name;
        assert_eq!(b.shape, a.shape, "{name}");
        let head =
            name.starts_with("layer4.1.bn2.") && !name.ends_with("num_batches_tracked") || name.starts_with("fc.");
        assert_eq!(b.data != a.data, head, "{name}: only the head may change");
    }
    let model = fixres::model::Model::load(&dir.path().join("ft.safetensors"), &Device::flex())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(model.warnings.is_empty());
}

#[test]
fn a_diverging_finetune_stops_and_keeps_finite_weights() {
    let dir = tempfile::tempdir().unwrap();
    let (summary, _) = finetune(dir.path(), "ft.safetensors", &["--epochs", "3", "--lr", "1e30"]);
    assert!(
        summary["stopped"]
            .as_str()
            .unwrap()
            .contains("kept the last good weights"),
        "{summary}"
    );
    let model = fixres::model::Model::load(&dir.path().join("ft.safetensors"), &Device::flex()).unwrap();
    assert!(model.warnings.is_empty(), "{:?}", model.warnings);
}

#[test]
fn cached_and_recomputed_trunks_give_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cached) = finetune(dir.path(), "cached.safetensors", &["--epochs", "3"]);
    let (_, recomputed) = finetune(
        dir.path(),
        "recomputed.safetensors",
        &["--epochs", "3", "--no-trunk-cache"],
    );
    assert!(cached == recomputed);
}

#[test]
fn a_cache_spilled_to_disk_gives_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let (mem_summary, in_memory) = finetune(dir.path(), "memory.safetensors", &["--epochs", "2"]);
    let (disk_summary, spilled) = finetune(dir.path(), "spilled.safetensors", &["--epochs", "2", "--cache-mb", "0"]);
    // 15 training images in batches of 8: two batches, both spilled with no memory allowed.
    assert_eq!(
        (
            mem_summary["cache_spilled_batches"].as_u64(),
            disk_summary["cache_spilled_batches"].as_u64()
        ),
        (Some(0), Some(2))
    );
    assert!(in_memory == spilled);
}

#[test]
fn ablation_switches_train_only_what_they_name() {
    let dir = tempfile::tempdir().unwrap();
    let original = tensors::read(&resnet18_narrow());
    let changed = |after: &Tensors, key: &str| {
        let find = |t: &Tensors| tensors::named(t, key).data.clone();
        find(after) != find(&original)
    };
    let (_, fc_only) = finetune(dir.path(), "fc.safetensors", &["--epochs", "2", "--train-classifier"]);
    assert!(changed(&fc_only, "fc.weight"));
    assert!(!changed(&fc_only, "layer4.1.bn2.weight") && !changed(&fc_only, "layer4.1.bn2.bias"));
    assert!(
        changed(&fc_only, "layer4.1.bn2.running_mean"),
        "running statistics always update"
    );
    let (_, bn_only) = finetune(dir.path(), "bn.safetensors", &["--epochs", "2", "--train-bn"]);
    assert!(!changed(&bn_only, "fc.weight") && !changed(&bn_only, "fc.bias"));
    assert!(changed(&bn_only, "layer4.1.bn2.weight") && changed(&bn_only, "layer4.1.bn2.running_var"));
}
