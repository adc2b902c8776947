//! Pixels against torchvision on PIL (references from tests/fixtures/make_reference.py).

use fixres::data::transforms::{IMAGENET_MEAN, IMAGENET_STD, border_fill, to_tensor_normalized};
use fixres::data::{CropMode, Interpolation, TestTransform};

use crate::util::fixtures::{fixtures, photo, reference};
use crate::util::images::{crc32, diff, load};
use crate::util::tensors::f32_tensor;

#[test]
fn decoding_matches_pil_convert_rgb_byte_for_byte() {
    let r = reference();
    let photos = r["photos"].as_object().expect("photos");
    assert!(photos.len() >= 12);
    for (name, expect) in photos {
        let img = load(&photo(name));
        assert_eq!(
            [img.width() as u64, img.height() as u64],
            [expect["size"][0].as_u64().unwrap(), expect["size"][1].as_u64().unwrap()],
            "{name}: size"
        );
        assert_eq!(
            u64::from(crc32(img.as_raw())),
            expect["crc32"].as_u64().unwrap(),
            "{name}: decoded pixels differ from PIL's"
        );
    }
}

/// PGM/PPM with maxval ≠ 255 (references from tests/fixtures/make_pnm_reference.py): Pillow
/// rescales the samples, or clips 16-bit grey at 255.
#[test]
fn pnm_with_other_maxvals_decodes_as_pil_does() {
    let dir = fixtures().join("pnm");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "png") {
            continue;
        }
        let ours = load(&path);
        let theirs = load(&path.with_extension("png"));
        assert_eq!(ours, theirs, "{}", path.display());
        checked += 1;
    }
    assert_eq!(checked, 8);
}

#[test]
fn resize_and_center_crop_match_torchvision_on_pil() {
    let r = reference();
    let crop_ratio = r["crop_ratio"].as_f64().unwrap();
    let mut report = Vec::new();
    for name in r["photos"].as_object().unwrap().keys() {
        let img = load(&photo(name));
        let stem = name.rsplit_once('.').unwrap().0;
        for (interp_name, interpolation) in [
            ("bilinear", Interpolation::Bilinear),
            ("bicubic", Interpolation::Bicubic),
        ] {
            for k in r["resolutions"].as_array().unwrap() {
                let k = k.as_u64().unwrap() as usize;
                let ours = TestTransform::center(k, crop_ratio, interpolation).apply(&img);
                let theirs = load(
                    &fixtures()
                        .join("resize")
                        .join(format!("{stem}__{interp_name}__{k}.png")),
                );
                let d = diff(&ours, &theirs);
                report.push(format!(
                    "{name} {interp_name} {k}: exact {:.4} within1 {:.4} max {}",
                    d.exact, d.within_one, d.max
                ));
                // A port of Pillow's integer resampler: the same bytes, not nearly the same.
                assert_eq!(d.max, 0, "{name} {interp_name} K={k}: {d:?}");
            }
        }
    }
    assert_eq!(report.len(), 13 * 2 * 4);
    println!("{}", report.join("\n"));
}

/// timm's eval transform in its three crop modes (tests/fixtures/make_timm_crop_reference.py):
/// every fixture photo at K 224 and 288, crop_pct 0.875 and 1, bilinear and bicubic; the crops'
/// bytes by CRC-32.
#[test]
fn crop_modes_match_timms_eval_transform() {
    let text = std::fs::read_to_string(fixtures().join("timm_crops.json")).unwrap();
    let reference: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = reference["cases"].as_array().unwrap();
    let mut images = std::collections::HashMap::new();
    let mut wrong = Vec::new();
    let mut modes = std::collections::BTreeSet::new();
    for case in cases {
        let name = case["photo"].as_str().unwrap();
        let img = images.entry(name.to_owned()).or_insert_with(|| load(&photo(name)));
        let mode = CropMode::from_name(case["mode"].as_str().unwrap()).unwrap();
        let interpolation = match case["interpolation"].as_str().unwrap() {
            "bilinear" => Interpolation::Bilinear,
            _ => Interpolation::Bicubic,
        };
        let k = case["res"].as_u64().unwrap() as usize;
        let t = TestTransform {
            crop_mode: mode,
            border_fill: border_fill(IMAGENET_MEAN),
            ..TestTransform::center(k, case["crop_pct"].as_f64().unwrap(), interpolation)
        };
        let ours = t.apply(img);
        modes.insert(mode.name());
        if (ours.width(), ours.height()) != (k, k) || u64::from(crc32(ours.as_raw())) != case["crc32"].as_u64().unwrap()
        {
            wrong.push(format!("{case}"));
        }
    }
    assert_eq!(modes.len(), 3);
    assert!(cases.len() >= 13 * 3 * 2 * 2 * 2, "{} cases", cases.len());
    assert!(
        wrong.is_empty(),
        "{} of {} differ from timm:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

#[test]
fn to_tensor_normalize_matches_torchvision() {
    let (_, expect) = f32_tensor(&fixtures().join("normalize.safetensors"), "input");
    let crop = TestTransform::center(128, 0.875, Interpolation::Bilinear).apply(&load(&photo("rocket.jpg")));
    let ours = to_tensor_normalized(&crop, IMAGENET_MEAN, IMAGENET_STD);
    assert_eq!(ours.len(), expect.len());
    let worst = ours
        .iter()
        .zip(&expect)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst <= 1e-6, "largest difference {worst}");
}
