//! `fixres grid`: the paper's train × test resolution table on your data. One model per train
//! resolution (trained with `fixres train`'s recipe, or reused from the output folder), each
//! evaluated at every test resolution and, with `--finetune`, FixRes-fine-tuned at each. Writes
//! `grid.json`, `grid.csv` and a heatmap `grid.png`; finished cells are kept in `grid.json`, so
//! an interrupted run resumes where it stopped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use serde::{Deserialize, Serialize};

use super::{RunArgs, parse_res, print_json};
use crate::backend::{Backend, choose};
use crate::data::{Check, DecodeLimits, ImageFolder};
use crate::eval::{class_map, run_model, top_k};
use crate::finetune::Trainable;
use crate::finetune::run::{Augmentation, Config as FinetuneConfig, Schedule, finetune};
use crate::fsutil::write_atomic;
use crate::model::Model;
use crate::train::{Arch, Config as TrainConfig, export as export_model, train};

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

/// One cell of the table (the GUI's grid window reads them too).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Cell {
    pub(crate) train_res: usize,
    pub(crate) test_res: usize,
    /// Validation top-1 of the model as trained.
    pub(crate) top1: f64,
    /// Validation top-1 after the FixRes fine-tune at `test_res`, when run.
    pub(crate) finetuned_top1: Option<f64>,
}

/// The smallest and largest top-1 of `cells`, fine-tuned or not: the heatmaps' colour range.
pub(crate) fn top1_range(cells: &[Cell]) -> (f64, f64) {
    cells
        .iter()
        .flat_map(|c| std::iter::once(c.top1).chain(c.finetuned_top1))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
}

/// What `grid.json` holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Grid {
    #[serde(serialize_with = "crate::fsutil::serialize_path")]
    data: PathBuf,
    /// Images per step of training and fine-tuning.
    #[serde(default)]
    batch: usize,
    arch: String,
    epochs: usize,
    finetune_epochs: usize,
    seed: u64,
    cells: Vec<Cell>,
    /// Seconds per stage, as run (a resumed run adds its own).
    stages: Vec<(String, f64)>,
}

impl Grid {
    fn cell(&mut self, train_res: usize, test_res: usize) -> Option<&mut Cell> {
        self.cells
            .iter_mut()
            .find(|c| c.train_res == train_res && c.test_res == test_res)
    }

    fn save(&self, out: &Path) -> anyhow::Result<()> {
        write_atomic(&out.join("grid.json"), serde_json::to_string_pretty(self)?.as_bytes())
    }
}

pub fn run(args: &GridArgs) -> anyhow::Result<ExitCode> {
    args.run.training_batch()?;
    anyhow::ensure!(
        crate::data::split::is_split(&args.data),
        "{}: the grid needs an ImageFolder with train/ and val/",
        args.data.display()
    );
    let mut test_res = parse_range(&args.test_res).map_err(|e| anyhow::anyhow!("--test-res {e}"))?;
    // The table's columns and rows: each resolution once, in order.
    test_res.sort_unstable();
    test_res.dedup();
    let mut train_res = args.train_res.clone();
    train_res.sort_unstable();
    train_res.dedup();
    let backend = choose(args.run.device)?;
    std::fs::create_dir_all(args.out.join("models")).map_err(|e| anyhow::anyhow!("{}: {e}", args.out.display()))?;
    let grid_path = args.out.join("grid.json");
    let mut grid: Grid = match std::fs::read_to_string(&grid_path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", grid_path.display()))?,
        Err(_) => Grid::default(),
    };
    // What the models and cells depend on: resuming with anything else would mix two grids.
    // (Grids from before the batch size was recorded have 0 there, which any batch matches.)
    let same_data = |recorded: &Path| {
        let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_owned());
        canonical(recorded) == canonical(&args.data)
    };
    let models_exist = std::fs::read_dir(args.out.join("models")).is_ok_and(|mut d| d.next().is_some());
    let matches = same_data(&grid.data)
        && (grid.batch == 0 || grid.batch == args.run.batch)
        && (grid.arch.as_str(), grid.epochs, grid.finetune_epochs, grid.seed)
            == (args.arch.name(), args.epochs, args.finetune_epochs, args.seed);
    if grid.cells.is_empty() && models_exist && grid.arch.is_empty() {
        anyhow::bail!(
            "{}: holds trained models but no grid.json to say how they were made; use another --out (or delete models/)",
            args.out.display()
        );
    }
    if (!grid.cells.is_empty() || models_exist) && !matches {
        anyhow::bail!(
            "{}: holds a grid made with other settings (data {}, batch {}, arch {}, epochs {}, fine-tune epochs {}, seed {}); use another --out",
            args.out.display(),
            grid.data.display(),
            grid.batch,
            grid.arch,
            grid.epochs,
            grid.finetune_epochs,
            grid.seed
        );
    }
    if grid.cells.is_empty() {
        grid.data = args.data.clone();
    }
    (grid.batch, grid.arch, grid.epochs, grid.finetune_epochs, grid.seed) = (
        args.run.batch,
        args.arch.name().to_owned(),
        args.epochs,
        args.finetune_epochs,
        args.seed,
    );
    let val = ImageFolder::scan(&args.data.join("val"), Check::List, DecodeLimits::default())?;
    for &k_train in &train_res {
        let model_path = args
            .out
            .join("models")
            .join(format!("{}_k{k_train}.safetensors", args.arch.name()));
        if !model_path.is_file() {
            let started = Instant::now();
            eprintln!("training {} at {k_train}…", args.arch.name());
            let trained = train(
                &TrainConfig {
                    data: args.data.clone(),
                    arch: args.arch,
                    res: k_train,
                    epochs: args.epochs,
                    batch: args.run.batch,
                    lr: 0.1,
                    weight_decay: 5e-4,
                    seed: args.seed,
                },
                &backend,
                &mut |_| true,
            )?;
            export_model(&trained, args.arch, &model_path)?;
            stage(&mut grid, format!("train at {k_train}"), started, &args.out)?;
        }
        let model = Model::load(&model_path, &backend.device)?;
        let missing: Vec<usize> = test_res
            .iter()
            .copied()
            .filter(|&k| grid.cell(k_train, k).is_none())
            .collect();
        if !missing.is_empty() {
            let started = Instant::now();
            let top1 = evaluate(&model, &backend, &val, &missing)?;
            for (&k, acc) in missing.iter().zip(top1) {
                grid.cells.push(Cell {
                    train_res: k_train,
                    test_res: k,
                    top1: acc,
                    finetuned_top1: None,
                });
            }
            stage(
                &mut grid,
                format!("evaluate the {k_train} model at {} resolutions", missing.len()),
                started,
                &args.out,
            )?;
        }
        if args.finetune {
            for &k_test in &test_res {
                if grid.cell(k_train, k_test).is_some_and(|c| c.finetuned_top1.is_some()) {
                    continue;
                }
                let started = Instant::now();
                let outcome = finetune(
                    &model,
                    &model_path,
                    &backend,
                    &FinetuneConfig {
                        data: args.data.clone(),
                        res: k_test,
                        epochs: args.finetune_epochs,
                        batch: args.run.batch,
                        lr: None,
                        trainable: Trainable {
                            classifier: true,
                            bn_affine: true,
                        },
                        da: Augmentation::Test,
                        cache_bytes: 1 << 30,
                        trunk_cache: true,
                        seed: args.seed,
                        schedule: Schedule::Constant,
                        curve: vec![k_test],
                        recipe: model.recipe,
                    },
                    &mut |_| true,
                )?;
                if let Some(cell) = grid.cell(k_train, k_test) {
                    cell.finetuned_top1 = Some(outcome.after);
                }
                stage(
                    &mut grid,
                    format!("fine-tune the {k_train} model at {k_test}"),
                    started,
                    &args.out,
                )?;
            }
        }
    }
    let csv = table_csv(&grid, &train_res, &test_res);
    write_atomic(&args.out.join("grid.csv"), csv.as_bytes())?;
    write_atomic(&args.out.join("grid.png"), &heatmap(&grid, &train_res, &test_res)?)?;
    if args.json {
        print_json(&serde_json::to_value(&grid)?)?;
    } else {
        print!("{}", table_text(&grid, &train_res, &test_res));
        println!("wrote {}/grid.json, grid.csv, grid.png", args.out.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Records a stage's time, prints it and saves the grid (so a stop loses at most one stage).
fn stage(grid: &mut Grid, what: String, started: Instant, out: &Path) -> anyhow::Result<()> {
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("{what}: {seconds:.1} s");
    grid.stages.push((what, seconds));
    grid.save(out)
}

/// Validation top-1 at each of `resolutions` (each image decoded once).
fn evaluate(model: &Model, backend: &Backend, val: &ImageFolder, resolutions: &[usize]) -> anyhow::Result<Vec<f64>> {
    let labels = class_map(&val.classes, model).map_err(|why| anyhow::anyhow!("{}: {why}", val.root.display()))?;
    let files: Vec<PathBuf> = val.samples.iter().map(|s| s.path.clone()).collect();
    let targets: Vec<usize> = val.samples.iter().map(|s| labels[s.class]).collect();
    let (mut correct, mut scored) = (vec![0usize; resolutions.len()], vec![0usize; resolutions.len()]);
    run_model(
        model,
        model.recipe,
        &backend.device,
        &files,
        resolutions,
        128,
        |r, indices, _, logits| {
            for (&i, l) in indices.iter().zip(&logits) {
                correct[r] += usize::from(top_k(l, 1)[0] == targets[i]);
                scored[r] += 1;
            }
        },
        |_, _| true,
    )?;
    Ok(correct
        .iter()
        .zip(&scored)
        .map(|(&c, &n)| c as f64 / n.max(1) as f64)
        .collect())
}

fn lookup(grid: &Grid) -> BTreeMap<(usize, usize), &Cell> {
    grid.cells.iter().map(|c| ((c.train_res, c.test_res), c)).collect()
}

fn table_csv(grid: &Grid, train: &[usize], test: &[usize]) -> String {
    let cells = lookup(grid);
    let mut s = String::from("train_res,test_res,top1,finetuned_top1\n");
    for &a in train {
        for &b in test {
            if let Some(c) = cells.get(&(a, b)) {
                let ft = c.finetuned_top1.map(|v| v.to_string()).unwrap_or_default();
                s += &format!("{a},{b},{},{ft}\n", c.top1);
            }
        }
    }
    s
}

/// The table as text: rows are train resolutions, columns test resolutions; "a / b" is top-1
/// without / with the fine-tune; the best test resolution of each row is starred.
fn table_text(grid: &Grid, train: &[usize], test: &[usize]) -> String {
    let cells = lookup(grid);
    let mut s = format!("{:>8}", "train\\test");
    for b in test {
        s += &format!(" {b:>13}");
    }
    s.push('\n');
    for &a in train {
        s += &format!("{a:>10}");
        let best = test
            .iter()
            .filter_map(|&b| cells.get(&(a, b)).map(|c| (b, c.top1)))
            .max_by(|x, y| x.1.total_cmp(&y.1))
            .map(|(b, _)| b);
        for &b in test {
            let text = cells.get(&(a, b)).map_or_else(String::new, |c| {
                let star = if Some(b) == best { "*" } else { "" };
                match c.finetuned_top1 {
                    Some(f) => format!("{star}{:.1}/{:.1}", 100.0 * c.top1, 100.0 * f),
                    None => format!("{star}{:.1}", 100.0 * c.top1),
                }
            });
            s += &format!(" {text:>13}");
        }
        s.push('\n');
    }
    s
}

/// A heatmap PNG: one square per cell (top-1 as colour: dark blue low, yellow high), the
/// fine-tuned table to the right of the plain one when there is one. Rows: train resolutions
/// (smallest at the top); columns: test resolutions (smallest at the left).
fn heatmap(grid: &Grid, train: &[usize], test: &[usize]) -> anyhow::Result<Vec<u8>> {
    const CELL: u32 = 24;
    let cells = lookup(grid);
    let (lo, hi) = top1_range(&grid.cells);
    let panels = if grid.cells.iter().any(|c| c.finetuned_top1.is_some()) {
        2
    } else {
        1
    };
    let (w, h) = (test.len() as u32 * CELL, train.len() as u32 * CELL);
    let mut img = image::RgbImage::from_pixel(w * panels + CELL * (panels - 1), h, image::Rgb([255, 255, 255]));
    for (row, &a) in train.iter().enumerate() {
        for (col, &b) in test.iter().enumerate() {
            let Some(c) = cells.get(&(a, b)) else { continue };
            for (panel, v) in [(0, Some(c.top1)), (1, c.finetuned_top1)] {
                let Some(v) = v else { continue };
                let t = if hi > lo { (v - lo) / (hi - lo) } else { 1.0 };
                // A two-stop ramp: dark blue → teal → yellow.
                let color = if t < 0.5 {
                    let u = t * 2.0;
                    [
                        (20.0 + u * 10.0) as u8,
                        (30.0 + u * 130.0) as u8,
                        (90.0 + u * 50.0) as u8,
                    ]
                } else {
                    let u = (t - 0.5) * 2.0;
                    [
                        (30.0 + u * 220.0) as u8,
                        (160.0 + u * 70.0) as u8,
                        (140.0 - u * 110.0) as u8,
                    ]
                };
                let x0 = panel * (w + CELL) + col as u32 * CELL;
                for y in row as u32 * CELL + 1..(row as u32 + 1) * CELL {
                    for x in x0 + 1..x0 + CELL {
                        img.put_pixel(x, y, image::Rgb(color));
                    }
                }
            }
        }
    }
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    Ok(png)
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
