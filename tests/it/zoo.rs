//! The model zoo against its libraries (tests/fixtures/make_zoo_reference.py): random-weight
//! narrow networks of every family, from torchvision and timm, f16 weights (the references were
//! computed from the same rounded weights), their pooled features and logits on real photos at
//! two resolutions (193 and 301 for CNNs; 224 and 288 for ViTs, the second resampling the
//! position embedding), on Burn's CPU backend: relative error ≤ 1e-4 and the same top-1. Then
//! the trunk/head split of each, and the FixRes fine-tune step of a BatchNorm and a LayerNorm
//! family against PyTorch's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use fixres::data::transforms::{IMAGENET_MEAN, IMAGENET_STD};
use fixres::data::{CropMode, Interpolation, TestTransform};
use fixres::model::{Model, input_batch};
use fixres::tensorfile;
use safetensors::Dtype;

use crate::util::cmd::fixres_ok;
use crate::util::fixtures::{demo_own, demo_photos, model, photo};
use crate::util::images::load;
use crate::util::parity::compare;
use crate::util::tensors::{self, F32Tensor, metadata, relative_error};

/// Loads `zoo/<name>.safetensors`, checks its library and architecture name, and compares its
/// forward with the library's at the reference's resolutions.
fn check(name: &str, library: &str, arch_starts: &str) {
    let device = Device::flex();
    let weights = model(&format!("zoo/{name}.safetensors"));
    let model = Model::load(&weights, &device).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "{name}: {} ({}), {} features, {} classes",
        model.arch, model.library, model.features, model.classes
    );
    assert_eq!(model.library, library, "{name}");
    assert!(model.arch.starts_with(arch_starts), "{name}: {}", model.arch);
    assert_eq!(model.classes, 10);
    assert_eq!(metadata(&weights)["library"], library);
    for (k, ours, theirs) in compare(&format!("zoo/{name}"), |x| model.net.forward(x), &device) {
        for (i, row) in ours.iter().enumerate() {
            let mine = fixres::stats::top_k(row, 1)[0];
            let torch = fixres::stats::top_k(&theirs[i * 10..(i + 1) * 10], 1)[0];
            assert_eq!(mine, torch, "{name} photo {i} at {k}");
        }
    }
    // The fine-tune's split: the head after the trunk is the whole network.
    let img = TestTransform::center(97, 0.875, Interpolation::Bilinear).apply(&load(&photo("grace_hopper.jpg")));
    let x = || input_batch(std::slice::from_ref(&img), IMAGENET_MEAN, IMAGENET_STD, &device);
    let whole = fixres::model::values(&model.net.forward(x()).logits);
    let split = fixres::model::values(&model.net.head().infer(&model.net.trunk(x())));
    let err = relative_error(&split, &whole);
    assert!(err <= 1e-5, "{name}: trunk + head vs forward: {err}");
}

macro_rules! zoo {
    ($($test:ident: $name:literal, $library:literal, $arch:literal;)*) => {
        $(
            #[test]
            fn $test() {
                check($name, $library, $arch);
            }
        )*
    };
}

zoo! {
    torchvision_efficientnet_b0: "tv_efficientnet_b0", "torchvision", "efficientnet";
    torchvision_efficientnet_v2_s: "tv_efficientnet_v2_s", "torchvision", "efficientnet";
    torchvision_mobilenet_v2: "tv_mobilenet_v2", "torchvision", "mobilenet_v2";
    torchvision_mobilenet_v3_large: "tv_mobilenet_v3_large", "torchvision", "mobilenet_v3_large";
    torchvision_mobilenet_v3_small: "tv_mobilenet_v3_small", "torchvision", "mobilenet_v3_small";
    torchvision_regnet_x: "tv_regnet_x_400mf", "torchvision", "regnet_x";
    torchvision_regnet_y: "tv_regnet_y_400mf", "torchvision", "regnet_y";
    torchvision_convnext: "tv_convnext_tiny", "torchvision", "convnext";
    timm_efficientnet_b0: "timm_efficientnet_b0", "timm", "efficientnet_b0";
    timm_efficientnet_lite0: "timm_efficientnet_lite0", "timm", "efficientnet_lite0";
    timm_tf_efficientnet_b0: "timm_tf_efficientnet_b0", "timm", "tf_efficientnet_b0";
    timm_tf_efficientnet_lite0: "timm_tf_efficientnet_lite0", "timm", "tf_efficientnet_lite0";
    timm_mobilenetv3_large_100: "timm_mobilenetv3_large_100", "timm", "mobilenetv3_large_100";
    timm_convnext: "timm_convnext_tiny", "timm", "convnext";
    timm_vit: "timm_vit_small_patch16_224", "timm", "vit";
    timm_deit_distilled: "timm_deit_small_distilled_patch16_224", "timm", "deit";
}

#[test]
fn efficientnet_fine_tune_steps_match_pytorch() {
    super::finetune::three_sgd_steps(
        &model("zoo/tv_efficientnet_b0.safetensors"),
        "zoo/tv_efficientnet_b0__finetune.safetensors",
        str::to_owned,
    );
}

#[test]
fn convnext_fine_tune_steps_match_pytorch() {
    super::finetune::three_sgd_steps(
        &model("zoo/timm_convnext_tiny.safetensors"),
        "zoo/timm_convnext_tiny__finetune.safetensors",
        str::to_owned,
    );
}

/// The tensors of `zoo/<name>.safetensors` widened to f32 (integer ones left out), with
/// `edit` applied, written to `dir/<file>`; its metadata kept.
fn edited(dir: &Path, name: &str, file: &str, edit: impl Fn(&mut Vec<F32Tensor>)) -> PathBuf {
    let source = model(&format!("zoo/{name}.safetensors"));
    let mut tensors: Vec<F32Tensor> = tensors::read(&source)
        .into_iter()
        .filter_map(|t| {
            let dtype = match t.dtype {
                Dtype::F16 => fixres::tensorfile::Dtype::F16,
                Dtype::F32 => fixres::tensorfile::Dtype::F32,
                _ => return None,
            };
            Some((
                t.name,
                t.shape,
                fixres::tensorfile::floats_to_f32(dtype, &t.data).unwrap(),
            ))
        })
        .collect();
    edit(&mut tensors);
    let path = dir.join(file);
    let views: Vec<tensorfile::Tensor<'_>> = tensors
        .iter()
        .map(|(n, s, v)| tensorfile::Tensor::f32(n, s, v))
        .collect();
    let meta: BTreeMap<String, String> = metadata(&source).into_iter().collect();
    tensorfile::write(&path, &views, &meta).unwrap();
    path
}

/// Rewrites the f32 file at `path` (an `edited` copy) with `metadata` as its only metadata.
fn set_metadata(path: &Path, metadata: &[(&str, &str)]) {
    let plain = tensors::read_f32(path);
    let views: Vec<tensorfile::Tensor<'_>> = plain.iter().map(|(n, s, v)| tensorfile::Tensor::f32(n, s, v)).collect();
    let meta: BTreeMap<String, String> = metadata
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    tensorfile::write(path, &views, &meta).unwrap();
}

fn refused(path: &Path) -> String {
    let err = Model::load(path, &Device::flex())
        .expect_err("must be refused")
        .to_string();
    assert!(
        err.contains(&path.display().to_string()),
        "the message names the file: {err}"
    );
    println!("{err}");
    err
}

#[test]
fn a_timm_file_with_a_layer_missing_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = edited(dir.path(), "timm_efficientnet_b0", "cut.safetensors", |t| {
        t.retain(|(k, ..)| !k.starts_with("blocks.3.1.conv_dw."));
    });
    let err = refused(&p);
    assert!(err.contains("blocks.3.1.conv_dw.weight"), "{err}");
}

#[test]
fn a_vit_whose_position_embedding_is_no_square_grid_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = edited(dir.path(), "timm_vit_small_patch16_224", "pos.safetensors", |t| {
        for (k, s, v) in t.iter_mut() {
            if k == "pos_embed" {
                // 197 = 14² + 1 positions → 190: neither a square nor a square plus one.
                v.truncate(190 * s[2]);
                s[1] = 190;
            }
        }
    });
    let err = refused(&p);
    assert!(
        err.contains("pos_embed") && err.contains("190") && err.contains("square grid"),
        "{err}"
    );
}

#[test]
fn a_convnext_layer_norm_of_the_wrong_width_names_the_key_and_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let p = edited(dir.path(), "timm_convnext_tiny", "ln.safetensors", |t| {
        for (k, s, v) in t.iter_mut() {
            if k == "stages.2.blocks.1.norm.weight" {
                v.push(1.0);
                s[0] += 1;
            }
        }
    });
    let err = refused(&p);
    assert!(
        err.contains("stages.2.blocks.1.norm.weight") && err.contains("[49]") && err.contains("[48]"),
        "{err}"
    );
}

#[test]
fn an_unknown_file_names_the_families_and_the_closest() {
    let dir = tempfile::tempdir().unwrap();
    // timm's EfficientNet keys without its stages: no family recognises it.
    let p = edited(dir.path(), "timm_efficientnet_b0", "odd.safetensors", |t| {
        t.retain(|(k, ..)| !k.starts_with("blocks."));
    });
    let err = refused(&p);
    assert!(
        err.contains("a torchvision ResNet") && err.contains("a timm ViT / DeiT"),
        "{err}"
    );
    assert!(
        err.contains("closest by its keys: a timm EfficientNet / MobileNetV3"),
        "{err}"
    );
}

/// A copy of `zoo/<name>.safetensors` in a folder of its own, with `config` as its
/// `config.json`.
fn with_config(dir: &Path, name: &str, config: &str) -> PathBuf {
    let weights = dir.join("model.safetensors");
    std::fs::copy(model(&format!("zoo/{name}.safetensors")), &weights).unwrap();
    std::fs::write(dir.join("config.json"), config).unwrap();
    weights
}

#[test]
fn a_timm_config_beside_the_weights_gives_the_recipe() {
    let dir = tempfile::tempdir().unwrap();
    let weights = with_config(
        dir.path(),
        "timm_vit_small_patch16_224",
        r#"{"architecture": "vit_small_patch16_224.augreg_in21k_ft_in1k", "num_classes": 10,
            "pretrained_cfg": {"input_size": [3, 224, 224], "interpolation": "bilinear",
            "crop_pct": 0.95, "crop_mode": "center", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}}"#,
    );
    let model = Model::load(&weights, &Device::flex()).unwrap_or_else(|e| panic!("{e}"));
    let r = model.recipe;
    assert_eq!(
        (r.interpolation, r.crop_ratio, r.mean, r.std),
        (Interpolation::Bilinear, 0.95, [0.5; 3], [0.5; 3])
    );
    assert!(model.recipe_source.ends_with("config.json"), "{}", model.recipe_source);
    // Without one, timm's ViT default: bicubic, 0.9.
    let bare = Model::load(&model_path("timm_vit_small_patch16_224"), &Device::flex()).unwrap();
    assert_eq!(
        (bare.recipe.interpolation, bare.recipe.crop_ratio),
        (Interpolation::Bicubic, 0.9)
    );
    // `fixres features --json` reports it, and a flag overrides it.
    let out_file = dir.path().join("features.safetensors");
    let out = fixres_ok(&[
        "features",
        "--weights",
        weights.to_str().unwrap(),
        "--data",
        demo_photos().to_str().unwrap(),
        "--res",
        "64",
        "--device",
        "cpu",
        "--crop-ratio",
        "0.8",
        "--out",
        out_file.to_str().unwrap(),
        "--json",
    ]);
    let json = out.json();
    assert_eq!(json["recipe"]["crop_ratio"], 0.8);
    assert_eq!(json["recipe"]["interpolation"], "bilinear");
    assert_eq!(json["library"], "timm");
    assert!(
        json["recipe_source"].as_str().unwrap().contains("overridden by flags"),
        "{json}"
    );
}

#[test]
fn a_bad_config_is_refused_with_the_file_and_key() {
    for (config, key) in [
        ("{not json", "not JSON"),
        (r#"{"pretrained_cfg": {"interpolation": "nearest"}}"#, "interpolation"),
        (r#"{"pretrained_cfg": {"crop_pct": 1.5}}"#, "crop_pct"),
        (r#"{"pretrained_cfg": {"mean": [0.5, 0.5]}}"#, "mean"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let weights = with_config(dir.path(), "timm_convnext_tiny", config);
        let err = Model::load(&weights, &Device::flex()).expect_err(config).to_string();
        println!("{err}");
        assert!(err.contains("config.json") && err.contains(key), "{config}: {err}");
    }
}

#[test]
fn the_tf_port_is_told_by_its_config_when_the_file_does_not_say() {
    let dir = tempfile::tempdir().unwrap();
    // The tf_ weights without their metadata: only the config tells the padding and ε.
    let p = edited(dir.path(), "timm_tf_efficientnet_b0", "model.safetensors", |_| {});
    set_metadata(&p, &[]);
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"architecture": "tf_efficientnet_b0.ns_jft_in1k"}"#,
    )
    .unwrap();
    let model = Model::load(&p, &Device::flex()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(model.arch, "tf_efficientnet_b0");
    compare("zoo/timm_tf_efficientnet_b0", |x| model.net.forward(x), &Device::flex());
}

fn model_path(name: &str) -> PathBuf {
    model(&format!("zoo/{name}.safetensors"))
}

/// A transfer (`fixres train --from`) of a model with an MLP classifier (MobileNetV3: only its
/// last layer is replaced) and of one with a distillation head (both replaced): the export has
/// every key of the source, under the same names, the classifier's resized to the own-classes
/// demo's 5 classes, and loads back (PyTorch loads them strictly: `make_zoo_reference.py --check-export`).
#[test]
fn transfers_export_every_key_under_the_library_names() {
    let dir = tempfile::tempdir().unwrap();
    for (name, resized) in [
        (
            "tv_mobilenet_v3_large",
            &["classifier.3.weight", "classifier.3.bias"][..],
        ),
        (
            "timm_deit_small_distilled_patch16_224",
            &["head.weight", "head.bias", "head_dist.weight", "head_dist.bias"][..],
        ),
    ] {
        let out = dir.path().join(format!("{name}.safetensors"));
        fixres_ok(&[
            "train",
            "--from",
            model_path(name).to_str().unwrap(),
            "--data",
            demo_own().to_str().unwrap(),
            "--res",
            "64",
            "--epochs",
            "1",
            "--batch",
            "2",
            "--device",
            "cpu",
            "--out",
            out.to_str().unwrap(),
        ]);
        let source = tensors::read(&model_path(name));
        let export = tensors::read(&out);
        let names = |t: &[tensors::Stored]| t.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&export), names(&source), "{name}");
        for (s, e) in source.iter().zip(&export) {
            if resized.contains(&s.name.as_str()) {
                assert_eq!(e.shape[0], 5, "{name}: {}", s.name);
            } else {
                assert_eq!(e.shape, s.shape, "{name}: {}", s.name);
            }
        }
        let reloaded = Model::load(&out, &Device::flex()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reloaded.classes, 5);
    }
}

/// Hugging Face's name for a torch pickle loads like a `.pth` (the format is read from the
/// bytes, not the name).
#[test]
fn a_pytorch_model_bin_loads_like_a_pth() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("pytorch_model.bin");
    std::fs::copy(crate::util::fixtures::resnet18_narrow_pth(), &bin).unwrap();
    let model = Model::load(&bin, &Device::flex()).unwrap_or_else(|e| panic!("{e}"));
    compare("resnet18_narrow", |x| model.net.forward(x), &Device::flex());
}

/// timm's `pretrained_cfg` in the safetensors metadata gives the recipe when no config file is
/// beside the weights; a malformed one is refused naming the key.
#[test]
fn a_pretrained_cfg_in_the_metadata_gives_the_recipe() {
    let dir = tempfile::tempdir().unwrap();
    let with_cfg = |cfg: &str, file: &str| {
        let p = edited(dir.path(), "timm_convnext_tiny", file, |_| {});
        set_metadata(&p, &[("pretrained_cfg", cfg)]);
        p
    };
    let good = with_cfg(r#"{"interpolation": "bicubic", "crop_pct": 0.95}"#, "good.safetensors");
    let model = Model::load(&good, &Device::flex()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (model.recipe.interpolation, model.recipe.crop_ratio),
        (Interpolation::Bicubic, 0.95)
    );
    assert!(
        model.recipe_source.contains("metadata pretrained_cfg"),
        "{}",
        model.recipe_source
    );
    let bad = with_cfg(r#"{"interpolation": "box"}"#, "bad.safetensors");
    let err = refused(&bad);
    assert!(err.contains("metadata pretrained_cfg: interpolation"), "{err}");
}

/// An export of a timm `tf_` port whose architecture came from its `config.json` reopens, on its
/// own, as the same network: the export carries the architecture name and the recipe.
#[test]
fn an_export_reopens_as_the_same_network_with_its_recipe() {
    let dir = tempfile::tempdir().unwrap();
    let p = edited(dir.path(), "timm_tf_efficientnet_b0", "model.safetensors", |_| {});
    set_metadata(&p, &[]);
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"architecture": "tf_efficientnet_b0", "pretrained_cfg": {"crop_pct": 0.9, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}}"#,
    )
    .unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("own.safetensors");
    fixres_ok(&[
        "train",
        "--from",
        p.to_str().unwrap(),
        "--data",
        demo_own().to_str().unwrap(),
        "--res",
        "64",
        "--epochs",
        "1",
        "--batch",
        "4",
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    let model = Model::load(&out, &Device::flex()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(model.arch, "tf_efficientnet_b0");
    assert_eq!((model.recipe.crop_ratio, model.recipe.mean), (0.9, [0.5; 3]));
    assert!(
        model.recipe_source.contains("metadata pretrained_cfg"),
        "{}",
        model.recipe_source
    );
    // And the flags take "r,g,b".
    let feats = out_dir.path().join("f.safetensors");
    let json = fixres_ok(&[
        "features",
        "--weights",
        out.to_str().unwrap(),
        "--data",
        demo_own().to_str().unwrap(),
        "--res",
        "64",
        "--device",
        "cpu",
        "--mean",
        "0.4,0.4,0.4",
        "--std",
        "0.2,0.2,0.2",
        "--out",
        feats.to_str().unwrap(),
        "--json",
    ])
    .json();
    assert_eq!(
        json["recipe"]["mean"][0].as_f64().map(|m| (m * 10.0).round()),
        Some(4.0)
    );
}

/// Another library's `config.json` beside the weights (no timm field) is not a recipe.
#[test]
fn an_unrelated_config_json_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let weights = with_config(
        dir.path(),
        "timm_convnext_tiny",
        r#"{"architectures": ["BertModel"], "hidden_size": 768}"#,
    );
    let model = Model::load(&weights, &Device::flex()).unwrap_or_else(|e| panic!("{e}"));
    assert!(model.recipe_source.ends_with("default"), "{}", model.recipe_source);
}

/// A dense convolution where the architecture has a depthwise one is refused, as PyTorch's strict
/// load refuses its shape (the groups are otherwise read off the weights).
#[test]
fn a_dense_convolution_in_a_depthwise_place_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = edited(dir.path(), "timm_convnext_tiny", "dense.safetensors", |t| {
        for (k, s, v) in t.iter_mut() {
            if k == "stages.0.blocks.0.conv_dw.weight" {
                *s = vec![s[0], s[0], s[2], s[3]];
                *v = vec![0.01; s.iter().product()];
            }
        }
    });
    let err = refused(&p);
    assert!(
        err.contains("stages.0.blocks.0.conv_dw.weight") && err.contains("[16, 1, 7, 7]"),
        "{err}"
    );
}

/// `fixres recipe` prints the model's test transform as torchvision code whose resize side is the
/// one the tool resizes to (checked by hand to give `fixres preprocess`'s bytes with torchvision,
/// 2026-12-04), and as timm's `pretrained_cfg`.
#[test]
fn the_recipe_prints_as_torchvision_code_and_a_pretrained_cfg() {
    let out = fixres_ok(&[
        "recipe",
        "--weights",
        model_path("timm_vit_small_patch16_224").to_str().unwrap(),
        "--res",
        "301",
        "--json",
    ])
    .json();
    let code = out["torchvision"].as_str().unwrap();
    // timm's ViT default: bicubic, crop 0.9: int(301 / 0.9) = 334.
    assert!(
        code.contains("T.Resize(334, interpolation=T.InterpolationMode.BICUBIC)"),
        "{code}"
    );
    assert!(
        code.contains("T.CenterCrop(301)") && code.contains("T.Normalize(mean=[0.485, 0.456, 0.406]"),
        "{code}"
    );
    let cfg = &out["pretrained_cfg"];
    assert_eq!(cfg["input_size"], serde_json::json!([3, 301, 301]));
    assert_eq!(
        (cfg["crop_pct"].as_f64(), cfg["interpolation"].as_str()),
        (Some(0.9), Some("bicubic"))
    );
    assert_eq!(cfg["mean"], serde_json::json!([0.485, 0.456, 0.406]));
}

/// timm's `crop_mode` in a config is the recipe's; one timm does not have is refused, naming the
/// file and the key; `--crop-mode` overrides it, and the recipe prints as code in that mode.
#[test]
fn a_timm_crop_mode_is_read_overridden_and_printed() {
    let dir = tempfile::tempdir().unwrap();
    let weights = with_config(
        dir.path(),
        "timm_vit_small_patch16_224",
        r#"{"architecture": "vit_small_patch16_224", "pretrained_cfg": {"crop_pct": 1.0, "crop_mode": "squash"}}"#,
    );
    let model = Model::load(&weights, &Device::flex()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (model.recipe.crop_mode, model.recipe.crop_ratio),
        (CropMode::Squash, 1.0)
    );
    let recipe = |extra: &[&str]| {
        let args = [
            &[
                "recipe",
                "--weights",
                weights.to_str().unwrap(),
                "--res",
                "224",
                "--json",
            ],
            extra,
        ]
        .concat();
        fixres_ok(&args).json()
    };
    let squash = recipe(&[]);
    let code = squash["torchvision"].as_str().unwrap();
    assert!(
        code.contains("T.Resize((224, 224), interpolation=T.InterpolationMode.BICUBIC)"),
        "{code}"
    );
    assert_eq!(squash["pretrained_cfg"]["crop_mode"], "squash");
    // An explicit resize side (torchvision's 232 for 224) is the one in the code.
    let sized = recipe(&["--resize-size", "232", "--crop-mode", "center"]);
    let code = sized["torchvision"].as_str().unwrap();
    assert!(
        code.contains("T.Resize(232, interpolation") && code.contains("T.CenterCrop(224)"),
        "{code}"
    );
    let border = recipe(&["--crop-mode", "border", "--crop-ratio", "0.875"]);
    let code = border["torchvision"].as_str().unwrap();
    // ViT's mean is ImageNet's: round(255 · mean).
    assert!(
        code.contains("ResizeKeepRatio(256, interpolation=\"bicubic\", longest=1.0)")
            && code.contains("CenterCropOrPad(224, fill=[124, 116, 104])"),
        "{code}"
    );
    assert_eq!(border["pretrained_cfg"]["crop_mode"], "border");

    let other = tempfile::tempdir().unwrap();
    let weights = with_config(
        other.path(),
        "timm_vit_small_patch16_224",
        r#"{"pretrained_cfg": {"crop_mode": "diagonal"}}"#,
    );
    let err = Model::load(&weights, &Device::flex()).unwrap_err().to_string();
    assert!(
        err.contains("config.json") && err.contains("crop_mode: \"diagonal\" is not one of timm's"),
        "{err}"
    );
}
