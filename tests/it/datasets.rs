//! The user's own folders: how their class folders match a model's classes (by name, by
//! ImageNet-1k WordNet id, by index), the message when they match none, and tiny folders (a class
//! of two to four images still gives one to validation; a run without any says so).

use std::path::Path;

use crate::util::cmd::{fixres_err, fixres_ok};
use crate::util::fixtures::efficientnet_lite0;
use crate::util::folders::Folder;

/// Fixture photos of a plain ImageNet-1k class, and the three names of that class.
struct Class {
    name: &'static str,
    /// Written out here, not read from `assets/models/imagenet_wnids.txt`, so that the shipped
    /// list is checked against ImageNet's own ids (timm's `imagenet_synset_to_lemma.txt`).
    wnid: &'static str,
    index: usize,
    photos: &'static [&'static str],
}

impl Class {
    /// The class's folder in the layout `eval` reports as `rule`.
    fn folder(&self, rule: &str) -> String {
        match rule {
            "name" => self.name.to_owned(),
            "wordnet_id" => self.wnid.to_owned(),
            _ => self.index.to_string(),
        }
    }
}

const CLASSES: [Class; 4] = [
    Class {
        name: "tabby",
        wnid: "n02123045",
        index: 281,
        photos: &["chelsea.png"],
    },
    Class {
        name: "espresso",
        wnid: "n07920052",
        index: 967,
        photos: &["coffee_cmyk.jpg", "coffee_palette.png"],
    },
    Class {
        name: "military uniform",
        wnid: "n03763968",
        index: 652,
        photos: &["grace_hopper.jpg"],
    },
    Class {
        name: "tripod",
        wnid: "n04485082",
        index: 872,
        photos: &["camera_grey.jpg", "camera_crop_grey.png"],
    },
];

/// `fixres eval --json` of the embedded EfficientNet-Lite0 on `data` at K 224 and 288.
fn eval(data: &Path) -> serde_json::Value {
    let weights = efficientnet_lite0();
    fixres_ok(&[
        "eval",
        "--weights",
        weights.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--res",
        "224,288",
        "--device",
        "cpu",
        "--json",
    ])
    .json()
}

#[test]
fn imagenet_val_and_v2_layouts_score_as_the_class_name_layout() {
    // The embedded model knows only the names ("tabby"): folders named as ImageNet's val folder
    // and Imagenette name them (n02123045/) or as ImageNet-V2 does (281/) were refused.
    let dir = tempfile::tempdir().unwrap();
    let mut reports = Vec::new();
    for rule in ["name", "wordnet_id", "index"] {
        let root = dir.path().join(rule);
        let folder = Folder::new(&root);
        for class in &CLASSES {
            for photo in class.photos {
                folder.photo(&class.folder(rule), photo);
            }
        }
        let v = eval(&root);
        assert_eq!(v["classes_matched"], rule, "{v}");
        reports.push((rule, v["results"].clone()));
    }
    let (_, by_name) = &reports[0];
    for r in by_name.as_array().unwrap() {
        assert_eq!(r["images"], 6);
        // Espresso and tripod are the model's top-1 (4 of 6); the cat and the uniform are in
        // its top 5 (Egyptian cat, mortarboard first): a wrong mapping would score neither.
        let (t1, t5) = (r["top1"].as_f64().unwrap(), r["top5"].as_f64().unwrap());
        assert!(t1 >= 0.5 && t5 > t1, "{r}");
    }
    for (rule, results) in &reports[1..] {
        for (a, b) in by_name.as_array().unwrap().iter().zip(results.as_array().unwrap()) {
            for key in ["res", "images", "top1", "top5"] {
                assert_eq!(a[key], b[key], "{rule} vs name, {key}");
            }
            assert_eq!(a["pooled"]["mean"], b["pooled"]["mean"], "{rule}: the same images");
        }
    }
}

#[test]
fn own_classes_are_refused_naming_each_rule_tried_with_examples() {
    let dir = tempfile::tempdir().unwrap();
    let folder = Folder::new(dir.path());
    folder.photo("animals", "chelsea.png").photo("fruit", "coffee_cmyk.jpg");
    let weights = efficientnet_lite0();
    let err = fixres_err(&[
        "eval",
        "--weights",
        weights.to_str().unwrap(),
        "--data",
        dir.path().to_str().unwrap(),
        "--device",
        "cpu",
    ])
    .stderr;
    assert!(
        err.contains(
            "cannot score this dataset: dataset classes match none of the model's 1000 classes: by name (e.g. \
             'animals', 'fruit' vs 'tench', 'goldfish'), by WordNet id (vs 'n01440764', 'n01443537'), by \
             index (vs 0..999)"
        ),
        "{err}"
    );
}

/// `fixres finetune --json` of the embedded model on `data` at K = 64, one epoch, and what it
/// printed for people (a second run without `--json`).
fn finetune(data: &Path, out: &Path) -> (serde_json::Value, String) {
    let weights = efficientnet_lite0();
    let args = |json: bool| {
        let mut a = vec![
            "finetune".to_owned(),
            "--weights".into(),
            weights.display().to_string(),
            "--data".into(),
            data.display().to_string(),
            "--res".into(),
            "64".into(),
            "--epochs".into(),
            "1".into(),
            "--curve".into(),
            "64".into(),
            "--device".into(),
            "cpu".into(),
            "--out".into(),
            out.display().to_string(),
        ];
        if json {
            a.push("--json".into());
        }
        a
    };
    (fixres_ok(&args(true)).json(), fixres_ok(&args(false)).stdout)
}

#[test]
fn a_class_of_two_to_four_images_gives_one_to_validation() {
    // The seeded split held out every fifth image of a class: none of a class of 2-4, so a
    // small folder fine-tuned to "val top-1 0.00% -> 0.00% (0 val images)".
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let folder = Folder::new(&data);
    for (class, photos, copies) in [
        ("tabby", ["chelsea.png"].as_slice(), 2),
        ("espresso", &["coffee_cmyk.jpg", "coffee_palette.png"], 3),
        ("tripod", &["camera_grey.jpg", "camera_crop_grey.png"], 4),
    ] {
        for i in 0..copies {
            let photo = photos[i % photos.len()];
            folder.photo_as(class, photo, &format!("{i}_{photo}"));
        }
    }
    let (summary, text) = finetune(&data, &dir.path().join("ft.safetensors"));
    assert_eq!(
        (summary["train_images"].as_u64(), summary["val_images"].as_u64()),
        (Some(6), Some(3))
    );
    assert!(summary["val_top1_after"].as_f64().is_some(), "{summary}");
    assert!(text.contains("(3 val images)"), "{text}");
}

#[test]
fn a_run_without_validation_images_says_so_instead_of_0_percent() {
    // One photo a class (as the 3-photo demo): nothing to hold out.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    Folder::new(&data)
        .photo("tabby", "chelsea.png")
        .photo("espresso", "coffee_cmyk.jpg")
        .photo("military uniform", "grace_hopper.jpg");
    let (summary, text) = finetune(&data, &dir.path().join("ft.safetensors"));
    assert_eq!(summary["val_images"], 0);
    for v in [
        &summary["val_top1_before"],
        &summary["val_top1_after"],
        &summary["epochs"][0]["val_top1"],
        &summary["curve"][0]["before"],
    ] {
        assert!(v.is_null(), "no accuracy without validation images: {summary}");
    }
    assert!(text.contains("on 3 images: no validation images, wrote"), "{text}");
    assert!(!text.contains('%'), "{text}");
    let sidecar: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("ft.safetensors.json")).unwrap()).unwrap();
    assert!(sidecar["val_top1_after"].is_null());

    // Training from scratch reports the same way.
    let out = dir.path().join("tiny.safetensors");
    let args = |json: bool| {
        let mut a = vec![
            "train".to_owned(),
            "--data".into(),
            data.display().to_string(),
            "--res".into(),
            "32".into(),
            "--epochs".into(),
            "1".into(),
            "--device".into(),
            "cpu".into(),
            "--out".into(),
            out.display().to_string(),
        ];
        if json {
            a.push("--json".into());
        }
        a
    };
    let summary = fixres_ok(&args(true)).json();
    assert!(summary["val_top1"].is_null(), "{summary}");
    let printed = fixres_ok(&args(false)).stdout;
    assert!(printed.contains("on 3 images: no validation images ("), "{printed}");
}
