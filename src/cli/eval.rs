//! `fixres eval`: top-1/top-5 and pooled-activation statistics per test resolution.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;
use serde_json::json;

use super::{RecipeArgs, RunArgs, parse_res, print_json, progress_bar, warn};
use crate::backend::choose;
use crate::data::{Check, DecodeLimits, ImageFolder, Skip};
use crate::eval::{Cost, PerImage, PooledStats, StatsAccumulator, Sweep, match_classes, pareto_front};
use crate::model::Model;
use crate::stats::{FlipCounts, Tally};

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
    /// Also write each image's result at each resolution to this CSV (file, class, res, top1,
    /// top5, predicted, p_predicted, p_true).
    #[arg(long = "per-image")]
    pub per_image: Option<PathBuf>,
    /// Seed of the order the images are visited in: class-stratified and random, so that the
    /// images scored so far are a sample of the folder with every class in its share, and a
    /// stopped or limited sweep is an estimate of the whole (with its 95 % interval).
    #[arg(long, default_value_t = 0)]
    pub order_seed: u64,
    /// Score the first N images of the order only.
    #[arg(long, value_parser = super::parse_positive_count)]
    pub limit: Option<usize>,
    /// Score the first N images of each class in the order only.
    #[arg(long, value_parser = super::parse_positive_count)]
    pub per_class: Option<usize>,
    /// Stop once every resolution's 95 % interval of top-1 is within ± this many percentage
    /// points (e.g. 2: 76 ± 2 %).
    #[arg(long, value_parser = super::parse_positive)]
    pub until_ci: Option<f64>,
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
    /// The 95 % interval of top-1 (Wilson's), for the folder the scored images sample.
    top1_ci: [f64; 2],
    top5: f64,
    /// Multiply-accumulates per image (counted from the layers' shapes).
    macs: u64,
    /// Images per second through the model alone, at `--batch`, on this device.
    images_per_s: f64,
    /// Milliseconds per image, likewise.
    ms_per_image: f64,
    /// Whether no other resolution is both cheaper (in time) and at least as accurate (top-1).
    pareto: bool,
    pooled: PooledStats,
}

/// Top-1 flips from the first resolution to another.
#[derive(Serialize)]
struct Flips {
    from: usize,
    to: usize,
    #[serde(flatten)]
    counts: FlipCounts,
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
    // The class-stratified order, cut to the sample asked for.
    let mut per_class_taken = vec![0usize; folder.classes.len()];
    let mut order: Vec<usize> = folder
        .stratified_order(args.order_seed)
        .into_iter()
        .filter(|&i| {
            let c = folder.samples[i].class;
            per_class_taken[c] += 1;
            args.per_class.is_none_or(|n| per_class_taken[c] <= n)
        })
        .collect();
    if let Some(n) = args.limit {
        order.truncate(n);
    }
    let files: Vec<PathBuf> = order.iter().map(|&i| folder.samples[i].path.clone()).collect();
    let targets: Vec<usize> = order.iter().map(|&i| labels[folder.samples[i].class]).collect();
    let sample_classes: Vec<usize> = order.iter().map(|&i| folder.samples[i].class).collect();
    let n_res = args.res.len();
    let mut tallies = vec![Tally::default(); n_res];
    let mut per_image = PerImage::new(n_res, files.len());
    let mut costs = vec![Cost::default(); n_res];
    let mut stats: Vec<StatsAccumulator> = (0..n_res).map(|_| StatsAccumulator::default()).collect();
    let bar = progress_bar(files.len() as u64, "eval");
    let sweep = Sweep::new(&model, &backend, &files, &args.res, args.run.batch);
    // Set once the last resolution of a batch leaves every interval narrow enough.
    let precise_enough = std::cell::Cell::new(false);
    let failed = sweep.run(
        |out| {
            for p in &out.pooled {
                stats[out.res_index].extend(p);
            }
            costs[out.res_index].add(&out);
            for scored in per_image.record(&out, &targets) {
                tallies[out.res_index].count(&scored);
            }
            if let Some(w) = args.until_ci
                && out.res_index + 1 == n_res
            {
                precise_enough.set(tallies.iter().all(|t| {
                    let (lo, hi) = t.top1_interval();
                    t.scored > 0 && 100.0 * (hi - lo) / 2.0 <= w
                }));
            }
        },
        |done, _| {
            bar.set_position(done as u64);
            !precise_enough.get()
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
    let front = pareto_front(
        &(0..n_res)
            .map(|r| (costs[r].ms_per_image(), tallies[r].top1_share()))
            .collect::<Vec<_>>(),
    );
    let per_res: Vec<ResResult> = (0..n_res)
        .map(|r| ResResult {
            res: args.res[r],
            images: tallies[r].scored,
            top1: tallies[r].top1_share(),
            top1_ci: {
                let (lo, hi) = tallies[r].top1_interval();
                [lo, hi]
            },
            top5: tallies[r].top5_share(),
            macs: costs[r].macs,
            images_per_s: costs[r].images_per_s(),
            ms_per_image: costs[r].ms_per_image(),
            pareto: front.contains(&r),
            pooled: stats[r].finish(),
        })
        .collect();
    let flips: Vec<Flips> = (1..n_res)
        .map(|r| Flips {
            from: args.res[0],
            to: args.res[r],
            counts: per_image.flips(0, r),
        })
        .collect();
    if let Some(csv) = &args.per_image {
        // Rows in the folder's order (ImageFolder's: by class, then path), whatever the order
        // the sweep visited the images in.
        let mut positions: Vec<usize> = (0..order.len()).collect();
        positions.sort_by_key(|&p| order[p]);
        let files: Vec<PathBuf> = positions.iter().map(|&p| files[p].clone()).collect();
        let class_of: Vec<&str> = positions
            .iter()
            .map(|&p| folder.classes[sample_classes[p]].as_str())
            .collect();
        let names = model.class_names.as_deref();
        let text = per_image.permuted(&positions).csv(&args.res, &files, &class_of, |o| {
            names.and_then(|n| n.get(o)).cloned().unwrap_or_else(|| o.to_string())
        });
        crate::fsutil::write_atomic(csv, text.as_bytes())?;
    }
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
            "sample": {
                "order": "class-stratified random",
                "order_seed": args.order_seed,
                "folder_images": folder.samples.len(),
                "in_sample": files.len(),
                "limit": args.limit,
                "per_class": args.per_class,
                "until_ci": args.until_ci,
                "stopped_at_ci": precise_enough.get(),
            },
            "flips": flips,
            "per_image": args.per_image.as_deref().map(crate::fsutil::path_text),
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
                "  K={:<4} top-1 {:6.2}% [{:.1}, {:.1}]  top-5 {:6.2}%  {:7.3} GMACs  {:7.1} ms/image{}  pooled mean {:.4}  zeros {:.1}%  ({} images)",
                r.res,
                100.0 * r.top1,
                100.0 * r.top1_ci[0],
                100.0 * r.top1_ci[1],
                100.0 * r.top5,
                r.macs as f64 / 1e9,
                r.ms_per_image,
                if r.pareto { " *" } else { "  " },
                r.pooled.mean,
                100.0 * r.pooled.zero_share,
                r.images
            );
        }
        println!("  (* on the Pareto front of top-1 against time per image; [..]: top-1's 95 % interval)");
        if files.len() < folder.samples.len() || precise_enough.get() {
            println!(
                "  a sample of {} of the folder's {} images (class-stratified, seed {}){}",
                per_res.iter().map(|r| r.images).max().unwrap_or(0),
                folder.samples.len(),
                args.order_seed,
                if precise_enough.get() {
                    format!(
                        ": stopped once every interval was within ±{} points",
                        args.until_ci.unwrap_or(0.0)
                    )
                } else {
                    String::new()
                }
            );
        }
        for f in &flips {
            println!(
                "  K={} → K={}: {} right → wrong, {} wrong → right (of {} images)",
                f.from, f.to, f.counts.right_to_wrong, f.counts.wrong_to_right, f.counts.images
            );
        }
        if let Some(csv) = &args.per_image {
            println!("  per-image results: {}", csv.display());
        }
        for s in &folder.skipped {
            eprintln!("skipped: {s}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
