//! The CLI contract (DESIGN §2): what scripts and checks call.

mod util;

use util::{fixres, fixtures, load, photo};

#[test]
fn size_json_gives_the_paper_numbers() {
    let (status, out, err) = fixres(&["size", "--train-res", "224", "--test-res", "224", "--json"]);
    assert!(status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
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
    let (status, out, err) = fixres(&["size", "--image-size", "500x375", "--json"]);
    assert!(status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // DESIGN §3: on 500×375 the mean sqrt(w·h/(W·H)) is about 0.636 (torchvision: 0.6357).
    let share = v["monte_carlo"]["mean_sqrt_area_share"].as_f64().unwrap();
    assert!((share - 0.6357).abs() < 0.004, "{share}");
}

#[test]
fn size_over_a_dataset_reads_real_image_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let class = dir.path().join("photos");
    std::fs::create_dir(&class).unwrap();
    for name in ["rocket.jpg", "grace_hopper.jpg", "chelsea.png"] {
        std::fs::copy(photo(name), class.join(name)).unwrap();
    }
    std::fs::write(class.join("notes.jpg"), b"not an image").unwrap();
    let (status, out, err) = fixres(&[
        "size",
        "--data",
        dir.path().to_str().unwrap(),
        "--json",
        "--samples",
        "30000",
    ]);
    assert!(status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
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
    let (status, out, err) = fixres(&[
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
    ]);
    assert!(status.success(), "{err}");
    let meta: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(meta["transform"], "test");
    let bytes = std::fs::read(&out_path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let u8t = st.tensor("u8").unwrap();
    assert_eq!(u8t.shape(), &[3, 224, 224]);
    assert_eq!(st.tensor("input").unwrap().shape(), &[3, 224, 224]);
    assert_eq!(st.tensor("input").unwrap().dtype(), safetensors::Dtype::F32);
    // CHW bytes against torchvision's HWC reference.
    let reference = load(&fixtures().join("resize").join("grace_hopper__bicubic__224.png"));
    let plane = 224 * 224;
    let mut off = 0usize;
    for (i, px) in reference.as_raw().chunks_exact(3).enumerate() {
        for (c, &v) in px.iter().enumerate() {
            off = off.max(u8t.data()[c * plane + i].abs_diff(v) as usize);
        }
    }
    assert!(off <= 1, "largest difference {off}");
}

#[test]
fn preprocess_train_is_reproducible_by_seed() {
    let dir = tempfile::tempdir().unwrap();
    let run = |seed: &str, name: &str| {
        let p = dir.path().join(name);
        let (status, out, err) = fixres(&[
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
        ]);
        assert!(status.success(), "{err}");
        let meta: serde_json::Value = serde_json::from_str(&out).unwrap();
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
    let (status, _, err) = fixres(&["size", "--scale", "1,0.1"]);
    assert!(!status.success());
    assert!(err.contains("min <= max"), "{err}");
    let (status, _, err) = fixres(&[
        "preprocess",
        "--image",
        "/nonexistent.jpg",
        "--res",
        "224",
        "--out",
        "/tmp/x.st",
    ]);
    assert!(!status.success());
    assert!(err.contains("/nonexistent.jpg"), "{err}");
}
