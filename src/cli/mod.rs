//! The command line: no subcommand opens the GUI; each subcommand runs one job headless.
//! Every subcommand takes `--json` and then prints one JSON object on stdout.

mod adapt;
mod bench;
mod convert;
mod eval;
mod features;
mod finetune;
mod grid;
mod merge;
mod preprocess;
mod recalibrate;
mod recipe;
mod size;
mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::backend::DeviceChoice;
use crate::data::RandomResizedCrop;
use crate::shard::{Shard, ShardSpec};

/// FixRes Explorer: study the train/test resolution discrepancy of image classifiers.
#[derive(Debug, Parser)]
#[command(name = "fixres", version, about)]
pub struct Cli {
    /// What to run; none opens the GUI.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// GUI: open this ImageFolder instead of the embedded demo.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// GUI: open these weights instead of the embedded model.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// GUI: start from default settings, neither reading nor saving the stored ones.
    #[arg(long)]
    pub fresh: bool,
}

/// The headless jobs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apparent object size at train vs test time: analytic and Monte-Carlo; recommended K_test.
    Size(size::SizeArgs),
    /// Writes the exact network input for one image (test or train transform) as safetensors.
    Preprocess(preprocess::PreprocessArgs),
    /// The model's test transform at K as code: torchvision's transforms.Compose, timm's pretrained_cfg.
    Recipe(recipe::RecipeCodeArgs),
    /// Pooled features and logits of images at one test resolution, as safetensors.
    Features(features::FeaturesArgs),
    /// Top-1/top-5 and pooled-activation statistics per test resolution on a labelled ImageFolder.
    Eval(eval::EvalArgs),
    /// FixRes fine-tune of the last normalisation and the classifier at a test resolution, then export.
    Finetune(finetune::FinetuneArgs),
    /// Label-free re-estimation of the last BatchNorm's running statistics at a test resolution
    /// (as torch.optim.swa_utils.update_bn), then export.
    Recalibrate(recalibrate::RecalibrateArgs),
    /// Parametric adaptation (paper §3.2): Fréchet fits of the pooled activations at K_train and
    /// K_test, their quantile map folded into the classifier, then export.
    Adapt(adapt::AdaptArgs),
    /// Trains at a train resolution: a small ResNet from scratch, or (--from) a pretrained
    /// network's new classifier for the folder's classes.
    Train(train::TrainArgs),
    /// The train × test resolution table on your data, with and without the FixRes fine-tune.
    Grid(grid::GridArgs),
    /// Joins the parts of a run made in shards (--shard I/N) into what the unsharded run writes.
    Merge(merge::MergeArgs),
    /// A PyTorch state_dict (.pth) to safetensors, optionally f16; nothing in the file is executed.
    Convert(convert::ConvertArgs),
    /// Throughput benchmarks.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Overrides of the model's own preprocessing recipe (its family's default, the `config.json`
/// beside the weights, or the `pretrained_cfg` in their metadata), shared by the commands that
/// run a model over images.
#[derive(Debug, Clone, Default, Args)]
pub struct RecipeArgs {
    /// Test transform: K_test / resize side, instead of the model's.
    #[arg(long = "crop-ratio", value_parser = parse_crop_ratio)]
    pub crop_ratio: Option<f64>,
    /// Test transform: how the image is fitted to the resize side (timm's crop_mode), instead of
    /// the model's: `center` the shorter side (torchvision), `squash` both sides, `border` the
    /// longer side, padded with the mean colour.
    #[arg(long = "crop-mode", value_enum)]
    pub crop_mode: Option<crate::data::CropMode>,
    /// Resampling filter, instead of the model's.
    #[arg(long = "interp", value_enum)]
    pub interpolation: Option<crate::data::Interpolation>,
    /// Channel means, "r,g,b", instead of the model's.
    #[arg(long, value_delimiter = ',')]
    pub mean: Option<Vec<f32>>,
    /// Channel standard deviations, "r,g,b", instead of the model's.
    #[arg(long, value_delimiter = ',')]
    pub std: Option<Vec<f32>>,
}

impl RecipeArgs {
    /// `model` with the flags' recipe fields over its own (and its recipe source saying so).
    pub fn apply(&self, mut model: crate::model::Model) -> anyhow::Result<crate::model::Model> {
        let three = |v: &Option<Vec<f32>>, what: &str| -> anyhow::Result<Option<[f32; 3]>> {
            match v.as_deref() {
                None => Ok(None),
                Some(&[a, b, c]) if what != "--std" || [a, b, c].iter().all(|s| *s > 0.0) => Ok(Some([a, b, c])),
                Some(other) => anyhow::bail!(
                    "{what} {other:?}: three numbers (r,g,b){}",
                    if what == "--std" { ", each > 0" } else { "" }
                ),
            }
        };
        let r = &mut model.recipe;
        let before = *r;
        r.crop_ratio = self.crop_ratio.unwrap_or(r.crop_ratio);
        r.crop_mode = self.crop_mode.unwrap_or(r.crop_mode);
        r.interpolation = self.interpolation.unwrap_or(r.interpolation);
        r.mean = three(&self.mean, "--mean")?.unwrap_or(r.mean);
        r.std = three(&self.std, "--std")?.unwrap_or(r.std);
        if *r != before {
            model.recipe_source = format!("{}, overridden by flags", model.recipe_source);
        }
        Ok(model)
    }
}

/// How a model job runs, shared by the commands that run one over images.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Images per batch (training: at least 2, for BatchNorm's batch statistics).
    #[arg(long, default_value_t = 32, value_parser = parse_batch)]
    pub batch: usize,
    /// Where the model runs: a hardware GPU if there is one (auto), Burn's CPU backend, or wgpu.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
}

impl RunArgs {
    /// `--batch` for a command that trains: one image has no batch statistics.
    pub fn training_batch(&self) -> anyhow::Result<usize> {
        anyhow::ensure!(
            self.batch >= 2,
            "--batch {}: training needs at least 2 images per batch",
            self.batch
        );
        Ok(self.batch)
    }
}

/// `--shard I/N|auto` and `--shard-count`, shared by the commands that run in shards.
#[derive(Debug, Clone, Default, Args)]
pub struct ShardArgs {
    /// Run only the I-th of N disjoint, deterministic slices of the images (1-based: 2/8 is the
    /// second of eight), writing a part for `fixres merge`; or `auto`: I and N from a Slurm job
    /// array (SLURM_ARRAY_TASK_ID, _MIN, _STEP, _COUNT) or a Kubernetes Indexed Job
    /// (JOB_COMPLETION_INDEX, with N from --shard-count or FIXRES_SHARD_COUNT).
    #[arg(long, value_parser = str::parse::<ShardSpec>)]
    pub shard: Option<ShardSpec>,
    /// The number of shards, for `--shard auto` where the scheduler does not say it (Kubernetes).
    #[arg(long, requires = "shard", value_parser = parse_positive_count)]
    pub shard_count: Option<usize>,
}

impl ShardArgs {
    /// The shard asked for, if any (`auto` read from the environment).
    pub fn resolve(&self) -> anyhow::Result<Option<Shard>> {
        self.shard
            .map(|spec| Shard::resolve(spec, self.shard_count, |k| std::env::var(k).ok()).map_err(anyhow::Error::msg))
            .transpose()
    }
}

/// RandomResizedCrop's ranges, shared by the commands that sample crops.
#[derive(Debug, Clone, Args)]
pub struct CropRanges {
    /// Range of crop area / image area, "min,max".
    #[arg(long, value_parser = parse_pair, default_value = "0.08,1")]
    pub scale: (f64, f64),
    /// Range of crop aspect ratio (w/h), "min,max"; fractions allowed.
    #[arg(long, value_parser = parse_pair, default_value = "3/4,4/3")]
    pub ratio: (f64, f64),
}

impl CropRanges {
    /// The sampler these ranges define.
    #[must_use]
    pub fn sampler(&self) -> RandomResizedCrop {
        RandomResizedCrop {
            scale: self.scale,
            ratio: self.ratio,
        }
    }
}

/// A forward batch: 1 to 65536 images.
pub(crate) fn parse_batch(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(b) if (1..=65536).contains(&b) => Ok(b),
        _ => Err(format!("'{s}': a batch is 1 to 65536 images")),
    }
}

/// A finite number, zero or above (weight decay).
pub(crate) fn parse_non_negative(s: &str) -> Result<f64, String> {
    match parse_number(s)? {
        v if v >= 0.0 => Ok(v),
        _ => Err(format!("'{s}': must be zero or above")),
    }
}

/// A finite number above zero (learning rates, durations).
pub(crate) fn parse_positive(s: &str) -> Result<f64, String> {
    match parse_number(s)? {
        v if v > 0.0 => Ok(v),
        _ => Err(format!("'{s}': must be above zero")),
    }
}

/// A whole number above zero (image counts).
pub(crate) fn parse_positive_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("'{s}': must be a whole number above zero")),
    }
}

fn parse_number(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let value = match s.split_once('/') {
        Some((a, b)) => {
            let a: f64 = a.trim().parse().map_err(|_| format!("'{s}' is not a number"))?;
            let b: f64 = b.trim().parse().map_err(|_| format!("'{s}' is not a number"))?;
            a / b
        }
        None => s.parse().map_err(|_| format!("'{s}' is not a number"))?,
    };
    if value.is_finite() {
        Ok(value)
    } else {
        Err(format!("'{s}' is not a finite number"))
    }
}

/// "a,b" → (a, b), with a ≤ b, both positive.
fn parse_pair(s: &str) -> Result<(f64, f64), String> {
    let (a, b) = s
        .split_once(',')
        .ok_or_else(|| format!("'{s}': expected two numbers, \"min,max\""))?;
    let (a, b) = (parse_number(a)?, parse_number(b)?);
    if !(0.0 < a && a <= b) {
        return Err(format!("'{s}': need 0 < min <= max"));
    }
    Ok((a, b))
}

/// "WxH" → (W, H).
fn parse_image_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("'{s}': expected WIDTHxHEIGHT, e.g. 500x375"))?;
    let w: u32 = w.trim().parse().map_err(|_| format!("'{s}': bad width"))?;
    let h: u32 = h.trim().parse().map_err(|_| format!("'{s}': bad height"))?;
    if w == 0 || h == 0 {
        return Err(format!("'{s}': sides must be positive"));
    }
    Ok((w, h))
}

/// A resolution of at least 1 pixel.
fn parse_res(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(k) if (1..=8192).contains(&k) => Ok(k),
        _ => Err(format!(
            "'{s}': a resolution is a whole number of pixels from 1 to 8192"
        )),
    }
}

/// A crop ratio in [0.05, 1]: below that the resize side would be over 20 × K (a ratio of 1e-9
/// asked for terabytes).
fn parse_crop_ratio(s: &str) -> Result<f64, String> {
    match parse_number(s)? {
        r if (0.05..=1.0).contains(&r) => Ok(r),
        _ => Err(format!(
            "'{s}': the crop ratio (K_test / resize side) must be in [0.05, 1]"
        )),
    }
}

/// Prints `value` as one JSON object on stdout.
fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
fn progress_bar(total: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} images, {per_sec}, eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_owned());
    bar
}

/// Prints a loaded model's warnings (NaN weights, ...) on stderr, once, and hands it on.
fn warn(model: crate::model::Model) -> crate::model::Model {
    for w in &model.warnings {
        eprintln!("warning: {w}");
    }
    model
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        None => crate::app::run(crate::app::Startup {
            data: cli.data,
            weights: cli.weights,
            fresh: cli.fresh,
        }),
        Some(Command::Size(args)) => size::run(&args),
        Some(Command::Preprocess(args)) => preprocess::run(&args),
        Some(Command::Recipe(args)) => recipe::run(&args),
        Some(Command::Features(args)) => features::run(&args),
        Some(Command::Eval(args)) => eval::run(&args),
        Some(Command::Finetune(args)) => finetune::run(&args),
        Some(Command::Recalibrate(args)) => recalibrate::run(&args),
        Some(Command::Adapt(args)) => adapt::run(&args),
        Some(Command::Convert(args)) => convert::run(&args),
        Some(Command::Train(args)) => train::run(&args),
        Some(Command::Grid(args)) => grid::run(&args),
        Some(Command::Merge(args)) => merge::run(&args),
        Some(Command::Bench(cmd)) => bench::run(&cmd),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_and_sizes_parse_or_explain() {
        assert_eq!(parse_pair("0.08,1"), Ok((0.08, 1.0)));
        assert_eq!(parse_pair("3/4,4/3"), Ok((0.75, 4.0 / 3.0)));
        assert!(parse_pair("1,0.5").is_err());
        assert!(parse_pair("x").is_err());
        assert_eq!(parse_image_size("500x375"), Ok((500, 375)));
        assert!(parse_image_size("500").is_err());
        assert!(parse_res("0").is_err());
        assert!(parse_crop_ratio("1.5").is_err());
    }
}
