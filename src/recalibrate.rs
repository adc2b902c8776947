//! Label-free BatchNorm re-estimation at a test resolution, one of the remedies for the shift of
//! the pooled-activation statistics (paper §3.2): the last BatchNorm's running statistics (or, for
//! the families built of Burn modules, every BatchNorm's) are reset and re-estimated over the data
//! at K_test with the test transform, with the semantics of `torch.optim.swa_utils.update_bn`
//! (momentum `None`: a cumulative average in which every batch weighs the same; the unbiased batch
//! variance; with every layer, the network in training mode, so each BatchNorm normalises with
//! its batch's statistics as it measures them). Only the statistics change; no label is read to
//! estimate them, so any folder of images will do. Labels, where the folder's classes match the
//! model, only score the model before and after.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use rayon::prelude::*;
use serde::Serialize;

use crate::backend::Backend;
use crate::data::split::estimate_and_score;
use crate::data::{Check, DecodeLimits, ImageFolder, RgbImage, TestTransform, decode_file};
use crate::eval::{Scores, class_map};
use crate::fsutil::{path_text, serialize_path};
use crate::model::burn_modules::{Named, with_momentum};
use crate::model::end_to_end::{EndToEnd, FAMILIES};
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
    /// Which BatchNorms.
    pub layers: Layers,
}

/// Which BatchNorms a re-estimation resets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Layers {
    /// The last one, before pooling (any family whose head normalises with a BatchNorm); the rest
    /// of the network in eval mode.
    #[default]
    Last,
    /// Every one, the network in training mode (`update_bn` itself): the families built of Burn
    /// modules (`model::end_to_end`), whose BatchNorms are not folded into their convolutions.
    All,
}

/// What a re-estimation changed.
// One value per run, moved once: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum Recalibrated {
    /// The head, its BatchNorm's statistics new.
    Last(Head),
    /// The whole network, every BatchNorm's statistics new (on the plain device).
    All(EndToEnd),
}

impl Recalibrated {
    /// The tensors to write over the source's, under their keys.
    #[must_use]
    pub fn named_tensors(&self) -> Vec<Named> {
        match self {
            Self::Last(head) => head.named_tensors(),
            Self::All(net) => net.state_dict(),
        }
    }
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

/// What `for_each_batch` hands each batch to: its inputs and their indices.
type OnBatch<'a> = dyn FnMut(&[RgbImage], &[usize]) -> anyhow::Result<()> + 'a;

/// The test-time inputs of `files` at `t`, in batches of `batch`, handed to `each` with the
/// indices (into `files`) of the images that decoded; `progress(done, total)` after each batch,
/// false stops. Returns how many files could not be decoded.
fn for_each_batch(
    files: &[PathBuf],
    t: TestTransform,
    batch: usize,
    each: &mut OnBatch<'_>,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> anyhow::Result<usize> {
    let batch = batch.max(1);
    let mut unreadable = 0;
    for (c, chunk) in files.chunks(batch).enumerate() {
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
            each(&inputs, &indices)?;
        }
        if !progress((c * batch + chunk.len()).min(files.len()), files.len()) {
            anyhow::bail!("cancelled");
        }
    }
    Ok(unreadable)
}

/// `for_each_batch`, each batch through the model's trunk.
#[allow(clippy::too_many_arguments)]
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
    let mut trunk_of = |inputs: &[RgbImage], indices: &[usize]| {
        let trunk = model
            .net
            .trunk(input_batch(inputs, recipe.mean, recipe.std, &backend.device));
        each(&trunk, indices)
    };
    for_each_batch(files, t, batch, &mut trunk_of, progress)
}

/// Re-estimates `model`'s last BatchNorm (or all) at `cfg.res` over `cfg.data`;
/// `progress(done, total)` counts images (of the estimating pass, then of the scoring pass when it
/// is another folder) and cancels when it returns false. Returns what changed and the report.
pub fn recalibrate(
    model: &Model,
    weights: &Path,
    backend: &Backend,
    cfg: &Config,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> anyhow::Result<(Recalibrated, Report)> {
    if cfg.layers == Layers::All {
        return recalibrate_all(model, weights, backend, cfg, progress);
    }
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
    let Folders {
        estimate_root,
        files,
        score_folder,
        targets,
    } = folders(model, cfg)?;
    let t = cfg.recipe.test_transform(cfg.res);
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
    Ok((Recalibrated::Last(recalibrated), report))
}

/// The images to estimate on and to score on (`estimate_and_score`), scanned, with the scored
/// images' targets or why there are none.
struct Folders {
    estimate_root: PathBuf,
    files: Vec<PathBuf>,
    /// The folder scored when it is not the estimated one.
    score_folder: Option<ImageFolder>,
    targets: Result<Vec<usize>, String>,
}

/// `update_bn` over the whole network: every BatchNorm reset (mean 0, variance 1) and
/// re-estimated with momentum `1/k` for the `k`-th batch, the network in training mode without
/// gradients.
fn recalibrate_all(
    model: &Model,
    weights: &Path,
    backend: &Backend,
    cfg: &Config,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> anyhow::Result<(Recalibrated, Report)> {
    let started = Instant::now();
    let device = &backend.device;
    let file = WeightFile::open(weights)?;
    let Some(net) = EndToEnd::from_file(&file, device)? else {
        anyhow::bail!(
            "{}: --layers all re-estimates every BatchNorm of {FAMILIES}; {} folds its inner BatchNorms into              its convolutions at load (--layers last re-estimates its last one)",
            weights.display(),
            model.arch
        );
    };
    let reset: Vec<Named> = net
        .state_dict()
        .into_iter()
        .map(|(key, shape, values)| {
            let fill = if key.ends_with(".running_mean") {
                Some(0.0)
            } else if key.ends_with(".running_var") {
                Some(1.0)
            } else {
                None
            };
            let values = fill.map_or(values, |f| vec![f; shape.iter().product()]);
            (key, shape, values)
        })
        .collect();
    let layers = reset.iter().filter(|(k, ..)| k.ends_with(".running_mean")).count();
    // Training mode (Burn's: an autodiff device) without gradients: the BatchNorms measure and
    // normalise with their batch's statistics, and no graph is kept.
    let ad = device.clone().autodiff();
    let training = EndToEnd::from_state(&reset, &ad)?.no_grad();
    let Folders {
        estimate_root,
        files,
        score_folder,
        targets,
    } = folders(model, cfg)?;
    let t = cfg.recipe.test_transform(cfg.res);
    let (mut images, mut batches) = (0, 0);
    let mut estimate = |inputs: &[RgbImage], _: &[usize]| {
        batches += 1;
        images += inputs.len();
        let x = input_batch(inputs, cfg.recipe.mean, cfg.recipe.std, &ad);
        // The statistics are updated as the forward pass runs; its output is not needed.
        drop(with_momentum(1.0 / batches as f64, || training.forward(x)));
        Ok(())
    };
    let unreadable = for_each_batch(&files, t, cfg.batch, &mut estimate, progress)?;
    anyhow::ensure!(batches > 0, "{}: no image could be read", estimate_root.display());
    let recalibrated = training.deep_copy(device)?;
    let scores = match &targets {
        Err(_) => None,
        Ok(targets) => {
            let (mut before, mut after) = (Tally::default(), Tally::default());
            let score_files: Vec<PathBuf> = match &score_folder {
                Some(folder) => folder.samples.iter().map(|s| s.path.clone()).collect(),
                None => files.clone(),
            };
            let mut score = |inputs: &[RgbImage], indices: &[usize]| -> anyhow::Result<()> {
                let labels: Vec<usize> = indices.iter().map(|&i| targets[i]).collect();
                let x = input_batch(inputs, cfg.recipe.mean, cfg.recipe.std, device);
                before.add_rows(&rows(&model.net.forward(x.clone()).logits)?, &labels);
                after.add_rows(&rows(&recalibrated.forward(x).logits)?, &labels);
                Ok(())
            };
            for_each_batch(&score_files, t, cfg.batch, &mut score, progress)?;
            Some(Scores::of(&before, &after))
        }
    };
    let report = Report {
        arch: model.arch.clone(),
        weights: weights.to_owned(),
        data: cfg.data.clone(),
        res: cfg.res,
        layer: format!("all {layers} BatchNorms"),
        images,
        batches,
        unreadable,
        scores,
        not_scored: targets.err(),
        device: backend.into(),
        seconds: started.elapsed().as_secs_f64(),
        out: None,
    };
    Ok((Recalibrated::All(recalibrated), report))
}

/// The folders of `cfg.data`: estimated on `train/` and scored on `val/` when it has both, else
/// both on every image; the scored images' targets where their classes match the model's.
fn folders(model: &Model, cfg: &Config) -> anyhow::Result<Folders> {
    let (estimate_root, score_root) = estimate_and_score(&cfg.data);
    let estimate = ImageFolder::scan(&estimate_root, Check::List, DecodeLimits::default())?;
    let files: Vec<PathBuf> = estimate.samples.iter().map(|s| s.path.clone()).collect();
    anyhow::ensure!(!files.is_empty(), "{}: no images", estimate_root.display());
    let score_folder = score_root
        .map(|root| ImageFolder::scan(&root, Check::List, DecodeLimits::default()))
        .transpose()?;
    let scored_on = score_folder.as_ref().unwrap_or(&estimate);
    let targets = class_map(&scored_on.classes, model)
        .map(|map| scored_on.samples.iter().map(|s| map[s.class]).collect())
        .map_err(|why| format!("not scored: {why}"));
    Ok(Folders {
        estimate_root,
        files,
        score_folder,
        targets,
    })
}

/// Writes the model with the re-estimated statistics to `out` (the source library's keys, so
/// PyTorch's strict `load_state_dict` takes it) and the report beside it; returns the report as
/// written.
pub fn export(
    file: &WeightFile,
    recalibrated: &Recalibrated,
    out: &Path,
    report: &Report,
    model: &Model,
) -> anyhow::Result<Report> {
    let report = Report {
        out: Some(path_text(out)),
        ..report.clone()
    };
    export_model::write_model(
        file,
        model,
        &recalibrated.named_tensors(),
        model.class_names.as_deref(),
        &[],
        out,
        &report,
    )?;
    Ok(report)
}
