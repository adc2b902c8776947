//! Pixels against torchvision on PIL (references from tests/fixtures/make_reference.py).

use fixres::data::transforms::{IMAGENET_MEAN, IMAGENET_STD, to_tensor_normalized};
use fixres::data::{Interpolation, TestTransform};

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
                let ours = TestTransform {
                    res: k,
                    crop_ratio,
                    interpolation,
                }
                .apply(&img);
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

#[test]
fn to_tensor_normalize_matches_torchvision() {
    let (_, expect) = f32_tensor(&fixtures().join("normalize.safetensors"), "input");
    let crop = TestTransform {
        res: 128,
        crop_ratio: 0.875,
        interpolation: Interpolation::Bilinear,
    }
    .apply(&load(&photo("rocket.jpg")));
    let ours = to_tensor_normalized(&crop, IMAGENET_MEAN, IMAGENET_STD);
    assert_eq!(ours.len(), expect.len());
    let worst = ours
        .iter()
        .zip(&expect)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst <= 1e-6, "largest difference {worst}");
}
