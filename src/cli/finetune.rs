//! `fixres finetune`: the FixRes fine-tune (paper §4) of a classifier at a test resolution, then
//! export of the whole model with torchvision key names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, ValueEnum};
use rayon::prelude::*;
use serde_json::json;

use super::{RunArgs, parse_res, print_json, progress_bar, warn};
use crate::backend::choose;
use crate::data::{
    Check, DecodeLimits, ImageFolder, RandomResizedCrop, RgbImage, SeededRng, TestTransform, TrainTransform,
    decode_file,
};
use crate::eval::class_map;
use crate::finetune::cache::TrunkCache;
use crate::finetune::{Head, Sgd, Trainable, TrunkOut};
use crate::fsutil::write_atomic;
use crate::model::weights::WeightFile;
use crate::model::{Model, input_batch, rows};

/// Which augmentation the fine-tune data gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Augmentation {
    /// The test transform at K_test (Resize + CenterCrop): the trunk's outputs are computed once.
    Test,
    /// RandomResizedCrop + flip at K_test: the trunk runs every step.
    Train,
}

/// Learning rate against epochs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// The same rate throughout.
    Constant,
    /// ×0.1 after each third of the epochs.
    Step,
    /// Cosine from the rate down to 0.
    Cosine,
}

impl Schedule {
    /// The rate for `epoch` of `epochs`.
    fn lr(self, base: f64, epoch: usize, epochs: usize) -> f64 {
        match self {
            Self::Constant => base,
            Self::Step => base * 0.1f64.powi((3 * epoch / epochs.max(1)) as i32),
            Self::Cosine => base * 0.5 * (1.0 + (std::f64::consts::PI * epoch as f64 / epochs.max(1) as f64).cos()),
        }
    }
}

/// Arguments of `fixres finetune`.
#[derive(Debug, Args)]
pub struct FinetuneArgs {
    /// Weights to start from.
    #[arg(long)]
    pub weights: PathBuf,
    /// A labelled ImageFolder; with `train/` and `val/` sub-folders those are used, else a seeded
    /// fifth of each class is held out for validation.
    #[arg(long)]
    pub data: PathBuf,
    /// The test resolution to fine-tune for, K_test.
    #[arg(long, value_parser = parse_res)]
    pub res: usize,
    /// Passes over the training images.
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Learning rate (default: FixRes's 8e-3 · batch / 512).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Train the last BatchNorm's affine (with --train-classifier: the paper's setting; neither
    /// flag: both train).
    #[arg(long)]
    pub train_bn: bool,
    /// Train the classifier.
    #[arg(long)]
    pub train_classifier: bool,
    /// Augmentation of the fine-tune data.
    #[arg(long, value_enum, default_value_t = Augmentation::Test)]
    pub da: Augmentation,
    /// Memory for cached trunk outputs, in MiB; beyond it they go to a temporary file.
    #[arg(long, default_value_t = 4096)]
    pub cache_mb: usize,
    /// Recompute the trunk every epoch even with test-time augmentation (for benchmarks and
    /// checks: the results are the same, only slower).
    #[arg(long)]
    pub no_trunk_cache: bool,
    /// Seed (split, shuffling, crops).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Learning-rate schedule over the epochs.
    #[arg(long, value_enum, default_value_t = Schedule::Constant)]
    pub schedule: Schedule,
    /// After the run, validation top-1 of the model before and after at these test resolutions
    /// (comma-separated; default: K/2 to 2K in eight steps, K included).
    #[arg(long, value_delimiter = ',', value_parser = parse_res)]
    pub curve: Vec<usize>,
    #[command(flatten)]
    pub run: RunArgs,
    /// Output safetensors (and a .json sidecar beside it).
    #[arg(long)]
    pub out: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Images with their labels (model output indices).
struct Split {
    images: Vec<RgbImage>,
    labels: Vec<usize>,
}

fn load_split(folder: &ImageFolder, pick: &[usize], labels: &[usize]) -> (Split, usize) {
    let decoded: Vec<_> = pick
        .par_iter()
        .map(|&i| {
            decode_file(&folder.samples[i].path, DecodeLimits::default())
                .map(|img| (img, labels[folder.samples[i].class]))
        })
        .collect();
    let failed = decoded.iter().filter(|r| r.is_err()).count();
    let (images, labels) = decoded.into_iter().flatten().unzip();
    (Split { images, labels }, failed)
}

/// Train / validation indices into `folder.samples`: every fifth image of each class, in a
/// seeded order, is held out.
fn seeded_split(folder: &ImageFolder, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for class in 0..folder.classes.len() {
        let mut idx: Vec<usize> = (0..folder.samples.len())
            .filter(|&i| folder.samples[i].class == class)
            .collect();
        SeededRng::for_item(seed, class as u64).shuffle(&mut idx);
        for (j, i) in idx.into_iter().enumerate() {
            if j % 5 == 4 { val.push(i) } else { train.push(i) }
        }
    }
    (train, val)
}

fn shuffled(split: Split, seed: u64) -> Split {
    let mut order: Vec<usize> = (0..split.images.len()).collect();
    SeededRng::new(seed).shuffle(&mut order);
    let mut images: Vec<Option<RgbImage>> = split.images.into_iter().map(Some).collect();
    Split {
        labels: order.iter().map(|&i| split.labels[i]).collect(),
        images: order.iter().filter_map(|&i| images[i].take()).collect(),
    }
}

fn top1(head: &Head, trunks: &[TrunkOut], labels: &[usize]) -> anyhow::Result<f64> {
    let mut correct = 0usize;
    let mut offset = 0;
    for t in trunks {
        for row in rows(&head.infer(t))? {
            let best = crate::eval::top_k(&row, 1)[0];
            correct += usize::from(best == labels[offset]);
            offset += 1;
        }
    }
    Ok(correct as f64 / labels.len().max(1) as f64)
}

pub fn run(args: &FinetuneArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let backend = choose(args.run.device)?;
    let device = &backend.device;
    let file = WeightFile::open(&args.weights)?;
    let model = warn(Model::from_file(&file, device)?);
    let (train_split, val_split, (n_classes, unreadable)) =
        if args.data.join("train").is_dir() && args.data.join("val").is_dir() {
            let train = ImageFolder::scan(&args.data.join("train"), Check::List, DecodeLimits::default())?;
            let val = ImageFolder::scan(&args.data.join("val"), Check::List, DecodeLimits::default())?;
            anyhow::ensure!(
                train.classes == val.classes,
                "{}: train/ and val/ have different classes",
                args.data.display()
            );
            let labels =
                class_map(&train.classes, &model).map_err(|why| anyhow::anyhow!("{}: {why}", args.data.display()))?;
            let all = |f: &ImageFolder| (0..f.samples.len()).collect::<Vec<_>>();
            let (t, tf) = load_split(&train, &all(&train), &labels);
            let (v, vf) = load_split(&val, &all(&val), &labels);
            (t, v, (train.classes.len(), tf + vf))
        } else {
            let folder = ImageFolder::scan(&args.data, Check::List, DecodeLimits::default())?;
            let labels =
                class_map(&folder.classes, &model).map_err(|why| anyhow::anyhow!("{}: {why}", args.data.display()))?;
            let (train, val) = seeded_split(&folder, args.seed);
            let (t, tf) = load_split(&folder, &train, &labels);
            let (v, vf) = load_split(&folder, &val, &labels);
            (t, v, (folder.classes.len(), tf + vf))
        };
    anyhow::ensure!(
        !train_split.images.is_empty(),
        "{}: no training images could be read",
        args.data.display()
    );
    // Batches mix classes (seeded shuffle once; each epoch then visits the batches in a new order,
    // which keeps the cached trunk outputs per batch).
    let train_split = shuffled(train_split, args.seed);
    let recipe = model.recipe;
    let test_t = TestTransform {
        res: args.res,
        crop_ratio: recipe.crop_ratio,
        interpolation: recipe.interpolation,
    };
    let batch = args.run.batch.max(2);
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
    let val_trunks = trunks(&val_split.images, &test_transform);
    let mut head = model.net.head();
    let before = top1(&head, &val_trunks, &val_split.labels)?;
    let trainable = match (args.train_bn, args.train_classifier) {
        (false, false) => Trainable {
            classifier: true,
            bn_affine: true,
        },
        (bn, fc) => Trainable {
            classifier: fc,
            bn_affine: bn,
        },
    };
    let lr = args.lr.unwrap_or_else(|| Sgd::fixres_lr(batch));
    let mut sgd = Sgd::new(lr, 0.9, 1e-4);
    // With test-time augmentation the trunk's output is a function of (image, K): computed once,
    // kept in memory up to --cache-mb and in a temporary file beyond.
    let n_batches = train_split.images.len().div_ceil(batch);
    let training_started = Instant::now();
    let mut cache = None;
    if args.da == Augmentation::Test && !args.no_trunk_cache {
        let mut c = TrunkCache::new(args.cache_mb << 20);
        for b in 0..n_batches {
            c.push(trunk_of(&train_split.images, b, &test_transform))?;
        }
        cache = Some(c);
    }
    let bar = progress_bar((args.epochs * train_split.images.len()) as u64, "finetune");
    let mut epochs = Vec::new();
    let mut stopped = None;
    'epochs: for epoch in 0..args.epochs {
        sgd.lr = args.schedule.lr(lr, epoch, args.epochs);
        let train_t = TrainTransform {
            res: args.res,
            crop: RandomResizedCrop::default(),
            interpolation: recipe.interpolation,
            hflip: true,
        };
        let seed = args.seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9);
        let augment = |img: &RgbImage, i: usize| train_t.apply(img, &mut SeededRng::for_item(seed, i as u64)).image;
        let mut losses = Vec::new();
        let mut batch_order: Vec<usize> = (0..n_batches).collect();
        SeededRng::for_item(args.seed, epoch as u64).shuffle(&mut batch_order);
        for b in batch_order {
            let trunk = &match (&mut cache, args.da) {
                (Some(c), _) => c.get(b, device)?,
                (None, Augmentation::Test) => trunk_of(&train_split.images, b, &test_transform),
                (None, Augmentation::Train) => trunk_of(&train_split.images, b, &augment),
            };
            let labels = &train_split.labels[b * batch..(b * batch + batch).min(train_split.labels.len())];
            let good = head.clone();
            let loss = head.step(trunk, labels, trainable, &mut sgd, device);
            if !loss.is_finite() || !head.is_finite() {
                head = good;
                stopped = Some(format!(
                    "epoch {epoch}, batch {b}: loss {loss}; kept the last good weights"
                ));
                break 'epochs;
            }
            losses.push(loss);
            bar.inc(labels.len() as u64);
        }
        let val = top1(&head, &val_trunks, &val_split.labels)?;
        epochs.push(
            json!({"epoch": epoch, "loss": losses.iter().sum::<f32>() / losses.len().max(1) as f32, "val_top1": val}),
        );
    }
    bar.finish_and_clear();
    let train_seconds = training_started.elapsed().as_secs_f64();
    let after = top1(&head, &val_trunks, &val_split.labels)?;
    // The accuracy-against-resolution curve of the new model beside the old (same trunk).
    let original = model.net.head();
    let curve_res: Vec<usize> = if args.curve.is_empty() {
        let mut r: Vec<usize> = (0..8)
            .map(|i| (args.res / 2 + i * (args.res * 3 / 2) / 7).max(16))
            .collect();
        r.push(args.res);
        r.sort_unstable();
        r.dedup();
        r
    } else {
        args.curve.clone()
    };
    let mut curve = Vec::new();
    for &k in &curve_res {
        let t = TestTransform {
            res: k,
            crop_ratio: recipe.crop_ratio,
            interpolation: recipe.interpolation,
        };
        let tr = trunks(&val_split.images, &|img: &RgbImage, _| t.apply(img));
        curve.push(json!({"res": k, "before": top1(&original, &tr, &val_split.labels)?, "after": top1(&head, &tr, &val_split.labels)?}));
    }
    let config = json!({"res": args.res, "epochs": args.epochs, "batch": batch, "lr": lr, "momentum": 0.9,
        "weight_decay": 1e-4, "schedule": args.schedule, "train_bn": trainable.bn_affine, "train_classifier": trainable.classifier,
        "da": args.da, "seed": args.seed});
    let summary = json!({
        "weights": args.weights, "arch": model.arch, "data": args.data, "out": args.out, "device": backend,
        "train_images": train_split.images.len(), "cache_spilled_batches": cache.as_ref().map_or(0, TrunkCache::spilled), "val_images": val_split.images.len(), "classes": n_classes,
        "unreadable": unreadable, "config": config, "val_top1_before": before, "val_top1_after": after, "curve": curve,
        "epochs": epochs, "stopped": stopped, "seconds": started.elapsed().as_secs_f64(), "train_seconds": train_seconds,
    });
    export(&file, &head, &args.out, &summary, &model)?;
    if args.json {
        print_json(&summary)?;
    } else {
        println!(
            "{} fine-tuned at {} on {} images: val top-1 {:.2}% -> {:.2}% ({} val images), wrote {}",
            model.arch,
            args.res,
            train_split.images.len(),
            100.0 * before,
            100.0 * after,
            val_split.images.len(),
            args.out.display()
        );
        if let Some(s) = &summary["stopped"].as_str() {
            eprintln!("stopped early: {s}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the whole model (torchvision keys, f32, head replaced) and a JSON sidecar, atomically.
fn export(
    file: &WeightFile,
    head: &Head,
    out: &Path,
    summary: &serde_json::Value,
    model: &Model,
) -> anyhow::Result<()> {
    let mut metadata: BTreeMap<String, String> = [
        ("format", "pt".to_owned()),
        ("arch", model.arch.clone()),
        ("fixres", summary.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    if let Some(names) = &model.class_names {
        metadata.insert("classes".into(), serde_json::to_string(names)?);
    }
    let bytes = file.export_with(&head.named_tensors(), &metadata)?;
    write_atomic(out, &bytes)?;
    let mut sidecar = out.as_os_str().to_owned();
    sidecar.push(".json");
    write_atomic(Path::new(&sidecar), serde_json::to_string_pretty(summary)?.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_start_at_the_rate_and_decay() {
        assert_eq!(Schedule::Constant.lr(0.1, 5, 10), 0.1);
        assert_eq!(Schedule::Cosine.lr(0.1, 0, 10), 0.1);
        assert!((Schedule::Cosine.lr(0.1, 5, 10) - 0.05).abs() < 1e-12);
        assert!((Schedule::Step.lr(1.0, 4, 9) - 0.1).abs() < 1e-12);
        assert!((Schedule::Step.lr(1.0, 8, 9) - 0.01).abs() < 1e-12);
    }
}
