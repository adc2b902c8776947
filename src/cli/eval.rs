//! `fixres eval`: top-1/top-5 and pooled-activation statistics per test resolution.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;
use serde_json::json;

use super::{RecipeArgs, RunArgs, parse_res, print_json, progress_bar, warn};
use crate::backend::choose;
use crate::data::{Check, DecodeLimits, ImageFolder, Skip};
use crate::eval::{PooledStats, StatsAccumulator, Sweep, match_classes};
use crate::model::Model;
use crate::stats::Tally;

/// Arguments of `fixres eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Weights (safetensors, torchvision key names).
    #[arg(long)]
    pub weights: PathBuf,
    /// A labelled ImageFolder.
    #[arg(long)]
    pub data: PathBuf,
    /// Test resolutions, comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = parse_res, default_value = "224")]
    pub res: Vec<usize>,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub recipe: RecipeArgs,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// One resolution's line of the report.
#[derive(Serialize)]
struct ResResult {
    res: usize,
    /// Images scored.
    images: usize,
    top1: f64,
    top5: f64,
    pooled: PooledStats,
}

pub fn run(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    let backend = choose(args.run.device)?;
    let model = args.recipe.apply(warn(Model::load(&args.weights, &backend.device)?))?;
    let root = crate::data::split::held_out(&args.data);
    if root != args.data {
        eprintln!("{}: has train/ and val/; scoring val/", args.data.display());
    }
    let mut folder = ImageFolder::scan(&root, Check::List, DecodeLimits::default())?;
    let matched = match_classes(&folder.classes, model.class_names.as_deref(), model.classes)
        .map_err(|why| anyhow::anyhow!("{}: cannot score this dataset: {why}", args.data.display()))?;
    let labels = &matched.outputs;
    let files: Vec<PathBuf> = folder.samples.iter().map(|s| s.path.clone()).collect();
    let targets: Vec<usize> = folder.samples.iter().map(|s| labels[s.class]).collect();
    let n_res = args.res.len();
    let mut tallies = vec![Tally::default(); n_res];
    let mut stats: Vec<StatsAccumulator> = (0..n_res).map(|_| StatsAccumulator::default()).collect();
    let bar = progress_bar(files.len() as u64, "eval");
    let sweep = Sweep::new(&model, &backend, &files, &args.res, args.run.batch);
    let failed = sweep.run(
        |out| {
            for ((&i, p), l) in out.indices.iter().zip(&out.pooled).zip(&out.logits) {
                stats[out.res_index].extend(p);
                tallies[out.res_index].add(l, targets[i]);
            }
        },
        |done, _| {
            bar.set_position(done as u64);
            true
        },
    )?;
    bar.finish_and_clear();
    folder.skipped.extend(failed.into_iter().map(Skip::Image));
    if tallies.iter().all(|t| t.scored == 0) {
        for skip in &folder.skipped {
            eprintln!("  {skip}");
        }
        anyhow::bail!(
            "{}: no image could be scored ({} skipped, listed above); no accuracy to report",
            args.data.display(),
            folder.skipped.len()
        );
    }
    let per_res: Vec<ResResult> = (0..n_res)
        .map(|r| ResResult {
            res: args.res[r],
            images: tallies[r].scored,
            top1: tallies[r].top1_share(),
            top5: tallies[r].top5_share(),
            pooled: stats[r].finish(),
        })
        .collect();
    if args.json {
        print_json(&json!({
            "weights": crate::fsutil::path_text(&args.weights),
            "arch": model.arch,
            "library": model.library,
            "classes": model.classes,
            "data": crate::fsutil::path_text(&args.data),
            "dataset_classes": folder.classes,
            "classes_matched": matched.rule,
            "recipe": model.recipe,
            "recipe_source": model.recipe_source,
            "device": backend,
            "warnings": model.warnings,
            "results": per_res,
            "skipped": folder.skipped,
        }))?;
    } else {
        println!(
            "{} ({} classes) on {} (classes matched {}) [{}: {}]",
            model.arch,
            model.classes,
            args.data.display(),
            matched.rule.text(),
            backend.kind,
            backend.adapter
        );
        for r in &per_res {
            println!(
                "  K={:<4} top-1 {:6.2}%  top-5 {:6.2}%  pooled mean {:.4}  zeros {:.1}%  ({} images)",
                r.res,
                100.0 * r.top1,
                100.0 * r.top5,
                r.pooled.mean,
                100.0 * r.pooled.zero_share,
                r.images
            );
        }
        for s in &folder.skipped {
            eprintln!("skipped: {s}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
