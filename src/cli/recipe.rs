//! `fixres recipe`: how a model must be fed at a test resolution, as code to paste: torchvision's
//! `transforms.Compose` and timm's `pretrained_cfg`.

use std::path::PathBuf;
use std::process::ExitCode;

use burn::tensor::Device;
use clap::Args;
use serde_json::json;

use super::{RecipeArgs, parse_res, print_json, warn};
use crate::data::transforms::crop_ratio_for;
use crate::model::Model;

/// Arguments of `fixres recipe`.
#[derive(Debug, Args)]
pub struct RecipeCodeArgs {
    /// Weights whose recipe to print (their family's, their config.json's or their metadata's).
    #[arg(long)]
    pub weights: PathBuf,
    /// Test resolution K.
    #[arg(long, value_parser = parse_res, default_value = "224")]
    pub res: usize,
    /// The test transform's resize side itself at --res (torchvision's `--val-resize-size`),
    /// instead of --crop-ratio.
    #[arg(long, value_parser = parse_res, conflicts_with = "crop_ratio")]
    pub resize_size: Option<usize>,
    #[command(flatten)]
    pub recipe: RecipeArgs,
    /// Print one JSON object (`torchvision`: the code, `pretrained_cfg`: timm's fragment).
    #[arg(long)]
    pub json: bool,
}

/// Runs `fixres recipe`.
pub fn run(args: &RecipeCodeArgs) -> anyhow::Result<ExitCode> {
    // The recipe is read with the weights; the CPU backend is enough to load them.
    let mut model = args.recipe.apply(warn(Model::load(&args.weights, &Device::flex())?))?;
    if let Some(s) = args.resize_size {
        model.recipe.crop_ratio = crop_ratio_for(args.res, s);
        model.recipe_source = format!("{}, resize side {s} from --resize-size", model.recipe_source);
    }
    let code = model.recipe.torchvision_code(args.res);
    let cfg = model.recipe.timm_cfg(Some(args.res));
    if args.json {
        print_json(&json!({
            "weights": crate::fsutil::path_text(&args.weights),
            "arch": model.arch,
            "res": args.res,
            "recipe_source": model.recipe_source,
            "torchvision": code,
            "pretrained_cfg": cfg,
        }))?;
    } else {
        println!("# {} at K = {} (recipe: {})", model.arch, args.res, model.recipe_source);
        println!("{code}");
        println!("# timm pretrained_cfg:\n# {cfg}");
    }
    Ok(ExitCode::SUCCESS)
}
