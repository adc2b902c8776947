//! `fixres grid`: arguments and printing; the table is made by `crate::grid`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{RunArgs, parse_res, print_json};
use crate::backend::choose;
use crate::grid::{self, Config, Progress};
use crate::train::Arch;

/// Arguments of `fixres grid`.
#[derive(Debug, Args)]
pub struct GridArgs {
    /// A labelled ImageFolder with `train/` and `val/`.
    #[arg(long)]
    pub data: PathBuf,
    /// Train resolutions, comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = parse_res, required = true)]
    pub train_res: Vec<usize>,
    /// Test resolutions: comma-separated, or "FROM..TO" (step 4) or "FROM..TO:STEP".
    #[arg(long, default_value = "16..48")]
    pub test_res: String,
    /// Also FixRes-fine-tune each model at each test resolution (test-time augmentation).
    #[arg(long)]
    pub finetune: bool,
    /// Architecture of the models trained.
    #[arg(long, value_enum, default_value_t = Arch::ResnetTiny)]
    pub arch: Arch,
    /// Training epochs per model.
    #[arg(long, default_value_t = 15)]
    pub epochs: usize,
    /// Fine-tune epochs per cell.
    #[arg(long, default_value_t = 5)]
    pub finetune_epochs: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub run: RunArgs,
    /// Output folder: models/, grid.json, grid.csv, grid.png. Reused to resume.
    #[arg(long, default_value = "grid")]
    pub out: PathBuf,
    /// Print the table as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// "16..48", "16..48:8" or "16,24,32".
fn parse_range(s: &str) -> Result<Vec<usize>, String> {
    if let Some((from, rest)) = s.split_once("..") {
        let (to, step) = rest.split_once(':').unwrap_or((rest, "4"));
        let (from, to) = (parse_res(from)?, parse_res(to)?);
        let step: usize = step.parse().map_err(|_| format!("'{s}': bad step"))?;
        if from > to || step == 0 {
            return Err(format!("'{s}': need FROM <= TO and a step above 0"));
        }
        Ok((from..=to).step_by(step).collect())
    } else {
        s.split(',').map(parse_res).collect()
    }
}

pub fn run(args: &GridArgs) -> anyhow::Result<ExitCode> {
    let batch = args.run.training_batch()?;
    let test_res = parse_range(&args.test_res).map_err(|e| anyhow::anyhow!("--test-res {e}"))?;
    let backend = choose(args.run.device)?;
    let config = Config {
        data: args.data.clone(),
        train_res: args.train_res.clone(),
        test_res,
        finetune: args.finetune,
        arch: args.arch,
        epochs: args.epochs,
        finetune_epochs: args.finetune_epochs,
        batch,
        seed: args.seed,
        out: args.out.clone(),
    };
    let grid = grid::run(&config, &backend, &mut |progress| match progress {
        Progress::Training { res } => eprintln!("training {} at {res}…", args.arch.name()),
        Progress::Stage { what, seconds } => eprintln!("{what}: {seconds:.1} s"),
    })?;
    if args.json {
        print_json(&serde_json::to_value(&grid)?)?;
    } else {
        let (train, test) = (grid.train_resolutions(), grid.test_resolutions());
        let (train, test): (Vec<usize>, Vec<usize>) = (
            train.into_iter().filter(|k| config.train_res.contains(k)).collect(),
            test.into_iter().filter(|k| config.test_res.contains(k)).collect(),
        );
        print!("{}", grid.text(&train, &test));
        println!("wrote {}/grid.json, grid.csv, grid.png", args.out.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_with_and_without_a_step() {
        assert_eq!(parse_range("16..28").unwrap(), vec![16, 20, 24, 28]);
        assert_eq!(parse_range("16..48:16").unwrap(), vec![16, 32, 48]);
        assert_eq!(parse_range("20,24").unwrap(), vec![20, 24]);
        assert!(parse_range("30..20").is_err());
    }
}
