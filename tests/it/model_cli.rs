//! `fixres features` and `fixres eval` against PyTorch's outputs for the same photos.

use std::path::PathBuf;

use crate::util::cmd::{fixres_err, fixres_ok};
use crate::util::fixtures::{demo_photos, efficientnet_lite0, model, photo, resnet18_narrow, resnet18_narrow_pth};
use crate::util::folders::Folder;
use crate::util::tensors::{self, f32_tensor, relative_error};

fn weights() -> String {
    resnet18_narrow().display().to_string()
}

/// PyTorch's pooled features and logits of the narrow ResNet-18 (make_model_reference.py).
fn reference() -> PathBuf {
    model("resnet18_narrow__reference.safetensors")
}

#[test]
fn features_match_pytorch() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("f.safetensors");
    let photos: Vec<String> = ["rocket.jpg", "grace_hopper.jpg", "chelsea.png"]
        .iter()
        .map(|p| photo(p).display().to_string())
        .collect();
    let w = weights();
    let mut args = vec![
        "features",
        "--weights",
        &w,
        "--res",
        "160",
        "--device",
        "cpu",
        "--json",
        "--out",
    ];
    let out_s = out.display().to_string();
    args.push(&out_s);
    for p in &photos {
        args.extend(["--image", p.as_str()]);
    }
    let v = fixres_ok(&args).json();
    assert_eq!(v["images"], 3);
    for (key, ref_key) in [("pooled", "pooled_160"), ("logits", "logits_160")] {
        let (a, b) = (f32_tensor(&out, key).1, f32_tensor(&reference(), ref_key).1);
        let err = relative_error(&a, &b);
        assert!(err <= 1e-4, "{key}: relative error {err}");
    }
}

#[test]
fn eval_scores_a_dataset_as_pytorch_would() {
    // Three photos in classes 0, 3 and 5 of a 10-class model: top-1 and top-5 follow from
    // PyTorch's logits for the same photos.
    let dir = tempfile::tempdir().unwrap();
    let placed = [("rocket.jpg", 0usize), ("grace_hopper.jpg", 3), ("chelsea.png", 5)];
    let folder = Folder::new(dir.path());
    folder.classes((0..10).map(|c| format!("c{c}")));
    for (p, c) in placed {
        folder.photo(&format!("c{c}"), p);
    }
    let v = fixres_ok(&[
        "eval",
        "--weights",
        &weights(),
        "--data",
        dir.path().to_str().unwrap(),
        "--res",
        "160,224",
        "--device",
        "cpu",
        "--json",
    ])
    .json();
    // The reference holds the photos in the order rocket, grace_hopper, chelsea; ImageFolder
    // orders them by class: c0 rocket, c3 grace_hopper, c5 chelsea — the same order.
    for (r, k) in [160, 224].iter().enumerate() {
        let logits = f32_tensor(&reference(), &format!("logits_{k}")).1;
        let (mut top1, mut top5) = (0, 0);
        for (i, (_, target)) in placed.iter().enumerate() {
            let row = &logits[i * 10..(i + 1) * 10];
            let mut order: Vec<usize> = (0..10).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            top1 += usize::from(order[0] == *target);
            top5 += usize::from(order[..5].contains(target));
        }
        let got = &v["results"][r];
        assert_eq!(got["res"], *k);
        assert_eq!(got["images"], 3);
        assert_eq!(got["top1"].as_f64().unwrap(), top1 as f64 / 3.0, "K={k}");
        assert_eq!(got["top5"].as_f64().unwrap(), top5 as f64 / 3.0, "K={k}");
        assert!(got["pooled"]["mean"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(
        v["skipped"].as_array().unwrap().len(),
        7,
        "the seven empty classes are listed"
    );
}

#[test]
fn eval_explains_a_class_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    Folder::new(dir.path()).photo("only", "rocket.jpg");
    let err = fixres_err(&[
        "eval",
        "--weights",
        &weights(),
        "--data",
        dir.path().to_str().unwrap(),
        "--device",
        "cpu",
    ])
    .stderr;
    // Both counts, that the model has no names, and each rule tried with an example.
    assert!(
        err.contains("no class names")
            && err.contains("its 10 outputs")
            && err.contains("(this one has 1)")
            && err.contains("by index (e.g. 'only' vs 0..9)"),
        "{err}"
    );
}

#[test]
fn convert_pth_gives_the_same_tensors_as_safetensors_from_pytorch() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r18.safetensors");
    let pth = resnet18_narrow_pth().display().to_string();
    let v = fixres_ok(&["convert", "--in", &pth, "--out", out.to_str().unwrap(), "--json"]).json();
    assert_eq!(v["tensors"], 122);
    let (ours, theirs) = (tensors::read(&out), tensors::read(&resnet18_narrow()));
    let names = |t: &[tensors::Stored]| t.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&ours), names(&theirs));
    for (a, b) in ours.iter().zip(&theirs) {
        assert_eq!((a.dtype, &a.shape, &a.data), (b.dtype, &b.shape, &b.data), "{}", a.name);
    }
}

#[test]
fn f16_conversion_halves_the_file_and_still_matches_pytorch_closely() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r18h.safetensors");
    let pth = resnet18_narrow_pth().display().to_string();
    fixres_ok(&[
        "convert",
        "--in",
        &pth,
        "--out",
        out.to_str().unwrap(),
        "--dtype",
        "f16",
    ]);
    assert!(std::fs::metadata(&out).unwrap().len() < std::fs::metadata(weights()).unwrap().len() * 6 / 10);
    let feats = dir.path().join("f.safetensors");
    fixres_ok(&[
        "features",
        "--weights",
        out.to_str().unwrap(),
        "--res",
        "160",
        "--device",
        "cpu",
        "--out",
        feats.to_str().unwrap(),
        "--image",
        photo("rocket.jpg").to_str().unwrap(),
    ]);
    let (a, b) = (f32_tensor(&feats, "logits").1, f32_tensor(&reference(), "logits_160").1);
    let err = relative_error(&a, &b[..10]);
    assert!(err <= 1e-2, "f16 weights: relative error {err}");
}

#[test]
fn convert_refuses_a_file_that_is_not_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("model.pth");
    std::fs::write(&bad, b"PK\x03\x04 this is not really a zip").unwrap();
    let err = fixres_err(&[
        "convert",
        "--in",
        bad.to_str().unwrap(),
        "--out",
        dir.path().join("o.safetensors").to_str().unwrap(),
    ])
    .stderr;
    assert!(err.contains("model.pth") && !err.contains("panicked"), "{err}");
}

#[test]
fn the_embedded_model_scores_the_demo_photos_matching_folders_to_class_names() {
    let (weights, demo) = (efficientnet_lite0(), demo_photos());
    let v = fixres_ok(&[
        "eval",
        "--weights",
        weights.to_str().unwrap(),
        "--data",
        demo.to_str().unwrap(),
        "--res",
        "224,288",
        "--device",
        "cpu",
        "--json",
    ])
    .json();
    assert_eq!(v["arch"], "efficientnet-lite0");
    assert!(v["skipped"].as_array().unwrap().is_empty());
    let photos = walk_files(&demo);
    for r in v["results"].as_array().unwrap() {
        assert_eq!(r["images"], photos);
        let (t1, t5) = (r["top1"].as_f64().unwrap(), r["top5"].as_f64().unwrap());
        // The real photos of plain ImageNet classes: the model gets most of them.
        assert!((0.6..=1.0).contains(&t1) && t1 <= t5, "{r}");
        assert_eq!(r["pooled"]["values"], photos * 1280);
    }
}

/// Files under `dir`, recursively.
fn walk_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| if p.is_dir() { walk_files(&p) } else { 1 })
        .sum()
}
