//! `fixres train` and `fixres grid` on the Fashion demo data: a model trained from scratch is
//! exported with every torchvision key, loads back, and scores in `fixres eval` exactly what the
//! training reported; the grid writes its table and resumes without redoing finished stages.

use std::path::Path;

use fixres::model::Model;

use crate::util::cmd::{fixres_err, fixres_ok};
use crate::util::fixtures::{fashion, fashion_model};
use crate::util::tensors;

#[test]
fn a_model_trained_from_scratch_exports_loads_and_scores_what_it_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("tiny16.safetensors");
    let data = fashion();
    let summary = fixres_ok(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--res",
        "16",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ])
    .json();
    assert_eq!(summary["train_images"], 3000);
    assert_eq!(summary["val_images"], 1000);
    let trained_top1 = summary["val_top1"].as_f64().unwrap();
    // Ten classes: chance is 10 %; one epoch of SGD is far above it.
    assert!(trained_top1 > 0.3, "val top-1 after one epoch: {trained_top1}");

    let stored = tensors::read(&out);
    let names: Vec<&str> = stored.iter().map(|t| t.name.as_str()).collect();
    let shape = |key: &str| &tensors::named(&stored, key).shape;
    for key in [
        "conv1.weight",
        "bn1.num_batches_tracked",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.running_var",
        "layer4.1.bn2.weight",
        "fc.weight",
        "fc.bias",
    ] {
        assert!(names.contains(&key), "missing {key}");
    }
    assert_eq!(shape("conv1.weight"), &[8, 3, 3, 3]);
    assert_eq!(shape("fc.weight"), &[10, 64], "PyTorch's [out, in]");

    let model = Model::load(&out, &burn::tensor::Device::flex()).unwrap();
    assert_eq!(model.arch, "resnet-tiny");
    assert_eq!(model.class_names.as_ref().map(Vec::len), Some(10));
    let eval = fixres_ok(&[
        "eval",
        "--weights",
        out.to_str().unwrap(),
        "--data",
        data.join("val").to_str().unwrap(),
        "--res",
        "16",
        "--device",
        "cpu",
        "--json",
    ])
    .json();
    let eval_top1 = eval["results"][0]["top1"].as_f64().unwrap();
    assert_eq!(eval_top1, trained_top1, "the exported weights are the trained ones");
}

#[test]
fn the_same_seed_trains_the_same_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let data = fashion();
    let train = |name: &str, seed: &str| {
        let out = tmp.path().join(name);
        fixres_ok(&[
            "train",
            "--data",
            data.to_str().unwrap(),
            "--res",
            "16",
            "--epochs",
            "1",
            "--seed",
            seed,
            "--device",
            "cpu",
            "--out",
            out.to_str().unwrap(),
        ]);
        tensors::read(&out)
    };
    let first = train("a.safetensors", "3");
    assert_eq!(first, train("b.safetensors", "3"), "seed 3 twice");
    assert_ne!(first, train("c.safetensors", "4"), "seed 4");
}

#[test]
fn the_grid_writes_its_table_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("grid");
    let data = fashion();
    let args = [
        "grid",
        "--data",
        data.to_str().unwrap(),
        "--train-res",
        "16",
        "--test-res",
        "16,20",
        "--epochs",
        "1",
        "--finetune",
        "--finetune-epochs",
        "1",
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ];
    let first = fixres_ok(&args);
    let stderr = &first.stderr;
    assert!(stderr.contains("train at 16:"), "each stage prints its time: {stderr}");
    let grid = first.json();
    let cells = grid["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 2);
    for c in cells {
        assert!(c["top1"].as_f64().unwrap() > 0.1, "{c}");
        assert!(c["finetuned_top1"].as_f64().is_some(), "{c}");
        assert!(c["macs"].as_u64() > Some(0), "the cost of each cell: {c}");
    }
    let csv = std::fs::read_to_string(out.join("grid.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(
        csv.starts_with("train_res,test_res,top1,finetuned_top1,macs\n"),
        "{csv}"
    );
    let png = image::open(out.join("grid.png")).unwrap();
    assert_eq!(
        (png.width(), png.height()),
        (2 * 2 * 24 + 24, 24),
        "two panels of 1x2 cells"
    );

    // Again: everything is reused, nothing is redone, the same table comes out.
    let again = fixres_ok(&args);
    let stderr = &again.stderr;
    assert!(
        !stderr.contains("train at") && !stderr.contains("fine-tune the"),
        "{stderr}"
    );
    let grid2 = again.json();
    assert_eq!(grid2["cells"], grid["cells"]);

    // Other settings into the same folder would mix two grids: refused, naming the folder.
    let other: Vec<&str> = args.iter().map(|a| if *a == "1" { "2" } else { a }).collect();
    let stderr = fixres_err(&other).stderr;
    assert!(
        stderr.contains("other settings") && stderr.contains(out.to_str().unwrap()),
        "{stderr}"
    );
}

/// `fixres train` on the Fashion demo at K = 8 for one epoch, into `out`.
fn train_args(out: &Path, lr: &str, batch: &str) -> Vec<String> {
    let data = fashion();
    [
        "train",
        "--data",
        data.to_str().unwrap(),
        "--res",
        "8",
        "--epochs",
        "1",
        "--lr",
        lr,
        "--batch",
        batch,
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ]
    .map(str::to_owned)
    .into()
}

/// `fixres eval` of the Fashion demo's K = 20 model on `data` at K = 20.
fn eval_args(data: &Path) -> Vec<String> {
    let weights = fashion_model();
    [
        "eval",
        "--weights",
        weights.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--res",
        "20",
        "--device",
        "cpu",
        "--json",
    ]
    .map(str::to_owned)
    .into()
}

/// Regression: a learning rate that blows the weights up printed an accuracy and exported NaN
/// weights; the run fails and writes nothing.
#[test]
fn a_training_that_diverges_fails_and_exports_no_nan_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("diverged.safetensors");
    let stderr = fixres_err(&train_args(&out, "1e30", "256")).stderr;
    assert!(stderr.contains("diverged"), "{stderr}");
    assert!(!out.exists(), "nothing written");
}

/// A batch of one cannot train.
#[test]
fn a_batch_of_one_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let stderr = fixres_err(&train_args(&tmp.path().join("one.safetensors"), "0.1", "1")).stderr;
    assert!(stderr.contains("at least 2"), "{stderr}");
}

/// Evaluating a split dataset scores its `val/`.
#[test]
fn eval_of_a_split_dataset_scores_its_val_split() {
    let scored = fixres_ok(&eval_args(&fashion())).json();
    assert_eq!(scored["results"][0]["images"], 1000, "val/ only");
}

/// A folder with no readable image has no accuracy to report.
#[test]
fn eval_of_a_folder_without_a_readable_image_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let broken = tmp.path().join("broken");
    std::fs::create_dir_all(broken.join("Bag")).unwrap();
    std::fs::write(broken.join("Bag/a.png"), b"not a png").unwrap();
    let stderr = fixres_err(&eval_args(&broken)).stderr;
    assert!(stderr.contains("no image could be scored"), "{stderr}");
}
