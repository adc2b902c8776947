//! The whole FixRes fine-tune job, shared by `fixres finetune` and the GUI's fine-tune panel:
//! data split, trunk cache, SGD epochs with validation, the accuracy-vs-resolution curve of the
//! new model beside the old, progress events, cancellation, and export.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Tensor;
use rayon::prelude::*;
use serde::Serialize;

use super::cache::TrunkCache;
use super::trunk_parts::{TrunkIdentity, TrunkParts};
use super::{Sgd, Trainable};
use crate::backend::{Backend, BackendKind};
use crate::data::split::{Labelled, Splits, decode_listed, list_splits, load_splits};
use crate::data::{RandomResizedCrop, RgbImage, SeededRng, TrainTransform};
use crate::eval::class_map;
use crate::fsutil::{path_text, serialize_path};
use crate::model::end_to_end::EndToEnd;
use crate::model::head::{Head, TrunkOut};
use crate::model::weights::WeightFile;
use crate::model::{Model, Recipe, export as export_model, input_batch, rows, values};
use crate::stats::Tally;
pub use crate::training::Schedule;
use crate::training::{DeviceName, EpochRecord, Part, Transfer, crop_seed};

/// Which augmentation the fine-tune data gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Augmentation {
    /// The test transform at the run's resolution (Resize + CenterCrop): the trunk's outputs are
    /// computed once.
    Test,
    /// RandomResizedCrop + flip at the run's resolution: the trunk runs every step.
    Train,
}

/// What to fine-tune, and how.
#[derive(Clone, Debug)]
pub struct Config {
    /// A labelled ImageFolder; with `train/` and `val/` those are used, else a seeded fifth of
    /// each class is held out (`data::split::seeded_split`).
    pub data: PathBuf,
    /// K_test.
    pub res: usize,
    /// Passes over the training images.
    pub epochs: usize,
    /// Images per step (at least 2: batch statistics).
    pub batch: usize,
    /// Learning rate; `None`: `Sgd::default_lr` (FixRes's 8e-3 · batch / 512, or a transfer's).
    pub lr: Option<f64>,
    /// What trains.
    pub trainable: Trainable,
    /// Augmentation of the fine-tune data.
    pub da: Augmentation,
    /// Memory for cached trunk outputs, in bytes; beyond it they go to a temporary file.
    pub cache_bytes: usize,
    /// Cache the trunk's outputs with test-time augmentation (off only for checks and benchmarks).
    pub trunk_cache: bool,
    /// Train the head from the trunk cache in this directory, written in shards on other
    /// machines (`trunk_parts`), instead of running the trunk over the training images.
    pub trunk_parts: Option<PathBuf>,
    /// Seed (split, shuffling, crops).
    pub seed: u64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Test resolutions of the before/after curve (empty: K/2 to 2K in eight steps, K included).
    pub curve: Vec<usize>,
    /// The test transform's crop ratio and filter, and the normalisation (usually the model's).
    pub recipe: Recipe,
    /// `Some(part)`: replace the model's classifier by a new one for the dataset's own classes,
    /// initialised as PyTorch's `nn.Linear` from `seed`, and train it with `part` of the network
    /// (a transfer, `fixres train --from`; `Part::Head` trains what `trainable` says, the others
    /// the network end to end, `finetune::network`): every dataset class is an output, in order,
    /// and "before" is that new classifier. `None`: the dataset's classes are matched to the
    /// model's outputs (`eval::class_map`) and the head fine-tunes.
    pub new_classifier: Option<Part>,
}

/// What a running fine-tune reports.
#[derive(Clone, Debug)]
pub enum Progress {
    /// A stage began (decoding, caching the trunk, the curve).
    Stage(String),
    /// One SGD step finished.
    Step {
        /// Epoch, from 0.
        epoch: usize,
        /// Mean loss of the step's batch.
        loss: f32,
        /// Training images processed so far, all epochs together.
        images_done: usize,
        /// Training images of the whole run.
        images_total: usize,
        /// Training throughput so far.
        images_per_s: f64,
        /// Seconds left at that rate.
        eta_s: f64,
    },
    /// One epoch finished.
    Epoch {
        /// Epoch, from 0.
        epoch: usize,
        /// Mean loss.
        loss: f32,
        /// Validation top-1 at K_test.
        val_top1: f64,
    },
}

impl Progress {
    /// A step's report: `images_done` of `images_total` since `started`, the throughput so far
    /// and the time left at that rate.
    pub(super) fn step(epoch: usize, loss: f32, images_done: usize, images_total: usize, started: Instant) -> Self {
        let images_per_s = images_done as f64 / started.elapsed().as_secs_f64().max(1e-9);
        Self::Step {
            epoch,
            loss,
            images_done,
            images_total,
            images_per_s,
            eta_s: images_total.saturating_sub(images_done) as f64 / images_per_s.max(1e-9),
        }
    }
}

/// After a cancel: whether to keep the best weights so far (validation top-1 `best`) rather than
/// those at the cancel (`now`), and what the report says of it.
pub(super) fn after_cancel(best: f64, now: f64) -> (bool, String) {
    if best > now {
        (
            true,
            format!(
                "cancelled; kept the best weights so far ({})",
                crate::training::val_text(best)
            ),
        )
    } else {
        (
            false,
            format!(
                "cancelled; kept the weights at the cancel ({})",
                crate::training::val_text(now)
            ),
        )
    }
}

/// The hyper-parameters a run used, as its report lists them.
#[derive(Clone, Debug, Serialize)]
pub struct SummaryConfig {
    /// Images per step.
    pub batch: usize,
    /// The test transform's crop ratio.
    pub crop_ratio: f64,
    /// Augmentation of the fine-tune data.
    pub da: Augmentation,
    /// Passes over the training images asked for.
    pub epochs: usize,
    /// Learning rate (before the schedule).
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// K_test.
    pub res: usize,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Seed.
    pub seed: u64,
    /// Whether the BatchNorm's affine trained.
    pub train_bn: bool,
    /// Whether the classifier trained.
    pub train_classifier: bool,
    /// Weight decay.
    pub weight_decay: f64,
}

/// Validation top-1 at one test resolution, of the model before and after the fine-tune.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CurvePoint {
    /// Validation top-1 after.
    pub after: f64,
    /// Validation top-1 before.
    pub before: f64,
    /// K_test.
    pub res: usize,
}

/// Everything about a run, as `fixres finetune --json` prints it and the export stores it (in
/// the weights' metadata and the JSON sidecar). The fields are in the order of their JSON keys,
/// sorted, as the reports have always listed them.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Architecture name.
    pub arch: String,
    /// Wall time of filling the trunk cache (the trunk once over every training image), when
    /// there is one: what each epoch after the first would spend again without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_seconds: Option<f64>,
    /// Training batches whose trunk outputs went to the temporary file.
    pub cache_spilled_batches: usize,
    /// Classes of the dataset.
    pub classes: usize,
    /// Hyper-parameters.
    pub config: SummaryConfig,
    /// The before/after curve.
    pub curve: Vec<CurvePoint>,
    /// The dataset.
    #[serde(serialize_with = "serialize_path")]
    pub data: PathBuf,
    /// Where it ran.
    pub device: DeviceName,
    /// Per epoch.
    pub epochs: Vec<EpochRecord>,
    /// Where the model was written, once it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out: Option<String>,
    /// Wall time of the whole run.
    pub seconds: f64,
    /// Why the run stopped early, if it did.
    pub stopped: Option<String>,
    /// Training images.
    pub train_images: usize,
    /// Wall time from the trunk cache to the last epoch.
    pub train_seconds: f64,
    /// A transfer's origin, trainable part and classes (absent for a fine-tune).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer: Option<Transfer>,
    /// The trunk cache written in shards that the head trained from, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trunk_cache: Option<String>,
    /// Files that could not be decoded.
    pub unreadable: usize,
    /// Validation images.
    pub val_images: usize,
    /// Validation top-1 at K_test after.
    pub val_top1_after: f64,
    /// Validation top-1 at K_test before.
    pub val_top1_before: f64,
    /// The weights fine-tuned.
    #[serde(serialize_with = "serialize_path")]
    pub weights: PathBuf,
}

/// What a run trained.
// One value per run, moved once: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum Trained {
    /// The head (the fine-tune, a transfer with `Part::Head`): the trunk is the model's.
    Head(Head),
    /// The whole network (a transfer with `Part::LastStage` or `Part::All`), on the plain device.
    Network(EndToEnd),
}

/// How a run ended.
pub struct Outcome {
    /// The weights to keep: the last epoch's, the best so far if cancelled, the last good ones
    /// if the loss went non-finite.
    pub trained: Trained,
    /// Everything about the run.
    pub summary: Summary,
    /// Validation top-1 before and after.
    pub before: f64,
    /// See `before`.
    pub after: f64,
    /// Training and validation images.
    pub images: (usize, usize),
    /// Why the run stopped early, if it did.
    pub stopped: Option<String>,
}

/// The training images shuffled by `seed` (images, when decoded, and labels alike), and the
/// order: image `j` of the result is image `order[j]` of `split`.
fn shuffled(split: Labelled, seed: u64) -> (Labelled, Vec<usize>) {
    let mut order: Vec<usize> = (0..split.labels.len()).collect();
    SeededRng::new(seed).shuffle(&mut order);
    let mut images: Vec<Option<RgbImage>> = split.images.into_iter().map(Some).collect();
    let shuffled = Labelled {
        labels: order.iter().map(|&i| split.labels[i]).collect(),
        images: order
            .iter()
            .filter_map(|&i| images.get_mut(i).and_then(Option::take))
            .collect(),
    };
    (shuffled, order)
}

/// The run's images, decoded, labelled with the model's outputs (or, for a new classifier, the
/// dataset's classes), the training images shuffled.
pub(super) struct Prepared {
    /// Not decoded (no images, only labels) when the trunk's outputs come from a cache.
    pub train_split: Labelled,
    /// Image `j` of `train_split` is image `train_order[j]` of the training split.
    pub train_order: Vec<usize>,
    pub val_split: Labelled,
    pub classes: Vec<String>,
    pub unreadable: usize,
}

/// `cached`: the labels of the training images whose trunk outputs a cache holds (they are not
/// decoded).
fn prepare(
    model: &Model,
    cfg: &Config,
    report: &mut dyn FnMut(Progress) -> bool,
    cached: Option<&TrunkParts>,
) -> anyhow::Result<Prepared> {
    report(Progress::Stage("decoding the images".into()));
    let Splits {
        train: mut train_split,
        val: mut val_split,
        classes,
        unreadable,
    } = match cached {
        None => load_splits(&cfg.data, cfg.seed)?,
        Some(parts) => {
            let listed = list_splits(&cfg.data, cfg.seed)?;
            let (val, failed) = decode_listed(&listed.val);
            Splits {
                train: Labelled {
                    images: Vec::new(),
                    labels: parts.labels().to_vec(),
                },
                val,
                classes: listed.classes,
                unreadable: failed + parts.failed.len(),
            }
        }
    };
    let n_classes = classes.len();
    // Dataset classes → the model's outputs (by name when the model has names); a new
    // classifier has the dataset's classes as its outputs.
    let to_model = if cfg.new_classifier.is_some() {
        anyhow::ensure!(
            n_classes >= 2,
            "{}: {n_classes} class ({}): a classifier needs two classes",
            cfg.data.display(),
            classes.join(", ")
        );
        (0..n_classes).collect()
    } else {
        class_map(&classes, model).map_err(|why| anyhow::anyhow!("{}: {why}", cfg.data.display()))?
    };
    for split in [&mut train_split, &mut val_split] {
        for l in &mut split.labels {
            *l = to_model[*l];
        }
    }
    // Batches mix classes (seeded shuffle once; each epoch then visits the batches in a new order,
    // which keeps the cached trunk outputs per batch).
    let (train_split, train_order) = shuffled(train_split, cfg.seed);
    Ok(Prepared {
        train_split,
        train_order,
        val_split,
        classes,
        unreadable,
    })
}

/// The test resolutions of the before/after curve: only K_test after a cancel (the user is
/// waiting), else the ones asked for, else K/2 to 2K in eight steps with K.
pub(super) fn curve_resolutions(cfg: &Config, cancelled: bool) -> Vec<usize> {
    if cancelled {
        vec![cfg.res]
    } else if cfg.curve.is_empty() {
        let mut r: Vec<usize> = (0..8)
            .map(|i| (cfg.res / 2 + i * (cfg.res * 3 / 2) / 7).max(16))
            .collect();
        r.push(cfg.res);
        r.sort_unstable();
        r.dedup();
        r
    } else {
        cfg.curve.clone()
    }
}

/// How often a fine-tune on a GPU reads its loss back (for progress and the finite check).
const READ_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// The trunk cache in `dir` for this run, checked to be of its model, data, resolution and recipe.
fn open_trunk_parts(model: &Model, weights: &Path, cfg: &Config, dir: &Path) -> anyhow::Result<TrunkParts> {
    anyhow::ensure!(
        cfg.da == Augmentation::Test,
        "--trunk-cache {}: the cache holds the test transform's trunk outputs; --da train runs the trunk every step",
        dir.display()
    );
    anyhow::ensure!(
        matches!(cfg.new_classifier, None | Some(Part::Head)),
        "--trunk-cache {}: only the head trains from a trunk cache (not --trainable last-stage or all)",
        dir.display()
    );
    let bytes = std::fs::read(weights).map_err(|e| anyhow::anyhow!("{}: cannot read ({e})", weights.display()))?;
    let (identity, _) = TrunkIdentity::of(model, &bytes, cfg.res, cfg.recipe, &cfg.data, cfg.seed)?;
    TrunkParts::open(dir, &identity)
}

/// Validation top-1 of `head` over trunk outputs (batches of `labels`, in order); NaN without
/// validation images (`training::val_top1`).
fn top1(head: &Head, trunks: &[TrunkOut], labels: &[usize]) -> anyhow::Result<f64> {
    let mut tally = Tally::default();
    for t in trunks {
        let logits = rows(&head.infer(t))?;
        tally.add_rows(&logits, &labels[tally.scored..]);
    }
    Ok(crate::training::val_top1(&tally))
}

/// Runs the fine-tune of `model` (loaded from `weights`) on `backend`, reporting through
/// `report`; `report` returning false cancels the run, which then keeps the best weights so far.
pub fn finetune(
    model: &Model,
    weights: &Path,
    backend: &Backend,
    cfg: &Config,
    report: &mut dyn FnMut(Progress) -> bool,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let device = &backend.device;
    let mut parts = match &cfg.trunk_parts {
        Some(dir) => Some(open_trunk_parts(model, weights, cfg, dir)?),
        None => None,
    };
    let data = prepare(model, cfg, report, parts.as_ref())?;
    if let Some(part @ (Part::LastStage | Part::All)) = cfg.new_classifier {
        return super::network::train(model, weights, backend, cfg, part, data, started, report);
    }
    let Prepared {
        train_split,
        train_order,
        val_split,
        classes,
        unreadable,
    } = data;
    let n_classes = classes.len();
    let recipe = cfg.recipe;
    let test_t = recipe.test_transform(cfg.res);
    let batch = cfg.batch.max(2);
    // Trunk output of batch `c` (images `c·batch ..`), each image transformed with its index.
    let trunk_of = |images: &[RgbImage], c: usize, transform: &(dyn Fn(&RgbImage, usize) -> RgbImage + Sync)| {
        let chunk = &images[c * batch..(c * batch + batch).min(images.len())];
        let inputs: Vec<RgbImage> = chunk
            .par_iter()
            .enumerate()
            .map(|(i, img)| transform(img, c * batch + i))
            .collect();
        model.net.trunk(input_batch(&inputs, recipe.mean, recipe.std, device))
    };
    let trunks = |images: &[RgbImage], transform: &(dyn Fn(&RgbImage, usize) -> RgbImage + Sync)| {
        (0..images.len().div_ceil(batch))
            .map(|c| trunk_of(images, c, transform))
            .collect::<Vec<TrunkOut>>()
    };
    let test_transform = |img: &RgbImage, _: usize| test_t.apply(img);
    report(Progress::Stage("validation images through the trunk".into()));
    let val_trunks = trunks(&val_split.images, &test_transform);
    let mut head = model.net.head();
    if cfg.new_classifier.is_some() {
        head = head.with_new_classifier(n_classes, cfg.seed, device);
    }
    // The model the run starts from, for the before/after curve.
    let initial = head.clone();
    let before = top1(&head, &val_trunks, &val_split.labels)?;
    let trainable = cfg.trainable;
    let lr = cfg.lr.unwrap_or_else(|| Sgd::default_lr(cfg.new_classifier, batch));
    let mut sgd = Sgd::new(lr, 0.9, 1e-4);
    // With test-time augmentation the trunk's output is a function of (image, K): computed once,
    // kept in memory up to the cap and in a temporary file beyond.
    let n_train = train_split.labels.len();
    let n_batches = n_train.div_ceil(batch);
    let training_started = Instant::now();
    let mut cache = None;
    let mut stopped = None;
    let mut cancelled = false;
    let mut cache_seconds = None;
    if cfg.da == Augmentation::Test && cfg.trunk_cache && parts.is_none() && cfg.epochs > 0 {
        let mut c = TrunkCache::new(cfg.cache_bytes);
        for b in 0..n_batches {
            // A cancel here (before any step) keeps the weights as they came.
            if !report(Progress::Stage(format!(
                "caching the trunk's outputs: batch {}/{n_batches}",
                b + 1
            ))) {
                cancelled = true;
                break;
            }
            c.push(trunk_of(&train_split.images, b, &test_transform))?;
        }
        cache = Some(c);
        cache_seconds = Some(training_started.elapsed().as_secs_f64());
    }
    let epochs_to_run = if cancelled { 0 } else { cfg.epochs };
    let images_total = cfg.epochs * n_train;
    let mut images_done = 0usize;
    let mut epochs = Vec::new();
    // The best weights by validation top-1, kept for a cancelled run (the initial ones count).
    let mut best = (before, head.clone());
    // The weights last checked finite, kept if the loss turns non-finite.
    let mut good = head.clone();
    let mut last_read = Instant::now();
    'epochs: for epoch in 0..epochs_to_run {
        sgd.lr = cfg.schedule.lr(lr, epoch, cfg.epochs);
        let train_t = TrainTransform {
            res: cfg.res,
            crop: RandomResizedCrop::default(),
            interpolation: recipe.interpolation,
            hflip: true,
        };
        let seed = crop_seed(cfg.seed, epoch);
        let augment = |img: &RgbImage, i: usize| train_t.apply(img, &mut SeededRng::for_item(seed, i as u64)).image;
        // The epoch's losses summed on the device (f32, in step order), read once at its end.
        let mut loss_sum: Option<Tensor<1>> = None;
        let mut batch_order: Vec<usize> = (0..n_batches).collect();
        SeededRng::for_item(cfg.seed, epoch as u64).shuffle(&mut batch_order);
        for (k, &b) in batch_order.iter().enumerate() {
            let rows = b * batch..(b * batch + batch).min(n_train);
            let trunk = &match (&mut parts, &mut cache, cfg.da) {
                (Some(p), _, _) => p.batch(&train_order[rows], device)?,
                (None, Some(c), _) => c.get(b, device)?,
                (None, None, Augmentation::Test) => trunk_of(&train_split.images, b, &test_transform),
                (None, None, Augmentation::Train) => trunk_of(&train_split.images, b, &augment),
            };
            let labels = &train_split.labels[b * batch..(b * batch + batch).min(train_split.labels.len())];
            let loss = head.step(trunk, labels, trainable, &mut sgd, device);
            loss_sum = Some(match loss_sum.take() {
                Some(sum) => sum + loss.clone(),
                None => loss.clone(),
            });
            images_done += labels.len();
            // Reading the loss waits for the device: on a GPU only every `READ_EVERY` and at
            // the epoch's end, so that steps queue without a round trip each.
            if backend.kind == BackendKind::Flex || k + 1 == n_batches || last_read.elapsed() >= READ_EVERY {
                last_read = Instant::now();
                let loss = values(&loss)[0];
                if !loss.is_finite() || !head.is_finite() {
                    head = good;
                    stopped = Some(format!(
                        "epoch {epoch}, batch {b}: loss {loss}; kept the last good weights (those checked last)"
                    ));
                    break 'epochs;
                }
                good = head.clone();
                if !report(Progress::step(epoch, loss, images_done, images_total, training_started)) {
                    cancelled = true;
                    break 'epochs;
                }
            }
        }
        let val = top1(&head, &val_trunks, &val_split.labels)?;
        let loss = loss_sum.map_or(0.0, |s| values(&s)[0]) / n_batches.max(1) as f32;
        epochs.push(EpochRecord::new(epoch, loss, val));
        if val > best.0 {
            best = (val, head.clone());
        }
        if !report(Progress::Epoch {
            epoch,
            loss,
            val_top1: val,
        }) {
            cancelled = true;
            break;
        }
    }
    if cancelled {
        let (keep_best, why) = after_cancel(best.0, top1(&head, &val_trunks, &val_split.labels)?);
        if keep_best {
            head = best.1;
        }
        stopped = Some(why);
    }
    let train_seconds = training_started.elapsed().as_secs_f64();
    let after = top1(&head, &val_trunks, &val_split.labels)?;
    // The accuracy-against-resolution curve of the new model beside the old (same trunk).
    report(Progress::Stage("accuracy against test resolution".into()));
    let curve_res = curve_resolutions(cfg, cancelled);
    let mut curve = Vec::new();
    for &k in &curve_res {
        let t = recipe.test_transform(k);
        let tr = trunks(&val_split.images, &|img: &RgbImage, _| t.apply(img));
        curve.push(CurvePoint {
            res: k,
            before: top1(&initial, &tr, &val_split.labels)?,
            after: top1(&head, &tr, &val_split.labels)?,
        });
    }
    let summary = Summary {
        arch: model.arch.clone(),
        cache_seconds,
        cache_spilled_batches: cache.as_ref().map_or(0, TrunkCache::spilled),
        classes: n_classes,
        config: SummaryConfig {
            batch,
            crop_ratio: recipe.crop_ratio,
            da: cfg.da,
            epochs: cfg.epochs,
            lr,
            momentum: 0.9,
            res: cfg.res,
            schedule: cfg.schedule,
            seed: cfg.seed,
            train_bn: trainable.bn_affine,
            train_classifier: trainable.classifier,
            weight_decay: 1e-4,
        },
        curve,
        data: cfg.data.clone(),
        device: backend.into(),
        epochs,
        out: None,
        seconds: started.elapsed().as_secs_f64(),
        stopped: stopped.clone(),
        train_images: n_train,
        train_seconds,
        transfer: cfg.new_classifier.map(|trainable| Transfer {
            classes: classes.clone(),
            from: weights.to_owned(),
            trainable,
        }),
        trunk_cache: cfg.trunk_parts.as_deref().map(path_text),
        unreadable,
        val_images: val_split.images.len(),
        val_top1_after: after,
        val_top1_before: before,
        weights: weights.to_owned(),
    };
    Ok(Outcome {
        trained: Trained::Head(head),
        summary,
        before,
        after,
        images: (n_train, val_split.images.len()),
        stopped,
    })
}

/// Writes the whole model (the source library's keys, f32, what trained replaced) to `out` and a
/// JSON sidecar (`out` + `.json`), both atomically; `summary`, with `out` set, goes into both and
/// is returned as written. After a transfer the classifier has the dataset's classes (its shape
/// changes, and the class names in the metadata are the dataset's).
pub fn export(
    file: &WeightFile,
    trained: &Trained,
    out: &Path,
    summary: &Summary,
    model: &Model,
) -> anyhow::Result<Summary> {
    let summary = Summary {
        out: Some(path_text(out)),
        ..summary.clone()
    };
    let (replace, classifier) = match trained {
        Trained::Head(head) => (head.named_tensors(), head.classifier_keys()),
        Trained::Network(net) => (net.state_dict(), net.head().classifier_keys()),
    };
    let (class_names, reshaped) = match &summary.transfer {
        Some(t) => (Some(t.classes.as_slice()), classifier),
        None => (model.class_names.as_deref(), Vec::new()),
    };
    export_model::write_model(file, model, &replace, class_names, &reshaped, out, &summary)?;
    Ok(summary)
}
