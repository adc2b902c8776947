//! `fixres preprocess`: the exact network input for one image, as safetensors.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::{CropRanges, parse_crop_ratio, parse_res, print_json};
use crate::data::transforms::{IMAGENET_MEAN, IMAGENET_STD, border_fill, crop_ratio_for, to_tensor_normalized};
use crate::data::{
    CropBox, CropMode, DecodeLimits, Interpolation, RgbImage, SeededRng, TestTransform, TrainTransform, decode_file,
};
use crate::tensorfile::{self, Tensor};

/// Arguments of `fixres preprocess`.
#[derive(Debug, Args)]
pub struct PreprocessArgs {
    /// The image file.
    #[arg(long)]
    pub image: PathBuf,
    /// Network input side K.
    #[arg(long, value_parser = parse_res)]
    pub res: usize,
    /// Test transform: K / resize side.
    #[arg(long, value_parser = parse_crop_ratio, default_value = "0.875")]
    pub crop_ratio: f64,
    /// Test transform: the resize side itself (torchvision's `--val-resize-size`), instead of
    /// --crop-ratio.
    #[arg(long, value_parser = parse_res, conflicts_with_all = ["crop_ratio", "train"])]
    pub resize_size: Option<usize>,
    /// Test transform: how the image is fitted to the resize side (timm's crop_mode; `border`
    /// pads with the ImageNet mean's colour).
    #[arg(long, value_enum, default_value_t = CropMode::Center, conflicts_with = "train")]
    pub crop_mode: CropMode,
    /// Resampling filter.
    #[arg(long, value_enum, default_value_t = Interpolation::Bilinear)]
    pub interp: Interpolation,
    /// Train transform (RandomResizedCrop + flip) instead of the test transform.
    #[arg(long)]
    pub train: bool,
    /// Train transform: never flip.
    #[arg(long, requires = "train")]
    pub no_flip: bool,
    #[command(flatten)]
    pub crop: CropRanges,
    /// Seed of the train transform.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output file: `u8` uint8 [3,K,K] before normalisation, `input` f32 [3,K,K] after.
    #[arg(long)]
    pub out: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn chw_u8(img: &RgbImage) -> Vec<u8> {
    let plane = img.width() * img.height();
    let mut out = vec![0u8; 3 * plane];
    for (i, px) in img.as_raw().chunks_exact(3).enumerate() {
        for c in 0..3 {
            out[c * plane + i] = px[c];
        }
    }
    out
}

pub fn run(args: &PreprocessArgs) -> anyhow::Result<ExitCode> {
    let img = decode_file(&args.image, DecodeLimits::default())?;
    let crop_ratio = args
        .resize_size
        .map_or(args.crop_ratio, |s| crop_ratio_for(args.res, s));
    let (input, crop, flipped): (RgbImage, Option<CropBox>, bool) = if args.train {
        let t = TrainTransform {
            res: args.res,
            crop: args.crop.sampler(),
            interpolation: args.interp,
            hflip: !args.no_flip,
        };
        let s = t.apply(&img, &mut SeededRng::new(args.seed));
        (s.image, Some(s.crop), s.flipped)
    } else {
        let t = TestTransform {
            crop_mode: args.crop_mode,
            border_fill: border_fill(IMAGENET_MEAN),
            ..TestTransform::center(args.res, crop_ratio, args.interp)
        };
        (t.apply(&img), None, false)
    };
    let u8_chw = chw_u8(&input);
    let f32_chw = to_tensor_normalized(&input, IMAGENET_MEAN, IMAGENET_STD);
    let shape = [3, args.res, args.res];
    let details = json!({
        "image": crate::fsutil::path_text(&args.image),
        "image_size": [img.width(), img.height()],
        "res": args.res,
        "transform": if args.train { "train" } else { "test" },
        "crop_ratio": crop_ratio,
        "crop_mode": (!args.train).then_some(args.crop_mode),
        "interpolation": args.interp,
        "crop": crop,
        "flipped": flipped,
        "seed": args.seed,
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
    });
    let metadata: BTreeMap<String, String> = details
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    tensorfile::write(
        &args.out,
        &[
            Tensor::u8("u8", &shape, &u8_chw),
            Tensor::f32("input", &shape, &f32_chw),
        ],
        &metadata,
    )?;
    if args.json {
        let mut out = details;
        out["out"] = json!(crate::fsutil::path_text(&args.out));
        print_json(&out)?;
    } else {
        println!(
            "{}: wrote {}x{} {} input to {}",
            args.image.display(),
            args.res,
            args.res,
            if args.train { "train" } else { "test" },
            args.out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
