//! The CLI contract: what scripts and checks call.

use crate::util::cmd::{fixres_err, fixres_ok};
use crate::util::fixtures::{fixtures, photo};
use crate::util::folders::Folder;
use crate::util::images::load;
use crate::util::tensors::{self, named};

#[test]
fn size_json_gives_the_paper_numbers() {
    let v = fixres_ok(&["size", "--train-res", "224", "--test-res", "224", "--json"]).json();
    let a = &v["analytic"];
    assert_eq!(format!("{:.3}", a["mean_sqrt_sigma"].as_f64().unwrap()), "0.708");
    assert_eq!(format!("{:.3}", a["mean_ratio"].as_f64().unwrap()), "0.809");
    assert_eq!(a["recommended_test_res"].as_u64(), Some(277));
    assert_eq!(v["test_resize"].as_u64(), Some(256));
    let mc = &v["monte_carlo"];
    assert_eq!(mc["samples"].as_u64(), Some(200_000));
    assert_eq!(mc["quantiles"].as_array().unwrap().len(), 5);
}

#[test]
fn size_over_a_non_square_image_uses_the_real_sampler() {
    let v = fixres_ok(&["size", "--image-size", "500x375", "--json"]).json();
    // On 500×375 the mean sqrt(w·h/(W·H)) is about 0.636 (torchvision: 0.6357).
    let share = v["monte_carlo"]["mean_sqrt_area_share"].as_f64().unwrap();
    assert!((share - 0.6357).abs() < 0.004, "{share}");
}

#[test]
fn size_over_a_dataset_reads_real_image_sizes() {
    let dir = tempfile::tempdir().unwrap();
    Folder::new(dir.path())
        .photo("photos", "rocket.jpg")
        .photo("photos", "grace_hopper.jpg")
        .photo("photos", "chelsea.png")
        .file("photos", "notes.jpg", b"not an image");
    let v = fixres_ok(&[
        "size",
        "--data",
        dir.path().to_str().unwrap(),
        "--json",
        "--samples",
        "30000",
    ])
    .json();
    assert_eq!(v["images"].as_u64(), Some(3));
    assert_eq!(v["monte_carlo"]["image_sizes"].as_u64(), Some(3));
    let skipped = v["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0]["path"].as_str().unwrap().ends_with("notes.jpg"));
}

#[test]
fn preprocess_writes_torchvision_exact_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("x.safetensors");
    let meta = fixres_ok(&[
        "preprocess",
        "--image",
        photo("grace_hopper.jpg").to_str().unwrap(),
        "--res",
        "224",
        "--interp",
        "bicubic",
        "--out",
        out_path.to_str().unwrap(),
        "--json",
    ])
    .json();
    assert_eq!(meta["transform"], "test");
    let stored = tensors::read(&out_path);
    let (u8t, input) = (named(&stored, "u8"), named(&stored, "input"));
    assert_eq!(u8t.shape, [3, 224, 224]);
    assert_eq!(input.shape, [3, 224, 224]);
    assert_eq!(input.dtype, safetensors::Dtype::F32);
    // CHW bytes against torchvision's HWC reference.
    let reference = load(&fixtures().join("resize").join("grace_hopper__bicubic__224.png"));
    let plane = 224 * 224;
    let mut off = 0usize;
    for (i, px) in reference.as_raw().chunks_exact(3).enumerate() {
        for (c, &v) in px.iter().enumerate() {
            off = off.max(u8t.data[c * plane + i].abs_diff(v) as usize);
        }
    }
    assert!(off <= 1, "largest difference {off}");
}

#[test]
fn preprocess_train_is_reproducible_by_seed() {
    let dir = tempfile::tempdir().unwrap();
    let run = |seed: &str, name: &str| {
        let p = dir.path().join(name);
        let meta = fixres_ok(&[
            "preprocess",
            "--image",
            photo("rocket.jpg").to_str().unwrap(),
            "--res",
            "160",
            "--train",
            "--seed",
            seed,
            "--out",
            p.to_str().unwrap(),
            "--json",
        ])
        .json();
        (std::fs::read(p).unwrap(), meta["crop"].clone())
    };
    let (a, crop_a) = run("5", "a.safetensors");
    let (b, crop_b) = run("5", "b.safetensors");
    let (_, crop_c) = run("6", "c.safetensors");
    assert!(a == b, "same seed, same file bytes");
    assert_eq!(crop_a, crop_b);
    assert_ne!(crop_a, crop_c);
}

#[test]
fn bad_arguments_are_refused_with_a_reason() {
    let err = fixres_err(&["size", "--scale", "1,0.1"]).stderr;
    assert!(err.contains("min <= max"), "{err}");
    let err = fixres_err(&[
        "preprocess",
        "--image",
        "/nonexistent.jpg",
        "--res",
        "224",
        "--out",
        "/tmp/x.st",
    ])
    .stderr;
    assert!(err.contains("/nonexistent.jpg"), "{err}");
}
