//! `fixres train`: a small ResNet trained from scratch at K_train with RandomResizedCrop + flip,
//! exported like a fine-tune (torchvision keys, f32, metadata, JSON sidecar).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{RunArgs, parse_res, print_json, progress_bar};
use crate::backend::choose;
use crate::jobs::{Job, no_wake};
use crate::train::{Arch, Config, Progress, Trained, export, train};

/// Arguments of `fixres train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A labelled ImageFolder; with `train/` and `val/` sub-folders those are used, else a seeded
    /// fifth of each class is held out for validation.
    #[arg(long)]
    pub data: PathBuf,
    /// Architecture (torchvision layout and key names).
    #[arg(long, value_enum, default_value_t = Arch::ResnetTiny)]
    pub arch: Arch,
    /// The train resolution, K_train (RandomResizedCrop's output side).
    #[arg(long, value_parser = parse_res)]
    pub res: usize,
    /// Passes over the training images.
    #[arg(long, default_value_t = 15)]
    pub epochs: usize,
    /// Peak learning rate (cosine schedule down to 0).
    #[arg(long, default_value_t = 0.1, value_parser = super::parse_positive)]
    pub lr: f64,
    /// Weight decay.
    #[arg(long, default_value_t = 5e-4, value_parser = super::parse_non_negative)]
    pub weight_decay: f64,
    /// Seed (split, order, crops).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub run: RunArgs,
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
    let backend = choose(args.run.device)?;
    let config = Config {
        data: args.data.clone(),
        arch: args.arch,
        res: args.res,
        epochs: args.epochs,
        batch: args.run.training_batch()?,
        lr: args.lr,
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
