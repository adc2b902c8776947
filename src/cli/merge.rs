//! `fixres merge`: joins the parts that `--shard I/N` runs wrote into what the unsharded run
//! writes (`merge::merge`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::print_json;

/// Arguments of `fixres merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The parts (any order): every shard of one `fixres eval` or `fixres features` run, once.
    #[arg(required = true)]
    pub parts: Vec<PathBuf>,
    /// Output: the eval report (JSON), or the features file (safetensors).
    #[arg(long)]
    pub out: PathBuf,
    /// Eval parts: also write each image's result at each resolution to this CSV (as `fixres
    /// eval --per-image`).
    #[arg(long = "per-image")]
    pub per_image: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &MergeArgs) -> anyhow::Result<ExitCode> {
    let merged = crate::merge::merge(&args.parts, &args.out, args.per_image.as_deref())?;
    if args.json {
        print_json(&serde_json::to_value(&merged)?)?;
    } else {
        println!(
            "merged {} {} parts ({} images) -> {}",
            merged.parts.len(),
            merged.kind,
            merged.images,
            merged.out
        );
        if let Some(report) = &merged.report {
            super::eval::print_text(report, &report.skipped);
        }
    }
    Ok(ExitCode::SUCCESS)
}
