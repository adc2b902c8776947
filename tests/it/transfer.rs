//! A transfer, `fixres train --from`: a pretrained network with a new classifier for a folder's
//! own classes, `--trainable head` (the FixRes fine-tune's head) checked against PyTorch doing
//! the same 3 steps (tests/fixtures/make_transfer_reference.py), and what the export is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use fixres::model::Model;

use crate::util::cmd::{fixres_err, fixres_ok};
use crate::util::fixtures::{efficientnet_lite0, model, resnet18_narrow};
use crate::util::folders::Folder;
use crate::util::tensors::{self, f32_tensor, le_f32s, metadata, relative_error};

/// The reference's split folder (train/ + val/ by class), made in `dir` from its metadata.
fn reference_folder(reference: &Path, dir: &Path) -> PathBuf {
    let layout: BTreeMap<String, BTreeMap<String, Vec<String>>> =
        serde_json::from_str(&metadata(reference)["layout"]).unwrap();
    let data = dir.join("data");
    for (split, classes) in &layout {
        let folder = Folder::new(data.join(split));
        for (class, photos) in classes {
            for p in photos {
                folder.photo(class, p);
            }
        }
    }
    data
}

/// `fixres train --from weights --trainable part` on the reference's folder with its settings
/// (full batch, test transform) for `epochs` epochs.
fn transfer_as_reference(
    reference: &Path,
    weights: &Path,
    part: &str,
    data: &Path,
    out: &Path,
    epochs: usize,
) -> serde_json::Value {
    let settings: serde_json::Value = serde_json::from_str(&metadata(reference)["settings"]).unwrap();
    let arg = |key: &str| settings[key].to_string();
    fixres_ok(&[
        "train",
        "--from",
        weights.to_str().unwrap(),
        "--trainable",
        part,
        "--data",
        data.to_str().unwrap(),
        "--res",
        &arg("res"),
        "--epochs",
        &epochs.to_string(),
        "--seed",
        &arg("seed"),
        "--batch",
        &arg("batch"),
        "--lr",
        &arg("lr"),
        "--da",
        "test",
        "--device",
        "cpu",
        "--curve",
        &arg("res"),
        "--json",
        "--out",
        out.to_str().unwrap(),
    ])
    .json()
}

#[test]
fn transfer_head_three_steps_match_pytorch() {
    let reference = model("resnet18_narrow__transfer.safetensors");
    let theirs = |key: &str| f32_tensor(&reference, key).1;
    let dir = tempfile::tempdir().unwrap();
    let data = reference_folder(&reference, dir.path());

    // The new classifier PyTorch started from is the one this seed draws, bit for bit.
    let init = dir.path().join("init.safetensors");
    transfer_as_reference(&reference, &resnet18_narrow(), "head", &data, &init, 0);
    for key in ["fc.weight", "fc.bias"] {
        assert!(
            f32_tensor(&init, key).1 == theirs(&format!("init.{key}")),
            "{key}: the seed's initial values changed since the reference was made"
        );
    }

    let out = dir.path().join("transfer.safetensors");
    let summary = transfer_as_reference(&reference, &resnet18_narrow(), "head", &data, &out, 3);
    // All 7 training images in one batch: one step per epoch.
    assert_eq!(summary["train_images"], 7);
    for (step, epoch) in summary["epochs"].as_array().unwrap().iter().enumerate() {
        let (ours, expect) = (
            epoch["loss"].as_f64().unwrap(),
            f64::from(theirs(&format!("loss_{step}"))[0]),
        );
        println!("step {step}: loss {ours} (PyTorch {expect})");
        assert!(
            ((ours - expect) / expect).abs() <= 1e-4,
            "step {step}: {ours} vs {expect}"
        );
    }
    for key in [
        "layer4.1.bn2.weight",
        "layer4.1.bn2.bias",
        "layer4.1.bn2.running_mean",
        "layer4.1.bn2.running_var",
        "fc.weight",
        "fc.bias",
    ] {
        let (ours, expect) = (f32_tensor(&out, key).1, theirs(key));
        let err = relative_error(&ours, &expect);
        let before = match key {
            "fc.weight" | "fc.bias" => theirs(&format!("init.{key}")),
            _ => f32_tensor(&resnet18_narrow(), key).1,
        };
        // The values agree; so do the three steps' updates, which for the BatchNorm's weight are
        // smaller than the values' tolerance (a step not taken would pass the first check).
        let update = |v: &[f32]| v.iter().zip(&before).map(|(a, b)| a - b).collect::<Vec<f32>>();
        let update_err = relative_error(&update(&ours), &update(&expect));
        println!("{key}: relative error {err:.2e}; of the update {update_err:.2e}");
        assert!(err <= 1e-4, "{key}: relative error {err}");
        assert!(update_err <= 1e-2, "{key}: relative error of the update {update_err}");
    }
}

const PHOTOS: [&str; 6] = [
    "rocket.jpg",
    "grace_hopper.jpg",
    "chelsea.png",
    "hubble_tall.jpg",
    "coffee_cmyk.jpg",
    "camera_grey.jpg",
];

/// Class `class_<c>` of an ImageFolder at `data`: `per_class` fixture photos (copies).
fn class_folder(data: &Path, c: usize, per_class: usize) {
    for i in 0..per_class {
        let p = PHOTOS[(c + i) % PHOTOS.len()];
        Folder::new(data).photo_as(&format!("class_{c}"), p, &format!("{i}-{p}"));
    }
}

/// An ImageFolder of fixture photos in `dir`: `classes` classes, `per_class` images each.
fn folder(dir: &Path, classes: usize, per_class: usize) -> PathBuf {
    let data = dir.join("data");
    for c in 0..classes {
        class_folder(&data, c, per_class);
    }
    data
}

/// `fixres train --from weights` on `data` at K = 64 with `extra` arguments: the JSON summary.
fn transfer(weights: &Path, data: &Path, out: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "train",
        "--from",
        weights.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--res",
        "64",
        "--batch",
        "8",
        "--device",
        "cpu",
        "--curve",
        "64",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    fixres_ok(&args).json()
}

#[test]
fn the_same_seed_draws_the_same_classifier() {
    let dir = tempfile::tempdir().unwrap();
    let data = folder(dir.path(), 3, 5);
    let classifier = |seed: &str, name: &str| {
        let out = dir.path().join(name);
        transfer(&resnet18_narrow(), &data, &out, &["--epochs", "0", "--seed", seed]);
        (f32_tensor(&out, "fc.weight"), f32_tensor(&out, "fc.bias"))
    };
    let (a, again, other) = (
        classifier("3", "a.safetensors"),
        classifier("3", "b.safetensors"),
        classifier("4", "c.safetensors"),
    );
    assert!(a == again, "the same seed, the same classifier, bit for bit");
    assert!(
        a.0.1 != other.0.1 && a.1.1 != other.1.1,
        "another seed, another classifier"
    );
    let ((w_shape, w), (b_shape, b)) = a;
    assert_eq!((w_shape, b_shape), (vec![3, 64], vec![3]));
    // PyTorch's nn.Linear: uniform in ±1/√in_features, weight and bias.
    let bound = 1.0 / 64f32.sqrt();
    assert!(w.iter().chain(&b).all(|x| x.abs() <= bound));
}

#[test]
fn a_one_class_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = folder(dir.path(), 1, 6);
    let weights = resnet18_narrow();
    let out = dir.path().join("out.safetensors");
    let err = fixres_err(&[
        "train",
        "--from",
        weights.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--res",
        "64",
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(err.stderr.contains("a classifier needs two classes"), "{}", err.stderr);
    assert!(!out.exists());
}

#[test]
fn a_transfer_exports_the_new_classifier_loads_back_and_eval_scores_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let data = folder(dir.path(), 4, 5);
    let out = dir.path().join("transfer.safetensors");
    let summary = transfer(&resnet18_narrow(), &data, &out, &["--epochs", "2"]);
    let names = ["class_0", "class_1", "class_2", "class_3"];
    assert_eq!(summary["transfer"]["classes"], serde_json::json!(names));
    assert_eq!(summary["transfer"]["trainable"], "head");
    assert_eq!(summary["config"]["da"], "train");
    assert_eq!(summary["classes"], 4);
    let sidecar: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("transfer.safetensors.json")).unwrap()).unwrap();
    assert_eq!(sidecar["transfer"], summary["transfer"]);

    // Every tensor of the original, the trunk's unchanged; the classifier has the new shape.
    let (before, after) = (tensors::read(&resnet18_narrow()), tensors::read(&out));
    assert_eq!(
        before.iter().map(|t| &t.name).collect::<Vec<_>>(),
        after.iter().map(|t| &t.name).collect::<Vec<_>>()
    );
    for (b, a) in before.iter().zip(&after) {
        let name = &b.name;
        let head = name.starts_with("layer4.1.bn2.") && !name.ends_with("num_batches_tracked");
        if name.starts_with("fc.") {
            assert_eq!(a.shape[0], 4, "{name}");
        } else {
            assert_eq!((&b.shape, b.data != a.data), (&a.shape, head), "{name}");
        }
    }

    let model = Model::load(&out, &Device::flex()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(model.classes, 4);
    assert_eq!(model.class_names.as_deref(), Some(names.map(String::from).as_slice()));
    assert!(model.warnings.is_empty(), "{:?}", model.warnings);

    let eval = |data: &Path| {
        fixres_ok(&[
            "eval",
            "--weights",
            out.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--res",
            "64",
            "--device",
            "cpu",
            "--json",
        ])
        .json()
    };
    let whole = eval(&data);
    assert_eq!(whole["results"][0]["images"], 20, "{whole}");
    assert!((0.0..=1.0).contains(&whole["results"][0]["top1"].as_f64().unwrap()));
    // Two of the four classes, by name: only the model's class names can place them.
    let subset = dir.path().join("subset");
    class_folder(&subset, 1, 5);
    class_folder(&subset, 3, 5);
    assert_eq!(eval(&subset)["results"][0]["images"], 10);
}

#[test]
fn an_efficientnet_takes_a_new_classifier_too() {
    let dir = tempfile::tempdir().unwrap();
    let data = folder(dir.path(), 2, 5);
    let out = dir.path().join("lite0.safetensors");
    let summary = transfer(&efficientnet_lite0(), &data, &out, &["--epochs", "1", "--da", "test"]);
    assert!(summary["cache_seconds"].as_f64().is_some(), "{summary}");
    assert_eq!(tensors::named(&tensors::read(&out), "_fc.weight").shape, [2, 1280]);
    let model = Model::load(&out, &Device::flex()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((model.arch.as_str(), model.classes), ("efficientnet-lite0", 2));
}

#[test]
fn cached_and_recomputed_trunks_give_the_same_transfer() {
    let dir = tempfile::tempdir().unwrap();
    let data = folder(dir.path(), 3, 5);
    let run = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let args = [&["--epochs", "3", "--da", "test"], extra].concat();
        (transfer(&resnet18_narrow(), &data, &out, &args), tensors::read(&out))
    };
    let (cached_summary, cached) = run("cached.safetensors", &[]);
    let (recomputed_summary, recomputed) = run("recomputed.safetensors", &["--no-trunk-cache"]);
    assert!(cached_summary["cache_seconds"].is_f64());
    assert!(recomputed_summary.get("cache_seconds").is_none());
    assert!(cached == recomputed);
}

#[test]
fn a_diverging_transfer_stops_and_keeps_the_last_good_weights() {
    let dir = tempfile::tempdir().unwrap();
    let data = folder(dir.path(), 3, 5);
    let out = dir.path().join("out.safetensors");
    let summary = transfer(&resnet18_narrow(), &data, &out, &["--epochs", "3", "--lr", "1e30"]);
    let stopped = summary["stopped"].as_str().unwrap_or_default();
    assert!(stopped.contains("kept the last good weights"), "{summary}");
    let fc = tensors::named(&tensors::read(&out), "fc.weight").data.clone();
    assert!(le_f32s(&fc).iter().all(|v| v.is_finite()));
}

#[test]
fn transfer_options_need_from_and_from_scratch_options_refuse_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = folder(dir.path(), 2, 2);
    let (data, weights) = (data.to_str().unwrap(), resnet18_narrow());
    let out = dir.path().join("out.safetensors");
    let base = ["train", "--data", data, "--res", "32", "--out", out.to_str().unwrap()];
    for extra in [&["--trainable", "head"][..], &["--da", "test"], &["--no-trunk-cache"]] {
        let err = fixres_err(&[&base[..], extra].concat());
        assert!(err.stderr.contains("--from"), "{extra:?}: {}", err.stderr);
    }
    let from = ["--from", weights.to_str().unwrap()];
    for extra in [&["--arch", "resnet18"][..], &["--weight-decay", "0.1"]] {
        let err = fixres_err(&[&base[..], &from, extra].concat());
        assert!(err.stderr.contains("cannot be used with"), "{extra:?}: {}", err.stderr);
    }
    let err = fixres_err(&[&base[..], &from, &["--trainable", "everything"]].concat());
    assert!(err.stderr.contains("possible values: head"), "{}", err.stderr);
}

/// One SGD step of the whole network (and of the last stage) against PyTorch's from the same
/// start (tests/fixtures/make_end_to_end_reference.py): the loss, first and last layers, the
/// last stage's BatchNorms (affine and running statistics, PyTorch's unbiased variance) and the
/// classifier; with `last-stage`, the frozen layers unchanged.
#[test]
fn one_end_to_end_step_matches_pytorch() {
    let reference = model("end_to_end__reference.safetensors");
    let theirs = |key: &str| f32_tensor(&reference, key).1;
    let keys: Vec<String> = tensors::read(&reference).into_iter().map(|t| t.name).collect();
    let dir = tempfile::tempdir().unwrap();
    let data = reference_folder(&reference, dir.path());
    for (case, weights, part) in [
        ("resnet18_all", resnet18_narrow(), "all"),
        ("resnet18_last-stage", resnet18_narrow(), "last-stage"),
        ("lite0_all", efficientnet_lite0(), "all"),
    ] {
        let init = dir.path().join(format!("{case}_init.safetensors"));
        transfer_as_reference(&reference, &weights, part, &data, &init, 0);
        let out = dir.path().join(format!("{case}.safetensors"));
        transfer_as_reference(&reference, &weights, part, &data, &out, 1);
        let summary: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(format!("{case}.safetensors.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(summary["transfer"]["trainable"], part, "{case}");
        let (ours, expect) = (
            summary["epochs"][0]["loss"].as_f64().unwrap(),
            f64::from(theirs(&format!("{case}.loss"))[0]),
        );
        println!("{case}: loss {ours} (PyTorch {expect})");
        assert!(
            ((ours - expect) / expect).abs() <= 1e-4,
            "{case}: loss {ours} vs {expect}"
        );
        // The export has every key of the original.
        let names = |p: &Path| tensors::read(p).into_iter().map(|t| t.name).collect::<Vec<_>>();
        assert_eq!(names(&out), names(&weights), "{case}");
        let prefix = format!("{case}.after.");
        let mut updated = 0;
        for key in keys.iter().filter_map(|k| k.strip_prefix(&prefix)) {
            let start = theirs(&format!("{case}.init.{key}"));
            assert!(
                f32_tensor(&init, key).1 == start,
                "{case} {key}: the start changed since the reference was made"
            );
            let (ours, expect) = (f32_tensor(&out, key).1, theirs(&format!("{case}.after.{key}")));
            let err = ours
                .iter()
                .zip(&expect)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            if expect == start {
                // Frozen (the last stage's run): unchanged here too.
                assert!(ours == start, "{case} {key}: frozen in PyTorch, changed here");
                println!("{case} {key}: frozen");
                continue;
            }
            // The values agree, and so do the step's updates: a step not taken, or taken with
            // the wrong gradient, would pass the first check where the update is small. An update
            // below 1e-6 (Lite0's `_bn1.running_mean`, whose batch mean is its running mean to
            // 5e-8) is f32 rounding on both sides: its values are checked, not its update.
            assert!(err <= 1e-3, "{case} {key}: max error {err}");
            let update = |v: &[f32]| v.iter().zip(&start).map(|(a, b)| a - b).collect::<Vec<f32>>();
            let largest = update(&expect).iter().fold(0f32, |m, u| m.max(u.abs()));
            if largest < 1e-6 {
                println!("{case} {key}: max error {err:.2e}; update at most {largest:.1e}, not compared");
                continue;
            }
            let update_err = relative_error(&update(&ours), &update(&expect));
            println!("{case} {key}: max error {err:.2e}; relative error of the update {update_err:.2e}");
            assert!(
                update_err <= 1e-2,
                "{case} {key}: relative error of the update {update_err}"
            );
            updated += 1;
        }
        assert!(updated >= 6, "{case}: {updated} tensors updated");
    }
}

#[test]
fn a_family_without_burn_modules_trains_its_head_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = folder(dir.path(), 2, 3);
    let weights = crate::util::fixtures::model("zoo/tv_mobilenet_v3_large.safetensors");
    let out = dir.path().join("out.safetensors");
    let err = fixres_err(&[
        "train",
        "--from",
        weights.to_str().unwrap(),
        "--trainable",
        "all",
        "--data",
        data.to_str().unwrap(),
        "--res",
        "64",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        err.stderr
            .contains("--trainable all trains torchvision ResNets and EfficientNet-Lite end to end")
            && err.stderr.contains("tv_mobilenet_v3_large.safetensors"),
        "{}",
        err.stderr
    );
    assert!(!out.exists());
}

#[test]
fn a_diverging_end_to_end_transfer_keeps_the_last_good_weights() {
    let dir = tempfile::tempdir().unwrap();
    let data = folder(dir.path(), 3, 5);
    let out = dir.path().join("out.safetensors");
    let summary = transfer(
        &resnet18_narrow(),
        &data,
        &out,
        &["--trainable", "all", "--epochs", "2", "--lr", "1e30"],
    );
    let stopped = summary["stopped"].as_str().unwrap_or_default();
    assert!(
        stopped.contains("kept the last good weights (those of the start)"),
        "{summary}"
    );
    let fc = tensors::named(&tensors::read(&out), "fc.weight").data.clone();
    assert!(le_f32s(&fc).iter().all(|v| v.is_finite()));
}

/// `--trainable all` on Burn's wgpu backend (Mesa's lavapipe here; a hardware GPU where there is
/// one) trains the same network as on the CPU backend: the same losses, the same weights to float
/// rounding.
#[test]
fn an_end_to_end_transfer_on_wgpu_matches_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let data = folder(dir.path(), 2, 3);
    let run = |device: &str| {
        let out = dir.path().join(format!("{device}.safetensors"));
        let (weights, data, out_text) = (resnet18_narrow(), data.clone(), out.to_str().unwrap().to_owned());
        let summary = fixres_ok(&[
            "train",
            "--from",
            weights.to_str().unwrap(),
            "--trainable",
            "all",
            "--data",
            data.to_str().unwrap(),
            "--res",
            "64",
            "--epochs",
            "2",
            "--batch",
            "4",
            "--da",
            "test",
            "--lr",
            "0.05",
            "--curve",
            "64",
            "--device",
            device,
            "--json",
            "--out",
            &out_text,
        ])
        .json();
        (summary, tensors::read_f32(&out))
    };
    let (cpu, cpu_weights) = run("cpu");
    let (gpu, gpu_weights) = run("gpu");
    assert_eq!(gpu["device"]["backend"], "wgpu", "{gpu}");
    for (a, b) in cpu["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .zip(gpu["epochs"].as_array().unwrap())
    {
        let (a, b) = (a["loss"].as_f64().unwrap(), b["loss"].as_f64().unwrap());
        assert!((a - b).abs() <= 1e-5 * a.abs(), "loss {a} on the CPU, {b} on wgpu");
    }
    assert_eq!(cpu_weights.len(), gpu_weights.len());
    for ((name, _, a), (_, _, b)) in cpu_weights.iter().zip(&gpu_weights) {
        let err = relative_error(b, a);
        assert!(err <= 1e-4, "{name}: relative error {err}");
    }
}
