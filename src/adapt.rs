//! Parametric adaptation (paper §3.2), one of the remedies for the shift of the pooled-activation
//! statistics with the test resolution: fit the Fréchet distribution (shape fixed, ξ = 0.3;
//! location and scale by maximum likelihood) to the pooled activations at K_train and at K_test,
//! and map the test-time activations through the quantile transformation between the two fits
//! before the classifier. No training and no labels; the map is affine (`frechet::QuantileMap`)
//! and is folded into the classifier, so the adapted model is an ordinary state_dict.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::{Tensor, TensorData};
use serde::Serialize;

use crate::backend::Backend;
use crate::data::split::estimate_and_score;
use crate::data::{Check, DecodeLimits, ImageFolder};
use crate::eval::{Scores, StatsAccumulator, Sweep, class_map};
use crate::frechet::{Frechet, QuantileMap};
use crate::fsutil::{path_text, serialize_path};
use crate::model::head::Head;
use crate::model::weights::WeightFile;
use crate::model::{Model, Recipe, export as export_model, rows};
use crate::stats::Tally;
use crate::training::DeviceName;

/// What to adapt, and on what.
#[derive(Clone, Debug)]
pub struct Config {
    /// An ImageFolder. With `train/` and `val/`, the fits come from `train/` and the model is
    /// scored on `val/`; otherwise both use every image.
    pub data: PathBuf,
    /// The resolution the network was trained at, K_train.
    pub train_res: usize,
    /// K_test.
    pub res: usize,
    /// Fréchet shape (the paper's 0.3).
    pub xi: f64,
    /// Images per forward pass.
    pub batch: usize,
    /// The test transform's crop ratio and filter, and the normalisation.
    pub recipe: Recipe,
}

/// An adaptation's report, as `fixres adapt --json` prints it and the export stores it.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Architecture name.
    pub arch: String,
    /// The weights adapted.
    #[serde(serialize_with = "serialize_path")]
    pub weights: PathBuf,
    /// The dataset.
    #[serde(serialize_with = "serialize_path")]
    pub data: PathBuf,
    /// K_train and the fit of the pooled activations there.
    pub train_res: usize,
    /// K_test.
    pub res: usize,
    /// The two fits (shape fixed).
    pub map: QuantileMap,
    /// The map as `a·x + b`.
    pub affine: [f64; 2],
    /// Activations each fit rests on (a uniform sample of at most 2^20 per resolution).
    pub samples: usize,
    /// Images the fits rest on.
    pub images: usize,
    /// Files that could not be decoded.
    pub unreadable: usize,
    /// Scores at K_test before and after, where the folder's classes match the model's.
    pub scores: Option<Scores>,
    /// Why there are no scores, when there are none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_scored: Option<String>,
    /// Where it ran.
    pub device: DeviceName,
    /// Wall time.
    pub seconds: f64,
    /// Where the model was written, once it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out: Option<String>,
}

/// Fits the pooled activations of `model` at `cfg.train_res` and `cfg.res` over `cfg.data` and
/// folds the quantile map into its classifier; `progress(done, total)` counts images and cancels
/// when it returns false. Returns the adapted head and the report.
pub fn adapt(
    model: &Model,
    weights: &Path,
    backend: &Backend,
    cfg: &Config,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> anyhow::Result<(Head, Report)> {
    let started = Instant::now();
    let head = model.net.head();
    anyhow::ensure!(
        head.distilled.is_none(),
        "{}: {} has a distillation head (two tokens, two classifiers): parametric adaptation of its pooled \
         features is not supported",
        weights.display(),
        model.arch
    );
    let (estimate_root, score_root) = estimate_and_score(&cfg.data);
    let estimate = ImageFolder::scan(&estimate_root, Check::List, DecodeLimits::default())?;
    let files: Vec<PathBuf> = estimate.samples.iter().map(|s| s.path.clone()).collect();
    anyhow::ensure!(!files.is_empty(), "{}: no images", estimate_root.display());
    let resolutions = [cfg.train_res, cfg.res];
    let sweep = Sweep {
        recipe: cfg.recipe,
        ..Sweep::new(model, backend, &files, &resolutions, cfg.batch)
    };
    let mut samples = [StatsAccumulator::default(), StatsAccumulator::default()];
    let mut images = 0;
    let mut cancelled = false;
    let unreadable = sweep
        .run(
            |out| {
                if out.res_index == 1 {
                    images += out.indices.len();
                }
                for p in &out.pooled {
                    samples[out.res_index].extend(p);
                }
            },
            |done, total| {
                cancelled = !progress(done, total);
                !cancelled
            },
        )?
        .len();
    anyhow::ensure!(!cancelled, "cancelled");
    anyhow::ensure!(images > 0, "{}: no image could be read", estimate_root.display());
    let fit = |acc: &StatsAccumulator, res: usize| -> anyhow::Result<Frechet> {
        let x: Vec<f64> = acc.sample().iter().map(|&v| f64::from(v)).collect();
        Frechet::fit(&x, cfg.xi).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: the pooled activations at K={res} are all equal (or not finite): no Fréchet law to fit",
                cfg.data.display()
            )
        })
    };
    let map = QuantileMap {
        train: fit(&samples[0], cfg.train_res)?,
        test: fit(&samples[1], cfg.res)?,
    };
    let (a, b) = map.affine();
    let adapted = head.with_affine_input(a as f32, b as f32);
    // Scores at K_test: the pooled features through both classifiers.
    let score_folder = match &score_root {
        Some(root) => ImageFolder::scan(root, Check::List, DecodeLimits::default())?,
        None => estimate,
    };
    let targets: Result<Vec<usize>, String> = class_map(&score_folder.classes, model)
        .map(|m| score_folder.samples.iter().map(|s| m[s.class]).collect())
        .map_err(|why| format!("not scored: {why}"));
    let scores = match &targets {
        Err(_) => None,
        Ok(targets) => {
            let files: Vec<PathBuf> = score_folder.samples.iter().map(|s| s.path.clone()).collect();
            let sweep = Sweep {
                files: &files,
                resolutions: &resolutions[1..],
                ..sweep
            };
            let (mut before, mut after) = (Tally::default(), Tally::default());
            let mut failed = None;
            sweep.run(
                |out| {
                    let labels: Vec<usize> = out.indices.iter().map(|&i| targets[i]).collect();
                    before.add_rows(&out.logits, &labels);
                    let n = out.pooled.len();
                    let width = out.pooled.first().map_or(0, Vec::len);
                    let pooled =
                        Tensor::<2>::from_data(TensorData::new(out.pooled.concat(), [n, width]), &backend.device);
                    match rows(&adapted.classify(pooled, adapted.layers())) {
                        Ok(logits) => after.add_rows(&logits, &labels),
                        Err(e) => failed = Some(e),
                    }
                },
                |done, total| {
                    cancelled = !progress(done, total);
                    !cancelled
                },
            )?;
            if let Some(e) = failed {
                return Err(e);
            }
            anyhow::ensure!(!cancelled, "cancelled");
            Some(Scores::of(&before, &after))
        }
    };
    let report = Report {
        arch: model.arch.clone(),
        weights: weights.to_owned(),
        data: cfg.data.clone(),
        train_res: cfg.train_res,
        res: cfg.res,
        map,
        affine: [a, b],
        samples: samples[1].sample().len(),
        images,
        unreadable,
        scores,
        not_scored: targets.err(),
        device: backend.into(),
        seconds: started.elapsed().as_secs_f64(),
        out: None,
    };
    Ok((adapted, report))
}

/// Writes the adapted model to `out` (the source library's keys: PyTorch's strict
/// `load_state_dict` takes it) and the report beside it; returns the report as written.
pub fn export(file: &WeightFile, head: &Head, out: &Path, report: &Report, model: &Model) -> anyhow::Result<Report> {
    let report = Report {
        out: Some(path_text(out)),
        ..report.clone()
    };
    export_model::write_model(
        file,
        model,
        &head.named_tensors(),
        model.class_names.as_deref(),
        &[],
        out,
        &report,
    )?;
    Ok(report)
}
