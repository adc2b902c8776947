//! `fixres finetune`: the FixRes fine-tune (paper §4) of a classifier at a test resolution, then
//! export of the whole model with torchvision key names. The run itself is `finetune::run`,
//! started as a job; this command shows its progress with a bar and prints the summary.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use super::{RecipeArgs, RunArgs, ShardArgs, parse_res, print_json, progress_bar, warn};
use crate::backend::{Backend, choose};
use crate::finetune::Trainable;
use crate::finetune::run::{Augmentation, Config, Outcome, Progress, Schedule, export, finetune};
use crate::jobs::{Job, no_wake};
use crate::model::Model;
use crate::model::weights::WeightFile;

/// Arguments of `fixres finetune`.
#[derive(Debug, Args)]
pub struct FinetuneArgs {
    /// Weights to start from.
    #[arg(long)]
    pub weights: PathBuf,
    /// A labelled ImageFolder; with `train/` and `val/` sub-folders those are used, else a seeded
    /// fifth of each class is held out for validation (at least one image of a class of two or more).
    #[arg(long)]
    pub data: PathBuf,
    /// The test resolution to fine-tune for, K_test.
    #[arg(long, value_parser = parse_res)]
    pub res: usize,
    /// Passes over the training images.
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Learning rate (default: FixRes's 8e-3 · batch / 512).
    #[arg(long, value_parser = super::parse_positive)]
    pub lr: Option<f64>,
    /// Train the last normalisation's affine (BatchNorm; ConvNeXt's and ViT's LayerNorm); with
    /// --train-classifier: the paper's setting; neither flag: both train.
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
    #[command(flatten)]
    pub recipe: RecipeArgs,
    /// A trunk cache written in shards: with --shard, run the trunk over that shard of the
    /// training images (test transform at --res) and write its part here, nothing else; without,
    /// train the head from the complete cache here instead of running the trunk (the format:
    /// ARCHITECTURE.md, "Shards").
    #[arg(long)]
    pub trunk_cache: Option<PathBuf>,
    #[command(flatten)]
    pub shard: ShardArgs,
    /// Output safetensors (and a .json sidecar beside it).
    #[arg(long, required_unless_present = "shard")]
    pub out: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

enum Event {
    Progress(Progress),
    Done(Box<anyhow::Result<Outcome>>),
}

pub fn run(args: &FinetuneArgs) -> anyhow::Result<ExitCode> {
    let shard = args.shard.resolve()?;
    let backend = choose(args.run.device)?;
    let file = WeightFile::open(&args.weights)?;
    let model = Arc::new(args.recipe.apply(warn(Model::from_file(&file, &backend.device)?))?);
    if let Some(shard) = shard {
        return trunk_shard(args, &model, &backend, shard);
    }
    let out = args
        .out
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("--out: where to write the fine-tuned model"))?;
    let config = Config {
        data: args.data.clone(),
        res: args.res,
        epochs: args.epochs,
        batch: args.run.training_batch()?,
        lr: args.lr,
        trainable: match (args.train_bn, args.train_classifier) {
            (false, false) => Trainable {
                classifier: true,
                bn_affine: true,
            },
            (bn, fc) => Trainable {
                classifier: fc,
                bn_affine: bn,
            },
        },
        da: args.da,
        cache_bytes: args.cache_mb << 20,
        trunk_cache: !args.no_trunk_cache,
        trunk_parts: args.trunk_cache.clone(),
        seed: args.seed,
        schedule: args.schedule,
        curve: args.curve.clone(),
        recipe: model.recipe,
        new_classifier: None,
    };
    let outcome = run_job(&model, &args.weights, &backend, config, "finetune")?;
    let summary = export(&file, &outcome.trained, out, &outcome.summary, &model)?;
    if args.json {
        print_json(&serde_json::to_value(&summary)?)?;
    } else {
        let val = if outcome.images.1 == 0 {
            "no validation images".to_owned()
        } else {
            format!(
                "val top-1 {:.2}% -> {:.2}% ({} val images)",
                100.0 * outcome.before,
                100.0 * outcome.after,
                outcome.images.1
            )
        };
        println!(
            "{} fine-tuned at {} on {} images: {val}, wrote {}",
            model.arch,
            args.res,
            outcome.images.0,
            out.display()
        );
        if let Some(s) = &outcome.stopped {
            eprintln!("stopped early: {s}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `--shard I/N --trunk-cache DIR`: the trunk over the shard's training images, written to DIR.
fn trunk_shard(
    args: &FinetuneArgs,
    model: &Model,
    backend: &Backend,
    shard: crate::shard::Shard,
) -> anyhow::Result<ExitCode> {
    let dir = args.trunk_cache.as_ref().ok_or_else(|| {
        anyhow::anyhow!("--shard {shard}: a shard writes its part of a trunk cache; give --trunk-cache DIR")
    })?;
    anyhow::ensure!(
        args.da == Augmentation::Test,
        "--shard {shard}: a trunk cache holds the test transform's outputs; --da train runs the trunk every step"
    );
    let weights =
        std::fs::read(&args.weights).map_err(|e| anyhow::anyhow!("{}: cannot read ({e})", args.weights.display()))?;
    let batch = args.run.batch;
    let bar = progress_bar(0, "trunk");
    let written = crate::finetune::trunk_parts::write_shard(
        model,
        &weights,
        model.recipe,
        args.res,
        &args.data,
        args.seed,
        batch,
        shard,
        dir,
        &backend.device,
        &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            true
        },
    )?;
    bar.finish_and_clear();
    if args.json {
        print_json(&serde_json::to_value(&written)?)?;
    } else {
        println!(
            "shard {shard}: trunk outputs of {} of {} training images at {} ({:.1} MB) -> {}",
            written.cached,
            written.images,
            args.res,
            written.bytes as f64 / 1e6,
            written.manifest
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `finetune` on `config` as a job named `name` (`fixres finetune`, and `fixres train
/// --from`, which runs the same engine with a new classifier), showing its progress with a bar.
pub(super) fn run_job(
    model: &Arc<Model>,
    weights: &Path,
    backend: &Backend,
    config: Config,
    name: &str,
) -> anyhow::Result<Outcome> {
    let (job_model, weights, job_backend) = (Arc::clone(model), weights.to_owned(), backend.clone());
    let mut job = Job::spawn(name, no_wake(), move |r| {
        let result = finetune(&job_model, &weights, &job_backend, &config, &mut |p| {
            r.send(Event::Progress(p))
        });
        r.send(Event::Done(Box::new(result)));
    })?;
    let bar = progress_bar(0, name);
    let mut outcome = None;
    while let Some(event) = job.recv() {
        match event {
            Event::Progress(Progress::Stage(stage)) => bar.set_message(stage),
            Event::Progress(Progress::Step {
                epoch,
                images_done,
                images_total,
                ..
            }) => {
                bar.set_length(images_total as u64);
                bar.set_position(images_done as u64);
                bar.set_message(format!("epoch {}", epoch + 1));
            }
            Event::Progress(Progress::Epoch { .. }) => {}
            Event::Done(result) => outcome = Some((*result)?),
        }
    }
    bar.finish_and_clear();
    outcome.ok_or_else(|| anyhow::anyhow!("the {name} job ended without a result"))
}
