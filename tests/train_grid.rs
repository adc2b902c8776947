//! `fixres train` and `fixres grid` on the Fashion demo data: a model trained from scratch is
//! exported with every torchvision key, loads back, and scores in `fixres eval` exactly what the
//! training reported; the grid writes its table and resumes without redoing finished stages.

mod util;

use std::path::{Path, PathBuf};

use fixres::model::Model;
use util::fixres;

fn fashion() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/fashion")
}

#[test]
fn a_model_trained_from_scratch_exports_loads_and_scores_what_it_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("tiny16.safetensors");
    let data = fashion();
    let (status, stdout, stderr) = fixres(&[
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
    ]);
    assert!(status.success(), "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["train_images"], 3000);
    assert_eq!(summary["val_images"], 1000);
    let trained_top1 = summary["val_top1"].as_f64().unwrap();
    // Ten classes: chance is 10 %; one epoch of SGD is far above it.
    assert!(trained_top1 > 0.3, "val top-1 after one epoch: {trained_top1}");

    let bytes = std::fs::read(&out).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let names: Vec<String> = st.names().into_iter().map(str::to_owned).collect();
    for key in [
        "conv1.weight",
        "bn1.num_batches_tracked",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.running_var",
        "layer4.1.bn2.weight",
        "fc.weight",
        "fc.bias",
    ] {
        assert!(names.iter().any(|n| n == key), "missing {key}");
    }
    assert_eq!(st.tensor("conv1.weight").unwrap().shape(), &[8, 3, 3, 3]);
    assert_eq!(
        st.tensor("fc.weight").unwrap().shape(),
        &[10, 64],
        "PyTorch's [out, in]"
    );

    let model = Model::load(&out, &burn::tensor::Device::flex()).unwrap();
    assert_eq!(model.arch, "resnet-tiny");
    assert_eq!(model.class_names.as_ref().map(Vec::len), Some(10));
    let (status, stdout, stderr) = fixres(&[
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
    ]);
    assert!(status.success(), "{stderr}");
    let eval: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let eval_top1 = eval["results"][0]["top1"].as_f64().unwrap();
    assert_eq!(eval_top1, trained_top1, "the exported weights are the trained ones");
}

#[test]
fn the_same_seed_trains_the_same_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let data = fashion();
    let train = |name: &str, seed: &str| {
        let out = tmp.path().join(name);
        let (status, _, stderr) = fixres(&[
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
        assert!(status.success(), "{stderr}");
        let bytes = std::fs::read(&out).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut tensors: Vec<(String, Vec<u8>)> = st
            .tensors()
            .into_iter()
            .map(|(name, view)| (name, view.data().to_vec()))
            .collect();
        tensors.sort();
        tensors
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
    let (status, stdout, stderr) = fixres(&args);
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("train at 16:"), "each stage prints its time: {stderr}");
    let grid: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let cells = grid["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 2);
    for c in cells {
        assert!(c["top1"].as_f64().unwrap() > 0.1, "{c}");
        assert!(c["finetuned_top1"].as_f64().is_some(), "{c}");
    }
    let csv = std::fs::read_to_string(out.join("grid.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    let png = image::open(out.join("grid.png")).unwrap();
    assert_eq!(
        (png.width(), png.height()),
        (2 * 2 * 24 + 24, 24),
        "two panels of 1x2 cells"
    );

    // Again: everything is reused, nothing is redone, the same table comes out.
    let (status, stdout2, stderr) = fixres(&args);
    assert!(status.success(), "{stderr}");
    assert!(
        !stderr.contains("train at") && !stderr.contains("fine-tune the"),
        "{stderr}"
    );
    let grid2: serde_json::Value = serde_json::from_str(&stdout2).unwrap();
    assert_eq!(grid2["cells"], grid["cells"]);

    // Other settings into the same folder would mix two grids: refused, naming the folder.
    let other: Vec<&str> = args.iter().map(|a| if *a == "1" { "2" } else { a }).collect();
    let (status, _, stderr) = fixres(&other);
    assert!(!status.success());
    assert!(
        stderr.contains("other settings") && stderr.contains(out.to_str().unwrap()),
        "{stderr}"
    );
}

/// A learning rate that blows the weights up fails the run and writes nothing (it used to print
/// an accuracy and export NaN weights); a batch of one cannot train; evaluating a split dataset
/// scores its `val/`; a folder with no readable image has no accuracy to report.
#[test]
fn runs_that_cannot_give_a_result_say_so() {
    let tmp = tempfile::tempdir().unwrap();
    let data = fashion();
    let out = tmp.path().join("diverged.safetensors");
    let train = |lr: &str, batch: &str| {
        fixres(&[
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
        ])
    };
    let (status, _, stderr) = train("1e30", "256");
    assert!(!status.success() && stderr.contains("diverged"), "{stderr}");
    assert!(!out.exists(), "nothing written");
    let (status, _, stderr) = train("0.1", "1");
    assert!(!status.success() && stderr.contains("at least 2"), "{stderr}");

    let weights = data.join("grid/models/resnet-tiny_k20.safetensors");
    let eval = |dir: &Path| {
        fixres(&[
            "eval",
            "--weights",
            weights.to_str().unwrap(),
            "--data",
            dir.to_str().unwrap(),
            "--res",
            "20",
            "--device",
            "cpu",
            "--json",
        ])
    };
    let (status, stdout, stderr) = eval(&data);
    assert!(status.success(), "{stderr}");
    let scored: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(scored["results"][0]["images"], 1000, "val/ only");

    let broken = tmp.path().join("broken");
    std::fs::create_dir_all(broken.join("Bag")).unwrap();
    std::fs::write(broken.join("Bag/a.png"), b"not a png").unwrap();
    let (status, _, stderr) = eval(&broken);
    assert!(
        !status.success() && stderr.contains("no image could be scored"),
        "{stderr}"
    );
}
