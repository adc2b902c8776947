//! `fixres adapt`: parametric adaptation (paper §3.2) of a classifier to a test resolution: the
//! Fréchet fits of its pooled activations at K_train and K_test, the quantile map between them
//! folded into the classifier, then export.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{RecipeArgs, RunArgs, parse_positive, parse_res, print_json, progress_bar, warn};
use crate::adapt::{Config, adapt, export};
use crate::backend::choose;
use crate::eval::Scores;
use crate::frechet::PAPER_XI;
use crate::model::Model;
use crate::model::weights::WeightFile;

/// Arguments of `fixres adapt`.
#[derive(Debug, Args)]
pub struct AdaptArgs {
    /// Weights to adapt.
    #[arg(long)]
    pub weights: PathBuf,
    /// An ImageFolder (labels are not needed to fit; where its classes match the model's, it is
    /// scored before and after). With `train/` and `val/`, fitted on train/, scored on val/.
    #[arg(long)]
    pub data: PathBuf,
    /// The resolution the network was trained at, K_train.
    #[arg(long = "train-res", value_parser = parse_res)]
    pub train_res: usize,
    /// The test resolution to adapt to, K_test.
    #[arg(long, value_parser = parse_res)]
    pub res: usize,
    /// Shape of the Fréchet fits (the paper fixes 0.3).
    #[arg(long, default_value_t = PAPER_XI, value_parser = parse_positive)]
    pub xi: f64,
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

/// Runs `fixres adapt`.
pub fn run(args: &AdaptArgs) -> anyhow::Result<ExitCode> {
    let backend = choose(args.run.device)?;
    let file = WeightFile::open(&args.weights)?;
    let model = args.recipe.apply(warn(Model::from_file(&file, &backend.device)?))?;
    let config = Config {
        data: args.data.clone(),
        train_res: args.train_res,
        res: args.res,
        xi: args.xi,
        batch: args.run.batch,
        recipe: model.recipe,
    };
    let bar = progress_bar(0, "adapt");
    let (head, report) = adapt(&model, &args.weights, &backend, &config, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        true
    })?;
    bar.finish_and_clear();
    let report = export(&file, &head, &args.out, &report, &model)?;
    if args.json {
        print_json(&serde_json::to_value(&report)?)?;
    } else {
        let scores = Scores::text(report.scores.as_ref(), report.not_scored.as_deref());
        let (t, q) = (report.map.train, report.map.test);
        println!(
            "{}: Fréchet (ξ={}) at K={}: loc {:.4} scale {:.4}; at K={}: loc {:.4} scale {:.4}; map {:.4}·x + {:.4} \
             over {} images; {scores}; wrote {}",
            model.arch,
            args.xi,
            args.train_res,
            t.loc,
            t.scale,
            args.res,
            q.loc,
            q.scale,
            report.affine[0],
            report.affine[1],
            report.images,
            args.out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
