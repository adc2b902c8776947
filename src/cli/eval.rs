//! `fixres eval`: top-1/top-5 and pooled-activation statistics per test resolution.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::{RunArgs, parse_res, print_json, progress_bar, warn};
use crate::backend::choose;
use crate::data::{Check, DecodeLimits, ImageFolder, Skip};
use crate::eval::{StatsAccumulator, class_map, run_model, top_k};
use crate::model::Model;

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
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    let backend = choose(args.run.device)?;
    let model = warn(Model::load(&args.weights, &backend.device)?);
    let root = crate::data::split::held_out(&args.data);
    if root != args.data {
        eprintln!("{}: has train/ and val/; scoring val/", args.data.display());
    }
    let mut folder = ImageFolder::scan(&root, Check::List, DecodeLimits::default())?;
    let labels = class_map(&folder.classes, &model)
        .map_err(|why| anyhow::anyhow!("{}: cannot score this dataset: {why}", args.data.display()))?;
    let files: Vec<PathBuf> = folder.samples.iter().map(|s| s.path.clone()).collect();
    let targets: Vec<usize> = folder.samples.iter().map(|s| labels[s.class]).collect();
    let n_res = args.res.len();
    let (mut top1, mut top5, mut scored) = (vec![0usize; n_res], vec![0usize; n_res], vec![0usize; n_res]);
    let mut stats: Vec<StatsAccumulator> = (0..n_res).map(|_| StatsAccumulator::default()).collect();
    let bar = progress_bar(files.len() as u64, "eval");
    let failed = run_model(
        &model,
        model.recipe,
        &backend.device,
        &files,
        &args.res,
        args.run.batch,
        |r, indices, pooled, logits| {
            for ((&i, p), l) in indices.iter().zip(&pooled).zip(&logits) {
                stats[r].extend(p);
                let best = top_k(l, 5);
                top1[r] += usize::from(best.first() == Some(&targets[i]));
                top5[r] += usize::from(best.contains(&targets[i]));
                scored[r] += 1;
            }
        },
        |done, _| {
            bar.set_position(done as u64);
            true
        },
    )?;
    bar.finish_and_clear();
    folder.skipped.extend(failed.into_iter().map(Skip::Image));
    if scored.iter().all(|&n| n == 0) {
        for skip in &folder.skipped {
            eprintln!("  {skip}");
        }
        anyhow::bail!(
            "{}: no image could be scored ({} skipped, listed above); no accuracy to report",
            args.data.display(),
            folder.skipped.len()
        );
    }
    let per_res: Vec<_> = (0..n_res)
        .map(|r| {
            let n = scored[r].max(1) as f64;
            json!({
                "res": args.res[r],
                "images": scored[r],
                "top1": top1[r] as f64 / n,
                "top5": top5[r] as f64 / n,
                "pooled": stats[r].finish(),
            })
        })
        .collect();
    if args.json {
        print_json(&json!({
            "weights": crate::fsutil::path_text(&args.weights),
            "arch": model.arch,
            "classes": model.classes,
            "data": crate::fsutil::path_text(&args.data),
            "dataset_classes": folder.classes,
            "recipe": model.recipe,
            "device": backend,
            "warnings": model.warnings,
            "results": per_res,
            "skipped": folder.skipped,
        }))?;
    } else {
        println!(
            "{} ({} classes) on {} [{}: {}]",
            model.arch,
            model.classes,
            args.data.display(),
            backend.kind,
            backend.adapter
        );
        for r in &per_res {
            println!(
                "  K={:<4} top-1 {:6.2}%  top-5 {:6.2}%  pooled mean {:.4}  zeros {:.1}%  ({} images)",
                r["res"],
                100.0 * r["top1"].as_f64().unwrap_or(0.0),
                100.0 * r["top5"].as_f64().unwrap_or(0.0),
                r["pooled"]["mean"].as_f64().unwrap_or(0.0),
                100.0 * r["pooled"]["zero_share"].as_f64().unwrap_or(0.0),
                r["images"]
            );
        }
        for s in &folder.skipped {
            eprintln!("skipped: {s}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
