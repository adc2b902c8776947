//! The FixRes fine-tune step against PyTorch: 3 SGD steps (tests/fixtures/make_finetune_reference.py).

mod util;

use burn::tensor::{Device, Tensor};
use fixres::data::transforms::{IMAGENET_MEAN, IMAGENET_STD};
use fixres::data::{Interpolation, TestTransform};
use fixres::finetune::{Sgd, Trainable};
use fixres::model::input_batch;
use fixres::model::resnet::ResNet;
use util::{fixtures, load, photo};

fn values<const D: usize>(t: &Tensor<D>) -> Vec<f32> {
    t.to_data().try_to_vec::<f32>().unwrap()
}

fn relative_error(ours: &[f32], theirs: &[f32]) -> f32 {
    assert_eq!(ours.len(), theirs.len());
    let scale = theirs.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    ours.iter().zip(theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max) / scale
}

#[test]
fn three_sgd_steps_match_pytorch() {
    let bytes = std::fs::read(fixtures().join("models/resnet18_narrow__finetune.safetensors")).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    let photos: Vec<String> = serde_json::from_str(&meta["photos"]).unwrap();
    let labels: Vec<usize> = serde_json::from_str(&meta["labels"]).unwrap();
    let res: usize = meta["res"].parse().unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let reference = |key: &str| -> Vec<f32> {
        st.tensor(key)
            .unwrap()
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    };

    let device = Device::flex();
    let (net, _) = ResNet::load(&fixtures().join("models/resnet18_narrow.safetensors"), &device).unwrap();
    let t = TestTransform {
        res,
        crop_ratio: 0.875,
        interpolation: Interpolation::Bilinear,
    };
    let batch: Vec<_> = photos.iter().map(|p| t.apply(&load(&photo(p)))).collect();
    // The trunk runs once (frozen, eval mode); every step reuses its output.
    let trunk = net.trunk(input_batch(&batch, IMAGENET_MEAN, IMAGENET_STD, &device));
    let mut head = net.head();
    let initial = head.clone();
    let mut sgd = Sgd::new(0.001, 0.9, 1e-4);
    let trainable = Trainable {
        classifier: true,
        bn_affine: true,
    };
    for step in 0..3 {
        let loss = head.step(&trunk, &labels, trainable, &mut sgd, &device);
        let expect = reference(&format!("loss_{step}"))[0];
        println!("step {step}: loss {loss} (PyTorch {expect})");
        assert!(
            ((loss - expect) / expect).abs() <= 1e-3,
            "step {step}: {loss} vs {expect}"
        );
    }
    for (ours, key) in [
        (values(&head.gamma), "bn.weight"),
        (values(&head.beta), "bn.bias"),
        (values(&head.running_mean), "bn.running_mean"),
        (values(&head.running_var), "bn.running_var"),
        (values(&head.fc_weight), "fc.weight"),
        (values(&head.fc_bias), "fc.bias"),
    ] {
        let err = relative_error(&ours, &reference(key));
        println!("{key}: relative error {err:.2e}");
        let before = match key {
            "bn.weight" => values(&initial.gamma),
            "bn.bias" => values(&initial.beta),
            "bn.running_mean" => values(&initial.running_mean),
            "bn.running_var" => values(&initial.running_var),
            "fc.weight" => values(&initial.fc_weight),
            _ => values(&initial.fc_bias),
        };
        let moved = relative_error(&ours, &before);
        println!("{key}: moved {moved:.2e} from its initial value");
        assert!(moved > 10.0 * err, "{key} must change more than the tolerance: {moved}");
        assert!(err <= 1e-3, "{key}: relative error {err}");
    }
}

#[test]
fn trunk_then_head_is_the_whole_network() {
    let device = Device::flex();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let img = TestTransform {
        res: 96,
        crop_ratio: 0.875,
        interpolation: Interpolation::Bilinear,
    }
    .apply(&load(&photo("grace_hopper.jpg")));
    for weights in [
        fixtures().join("models/resnet50_narrow.safetensors"),
        root.join("assets/models/efficientnet_lite0.safetensors"),
    ] {
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
fn small_dataset(dir: &std::path::Path) {
    let photos = [
        "rocket.jpg",
        "grace_hopper.jpg",
        "chelsea.png",
        "hubble_tall.jpg",
        "coffee_cmyk.jpg",
        "camera_grey.jpg",
    ];
    for c in 0..10 {
        std::fs::create_dir_all(dir.join(format!("c{c}"))).unwrap();
    }
    for (i, p) in photos.iter().enumerate() {
        for copy in 0..3 {
            std::fs::copy(photo(p), dir.join(format!("c{}", i % 3)).join(format!("{copy}-{p}"))).unwrap();
        }
    }
}

fn tensors(path: &std::path::Path) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.shape().to_vec(), t.data().to_vec()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn finetune_exports_every_tensor_with_only_the_head_changed() {
    let dir = tempfile::tempdir().unwrap();
    small_dataset(&dir.path().join("data"));
    let out = dir.path().join("ft.safetensors");
    let weights = fixtures().join("models/resnet18_narrow.safetensors");
    let (status, stdout, err) = util::fixres(&[
        "finetune",
        "--weights",
        weights.to_str().unwrap(),
        "--data",
        dir.path().join("data").to_str().unwrap(),
        "--res",
        "96",
        "--epochs",
        "2",
        "--batch",
        "8",
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(status.success(), "{err}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["epochs"].as_array().unwrap().len(), 2);
    assert_eq!(
        summary["train_images"].as_u64().unwrap() + summary["val_images"].as_u64().unwrap(),
        18
    );
    assert!(summary["stopped"].is_null());
    let sidecar: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("ft.safetensors.json")).unwrap()).unwrap();
    assert_eq!(sidecar["val_top1_after"], summary["val_top1_after"]);

    let (before, after) = (tensors(&weights), tensors(&out));
    assert_eq!(
        before.iter().map(|t| &t.0).collect::<Vec<_>>(),
        after.iter().map(|t| &t.0).collect::<Vec<_>>()
    );
    for ((name, shape_b, data_b), (_, shape_a, data_a)) in before.iter().zip(&after) {
        assert_eq!(shape_b, shape_a, "{name}");
        let head =
            name.starts_with("layer4.1.bn2.") && !name.ends_with("num_batches_tracked") || name.starts_with("fc.");
        assert_eq!(data_b != data_a, head, "{name}: only the head may change");
    }
    let model = fixres::model::Model::load(&out, &Device::flex()).unwrap_or_else(|e| panic!("{e}"));
    assert!(model.warnings.is_empty());
}

#[test]
fn a_diverging_finetune_stops_and_keeps_finite_weights() {
    let dir = tempfile::tempdir().unwrap();
    small_dataset(&dir.path().join("data"));
    let out = dir.path().join("ft.safetensors");
    let weights = fixtures().join("models/resnet18_narrow.safetensors");
    let (status, stdout, err) = util::fixres(&[
        "finetune",
        "--weights",
        weights.to_str().unwrap(),
        "--data",
        dir.path().join("data").to_str().unwrap(),
        "--res",
        "96",
        "--epochs",
        "3",
        "--batch",
        "8",
        "--lr",
        "1e30",
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(status.success(), "{err}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        summary["stopped"]
            .as_str()
            .unwrap()
            .contains("kept the last good weights"),
        "{summary}"
    );
    let model = fixres::model::Model::load(&out, &Device::flex()).unwrap();
    assert!(model.warnings.is_empty(), "{:?}", model.warnings);
}

#[test]
fn cached_and_recomputed_trunks_give_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    small_dataset(&dir.path().join("data"));
    let weights = fixtures().join("models/resnet18_narrow.safetensors");
    let data = dir.path().join("data");
    let run = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut args = vec![
            "finetune",
            "--weights",
            weights.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--res",
            "96",
            "--epochs",
            "3",
            "--batch",
            "8",
            "--device",
            "cpu",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        let (status, _, err) = util::fixres(&args);
        assert!(status.success(), "{err}");
        tensors(&out)
    };
    assert!(run("cached.safetensors", &[]) == run("recomputed.safetensors", &["--no-trunk-cache"]));
}

#[test]
fn ablation_switches_train_only_what_they_name() {
    let dir = tempfile::tempdir().unwrap();
    small_dataset(&dir.path().join("data"));
    let weights = fixtures().join("models/resnet18_narrow.safetensors");
    let data = dir.path().join("data");
    let run = |name: &str, flag: &str| {
        let out = dir.path().join(name);
        let (status, _, err) = util::fixres(&[
            "finetune",
            "--weights",
            weights.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--res",
            "96",
            "--epochs",
            "2",
            "--batch",
            "8",
            "--device",
            "cpu",
            "--curve",
            "64,96",
            flag,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(status.success(), "{err}");
        tensors(&out)
    };
    let original = tensors(&weights);
    let changed = |after: &[(String, Vec<usize>, Vec<u8>)], key: &str| {
        let find = |t: &[(String, Vec<usize>, Vec<u8>)]| t.iter().find(|x| x.0 == key).unwrap().2.clone();
        find(after) != find(&original)
    };
    let fc_only = run("fc.safetensors", "--train-classifier");
    assert!(changed(&fc_only, "fc.weight"));
    assert!(!changed(&fc_only, "layer4.1.bn2.weight") && !changed(&fc_only, "layer4.1.bn2.bias"));
    assert!(
        changed(&fc_only, "layer4.1.bn2.running_mean"),
        "running statistics always update"
    );
    let bn_only = run("bn.safetensors", "--train-bn");
    assert!(!changed(&bn_only, "fc.weight") && !changed(&bn_only, "fc.bias"));
    assert!(changed(&bn_only, "layer4.1.bn2.weight") && changed(&bn_only, "layer4.1.bn2.running_var"));
}

#[test]
fn a_cache_spilled_to_disk_gives_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    small_dataset(&dir.path().join("data"));
    let weights = fixtures().join("models/resnet18_narrow.safetensors");
    let data = dir.path().join("data");
    let run = |name: &str, cache_mb: &str| {
        let out = dir.path().join(name);
        let (status, stdout, err) = util::fixres(&[
            "finetune",
            "--weights",
            weights.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--res",
            "96",
            "--epochs",
            "2",
            "--batch",
            "8",
            "--device",
            "cpu",
            "--curve",
            "96",
            "--cache-mb",
            cache_mb,
            "--json",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(status.success(), "{err}");
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        (tensors(&out), v["cache_spilled_batches"].as_u64().unwrap())
    };
    let (in_memory, none_spilled) = run("memory.safetensors", "4096");
    let (spilled, all_spilled) = run("spilled.safetensors", "0");
    assert_eq!(
        (none_spilled, all_spilled),
        (0, 2),
        "15 training images in batches of 8"
    );
    assert!(in_memory == spilled);
}
