//! Per-image results and the label-free remedies of issue 15, against PyTorch and SciPy
//! (tests/fixtures/make_remedies_reference.py): the per-image CSV and flip counts of `fixres
//! eval` (the real EfficientNet-Lite0 on the demo photos), BatchNorm re-estimation against
//! `update_bn` (`fixres recalibrate`), and the Fréchet fits and quantile map of the parametric
//! adaptation (`fixres adapt`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fixres::frechet::{Frechet, PAPER_XI, QuantileMap};

use crate::util::cmd::{fixres_err, fixres_ok};
use crate::util::fixtures::{demo_photos, efficientnet_lite0, model, resnet18_narrow};
use crate::util::folders::Folder;
use crate::util::tensors::{f32_tensor, metadata, read, relative_error};

fn reference() -> PathBuf {
    model("remedies__reference.safetensors")
}

fn f32s(key: &str) -> Vec<f32> {
    f32_tensor(&reference(), key).1
}

fn f64s(key: &str) -> Vec<f64> {
    let t = read(&reference());
    let stored = crate::util::tensors::named(&t, key);
    stored
        .data
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// The fixture photos in index-named class folders, as the reference laid them out.
fn photo_folder(dir: &Path) -> PathBuf {
    let layout: BTreeMap<String, usize> = serde_json::from_str(&metadata(&reference())["layout"]).unwrap();
    let data = dir.join("photos");
    let folder = Folder::new(&data);
    for (photo, class) in &layout {
        folder.photo(&class.to_string(), photo);
    }
    data
}

fn text(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn per_image_results_and_flip_counts_match_pytorch_on_the_demo_photos() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("per_image.csv");
    let out = fixres_ok(&[
        "eval",
        "--weights",
        text(&efficientnet_lite0()),
        "--data",
        text(&demo_photos()),
        "--res",
        "128,224",
        "--device",
        "cpu",
        "--per-image",
        text(&csv),
        "--json",
    ])
    .json();
    let meta = metadata(&reference());
    let files: Vec<String> = serde_json::from_str(&meta["demo_files"]).unwrap();
    let expected: serde_json::Value = serde_json::from_str(&meta["flips"]).unwrap();
    let flips = &out["flips"][0];
    assert_eq!((flips["from"].as_u64(), flips["to"].as_u64()), (Some(128), Some(224)));
    assert_eq!(flips["right_to_wrong"], expected["right_to_wrong"], "{out}");
    assert_eq!(flips["wrong_to_right"], expected["wrong_to_right"], "{out}");
    assert_eq!(flips["images"].as_u64(), Some(files.len() as u64));
    assert!(
        expected["right_to_wrong"].as_u64() > Some(0) && expected["wrong_to_right"].as_u64() > Some(0),
        "the reference has flips both ways"
    );
    // The CSV: one row per image and resolution, in the folder's order, K = 128 then 224.
    let table = std::fs::read_to_string(&csv).unwrap();
    let mut lines = table.lines();
    assert_eq!(
        lines.next(),
        Some("file,class,res,top1,top5,predicted,p_predicted,p_true")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 2 * files.len());
    for k in [128, 224] {
        let top1 = f32_tensor(&reference(), &format!("p_true_{k}")).1;
        let hits = read(&reference());
        let hits = &crate::util::tensors::named(&hits, &format!("top1_{k}")).data;
        for (i, file) in files.iter().enumerate() {
            let row = &rows[2 * i + usize::from(k == 224)];
            assert!(row[0].ends_with(file.as_str()), "{row:?} is not {file}");
            assert_eq!(row[2], k.to_string());
            assert_eq!(row[3], hits[i].to_string(), "{file} at {k}: top-1 hit");
            let p_true: f32 = row[7].parse().unwrap();
            assert!(
                (p_true - top1[i]).abs() < 1e-4,
                "{file} at {k}: p_true {p_true} vs {}",
                top1[i]
            );
        }
    }
}

#[test]
fn last_batchnorm_re_estimation_matches_update_bn_for_resnet_and_efficientnet() {
    let dir = tempfile::tempdir().unwrap();
    let data = photo_folder(dir.path());
    let meta = metadata(&reference());
    let cases = [
        (resnet18_narrow(), "layer4.1.bn2", "last"),
        (model("zoo/tv_efficientnet_b0.safetensors"), "features.8.1", "effnet"),
    ];
    for (weights, layer, key) in cases {
        let out = dir.path().join(format!("{key}.safetensors"));
        let report = fixres_ok(&[
            "recalibrate",
            "--weights",
            text(&weights),
            "--data",
            text(&data),
            "--res",
            &meta["bn_res"],
            "--batch",
            &meta["bn_batch"],
            "--device",
            "cpu",
            "--json",
            "--out",
            text(&out),
        ])
        .json();
        assert_eq!(report["layer"], layer);
        assert_eq!(report["images"], 13);
        assert_eq!(report["batches"], 4, "13 images in batches of 4");
        assert!(report["scores"]["images"] == 13, "classes 0…9 match by index: {report}");
        for stat in ["running_mean", "running_var"] {
            let ours = f32_tensor(&out, &format!("{layer}.{stat}")).1;
            let theirs = f32s(&format!("{key}.{stat}"));
            let err = relative_error(&ours, &theirs);
            assert!(err <= 1e-5, "{layer}.{stat}: {err}");
        }
        // Nothing else changed (checked where the source is f32 as the export: the ResNet; the
        // zoo's weights are f16).
        let before = crate::util::tensors::read_f32(&weights);
        let mut checked = 0;
        for (name, _, values) in crate::util::tensors::read_f32(&out) {
            if let Some((.., source)) = before.iter().find(|(n, ..)| *n == name)
                && !name.starts_with(layer)
            {
                assert_eq!(&values, source, "{name}");
                checked += 1;
            }
        }
        assert!(key != "last" || checked > 50, "{checked} tensors compared");
    }
}

/// `--layers all` is `update_bn` itself: every BatchNorm of the narrow ResNet-18 reset and
/// re-estimated with the network in training mode, against PyTorch's.
#[test]
fn every_batchnorm_re_estimation_matches_update_bn() {
    let dir = tempfile::tempdir().unwrap();
    let data = photo_folder(dir.path());
    let meta = metadata(&reference());
    let out = dir.path().join("all.safetensors");
    let report = fixres_ok(&[
        "recalibrate",
        "--weights",
        text(&resnet18_narrow()),
        "--data",
        text(&data),
        "--res",
        &meta["bn_res"],
        "--batch",
        &meta["bn_batch"],
        "--layers",
        "all",
        "--device",
        "cpu",
        "--json",
        "--out",
        text(&out),
    ])
    .json();
    assert_eq!(report["layer"], "all 20 BatchNorms");
    assert_eq!(
        (report["images"].as_u64(), report["batches"].as_u64()),
        (Some(13), Some(4))
    );
    assert!(report["scores"]["images"] == 13, "{report}");
    let keys: Vec<String> = read(&reference()).into_iter().map(|t| t.name).collect();
    let mut compared = 0;
    let mut worst = 0f32;
    for key in keys.iter().filter_map(|k| k.strip_prefix("all.")) {
        let ours = f32_tensor(&out, key).1;
        let err = relative_error(&ours, &f32s(&format!("all.{key}")));
        worst = worst.max(err);
        assert!(err <= 1e-5, "{key}: {err}");
        compared += 1;
    }
    println!("{compared} running statistics, worst relative error {worst:.2e}");
    assert_eq!(compared, 40, "20 BatchNorms' means and variances");
    // The weights themselves are the source's.
    let before = crate::util::tensors::read_f32(&resnet18_narrow());
    for (name, _, values) in crate::util::tensors::read_f32(&out) {
        if !name.contains("running_")
            && let Some((.., source)) = before.iter().find(|(n, ..)| *n == name)
        {
            assert_eq!(&values, source, "{name}");
        }
    }
    // A family whose inner BatchNorms are folded at load says so.
    let e = fixres_err(&[
        "recalibrate",
        "--weights",
        text(&model("zoo/tv_efficientnet_b0.safetensors")),
        "--data",
        text(&data),
        "--res",
        "64",
        "--layers",
        "all",
        "--device",
        "cpu",
        "--out",
        text(&dir.path().join("x.safetensors")),
    ]);
    assert!(
        e.stderr
            .contains("--layers all re-estimates every BatchNorm of torchvision ResNets and EfficientNet-Lite"),
        "{}",
        e.stderr
    );
}

#[test]
fn frechet_fits_and_the_quantile_map_match_scipy() {
    let fits = f64s("frechet.fit");
    let law = |k: usize| {
        let x: Vec<f64> = f32s(&format!("pooled_{k}")).iter().map(|&v| f64::from(v)).collect();
        Frechet::fit(&x, PAPER_XI).unwrap()
    };
    let (train, test) = (law(128), law(224));
    for (ours, theirs) in [
        (train.loc, fits[0]),
        (train.scale, fits[1]),
        (test.loc, fits[2]),
        (test.scale, fits[3]),
    ] {
        assert!(
            (ours - theirs).abs() <= 1e-5 * theirs.abs(),
            "{ours} vs SciPy's {theirs}"
        );
    }
    let map = QuantileMap { train, test };
    for (x, y) in f64s("frechet.grid").into_iter().zip(f64s("frechet.mapped")) {
        assert!(
            (map.apply(x) - y).abs() < 1e-3,
            "map({x}) = {} vs SciPy's {y}",
            map.apply(x)
        );
    }
}

#[test]
fn parametric_adaptation_folds_the_map_into_the_classifier() {
    let dir = tempfile::tempdir().unwrap();
    let data = photo_folder(dir.path());
    let out = dir.path().join("adapted.safetensors");
    let report = fixres_ok(&[
        "adapt",
        "--weights",
        text(&resnet18_narrow()),
        "--data",
        text(&data),
        "--train-res",
        "128",
        "--res",
        "224",
        "--device",
        "cpu",
        "--json",
        "--out",
        text(&out),
    ])
    .json();
    // The fits rest on our forward pass (within ~1e-6 of PyTorch's): close to SciPy's fits of
    // PyTorch's activations.
    let fits = f64s("frechet.fit");
    let got = [
        &report["map"]["train"]["loc"],
        &report["map"]["train"]["scale"],
        &report["map"]["test"]["loc"],
        &report["map"]["test"]["scale"],
    ];
    for (g, theirs) in got.iter().zip(&fits) {
        let ours = g.as_f64().unwrap();
        assert!((ours - theirs).abs() <= 1e-3 * theirs.abs(), "{ours} vs {theirs}");
    }
    let (a, b) = (
        report["affine"][0].as_f64().unwrap(),
        report["affine"][1].as_f64().unwrap(),
    );
    let w = f32_tensor(&resnet18_narrow(), "fc.weight").1;
    let bias = f32_tensor(&resnet18_narrow(), "fc.bias").1;
    let w2 = f32_tensor(&out, "fc.weight").1;
    let bias2 = f32_tensor(&out, "fc.bias").1;
    let scaled: Vec<f32> = w.iter().map(|&x| (f64::from(x) * a) as f32).collect();
    assert!(relative_error(&w2, &scaled) < 1e-6);
    for (o, row) in w.chunks(64).enumerate() {
        let shift = f64::from(bias[o]) + b * row.iter().map(|&x| f64::from(x)).sum::<f64>();
        assert!((f64::from(bias2[o]) - shift).abs() < 1e-4, "fc.bias[{o}]");
    }
    assert_eq!(report["scores"]["images"], 13);
}

#[test]
fn remedies_refuse_what_they_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let data = photo_folder(dir.path());
    let out = dir.path().join("x.safetensors");
    let convnext = model("zoo/tv_convnext_tiny.safetensors");
    let e = fixres_err(&[
        "recalibrate",
        "--weights",
        text(&convnext),
        "--data",
        text(&data),
        "--res",
        "64",
        "--device",
        "cpu",
        "--out",
        text(&out),
    ]);
    assert!(
        e.stderr.contains("LayerNorm") && e.stderr.contains("no running statistics"),
        "{}",
        e.stderr
    );
    let deit = model("zoo/timm_deit_small_distilled_patch16_224.safetensors");
    let e = fixres_err(&[
        "adapt",
        "--weights",
        text(&deit),
        "--data",
        text(&data),
        "--train-res",
        "64",
        "--res",
        "96",
        "--device",
        "cpu",
        "--out",
        text(&out),
    ]);
    assert!(e.stderr.contains("distillation head"), "{}", e.stderr);
    assert!(!out.exists(), "nothing written");
}

#[test]
fn multiply_accumulates_match_pytorchs_flop_counter() {
    let dir = tempfile::tempdir().unwrap();
    let data = photo_folder(dir.path());
    let expected: BTreeMap<String, u64> = serde_json::from_str(&metadata(&reference())["macs"]).unwrap();
    let mut models: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for key in expected.keys() {
        let (name, k) = key.split_once('@').unwrap();
        models.entry(name).or_default().push(k.parse().unwrap());
    }
    for (name, ks) in models {
        let weights = model(&format!("{name}.safetensors"));
        let res: Vec<String> = ks.iter().map(usize::to_string).collect();
        let report = fixres_ok(&[
            "eval",
            "--weights",
            text(&weights),
            "--data",
            text(&data),
            "--res",
            &res.join(","),
            "--device",
            "cpu",
            "--json",
        ])
        .json();
        for (i, k) in ks.iter().enumerate() {
            let r = &report["results"][i];
            let ours = r["macs"].as_u64().unwrap() as f64;
            let theirs = expected[&format!("{name}@{k}")] as f64;
            assert!(
                (ours / theirs - 1.0).abs() <= 0.01,
                "{name} at {k}: {ours} vs PyTorch's {theirs}"
            );
            assert!(r["images_per_s"].as_f64().unwrap() > 0.0);
        }
    }
}
