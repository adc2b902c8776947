//! `fixres size`: apparent object size at train vs test time.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::{CropRanges, parse_crop_ratio, parse_image_size, parse_res, print_json};
use crate::data::{Check, DecodeLimits, ImageFolder};
use crate::size::{SizeSetup, analytic, monte_carlo};

/// Arguments of `fixres size`.
#[derive(Debug, Args)]
pub struct SizeArgs {
    /// Train resolution K_train.
    #[arg(long, value_parser = parse_res, default_value = "224")]
    pub train_res: usize,
    /// Test resolution K_test.
    #[arg(long, value_parser = parse_res, default_value = "224")]
    pub test_res: usize,
    /// K_test / test resize side.
    #[arg(long, value_parser = parse_crop_ratio, default_value = "0.875")]
    pub crop_ratio: f64,
    #[command(flatten)]
    pub crop: CropRanges,
    /// Sample over the image sizes of this ImageFolder (headers only are read).
    #[arg(long, conflicts_with = "image_size")]
    pub data: Option<PathBuf>,
    /// Sample over this image size, WxH (repeatable). Default: 512x512, the paper's square case.
    #[arg(long, value_parser = parse_image_size)]
    pub image_size: Vec<(u32, u32)>,
    /// Monte-Carlo draws (at least 1).
    #[arg(long, default_value_t = 200_000, value_parser = parse_samples)]
    pub samples: usize,
    /// Seed of the crop sampler.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &SizeArgs) -> anyhow::Result<ExitCode> {
    let setup = SizeSetup {
        train_res: args.train_res,
        test_res: args.test_res,
        crop_ratio: args.crop_ratio,
        crop: args.crop.sampler(),
    };
    let (sizes, skipped) = match &args.data {
        Some(dir) => {
            let folder = ImageFolder::scan(dir, Check::Header, DecodeLimits::default())?;
            let sizes: Vec<(u32, u32)> = folder.samples.iter().filter_map(|s| s.size).collect();
            anyhow::ensure!(
                !sizes.is_empty(),
                "{}: no readable image to take sizes from",
                dir.display()
            );
            (sizes, folder.skipped)
        }
        None if args.image_size.is_empty() => (vec![(512, 512)], Vec::new()),
        None => (args.image_size.clone(), Vec::new()),
    };
    let a = analytic(&setup);
    let mc = monte_carlo(&setup, &sizes, args.samples, args.seed);
    if args.json {
        print_json(&json!({
            "train_res": setup.train_res,
            "test_res": setup.test_res,
            "test_resize": setup.test_resize(),
            "crop_ratio": setup.crop_ratio,
            "scale": setup.crop.scale,
            "ratio": setup.crop.ratio,
            "analytic": a,
            "monte_carlo": mc,
            "images": sizes.len(),
            "skipped": skipped,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "apparent object size: train {} -> test {} (test resize {}, crop ratio {})",
        setup.train_res,
        setup.test_res,
        setup.test_resize(),
        setup.crop_ratio
    );
    println!("analytic (square images, paper section 3.1):");
    println!(
        "  E[sqrt(sigma)] = {:.3}   E[r_test/r_train] = {:.3}   recommended K_test = {}",
        a.mean_sqrt_sigma, a.mean_ratio, a.recommended_test_res
    );
    println!(
        "Monte-Carlo of the real sampler, {} draws over {} image(s):",
        mc.samples,
        sizes.len()
    );
    println!(
        "  mean sqrt(crop area / image area) = {:.3}   mean train zoom = {:.3}",
        mc.mean_sqrt_area_share, mc.mean_zoom
    );
    println!(
        "  E[r_test/r_train] = {:.3} (std {:.3})   recommended K_test = {}",
        mc.mean_ratio, mc.std_ratio, mc.recommended_test_res
    );
    let q: Vec<String> = mc
        .quantiles
        .iter()
        .map(|q| format!("{:.0}%: {:.3}", q.q * 100.0, q.value))
        .collect();
    println!("  quantiles of r_test/r_train: {}", q.join("  "));
    println!(
        "  draws needing more than one try: {:.1}%   fallback centre crops: {:.2}%",
        100.0 * mc.multi_try_share,
        100.0 * mc.fallback_share
    );
    if !skipped.is_empty() {
        eprintln!("skipped {} file(s):", skipped.len());
        for s in &skipped {
            eprintln!("  {s}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_samples(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("'{s}': the number of draws is a whole number of at least 1")),
    }
}
