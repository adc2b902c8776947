//! Jobs in shards (`--shard I/N`, `--shard auto` from a job array's environment) and `fixres
//! merge`: the cluster scripts under scripts/cluster/ run as 4 concurrent tasks (xargs -P 4) and
//! the merged results equal the unsharded run's, bit for bit for features and per-image results;
//! a fine-tune trains its head from a trunk cache written in shards; bad parts are refused.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::cmd::{command, err, fixres_err, fixres_ok, ok};
use crate::util::fixtures::{fashion, fashion_model, root};

fn text(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `script` (bash, from the repository root) as tasks 0..4 of a job array, 4 at a time,
/// each with `task_env(i)` and `env`.
fn four_tasks(script: &str, task_env: &str, env: &[(&str, String)]) {
    let mut cmd = Command::new("bash");
    let exports: String = env.iter().map(|(k, v)| format!("{k}='{v}' ")).collect();
    cmd.current_dir(root()).arg("-c").arg(format!(
        "seq 0 3 | xargs -P 4 -I{{}} env {task_env} {exports} FIXRES='{}' bash {script}",
        env!("CARGO_BIN_EXE_fixres")
    ));
    ok(&mut cmd);
}

const EVAL_EXTRA: &str = "--device cpu --per-class 40 --batch 16";

fn unsharded_eval(dir: &Path) -> (serde_json::Value, String) {
    let (json, csv) = (dir.join("whole.json"), dir.join("whole.csv"));
    let args: Vec<String> = [
        "eval",
        "--weights",
        text(&fashion_model()),
        "--data",
        text(&fashion().join("val")),
        "--res",
        "20,28",
        "--out",
        text(&json),
        "--per-image",
        text(&csv),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain(EVAL_EXTRA.split(' ').map(str::to_owned))
    .collect();
    fixres_ok(&args);
    let report = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    (report, std::fs::read_to_string(csv).unwrap())
}

/// The report's fields that do not depend on timing are equal: exactly for counts, accuracies,
/// intervals, flips and the pooled activations' quantiles and histogram; the pooled mean and
/// standard deviation up to rounding (each shard summed its own values).
fn assert_same_report(merged: &serde_json::Value, whole: &serde_json::Value) {
    for key in [
        "arch",
        "classes",
        "dataset_classes",
        "classes_matched",
        "recipe",
        "sample",
        "flips",
        "skipped",
    ] {
        assert_eq!(merged[key], whole[key], "{key}");
    }
    let (m, w) = (
        merged["results"].as_array().unwrap(),
        whole["results"].as_array().unwrap(),
    );
    assert_eq!(m.len(), w.len());
    for (a, b) in m.iter().zip(w) {
        for key in ["res", "images", "top1", "top1_ci", "top5", "macs"] {
            assert_eq!(a[key], b[key], "K={} {key}", b["res"]);
        }
        for key in ["values", "zero_share", "min", "max", "quantiles", "histogram"] {
            assert_eq!(a["pooled"][key], b["pooled"][key], "K={} pooled {key}", b["res"]);
        }
        for key in ["mean", "std"] {
            let (x, y) = (a["pooled"][key].as_f64().unwrap(), b["pooled"][key].as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-12 * y.abs().max(1.0),
                "K={} pooled {key}: {x} vs {y}",
                b["res"]
            );
        }
    }
}

#[test]
fn slurm_and_kubernetes_shards_merge_into_the_unsharded_eval() {
    let dir = tempfile::tempdir().unwrap();
    let (whole, whole_csv) = unsharded_eval(dir.path());
    assert_eq!(whole["results"][0]["images"], 400);
    let env = |parts: &Path| {
        vec![
            ("WEIGHTS", text(&fashion_model()).to_owned()),
            ("DATA", text(&fashion().join("val")).to_owned()),
            ("RES", "20,28".to_owned()),
            ("PARTS", text(parts).to_owned()),
            ("EXTRA", EVAL_EXTRA.to_owned()),
        ]
    };
    // Slurm: the array's task id from 0, the count from Slurm.
    let slurm = dir.path().join("slurm");
    four_tasks(
        "scripts/cluster/slurm_eval.sbatch",
        "SLURM_ARRAY_TASK_ID={} SLURM_ARRAY_TASK_MIN=0 SLURM_ARRAY_TASK_COUNT=4",
        &env(&slurm),
    );
    // Kubernetes: the completion index, the count from FIXRES_SHARD_COUNT.
    let k8s = dir.path().join("k8s");
    four_tasks(
        "scripts/cluster/eval_shard.sh",
        "JOB_COMPLETION_INDEX={} FIXRES_SHARD_COUNT=4",
        &env(&k8s),
    );
    for parts in [&slurm, &k8s] {
        let out = parts.join("eval.json");
        let mut merge = Command::new("bash");
        merge
            .current_dir(root())
            .arg("scripts/cluster/merge.sh")
            .env("PARTS", parts)
            .env("OUT", &out)
            .env("FIXRES", env!("CARGO_BIN_EXE_fixres"));
        ok(&mut merge);
        let merged: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_same_report(&merged, &whole);
        let csv = std::fs::read_to_string(parts.join("eval.csv")).unwrap();
        assert!(
            csv == whole_csv,
            "{}: the merged per-image CSV differs from the unsharded one",
            parts.display()
        );
        assert_eq!(csv.lines().count(), 1 + 2 * 400);
    }
}

#[test]
fn sharded_features_merge_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let data = fashion().join("val");
    let base = |out: &Path| -> Vec<String> {
        [
            "features",
            "--weights",
            text(&fashion_model()),
            "--data",
            text(&data),
            "--res",
            "24",
            "--device",
            "cpu",
            "--batch",
            "16",
            "--out",
            text(out),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    };
    let whole = dir.path().join("whole.safetensors");
    fixres_ok(&base(&whole));
    let parts: Vec<PathBuf> = (1..=3)
        .map(|i| dir.path().join(format!("part{i}.safetensors")))
        .collect();
    // Given out of order, as a shell glob might.
    for i in [3, 1, 2] {
        let mut args = base(&parts[i - 1]);
        args.extend(["--shard".into(), format!("{i}/3")]);
        fixres_ok(&args);
    }
    let merged = dir.path().join("merged.safetensors");
    let report = fixres_ok(&[
        "merge",
        text(&parts[2]),
        text(&parts[0]),
        text(&parts[1]),
        "--out",
        text(&merged),
        "--json",
    ])
    .json();
    assert_eq!(report["kind"], "features");
    assert_eq!(report["images"], 1000);
    assert!(
        std::fs::read(&merged).unwrap() == std::fs::read(&whole).unwrap(),
        "the merged features file differs from the unsharded one"
    );

    // A missing shard, one twice, and mixed shard counts: refused, naming the part, nothing written.
    let refused = dir.path().join("refused.safetensors");
    let e = fixres_err(&["merge", text(&parts[0]), text(&parts[2]), "--out", text(&refused)]);
    assert!(e.stderr.contains("missing shard 2/3"), "{}", e.stderr);
    let e = fixres_err(&[
        "merge",
        text(&parts[0]),
        text(&parts[0]),
        text(&parts[1]),
        text(&parts[2]),
        "--out",
        text(&refused),
    ]);
    assert!(e.stderr.contains("both are shard 1/3"), "{}", e.stderr);
    let half = dir.path().join("half.safetensors");
    let mut args = base(&half);
    args.extend(["--shard".into(), "2/2".into()]);
    fixres_ok(&args);
    let e = fixres_err(&["merge", text(&parts[0]), text(&half), "--out", text(&refused)]);
    assert!(
        e.stderr.contains("half.safetensors") && e.stderr.contains("2-shard"),
        "{}",
        e.stderr
    );
    // Another resolution is another run.
    let other = dir.path().join("other.safetensors");
    let mut args = base(&other);
    args[6] = "28".into();
    args.extend(["--shard".into(), "2/3".into()]);
    fixres_ok(&args);
    let e = fixres_err(&[
        "merge",
        text(&parts[0]),
        text(&other),
        text(&parts[2]),
        "--out",
        text(&refused),
    ]);
    assert!(
        e.stderr.contains("other.safetensors") && e.stderr.contains("res"),
        "{}",
        e.stderr
    );
    assert!(!refused.exists());
}

#[test]
fn eval_parts_of_another_model_or_shard_count_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let part_of = |weights: &Path, data: &Path, shard: &str, name: &str| -> PathBuf {
        let out = dir.path().join(name);
        fixres_ok(&[
            "eval",
            "--weights",
            text(weights),
            "--data",
            text(data),
            "--res",
            "20",
            "--per-class",
            "5",
            "--device",
            "cpu",
            "--shard",
            shard,
            "--out",
            text(&out),
        ]);
        out
    };
    let part = |weights: &Path, shard: &str, name: &str| part_of(weights, &fashion().join("val"), shard, name);
    let a = part(&fashion_model(), "1/2", "a.safetensors");
    let other_model = fashion().join("grid/models/resnet-tiny_k16.safetensors");
    let b_other = part(&other_model, "2/2", "b_other.safetensors");
    let b3 = part(&fashion_model(), "2/3", "b3.safetensors");
    let out = dir.path().join("merged.json");
    let e = fixres_err(&["merge", text(&a), text(&b_other), "--out", text(&out)]);
    assert!(
        e.stderr.contains("b_other.safetensors") && e.stderr.contains("weights_fingerprint"),
        "{}",
        e.stderr
    );
    let b_train = part_of(&fashion_model(), &fashion().join("train"), "2/2", "b_train.safetensors");
    let e = fixres_err(&["merge", text(&a), text(&b_train), "--out", text(&out)]);
    assert!(
        e.stderr.contains("b_train.safetensors") && e.stderr.contains("folder_fingerprint"),
        "{}",
        e.stderr
    );
    let e = fixres_err(&["merge", text(&a), text(&b3), "--out", text(&out)]);
    assert!(
        e.stderr.contains("b3.safetensors") && e.stderr.contains("3-shard"),
        "{}",
        e.stderr
    );
    let e = fixres_err(&["merge", text(&a), "--out", text(&out)]);
    assert!(e.stderr.contains("missing shard 2/2"), "{}", e.stderr);
    let e = fixres_err(&["merge", text(&fashion_model()), "--out", text(&out)]);
    assert!(e.stderr.contains("not a part"), "{}", e.stderr);
    assert!(!out.exists());

    // A shard that is not one, `auto` outside a job array, and a shard with nowhere to write.
    let (weights, data) = (fashion_model(), fashion());
    let eval_shard = |shard: &str, out: Option<&Path>| {
        let mut args = vec![
            "eval",
            "--weights",
            text(&weights),
            "--data",
            text(&data),
            "--shard",
            shard,
        ];
        args.extend(out.map(|o| ["--out", text(o)]).into_iter().flatten());
        let mut cmd = command(&args);
        for var in ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX", "FIXRES_SHARD_COUNT"] {
            cmd.env_remove(var);
        }
        err(&mut cmd)
    };
    let e = eval_shard("5/4", Some(&out));
    assert!(e.stderr.contains("1 to 4"), "{}", e.stderr);
    let e = eval_shard("auto", Some(&out));
    assert!(e.stderr.contains("no job-array variables"), "{}", e.stderr);
    let e = eval_shard("1/2", None);
    assert!(e.stderr.contains("--out"), "{}", e.stderr);
    assert!(!out.exists());
}

#[test]
fn the_head_trains_from_a_trunk_cache_written_in_shards() {
    let dir = tempfile::tempdir().unwrap();
    let common = |extra: &[&str]| -> Vec<String> {
        [
            "finetune",
            "--weights",
            text(&fashion_model()),
            "--data",
            text(&fashion()),
            "--res",
            "24",
            "--epochs",
            "2",
            "--batch",
            "32",
            "--device",
            "cpu",
            "--curve",
            "24",
        ]
        .iter()
        .chain(extra)
        .map(|s| (*s).to_owned())
        .collect()
    };
    let whole = dir.path().join("whole.safetensors");
    let plain = fixres_ok(&common(&["--out", text(&whole), "--json"])).json();
    let cache = dir.path().join("trunk");
    let c = text(&cache).to_owned();
    for i in 1..=3 {
        let shard = format!("{i}/3");
        let written = fixres_ok(&common(&["--shard", &shard, "--trunk-cache", &c, "--json"])).json();
        assert_eq!(written["shard"]["index"], i);
    }
    let from_cache = dir.path().join("from_cache.safetensors");
    let cached = fixres_ok(&common(&["--trunk-cache", &c, "--out", text(&from_cache), "--json"])).json();
    assert_eq!(cached["train_images"], plain["train_images"]);
    assert_eq!(cached["trunk_cache"], c.as_str());
    assert!(plain.get("trunk_cache").is_none());
    for key in ["val_top1_before", "val_top1_after"] {
        assert_eq!(cached[key], plain[key], "{key}");
    }
    let (a, b) = (
        crate::util::tensors::read_f32(&whole),
        crate::util::tensors::read_f32(&from_cache),
    );
    assert_eq!(a.len(), b.len());
    let mut worst = 0f32;
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((&x.0, &x.1), (&y.0, &y.1));
        worst = worst.max(crate::util::tensors::relative_error(&y.2, &x.2));
    }
    assert!(
        worst <= 1e-6,
        "weights from the sharded trunk cache differ by {worst} (relative)"
    );

    // A cache of another resolution, or with a shard missing, is refused, naming why.
    let mut other_res = common(&["--trunk-cache", &c, "--out", text(&dir.path().join("x.safetensors"))]);
    other_res[6] = "28".into();
    let e = fixres_err(&other_res);
    assert!(e.stderr.contains("res differs"), "{}", e.stderr);
    // A shard writes a part of a trunk cache, and only that.
    let e = fixres_err(&common(&["--shard", "1/3"]));
    assert!(e.stderr.contains("--trunk-cache"), "{}", e.stderr);
    std::fs::remove_file(cache.join("trunk-2-of-3.json")).unwrap();
    let e = fixres_err(&common(&[
        "--trunk-cache",
        &c,
        "--out",
        text(&dir.path().join("x.safetensors")),
    ]));
    assert!(e.stderr.contains("missing shard 2/3"), "{}", e.stderr);
}
