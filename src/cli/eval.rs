//! `fixres eval`: top-1/top-5 and pooled-activation statistics per test resolution.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use serde_json::json;

use super::{RecipeArgs, RunArgs, ShardArgs, parse_res, print_json, progress_bar, warn};
use crate::backend::choose;
use crate::data::{Check, DecodeLimits, ImageFolder, Skip};
use crate::eval::{Cost, PerImage, StatsAccumulator, Sweep, match_classes};
use crate::eval_report::{Context, Gathered, Identity, PART_FORMAT, PartHeader, Report, Sample, Visited, write_part};
use crate::model::Model;
use crate::shard::fingerprint;
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
    #[command(flatten)]
    pub shard: ShardArgs,
    /// Also write the report (the JSON `--json` prints) to this file; with --shard, the shard's
    /// part (safetensors) for `fixres merge`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    let shard = args.shard.resolve()?;
    if let Some(s) = shard {
        anyhow::ensure!(
            args.until_ci.is_none(),
            "--until-ci with --shard {s}: a shard cannot know the whole run's interval; give --limit or --per-class"
        );
        anyhow::ensure!(
            args.per_image.is_none(),
            "--per-image with --shard {s}: the part holds each image's results; give --per-image to `fixres merge`"
        );
        anyhow::ensure!(args.out.is_some(), "--shard {s} writes a part: give --out PART");
    }
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
    // The class-stratified order, cut to the sample asked for, then to the shard's slice of it.
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
    let in_sample = order.len();
    if let Some(s) = shard {
        order = order[s.range(in_sample)].to_vec();
    }
    let files: Vec<PathBuf> = order.iter().map(|&i| folder.samples[i].path.clone()).collect();
    let targets: Vec<usize> = order.iter().map(|&i| labels[folder.samples[i].class]).collect();
    let n_res = args.res.len();
    let mut tallies = vec![Tally::default(); n_res];
    let mut gathered = Gathered {
        res: args.res.clone(),
        per_image: PerImage::new(n_res, files.len()),
        costs: vec![Cost::default(); n_res],
        stats: (0..n_res).map(|_| StatsAccumulator::default()).collect(),
    };
    let bar = progress_bar(files.len() as u64, "eval");
    let sweep = Sweep::new(&model, &backend, &files, &args.res, args.run.batch);
    // Set once the last resolution of a batch leaves every interval narrow enough.
    let precise_enough = std::cell::Cell::new(false);
    let failed = sweep.run(
        |out| {
            for p in &out.pooled {
                gathered.stats[out.res_index].extend(p);
            }
            gathered.costs[out.res_index].add(&out);
            for scored in gathered.per_image.record(&out, &targets) {
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
    let as_values = |skips: &[Skip]| -> anyhow::Result<Vec<serde_json::Value>> {
        skips.iter().map(|s| Ok(serde_json::to_value(s)?)).collect()
    };
    let scan_skipped = as_values(&folder.skipped)?;
    let failed: Vec<Skip> = failed.into_iter().map(Skip::Image).collect();
    let failed_values = as_values(&failed)?;
    folder.skipped.extend(failed);
    let scored_any = tallies.iter().any(|t| t.scored > 0);
    let context = Context {
        weights: crate::fsutil::path_text(&args.weights),
        arch: model.arch.clone(),
        library: model.library.to_owned(),
        classes: model.classes,
        data: crate::fsutil::path_text(&args.data),
        dataset_classes: folder.classes.clone(),
        classes_matched: matched.rule,
        recipe: serde_json::to_value(model.recipe)?,
        recipe_source: model.recipe_source.clone(),
        device: serde_json::to_value(&backend)?,
        warnings: serde_json::to_value(&model.warnings)?,
    };
    let sample = Sample {
        order: "class-stratified random".into(),
        order_seed: args.order_seed,
        folder_images: folder.samples.len(),
        in_sample,
        limit: args.limit,
        per_class: args.per_class,
        until_ci: args.until_ci,
        stopped_at_ci: precise_enough.get(),
    };
    let visited = Visited {
        files: files.iter().map(|f| crate::fsutil::path_text(f)).collect(),
        class: order.iter().map(|&i| folder.samples[i].class).collect(),
        folder_index: order,
    };
    if let (Some(shard), Some(out)) = (shard, &args.out) {
        let relative: Vec<String> = folder
            .samples
            .iter()
            .map(|s| crate::fsutil::path_text(s.path.strip_prefix(&root).unwrap_or(&s.path)))
            .collect();
        let weights =
            std::fs::read(&args.weights).with_context(|| format!("{}: cannot read", args.weights.display()))?;
        let header = PartHeader {
            format: PART_FORMAT.into(),
            shard,
            identity: Identity {
                arch: model.arch.clone(),
                classes: model.classes,
                weights_fingerprint: fingerprint(&weights),
                recipe: context.recipe.clone(),
                dataset_classes: folder.classes.clone(),
                folder_fingerprint: fingerprint(relative.join("\n").as_bytes()),
                res: args.res.clone(),
                sample,
            },
            context,
            visited,
            output_names: model.class_names.clone(),
            scan_skipped,
            failed: failed_values,
            costs: gathered.costs.clone(),
            stats: gathered.stats.iter().map(StatsAccumulator::state).collect(),
        };
        write_part(out, &header, &gathered)?;
        let images = tallies.iter().map(|t| t.scored).max().unwrap_or(0);
        if args.json {
            print_json(&json!({
                "part": crate::fsutil::path_text(out),
                "shard": shard,
                "images": images,
                "in_shard": header.visited.files.len(),
                "skipped": header.failed,
            }))?;
        } else {
            println!(
                "shard {shard}: {images} of the sample's {in_sample} images scored -> {} (join the parts with `fixres merge`)",
                out.display()
            );
            for s in &header.failed {
                eprintln!("skipped: {s}");
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !scored_any {
        for skip in &folder.skipped {
            eprintln!("  {skip}");
        }
        anyhow::bail!(
            "{}: no image could be scored ({} skipped, listed above); no accuracy to report",
            args.data.display(),
            folder.skipped.len()
        );
    }
    let (per_res, flips) = gathered.results();
    if let Some(csv) = &args.per_image {
        let text = visited.csv(
            &args.res,
            &gathered.per_image,
            &folder.classes,
            model.class_names.as_deref(),
        );
        crate::fsutil::write_atomic(csv, text.as_bytes())?;
    }
    let mut skipped = scan_skipped;
    skipped.extend(failed_values);
    let report = Report {
        context,
        results: per_res,
        sample,
        flips,
        per_image: args.per_image.as_deref().map(crate::fsutil::path_text),
        skipped,
    };
    if let Some(out) = &args.out {
        crate::fsutil::write_atomic(out, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    if args.json {
        print_json(&serde_json::to_value(&report)?)?;
    } else {
        print_text(&report, &folder.skipped);
    }
    Ok(ExitCode::SUCCESS)
}

/// The report as text (`fixres eval`, and `fixres merge` of eval parts).
pub(super) fn print_text(report: &Report, skipped: &[impl std::fmt::Display]) {
    let per_res = &report.results;
    let flips = &report.flips;
    let sample = &report.sample;
    let c = &report.context;
    println!(
        "{} ({} classes) on {} (classes matched {}) [{}]",
        c.arch,
        c.classes,
        c.data,
        c.classes_matched.text(),
        device_text(&c.device)
    );
    for r in per_res {
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
    if sample.in_sample < sample.folder_images || sample.stopped_at_ci {
        println!(
            "  a sample of {} of the folder's {} images (class-stratified, seed {}){}",
            per_res.iter().map(|r| r.images).max().unwrap_or(0),
            sample.folder_images,
            sample.order_seed,
            if sample.stopped_at_ci {
                format!(
                    ": stopped once every interval was within ±{} points",
                    sample.until_ci.unwrap_or(0.0)
                )
            } else {
                String::new()
            }
        );
    }
    for f in flips {
        println!(
            "  K={} → K={}: {} right → wrong, {} wrong → right (of {} images)",
            f.from, f.to, f.counts.right_to_wrong, f.counts.wrong_to_right, f.counts.images
        );
    }
    if let Some(csv) = &report.per_image {
        println!("  per-image results: {csv}");
    }
    for s in skipped {
        eprintln!("skipped: {s}");
    }
}

/// "kind: adapter" of a serialised `Backend`.
fn device_text(device: &serde_json::Value) -> String {
    let field = |k: &str| {
        device
            .get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("?")
            .to_owned()
    };
    format!("{}: {}", field("backend"), field("adapter"))
}
