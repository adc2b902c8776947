//! Sweeps as estimates: the 95 % interval of top-1 against SciPy (tests/fixtures/
//! make_wilson_reference.py), and `fixres eval` stopping at a sample of the folder.

use fixres::stats::{Z_95, wilson_interval};

use crate::util::cmd::fixres_ok;
use crate::util::fixtures::{fashion, fashion_model, fixtures};

#[test]
fn wilson_intervals_match_scipy() {
    let text = std::fs::read_to_string(fixtures().join("wilson.json")).unwrap();
    let reference: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = reference["cases"].as_array().unwrap();
    assert!(cases.len() >= 40);
    for case in cases {
        let k = case[0].as_u64().unwrap() as usize;
        let n = case[1].as_u64().unwrap() as usize;
        let (lo, hi) = wilson_interval(k, n, Z_95);
        let (theirs_lo, theirs_hi) = (case[2].as_f64().unwrap(), case[3].as_f64().unwrap());
        assert!(
            (lo - theirs_lo).abs() <= 1e-12 && (hi - theirs_hi).abs() <= 1e-12,
            "{k}/{n}: ({lo}, {hi}) vs SciPy ({theirs_lo}, {theirs_hi})"
        );
    }
}

fn eval(extra: &[&str]) -> serde_json::Value {
    let (weights, data) = (fashion_model(), fashion());
    let args = [
        &[
            "eval",
            "--weights",
            weights.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--res",
            "20,28",
            "--device",
            "cpu",
            "--json",
        ][..],
        extra,
    ]
    .concat();
    fixres_ok(&args).json()
}

/// A sweep visits the folder in a class-stratified random order: a limited or stopped one is a
/// sample with every class in its share, its intervals cover the whole folder's accuracy, and
/// the whole folder scores the same in any order.
#[test]
fn eval_samples_the_folder_and_stops_at_the_asked_precision() {
    let whole = eval(&[]);
    let reordered = eval(&["--order-seed", "9"]);
    for r in 0..2 {
        let (a, b) = (&whole["results"][r], &reordered["results"][r]);
        assert_eq!(
            (&a["images"], &a["top1"], &a["top5"]),
            (&b["images"], &b["top1"], &b["top5"])
        );
        assert_eq!(a["images"], 1000);
    }

    // Ten of each of the ten classes.
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("per-image.csv");
    let per_class = eval(&["--per-class", "10", "--per-image", csv.to_str().unwrap()]);
    assert_eq!(per_class["sample"]["in_sample"], 100);
    assert_eq!(per_class["results"][0]["images"], 100);
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut by_class = std::collections::BTreeMap::<String, usize>::new();
    for line in text.lines().skip(1).filter(|l| l.contains(",20,")) {
        *by_class.entry(line.split(',').nth(1).unwrap().to_owned()).or_default() += 1;
    }
    assert_eq!(by_class.len(), 10, "{by_class:?}");
    assert!(by_class.values().all(|&n| n == 10), "{by_class:?}");

    // Stopped at ±3 points: fewer images, every interval that narrow, and it covers the whole
    // folder's top-1.
    let stopped = eval(&["--until-ci", "3"]);
    assert_eq!(stopped["sample"]["stopped_at_ci"], true, "{}", stopped["sample"]);
    for r in 0..2 {
        let res = &stopped["results"][r];
        let n = res["images"].as_u64().unwrap();
        assert!((100..1000).contains(&n), "{n} images");
        let ci: Vec<f64> = res["top1_ci"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert!(100.0 * (ci[1] - ci[0]) / 2.0 <= 3.0, "{ci:?}");
        let full = whole["results"][r]["top1"].as_f64().unwrap();
        assert!(ci[0] <= full && full <= ci[1], "{full} outside {ci:?}");
    }
    assert_eq!(stopped["results"][0]["images"], stopped["results"][1]["images"]);

    let limited = eval(&["--limit", "64"]);
    assert_eq!(limited["results"][1]["images"], 64);
    let err = crate::util::cmd::fixres_err(&["eval", "--weights", "w", "--data", "d", "--limit", "0"]);
    assert!(
        err.stderr.contains("must be a whole number above zero"),
        "{}",
        err.stderr
    );
}
