//! `fixres bench ...`: throughput figures, printed for comparison scripts to put beside their
//! peers (benches/preprocess_vs_pillow.py runs Pillow + torchvision in the same run).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use clap::{Args, Subcommand};
use rayon::prelude::*;
use serde_json::json;

use super::{parse_crop_ratio, parse_res, print_json};
use crate::backend::{DeviceChoice, choose};
use crate::data::transforms::{IMAGENET_MEAN, IMAGENET_STD, to_tensor_normalized};
use crate::data::{Check, DecodeLimits, ImageFolder, Interpolation, RgbImage, SeededRng, TestTransform, decode_file};
use crate::inputs::{InputPath, Inputs, WithPath};
use crate::model::{Model, Recipe, input_batch};
use burn::tensor::{Device, Tensor};

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Images/s of decode + Resize + CenterCrop + ToTensor/Normalize over an ImageFolder.
    Preprocess(PreprocessBenchArgs),
    /// Images/s of the model's forward pass (pooled + logits) on random inputs, per resolution.
    Forward(ForwardBenchArgs),
    /// A test-resolution sweep's preprocessing, inputs ending in Burn's tensors: decode per
    /// resolution on the CPU, decode once on the CPU, decode once and resample on the GPU (WGSL);
    /// and the resampling alone, CPU vs GPU; the ratios between them.
    Sweep(SweepBenchArgs),
}

/// Arguments of `fixres bench sweep`.
#[derive(Debug, Args)]
pub struct SweepBenchArgs {
    /// An ImageFolder.
    #[arg(long)]
    pub data: PathBuf,
    /// Test resolutions of the sweep.
    #[arg(long, value_delimiter = ',', value_parser = parse_res, default_value = "128,160,192,224,256,288,320,384")]
    pub res: Vec<usize>,
    /// Repeat passes until this many seconds have passed, per path (at least one pass).
    #[arg(long, default_value_t = 3.0, value_parser = super::parse_positive)]
    pub seconds: f64,
    /// Where Burn runs (the inputs end in its tensors); on wgpu the GPU path shares its device.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `fixres bench forward`.
#[derive(Debug, Args)]
pub struct ForwardBenchArgs {
    /// Weights (safetensors).
    #[arg(long)]
    pub weights: PathBuf,
    /// Resolutions, comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = parse_res, default_value = "224,320")]
    pub res: Vec<usize>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 8, value_parser = super::parse_batch)]
    pub batch: usize,
    /// Where the model runs.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Time per resolution, after one warm-up pass.
    #[arg(long, default_value_t = 5.0, value_parser = super::parse_positive)]
    pub seconds: f64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `fixres bench preprocess`.
#[derive(Debug, Args)]
pub struct PreprocessBenchArgs {
    /// An ImageFolder.
    #[arg(long)]
    pub data: PathBuf,
    /// Network input side K.
    #[arg(long, value_parser = parse_res, default_value = "224")]
    pub res: usize,
    /// K / resize side.
    #[arg(long, value_parser = parse_crop_ratio, default_value = "0.875")]
    pub crop_ratio: f64,
    /// Resampling filter.
    #[arg(long, value_enum, default_value_t = Interpolation::Bilinear)]
    pub interp: Interpolation,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Repeat passes over the folder until this many seconds have passed (at least one pass).
    #[arg(long, default_value_t = 5.0, value_parser = super::parse_positive)]
    pub seconds: f64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: &BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Preprocess(args) => preprocess(args),
        BenchCommand::Forward(args) => forward(args),
        BenchCommand::Sweep(args) => sweep(args),
    }
}

fn preprocess(args: &PreprocessBenchArgs) -> anyhow::Result<ExitCode> {
    let folder = ImageFolder::scan(&args.data, Check::List, DecodeLimits::default())?;
    anyhow::ensure!(!folder.samples.is_empty(), "{}: no image files", args.data.display());
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("bench-preprocess-{i}"))
        .build()?;
    let transform = TestTransform::center(args.res, args.crop_ratio, args.interp);
    let failures = AtomicUsize::new(0);
    let one_pass = || {
        folder
            .samples
            .par_iter()
            .for_each(|s| match decode_file(&s.path, DecodeLimits::default()) {
                Ok(img) => {
                    let input = to_tensor_normalized(&transform.apply(&img), IMAGENET_MEAN, IMAGENET_STD);
                    std::hint::black_box(input);
                }
                Err(_) => {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            });
    };
    let start = Instant::now();
    let mut passes = 0usize;
    while passes == 0 || start.elapsed().as_secs_f64() < args.seconds {
        pool.install(one_pass);
        passes += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    let images = passes * folder.samples.len();
    let failed = failures.load(Ordering::Relaxed) / passes;
    let images_per_s = images as f64 / seconds;
    if args.json {
        print_json(&json!({
            "benchmark": "preprocess",
            "pipeline": "decode + Resize + CenterCrop + ToTensor/Normalize",
            "data": crate::fsutil::path_text(&args.data),
            "files": folder.samples.len(),
            "failed": failed,
            "res": args.res,
            "crop_ratio": args.crop_ratio,
            "interpolation": args.interp,
            "threads": threads,
            "passes": passes,
            "seconds": seconds,
            "images_per_s": images_per_s,
        }))?;
    } else {
        println!(
            "preprocess {} files at {} ({}, {} thread(s)): {images_per_s:.1} images/s over {passes} pass(es), {seconds:.2} s{}",
            folder.samples.len(),
            args.res,
            args.interp.name(),
            threads,
            if failed > 0 {
                format!(", {failed} file(s) failed to decode")
            } else {
                String::new()
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn forward(args: &ForwardBenchArgs) -> anyhow::Result<ExitCode> {
    use burn::tensor::{Tensor, TensorData};
    let backend = choose(args.device)?;
    let model = super::warn(Model::load(&args.weights, &backend.device)?);
    let mut rng = SeededRng::new(0);
    let mut results = Vec::new();
    for &k in &args.res {
        let values: Vec<f32> = (0..args.batch * 3 * k * k)
            .map(|_| rng.uniform(-2.0, 2.0) as f32)
            .collect();
        let input: Tensor<4> = Tensor::from_data(TensorData::new(values, [args.batch, 3, k, k]), &backend.device);
        // Reading the logits back waits for the device, so each pass is timed whole.
        let run = || -> anyhow::Result<()> {
            let out = model.net.forward(input.clone());
            std::hint::black_box(crate::model::rows(&out.logits)?);
            Ok(())
        };
        run()?;
        let start = Instant::now();
        let mut passes = 0usize;
        while passes == 0 || start.elapsed().as_secs_f64() < args.seconds {
            run()?;
            passes += 1;
        }
        let seconds = start.elapsed().as_secs_f64();
        results.push(json!({"res": k, "passes": passes, "seconds": seconds,
            "images_per_s": (passes * args.batch) as f64 / seconds}));
    }
    if args.json {
        print_json(&json!({"benchmark": "forward", "arch": model.arch, "batch": args.batch,
            "device": backend, "results": results}))?;
    } else {
        println!(
            "{} forward, batch {}, {}: {}",
            model.arch, args.batch, backend.kind, backend.adapter
        );
        for r in &results {
            println!(
                "  K={:<4} {:8.1} images/s",
                r["res"],
                r["images_per_s"].as_f64().unwrap_or(0.0)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The crops per second of one input path: files decoded once per pass and prepared for every
/// resolution, as the sweeps run them; and without the decoding, on images decoded beforehand.
struct PathRates<'a> {
    seconds: f64,
    chunks: &'a [&'a [PathBuf]],
    decoded: &'a [RgbImage],
    transforms: &'a [TestTransform],
    recipe: &'a Recipe,
    device: &'a Device,
}

impl WithPath for PathRates<'_> {
    type Output = anyhow::Result<(f64, f64)>;

    fn run<P: InputPath>(self, path: &P) -> Self::Output {
        let crops = self.chunks.iter().map(|c| c.len()).sum::<usize>() * self.transforms.len();
        let finish = |input: Tensor<4>| std::hint::black_box(input.sum().into_scalar::<f32>());
        let batches = |prepared: &[P::Prepared]| -> anyhow::Result<()> {
            for (r, t) in self.transforms.iter().enumerate() {
                finish(path.batch(prepared, r, t, self.recipe, self.device)?);
            }
            Ok(())
        };
        let once = crops_per_second(self.seconds, crops, || {
            for chunk in self.chunks {
                let prepared: Vec<_> = chunk
                    .iter()
                    .map(|f| anyhow::Ok(path.prepare(f, decode_file(f, DecodeLimits::default())?, self.transforms)?))
                    .collect::<anyhow::Result<_>>()?;
                batches(&prepared)?;
            }
            Ok(())
        })?;
        // Decoded beforehand: what is timed is each path's own work on an image, the resampling
        // (and, on the GPU paths, the upload it needs) and the batch.
        let resample = crops_per_second(self.seconds, self.decoded.len() * self.transforms.len(), || {
            let prepared: Vec<_> = self
                .decoded
                .iter()
                .map(|img| path.prepare(Path::new("(decoded)"), img.clone(), self.transforms))
                .collect::<Result<_, _>>()?;
            batches(&prepared)
        })?;
        Ok((once, resample))
    }
}

/// Runs `pass` until `seconds` have passed (at least once); crops per second.
fn crops_per_second(
    seconds: f64,
    crops_per_pass: usize,
    mut pass: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut passes = 0usize;
    while passes == 0 || started.elapsed().as_secs_f64() < seconds {
        pass()?;
        passes += 1;
    }
    Ok((passes * crops_per_pass) as f64 / started.elapsed().as_secs_f64())
}

fn sweep(args: &SweepBenchArgs) -> anyhow::Result<ExitCode> {
    // Decoded once here so that a broken file is skipped and named, as every command does,
    // instead of stopping a timed path halfway.
    let folder = ImageFolder::scan(&args.data, Check::Decode, DecodeLimits::default())?;
    for skip in &folder.skipped {
        eprintln!("skipped: {skip}");
    }
    let files: Vec<PathBuf> = folder.samples.iter().map(|s| s.path.clone()).collect();
    anyhow::ensure!(!files.is_empty(), "{}: no readable images", args.data.display());
    // torchvision's ImageNet recipe, as the Python peer runs it.
    let recipe = Recipe::default();
    let transforms: Vec<TestTransform> = args.res.iter().map(|&res| recipe.test_transform(res)).collect();
    let backend = choose(args.device)?;
    let device = &backend.device;
    let crops = files.len() * transforms.len();
    // Every path ends as the sweeps do: a batch per resolution in a Burn tensor on Burn's device,
    // waited for (a one-value reduction read back).
    let finish = |input: Tensor<4>| std::hint::black_box(input.sum().into_scalar::<f32>());
    let decode = |f: &PathBuf| decode_file(f, DecodeLimits::default());
    // Files a batch at a time (as the sweeps: a folder need not fit in memory); one thread on
    // the CPU, all paths: the comparison is of the work, not of the core count.
    let chunks: Vec<&[PathBuf]> = files.chunks(16).collect();
    // The peer: each resolution decodes the image again (what a loop over torchvision's
    // transforms does).
    let per_res = crops_per_second(args.seconds, crops, || {
        for chunk in &chunks {
            for t in &transforms {
                let crops: Vec<_> = chunk
                    .iter()
                    .map(|f| Ok(t.apply(&decode(f)?)))
                    .collect::<anyhow::Result<_>>()?;
                finish(input_batch(&crops, recipe.mean, recipe.std, device));
            }
        }
        Ok(())
    })?;
    // The sweeps' own input paths (`inputs`): decoded once, prepared and batched per resolution.
    let decoded: Vec<_> = files.iter().take(16).map(decode).collect::<Result<_, _>>()?;
    let measure = |inputs: &Inputs| {
        inputs.with_path(PathRates {
            seconds: args.seconds,
            chunks: &chunks,
            decoded: &decoded,
            transforms: &transforms,
            recipe: &recipe,
            device,
        })
    };
    let (once, cpu_resample) = measure(&Inputs::Cpu)?;
    let gpu = backend.gpu_inputs();
    let (gpu_once, gpu_resample, adapter, gpu_path) = match &gpu {
        Ok(inputs) => {
            let (once, resample) = measure(inputs)?;
            let adapter = inputs.gpu().map(|g| g.adapter.clone()).unwrap_or_default();
            (Some(once), Some(resample), adapter, inputs.describe())
        }
        Err(e) => (None, None, format!("none ({e})"), "none"),
    };
    let summary = json!({
        "images": files.len(), "resolutions": args.res, "burn_device": backend, "gpu_adapter": adapter,
        "gpu_path": gpu_path,
        "crops_per_s": {
            "cpu_decode_per_resolution": per_res, "cpu_decode_once": once, "gpu_decode_once": gpu_once },
        "resample_crops_per_s": { "cpu": cpu_resample, "gpu": gpu_resample },
        "ratio_cpu_decode_once_vs_per_resolution": once / per_res,
        "ratio_gpu_decode_once_vs_cpu_per_resolution": gpu_once.map(|g| g / per_res),
        "ratio_gpu_vs_cpu_decode_once": gpu_once.map(|g| g / once),
        "ratio_gpu_vs_cpu_resampling": gpu_resample.map(|g| g / cpu_resample),
    });
    if args.json {
        print_json(&summary)?;
    } else {
        println!(
            "{} images x {} resolutions, one CPU thread, inputs into Burn on {} ({}):",
            files.len(),
            args.res.len(),
            backend.kind,
            backend.adapter
        );
        println!(
            "  CPU decode per resolution {per_res:.1} crops/s, CPU decode once {once:.1} crops/s ({:.2}x)",
            once / per_res
        );
        match (gpu_once, gpu_resample) {
            (Some(g), Some(r)) => {
                println!(
                    "  GPU ({adapter}; {gpu_path}) decode once {g:.1} crops/s: {:.2}x CPU decode per resolution, {:.2}x CPU decode once",
                    g / per_res,
                    g / once
                );
                println!(
                    "  resampling alone (decoded beforehand): CPU {cpu_resample:.1} crops/s, GPU {r:.1} crops/s ({:.2}x)",
                    r / cpu_resample
                );
            }
            _ => println!("  GPU: {adapter}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}
