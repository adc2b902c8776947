//! `fixres features`: pooled features and logits of images at one test resolution, as safetensors.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::{RecipeArgs, RunArgs, ShardArgs, parse_res, print_json, progress_bar, warn};
use crate::backend::choose;
use crate::data::{Check, DecodeLimits, ImageFolder};
use crate::eval::Sweep;
use crate::model::Model;
use crate::tensorfile::{self, Tensor};

/// Arguments of `fixres features`.
#[derive(Debug, Args)]
pub struct FeaturesArgs {
    /// Weights (safetensors, torchvision key names).
    #[arg(long)]
    pub weights: PathBuf,
    /// Test resolution.
    #[arg(long, value_parser = parse_res)]
    pub res: usize,
    /// An ImageFolder (labels unused: any classifier works).
    #[arg(long, conflicts_with = "image", required_unless_present = "image")]
    pub data: Option<PathBuf>,
    /// Image files (repeatable).
    #[arg(long)]
    pub image: Vec<PathBuf>,
    /// Output: `pooled` f32 [N, C], `logits` f32 [N, classes]; file order in the metadata. With
    /// --shard, the shard's part: the same for its slice of the files, for `fixres merge`.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub shard: ShardArgs,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub recipe: RecipeArgs,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &FeaturesArgs) -> anyhow::Result<ExitCode> {
    let shard = args.shard.resolve()?;
    let backend = choose(args.run.device)?;
    let model = args.recipe.apply(warn(Model::load(&args.weights, &backend.device)?))?;
    let (files, mut skipped) = match &args.data {
        Some(dir) => {
            let folder = ImageFolder::scan(dir, Check::List, DecodeLimits::default())?;
            (
                folder.samples.into_iter().map(|s| s.path).collect::<Vec<_>>(),
                folder.skipped,
            )
        }
        None => (args.image.clone(), Vec::new()),
    };
    // A shard runs its slice of the list; its part says which, and of what (merge checks).
    let mut part_keys = Vec::new();
    let files = match shard {
        Some(s) => {
            // Relative to the folder, so that machines that mount it elsewhere agree.
            let listed: Vec<String> = files
                .iter()
                .map(|f| {
                    let relative = args.data.as_deref().and_then(|d| f.strip_prefix(d).ok());
                    crate::fsutil::path_text(relative.unwrap_or(f))
                })
                .collect();
            let weights = std::fs::read(&args.weights)
                .map_err(|e| anyhow::anyhow!("{}: cannot read ({e})", args.weights.display()))?;
            part_keys = crate::merge::features_part_keys(s, &listed, &weights);
            files[s.range(files.len())].to_vec()
        }
        None => files,
    };
    let mut pooled: Vec<Option<Vec<f32>>> = vec![None; files.len()];
    let mut logits: Vec<Option<Vec<f32>>> = vec![None; files.len()];
    let bar = progress_bar(files.len() as u64, "features");
    let failed = Sweep::new(&model, &backend, &files, &[args.res], args.run.batch).run(
        |out| {
            for ((&i, p), l) in out.indices.iter().zip(out.pooled).zip(out.logits) {
                pooled[i] = Some(p);
                logits[i] = Some(l);
            }
        },
        |done, _| {
            bar.set_position(done as u64);
            true
        },
    )?;
    bar.finish_and_clear();
    skipped.extend(failed.into_iter().map(crate::data::Skip::Image));
    let kept: Vec<usize> = (0..files.len()).filter(|&i| pooled[i].is_some()).collect();
    if kept.is_empty() {
        for skip in &skipped {
            eprintln!("  {skip}");
        }
        anyhow::bail!("no image could be read ({} skipped, listed above)", skipped.len());
    }
    let pooled_flat: Vec<f32> = kept
        .iter()
        .flat_map(|&i| pooled[i].take().unwrap_or_default())
        .collect();
    let logits_flat: Vec<f32> = kept
        .iter()
        .flat_map(|&i| logits[i].take().unwrap_or_default())
        .collect();
    let kept_files: Vec<String> = kept.iter().map(|&i| crate::fsutil::path_text(&files[i])).collect();
    let metadata: BTreeMap<String, String> = [
        ("files", serde_json::to_string(&kept_files)?),
        ("arch", model.arch.clone()),
        ("res", args.res.to_string()),
        ("recipe", serde_json::to_string(&model.recipe)?),
        ("recipe_source", model.recipe_source.clone()),
        ("library", model.library.to_owned()),
        ("weights", args.weights.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .chain(part_keys)
    .collect();
    let (n, c, k) = (kept.len(), model.features, model.classes);
    tensorfile::write(
        &args.out,
        &[
            Tensor::f32("pooled", &[n, c], &pooled_flat),
            Tensor::f32("logits", &[n, k], &logits_flat),
        ],
        &metadata,
    )?;
    if args.json {
        print_json(&json!({
            "out": crate::fsutil::path_text(&args.out), "images": n, "features": c, "classes": k, "arch": model.arch,
            "library": model.library, "recipe": model.recipe, "recipe_source": model.recipe_source,
            "res": args.res, "device": backend, "shard": shard,
            "warnings": model.warnings, "skipped": skipped,
        }))?;
    } else {
        println!(
            "{}: pooled [{n}, {c}] and logits [{n}, {k}] at {}{} -> {}",
            model.arch,
            args.res,
            shard.map_or_else(String::new, |s| format!(
                " (shard {s}; join the parts with `fixres merge`)"
            )),
            args.out.display()
        );
        for s in &skipped {
            eprintln!("skipped: {s}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
