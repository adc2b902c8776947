//! `fixres recalibrate`: label-free re-estimation of the last BatchNorm's (or every BatchNorm's)
//! running statistics at a test resolution (`torch.optim.swa_utils.update_bn`'s semantics), then
//! export.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{RecipeArgs, RunArgs, parse_res, print_json, progress_bar, warn};
use crate::backend::choose;
use crate::eval::Scores;
use crate::model::Model;
use crate::model::weights::WeightFile;
use crate::recalibrate::{Config, Layers, export, recalibrate};

/// Arguments of `fixres recalibrate`.
#[derive(Debug, Args)]
pub struct RecalibrateArgs {
    /// Weights whose last BatchNorm to re-estimate.
    #[arg(long)]
    pub weights: PathBuf,
    /// An ImageFolder (labels are not needed to estimate; where its classes match the model's, it
    /// is scored before and after). With `train/` and `val/`, estimated on train/, scored on val/.
    #[arg(long)]
    pub data: PathBuf,
    /// The test resolution to re-estimate at, K_test.
    #[arg(long, value_parser = parse_res)]
    pub res: usize,
    /// Which BatchNorms: the last one (any family with a BatchNorm head), or all of them with the
    /// network in training mode, as `update_bn` (torchvision ResNets and EfficientNet-Lite).
    #[arg(long, value_enum, default_value_t = Layers::Last)]
    pub layers: Layers,
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

/// Runs `fixres recalibrate`.
pub fn run(args: &RecalibrateArgs) -> anyhow::Result<ExitCode> {
    let backend = choose(args.run.device)?;
    let file = WeightFile::open(&args.weights)?;
    let model = args.recipe.apply(warn(Model::from_file(&file, &backend.device)?))?;
    let config = Config {
        data: args.data.clone(),
        res: args.res,
        batch: args.run.training_batch()?,
        recipe: model.recipe,
        layers: args.layers,
    };
    let bar = progress_bar(0, "recalibrate");
    let (recalibrated, report) = recalibrate(&model, &args.weights, &backend, &config, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        true
    })?;
    bar.finish_and_clear();
    let report = export(&file, &recalibrated, &args.out, &report, &model)?;
    if args.json {
        print_json(&serde_json::to_value(&report)?)?;
    } else {
        let scores = Scores::text(report.scores.as_ref(), report.not_scored.as_deref());
        println!(
            "{} {} re-estimated at K={} over {} images ({} batches): {scores}; wrote {}",
            model.arch,
            report.layer,
            args.res,
            report.images,
            report.batches,
            args.out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
