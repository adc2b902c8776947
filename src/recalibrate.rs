//! Label-free BatchNorm re-estimation at a test resolution, one of the remedies for the shift of
//! the pooled-activation statistics (paper §3.2): the last BatchNorm's running statistics are
//! reset and re-estimated over the data at K_test with the test transform, with the semantics of
//! `torch.optim.swa_utils.update_bn` (momentum `None`: a cumulative average in which every batch
//! weighs the same; the unbiased batch variance). Only the statistics change; no label is read
//! to estimate them, so any folder of images will do. Labels, where the folder's classes match
//! the model, only score the model before and after.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use crate::backend::Backend;
use crate::data::split::estimate_and_score;
use crate::data::{Check, DecodeLimits, ImageFolder, RgbImage, TestTransform, decode_file};
use crate::eval::{Scores, class_map};
use crate::fsutil::{path_text, serialize_path};
use crate::model::head::{Head, RunningStats, TrunkOut};
use crate::model::weights::WeightFile;
use crate::model::{Model, Recipe, export as export_model, input_batch, rows};
use crate::stats::{BatchStatsAverage, Tally};
use crate::training::DeviceName;

/// What to re-estimate, and on what.
#[derive(Clone, Debug)]
pub struct Config {
    /// An ImageFolder. With `train/` and `val/`, the statistics come from `train/` and the model is
    /// scored on `val/`; otherwise both use every image.
    pub data: PathBuf,
    /// K_test.
    pub res: usize,
    /// Images per batch (each batch's statistics weigh the same, as in `update_bn`).
    pub batch: usize,
    /// The test transform's crop ratio and filter, and the normalisation.
    pub recipe: Recipe,
}

/// Trunk outputs kept between the estimating and the scoring pass over the same images.
const KEEP_BYTES: usize = 1 << 30;

/// A re-estimation's report, as `fixres recalibrate --json` prints it and the export stores it.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Architecture name.
    pub arch: String,
    /// The weights re-estimated.
    #[serde(serialize_with = "serialize_path")]
    pub weights: PathBuf,
    /// The dataset.
    #[serde(serialize_with = "serialize_path")]
    pub data: PathBuf,
    /// K_test.
    pub res: usize,
    /// The BatchNorm re-estimated (its key in the weights).
    pub layer: String,
    /// Images the statistics rest on.
    pub images: usize,
    /// Batches averaged.
    pub batches: usize,
    /// Files that could not be decoded.
    pub unreadable: usize,
    /// Scores before and after, where the folder's classes match the model's.
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

/// The trunk's outputs of `files` at `t`, in batches of `batch`, handed to `each` with the indices
/// (into `files`) of the images that decoded; `progress(done, total)` after each batch, false
/// stops. Returns how many files could not be decoded.
fn for_each_trunk(
    model: &Model,
    backend: &Backend,
    files: &[PathBuf],
    t: TestTransform,
    recipe: &Recipe,
    batch: usize,
    each: &mut dyn FnMut(&TrunkOut, &[usize]) -> anyhow::Result<()>,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> anyhow::Result<usize> {
    let mut unreadable = 0;
    for (c, chunk) in files.chunks(batch.max(1)).enumerate() {
        let decoded: Vec<Option<RgbImage>> = chunk
            .par_iter()
            .map(|p| decode_file(p, DecodeLimits::default()).ok().map(|img| t.apply(&img)))
            .collect();
        unreadable += decoded.iter().filter(|d| d.is_none()).count();
        let indices: Vec<usize> = (0..chunk.len())
            .filter(|&i| decoded[i].is_some())
            .map(|i| c * batch + i)
            .collect();
        let inputs: Vec<RgbImage> = decoded.into_iter().flatten().collect();
        if !inputs.is_empty() {
            let trunk = model
                .net
                .trunk(input_batch(&inputs, recipe.mean, recipe.std, &backend.device));
            each(&trunk, &indices)?;
        }
        if !progress((c * batch + chunk.len()).min(files.len()), files.len()) {
            anyhow::bail!("cancelled");
        }
    }
    Ok(unreadable)
}

/// Re-estimates `model`'s last BatchNorm at `cfg.res` over `cfg.data`; `progress(done, total)`
/// counts images (of the estimating pass, then of the scoring pass when it is another folder)
/// and cancels when it returns false. Returns the head with the new statistics and the report.
pub fn recalibrate(
    model: &Model,
    weights: &Path,
    backend: &Backend,
    cfg: &Config,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> anyhow::Result<(Head, Report)> {
    let started = Instant::now();
    let head = model.net.head();
    let Some(running) = &head.running else {
        anyhow::bail!(
            "{}: {} normalises its pooled features with a LayerNorm ({}), which has no running statistics to \
             re-estimate",
            weights.display(),
            model.arch,
            head.norm_key
        );
    };
    let (estimate_root, score_root) = estimate_and_score(&cfg.data);
    let estimate = ImageFolder::scan(&estimate_root, Check::List, DecodeLimits::default())?;
    let files: Vec<PathBuf> = estimate.samples.iter().map(|s| s.path.clone()).collect();
    anyhow::ensure!(!files.is_empty(), "{}: no images", estimate_root.display());
    let t = cfg.recipe.test_transform(cfg.res);
    // Scoring: the same images (one pass) unless the folder holds a val/ apart.
    let score_folder = score_root
        .map(|root| ImageFolder::scan(&root, Check::List, DecodeLimits::default()))
        .transpose()?;
    let scored_on = score_folder.as_ref().unwrap_or(&estimate);
    let targets: Result<Vec<usize>, String> = class_map(&scored_on.classes, model)
        .map(|map| scored_on.samples.iter().map(|s| map[s.class]).collect())
        .map_err(|why| format!("not scored: {why}"));
    let mut average = BatchStatsAverage::default();
    let mut images = 0;
    // Scoring the same images reuses the trunk's outputs of this pass (the last BatchNorm's
    // input, [batch, C, h, w]) up to KEEP_BYTES; beyond, the scoring runs the trunk again.
    let mut kept: Vec<(TrunkOut, Vec<usize>)> = Vec::new();
    let mut kept_bytes = 0usize;
    let mut keep = score_folder.is_none() && targets.is_ok();
    let unreadable = for_each_trunk(
        model,
        backend,
        &files,
        t,
        &cfg.recipe,
        cfg.batch,
        &mut |trunk, indices| {
            let read = trunk
                .pre_bn
                .to_data()
                .try_to_vec::<f32>()
                .map_err(|e| anyhow::anyhow!("reading {}'s input: {e:?}", head.norm_key))?;
            average
                .add(&read, trunk.pre_bn.dims())
                .map_err(|why| anyhow::anyhow!("{}: {why}", head.norm_key))?;
            images += indices.len();
            kept_bytes += 4 * read.len();
            if keep && kept_bytes > KEEP_BYTES {
                keep = false;
                kept.clear();
            }
            if keep {
                kept.push((trunk.clone(), indices.to_vec()));
            }
            Ok(())
        },
        progress,
    )?;
    anyhow::ensure!(
        average.batches > 0,
        "{}: no image could be read",
        estimate_root.display()
    );
    let device = &backend.device;
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let c = average.mean.len();
    let mut recalibrated = head.clone();
    recalibrated.running = Some(RunningStats {
        mean: burn::tensor::Tensor::from_data(burn::tensor::TensorData::new(f32s(&average.mean), [c]), device),
        var: burn::tensor::Tensor::from_data(burn::tensor::TensorData::new(f32s(&average.var), [c]), device),
        momentum: running.momentum,
    });
    let scores = match &targets {
        Err(_) => None,
        Ok(targets) => {
            let (mut before, mut after) = (Tally::default(), Tally::default());
            let mut score = |trunk: &TrunkOut, indices: &[usize]| -> anyhow::Result<()> {
                let labels: Vec<usize> = indices.iter().map(|&i| targets[i]).collect();
                before.add_rows(&rows(&head.infer(trunk))?, &labels);
                after.add_rows(&rows(&recalibrated.infer(trunk))?, &labels);
                Ok(())
            };
            match &score_folder {
                None if keep => {
                    for (trunk, indices) in &kept {
                        score(trunk, indices)?;
                    }
                }
                None => {
                    for_each_trunk(model, backend, &files, t, &cfg.recipe, cfg.batch, &mut score, progress)?;
                }
                Some(folder) => {
                    let val_files: Vec<PathBuf> = folder.samples.iter().map(|s| s.path.clone()).collect();
                    for_each_trunk(
                        model,
                        backend,
                        &val_files,
                        t,
                        &cfg.recipe,
                        cfg.batch,
                        &mut score,
                        progress,
                    )?;
                }
            }
            Some(Scores::of(&before, &after))
        }
    };
    let report = Report {
        arch: model.arch.clone(),
        weights: weights.to_owned(),
        data: cfg.data.clone(),
        res: cfg.res,
        layer: head.norm_key.clone(),
        images,
        batches: average.batches,
        unreadable,
        scores,
        not_scored: targets.err(),
        device: backend.into(),
        seconds: started.elapsed().as_secs_f64(),
        out: None,
    };
    Ok((recalibrated, report))
}

/// Writes the model with the re-estimated head to `out` (the source library's keys, so PyTorch's
/// strict `load_state_dict` takes it) and the report beside it; returns the report as written.
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
