//! `fixres train`: a small ResNet trained from scratch at K_train with RandomResizedCrop + flip,
//! or (`--from`) a pretrained network with a new classifier for the folder's classes; either
//! exported like a fine-tune (torchvision keys, f32, metadata, JSON sidecar).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use super::finetune::run_job;
use super::{RecipeArgs, RunArgs, parse_res, print_json, progress_bar, warn};
use crate::backend::choose;
use crate::finetune::Trainable;
use crate::finetune::run::{Augmentation, Config as FinetuneConfig, Schedule, export as export_transfer};
use crate::jobs::{Job, no_wake};
use crate::model::Model;
use crate::model::weights::WeightFile;
use crate::train::{Arch, Config, Progress, Trained, export, train};
use crate::training::Part;

/// Memory for a transfer's cached trunk outputs (`fixres finetune`'s default `--cache-mb`);
/// beyond it they go to a temporary file.
const TRUNK_CACHE_BYTES: usize = 4096 << 20;

/// Arguments of `fixres train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A labelled ImageFolder; with `train/` and `val/` sub-folders those are used, else a seeded
    /// fifth of each class is held out for validation (at least one image of a class of two or more).
    #[arg(long)]
    pub data: PathBuf,
    /// Architecture (torchvision layout and key names) of a network trained from scratch.
    #[arg(long, value_enum, default_value_t = Arch::ResnetTiny, conflicts_with = "from")]
    pub arch: Arch,
    /// Pretrained weights to start from (a transfer): the network is kept and its classifier
    /// replaced by a new one for the folder's classes, initialised as PyTorch initialises
    /// `nn.Linear` (uniform in ±1/√features) from --seed. Any family `fixres` loads.
    #[arg(long)]
    pub from: Option<PathBuf>,
    /// With --from, what trains beside the new classifier [default: head]: `head` the last
    /// normalisation (any family, over the frozen trunk); `last-stage` also the last block group
    /// and `all` the whole network, their BatchNorms in training mode (torchvision ResNets and
    /// EfficientNet-Lite; learning rate 0.01 · batch / 256 unless --lr).
    #[arg(long, value_enum, requires = "from")]
    pub trainable: Option<Part>,
    /// With --from, the training images' transform [default: train]: `train` is
    /// RandomResizedCrop + flip at K_train, `test` Resize + CenterCrop at K_train (the frozen
    /// trunk then runs once per image, its outputs cached).
    #[arg(long, value_enum, requires = "from")]
    pub da: Option<Augmentation>,
    /// The train resolution, K_train (RandomResizedCrop's output side).
    #[arg(long, value_parser = parse_res)]
    pub res: usize,
    /// Passes over the training images.
    #[arg(long, default_value_t = 15)]
    pub epochs: usize,
    /// Peak learning rate, cosine schedule down to 0 [default: 0.1 from scratch; with --from,
    /// 0.1 · batch / 256 (SGD momentum 0.9): the linear-probe rate, since the new classifier
    /// starts at random over fixed features, ten times the usual rate for fine-tuning a
    /// pretrained network].
    #[arg(long, value_parser = super::parse_positive)]
    pub lr: Option<f64>,
    /// Weight decay of a network trained from scratch (a transfer uses the fine-tune's 1e-4).
    #[arg(long, default_value_t = 5e-4, value_parser = super::parse_non_negative, conflicts_with = "from")]
    pub weight_decay: f64,
    /// With --from, validation top-1 before and after at these test resolutions after the run
    /// (comma-separated; default: K/2 to 2K in eight steps, K included).
    #[arg(long, value_delimiter = ',', value_parser = parse_res, requires = "from")]
    pub curve: Vec<usize>,
    /// With --from and --da test, recompute the trunk every epoch (for benchmarks and checks:
    /// the same weights, only slower).
    #[arg(long, requires = "from")]
    pub no_trunk_cache: bool,
    /// Seed (split, order, crops; the initial weights, or with --from the new classifier).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub recipe: RecipeArgs,
    /// Output safetensors (and a .json sidecar beside it).
    #[arg(long)]
    pub out: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

enum Event {
    Progress(Progress),
    Done(Box<anyhow::Result<Trained>>),
}

pub fn run(args: &TrainArgs) -> anyhow::Result<ExitCode> {
    if let Some(from) = &args.from {
        return transfer(args, from);
    }
    let backend = choose(args.run.device)?;
    let config = Config {
        data: args.data.clone(),
        arch: args.arch,
        res: args.res,
        epochs: args.epochs,
        batch: args.run.training_batch()?,
        lr: args.lr.unwrap_or(0.1),
        weight_decay: args.weight_decay,
        seed: args.seed,
    };
    let mut job = Job::spawn("train", no_wake(), move |r| {
        let result = train(&config, &backend, &mut |p| r.send(Event::Progress(p)));
        r.send(Event::Done(Box::new(result)));
    })?;
    let bar = progress_bar(0, "train");
    let mut trained = None;
    while let Some(event) = job.recv() {
        match event {
            Event::Progress(Progress::Step {
                epoch,
                loss,
                images_done,
                images_total,
            }) => {
                bar.set_length(images_total as u64);
                bar.set_position(images_done as u64);
                bar.set_message(format!("epoch {} loss {loss:.3}", epoch + 1));
            }
            Event::Progress(Progress::Epoch { epoch, loss, val_top1 }) => {
                bar.println(format!(
                    "epoch {}: loss {loss:.4}, {}",
                    epoch + 1,
                    crate::training::val_text(val_top1)
                ));
            }
            Event::Done(result) => trained = Some((*result)?),
        }
    }
    bar.finish_and_clear();
    let trained = trained.ok_or_else(|| anyhow::anyhow!("the training job ended without a result"))?;
    let summary = export(&trained, args.arch, &args.out)?;
    if args.json {
        print_json(&serde_json::to_value(&summary)?)?;
    } else {
        println!(
            "{} trained at {} on {} images: {} ({:.0} s), wrote {}",
            args.arch.name(),
            args.res,
            summary.train_images,
            crate::training::val_text(summary.val_top1),
            summary.seconds,
            args.out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `fixres train --from`: the pretrained network with a new classifier for the folder's classes,
/// trained by the fine-tune's engine (`finetune::run`, `Config::new_classifier`) at K_train.
fn transfer(args: &TrainArgs, from: &Path) -> anyhow::Result<ExitCode> {
    let part = args.trainable.unwrap_or(Part::Head);
    let backend = choose(args.run.device)?;
    let file = WeightFile::open(from)?;
    let model = Arc::new(args.recipe.apply(warn(Model::from_file(&file, &backend.device)?))?);
    let config = FinetuneConfig {
        data: args.data.clone(),
        res: args.res,
        epochs: args.epochs,
        batch: args.run.training_batch()?,
        lr: args.lr,
        trainable: Trainable {
            classifier: true,
            bn_affine: true,
        },
        da: args.da.unwrap_or(Augmentation::Train),
        cache_bytes: TRUNK_CACHE_BYTES,
        trunk_cache: !args.no_trunk_cache,
        trunk_parts: None,
        seed: args.seed,
        schedule: Schedule::Cosine,
        curve: args.curve.clone(),
        recipe: model.recipe,
        new_classifier: Some(part),
    };
    let outcome = run_job(&model, from, &backend, config, "train")?;
    let summary = export_transfer(&file, &outcome.trained, &args.out, &outcome.summary, &model)?;
    if args.json {
        print_json(&serde_json::to_value(&summary)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let (train_images, val_images) = outcome.images;
    let val = if val_images == 0 {
        "no validation images".to_owned()
    } else {
        format!(
            "val top-1 {:.2}% -> {:.2}% ({val_images} val images)",
            100.0 * outcome.before,
            100.0 * outcome.after
        )
    };
    println!(
        "{} with a new classifier for {} classes ({}) trained at {} on {train_images} images: {val}, wrote {}",
        model.arch,
        summary.classes,
        part.name(),
        args.res,
        args.out.display()
    );
    if let Some(cached) = summary.cache_seconds {
        println!(
            "the trunk ran once over the training images ({cached:.1} s, cached); the {} epoch(s) then took {:.1} s",
            summary.epochs.len(),
            summary.train_seconds - cached
        );
    }
    if let Some(s) = &outcome.stopped {
        eprintln!("stopped early: {s}");
    }
    Ok(ExitCode::SUCCESS)
}
