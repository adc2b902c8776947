//! `fixres bench ...`: throughput figures, printed for comparison scripts to put beside their
//! peers (benches/preprocess_vs_pillow.py runs Pillow + torchvision in the same run).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use clap::{Args, Subcommand};
use rayon::prelude::*;
use serde_json::json;

use super::{parse_crop_ratio, parse_res, print_json};
use crate::backend::{DeviceChoice, choose};
use crate::data::transforms::{IMAGENET_MEAN, IMAGENET_STD, to_tensor_normalized};
use crate::data::{Check, DecodeLimits, ImageFolder, Interpolation, SeededRng, TestTransform, decode_file};
use crate::model::Model;

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Images/s of decode + Resize + CenterCrop + ToTensor/Normalize over an ImageFolder.
    Preprocess(PreprocessBenchArgs),
    /// Images/s of the model's forward pass (pooled + logits) on random inputs, per resolution.
    Forward(ForwardBenchArgs),
    /// A test-resolution sweep's preprocessing: decode per resolution on the CPU, decode once on
    /// the CPU, decode once and resample on the GPU (WGSL); the ratios between them.
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
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
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
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Where the model runs.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Time per resolution, after one warm-up pass.
    #[arg(long, default_value_t = 5.0)]
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
    #[arg(long, default_value_t = 5.0)]
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
    let transform = TestTransform {
        res: args.res,
        crop_ratio: args.crop_ratio,
        interpolation: args.interp,
    };
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
            "data": args.data,
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
    let folder = ImageFolder::scan(&args.data, Check::List, DecodeLimits::default())?;
    let files: Vec<PathBuf> = folder.samples.iter().map(|s| s.path.clone()).collect();
    anyhow::ensure!(!files.is_empty(), "{}: no images", args.data.display());
    let transforms: Vec<TestTransform> = args
        .res
        .iter()
        .map(|&res| TestTransform {
            res,
            crop_ratio: 0.875,
            interpolation: Interpolation::Bilinear,
        })
        .collect();
    let crops = files.len() * transforms.len();
    let normalize = |img: &crate::data::RgbImage| to_tensor_normalized(img, IMAGENET_MEAN, IMAGENET_STD);
    // Single-threaded, all three: the comparison is of the work, not of the core count.
    let per_res = crops_per_second(args.seconds, crops, || {
        for t in &transforms {
            for f in &files {
                std::hint::black_box(normalize(&t.apply(&decode_file(f, DecodeLimits::default())?)));
            }
        }
        Ok(())
    })?;
    let once = crops_per_second(args.seconds, crops, || {
        for f in &files {
            let img = decode_file(f, DecodeLimits::default())?;
            for t in &transforms {
                std::hint::black_box(normalize(&t.apply(&img)));
            }
        }
        Ok(())
    })?;
    let gpu = crate::gpu::Gpu::new();
    let (gpu_rate, adapter) = match &gpu {
        Ok(g) => {
            let rate = crops_per_second(args.seconds, crops, || {
                for f in &files {
                    let img = decode_file(f, DecodeLimits::default())?;
                    let uploaded = g.upload(&img)?;
                    for t in &transforms {
                        match g.test_input(&uploaded, t, IMAGENET_MEAN, IMAGENET_STD)? {
                            Some(out) => drop(std::hint::black_box(out)),
                            // Padded crops run on the CPU, as the sweeps do.
                            None => drop(std::hint::black_box(normalize(&t.apply(&img)))),
                        }
                    }
                }
                Ok(())
            })?;
            (Some(rate), g.adapter.clone())
        }
        Err(e) => (None, format!("none ({e})")),
    };
    let summary = json!({
        "images": files.len(), "resolutions": args.res, "crops_per_s": {
            "cpu_decode_per_resolution": per_res, "cpu_decode_once": once, "gpu_decode_once": gpu_rate },
        "ratio_cpu_decode_once_vs_per_resolution": once / per_res,
        "ratio_gpu_decode_once_vs_cpu_per_resolution": gpu_rate.map(|g| g / per_res),
        "ratio_gpu_vs_cpu_decode_once": gpu_rate.map(|g| g / once),
        "gpu_adapter": adapter,
    });
    if args.json {
        print_json(&summary)?;
    } else {
        println!(
            "{} images x {} resolutions, one thread: CPU decode per resolution {per_res:.1} crops/s, CPU decode once {once:.1} crops/s ({:.2}x)",
            files.len(),
            args.res.len(),
            once / per_res
        );
        match gpu_rate {
            Some(g) => println!(
                "GPU ({adapter}) decode once {g:.1} crops/s: {:.2}x CPU decode per resolution, {:.2}x CPU decode once",
                g / per_res,
                g / once
            ),
            None => println!("GPU: {adapter}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}
