//! The paper's train × test resolution table on the user's data (`fixres grid`, and the GUI's grid
//! window reads what it writes). One model per train resolution, trained with `train`'s recipe or
//! reused from the output folder, each evaluated at every test resolution and, when asked,
//! FixRes-fine-tuned at each. The output folder holds `models/`, `grid.json` (saved after every
//! stage, so an interrupted run resumes where it stopped), `grid.csv` and a heatmap `grid.png`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::data::{Check, DecodeLimits, ImageFolder};
use crate::eval::{Sweep, class_map, top1_per_resolution};
use crate::finetune::Trainable;
use crate::finetune::run::{Augmentation, Config as FinetuneConfig, Schedule, finetune};
use crate::fsutil::write_atomic;
use crate::model::Model;
use crate::train::{Arch, Config as TrainConfig, export as export_model, train};

/// What a grid is made of.
#[derive(Clone, Debug)]
pub struct Config {
    /// A labelled ImageFolder with `train/` and `val/`.
    pub data: PathBuf,
    /// Train resolutions (rows).
    pub train_res: Vec<usize>,
    /// Test resolutions (columns).
    pub test_res: Vec<usize>,
    /// Also FixRes-fine-tune each model at each test resolution.
    pub finetune: bool,
    /// Architecture of the models trained.
    pub arch: Arch,
    /// Training epochs per model.
    pub epochs: usize,
    /// Fine-tune epochs per cell.
    pub finetune_epochs: usize,
    /// Images per step of training and fine-tuning.
    pub batch: usize,
    /// Seed of training and fine-tuning.
    pub seed: u64,
    /// Output folder; reused to resume.
    pub out: PathBuf,
}

/// What a running grid reports.
#[derive(Clone, Debug)]
pub enum Progress {
    /// A model is being trained at this train resolution.
    Training {
        /// K_train.
        res: usize,
    },
    /// A stage finished (and the grid was saved).
    Stage {
        /// What ran, e.g. "train at 16".
        what: String,
        /// Its wall-clock time.
        seconds: f64,
    },
}

/// One cell of the table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// K_train of the model.
    pub train_res: usize,
    /// K_test it was evaluated at.
    pub test_res: usize,
    /// Validation top-1 of the model as trained.
    pub top1: f64,
    /// Validation top-1 after the FixRes fine-tune at `test_res`, when run.
    pub finetuned_top1: Option<f64>,
    /// The model's multiply-accumulates per image at `test_res` (absent in grids written before
    /// the tool counted them).
    #[serde(default)]
    pub macs: Option<u64>,
}

/// What `grid.json` holds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Grid {
    /// The dataset.
    #[serde(serialize_with = "crate::fsutil::serialize_path")]
    pub data: PathBuf,
    /// Images per step of training and fine-tuning (0 in grids from before it was recorded).
    #[serde(default)]
    pub batch: usize,
    /// Architecture name.
    pub arch: String,
    /// Training epochs per model.
    pub epochs: usize,
    /// Fine-tune epochs per cell.
    pub finetune_epochs: usize,
    /// Seed.
    pub seed: u64,
    /// The table, in the order it was filled.
    pub cells: Vec<Cell>,
    /// Seconds per stage, as run (a resumed run adds its own).
    pub stages: Vec<(String, f64)>,
}

/// Where the grid of an output folder is kept.
#[must_use]
pub fn grid_file(out: &Path) -> PathBuf {
    out.join("grid.json")
}

impl Grid {
    /// Reads `grid.json`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    fn save(&self, out: &Path) -> anyhow::Result<()> {
        write_atomic(&grid_file(out), serde_json::to_string_pretty(self)?.as_bytes())
    }

    fn cell_mut(&mut self, train_res: usize, test_res: usize) -> Option<&mut Cell> {
        self.cells
            .iter_mut()
            .find(|c| c.train_res == train_res && c.test_res == test_res)
    }

    /// The cell of a train and a test resolution.
    #[must_use]
    pub fn cell(&self, train_res: usize, test_res: usize) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|c| c.train_res == train_res && c.test_res == test_res)
    }

    /// A cell's top-1, as trained or after the fine-tune.
    #[must_use]
    pub fn top1(&self, train_res: usize, test_res: usize, finetuned: bool) -> Option<f64> {
        self.cell(train_res, test_res)
            .and_then(|c| if finetuned { c.finetuned_top1 } else { Some(c.top1) })
    }

    /// The train resolutions (rows) present, each once, in order.
    #[must_use]
    pub fn train_resolutions(&self) -> Vec<usize> {
        sorted_unique(self.cells.iter().map(|c| c.train_res).collect())
    }

    /// The test resolutions (columns) present, each once, in order.
    #[must_use]
    pub fn test_resolutions(&self) -> Vec<usize> {
        sorted_unique(self.cells.iter().map(|c| c.test_res).collect())
    }

    /// Whether any cell was fine-tuned.
    #[must_use]
    pub fn has_finetuned(&self) -> bool {
        self.cells.iter().any(|c| c.finetuned_top1.is_some())
    }

    /// The best test resolution of a row among `test`: the highest top-1, the first of a tie.
    #[must_use]
    pub fn best_test_res(&self, train_res: usize, test: &[usize], finetuned: bool) -> Option<usize> {
        test.iter()
            .filter_map(|&b| self.top1(train_res, b, finetuned).map(|v| (b, v)))
            .max_by(|x, y| x.1.total_cmp(&y.1))
            .map(|(b, _)| b)
    }

    /// The smallest and largest top-1, fine-tuned or not: the heatmaps' colour range.
    #[must_use]
    pub fn top1_range(&self) -> (f64, f64) {
        self.cells
            .iter()
            .flat_map(|c| std::iter::once(c.top1).chain(c.finetuned_top1))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
    }

    /// Where `v` falls in the colour range, 0 to 1 (1 when all values are equal).
    #[must_use]
    pub fn shade(&self, v: f64) -> f64 {
        let (lo, hi) = self.top1_range();
        if hi > lo { (v - lo) / (hi - lo) } else { 1.0 }
    }

    /// The table as CSV, one row per cell of `train` × `test`.
    #[must_use]
    pub fn csv(&self, train: &[usize], test: &[usize]) -> String {
        let cells = self.lookup();
        let mut s = String::from("train_res,test_res,top1,finetuned_top1,macs\n");
        for &a in train {
            for &b in test {
                if let Some(c) = cells.get(&(a, b)) {
                    let ft = c.finetuned_top1.map(|v| v.to_string()).unwrap_or_default();
                    let macs = c.macs.map(|m| m.to_string()).unwrap_or_default();
                    s += &format!("{a},{b},{},{ft},{macs}\n", c.top1);
                }
            }
        }
        s
    }

    /// The table as text: rows are train resolutions, columns test resolutions; "a / b" is top-1
    /// without / with the fine-tune; the best test resolution of each row is starred.
    #[must_use]
    pub fn text(&self, train: &[usize], test: &[usize]) -> String {
        let cells = self.lookup();
        let mut s = format!("{:>8}", "train\\test");
        for b in test {
            s += &format!(" {b:>13}");
        }
        s.push('\n');
        for &a in train {
            s += &format!("{a:>10}");
            let best = self.best_test_res(a, test, false);
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
        // The cost of each test resolution (one architecture: the same in every row).
        let macs: Vec<Option<u64>> = test
            .iter()
            .map(|&b| train.iter().find_map(|&a| cells.get(&(a, b)).and_then(|c| c.macs)))
            .collect();
        if macs.iter().any(Option::is_some) {
            s += &format!("{:>10}", "GMACs");
            for m in macs {
                let text = m.map_or_else(String::new, |m| format!("{:.4}", m as f64 / 1e9));
                s += &format!(" {text:>13}");
            }
            s.push('\n');
        }
        s
    }

    /// A heatmap PNG: one square per cell (top-1 as `ramp` colour), the fine-tuned table to the
    /// right of the plain one when there is one. Rows: train resolutions (smallest at the top);
    /// columns: test resolutions (smallest at the left).
    pub fn heatmap(&self, train: &[usize], test: &[usize]) -> anyhow::Result<Vec<u8>> {
        const CELL: u32 = 24;
        let cells = self.lookup();
        let panels = if self.has_finetuned() { 2 } else { 1 };
        let (w, h) = (test.len() as u32 * CELL, train.len() as u32 * CELL);
        let mut img = image::RgbImage::from_pixel(w * panels + CELL * (panels - 1), h, image::Rgb([255, 255, 255]));
        for (row, &a) in train.iter().enumerate() {
            for (col, &b) in test.iter().enumerate() {
                let Some(c) = cells.get(&(a, b)) else { continue };
                for (panel, v) in [(0, Some(c.top1)), (1, c.finetuned_top1)] {
                    let Some(v) = v else { continue };
                    let color = ramp(self.shade(v));
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

    fn lookup(&self) -> BTreeMap<(usize, usize), &Cell> {
        self.cells.iter().map(|c| ((c.train_res, c.test_res), c)).collect()
    }
}

/// The heatmaps' colour for a shade in [0, 1]: a two-stop ramp, dark blue → teal → yellow (the
/// PNG and the GUI's window alike).
#[must_use]
pub fn ramp(t: f64) -> [u8; 3] {
    if t < 0.5 {
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
    }
}

fn sorted_unique(mut v: Vec<usize>) -> Vec<usize> {
    v.sort_unstable();
    v.dedup();
    v
}

/// Fills the grid of `cfg.out` (training, evaluating and fine-tuning what it lacks), saving it
/// after every stage, then writes `grid.csv` and `grid.png`. A folder holding a grid made with
/// other settings is refused: resuming it would mix two grids.
pub fn run(cfg: &Config, backend: &Backend, report: &mut dyn FnMut(Progress)) -> anyhow::Result<Grid> {
    anyhow::ensure!(
        crate::data::split::is_split(&cfg.data),
        "{}: the grid needs an ImageFolder with train/ and val/",
        cfg.data.display()
    );
    // The table's columns and rows: each resolution once, in order.
    let test_res = sorted_unique(cfg.test_res.clone());
    let train_res = sorted_unique(cfg.train_res.clone());
    let out = &cfg.out;
    std::fs::create_dir_all(out.join("models")).map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
    let mut grid = if grid_file(out).exists() {
        Grid::load(&grid_file(out))?
    } else {
        Grid::default()
    };
    check_resumable(&grid, cfg)?;
    if grid.cells.is_empty() {
        grid.data = cfg.data.clone();
    }
    (grid.batch, grid.arch, grid.epochs, grid.finetune_epochs, grid.seed) = (
        cfg.batch,
        cfg.arch.name().to_owned(),
        cfg.epochs,
        cfg.finetune_epochs,
        cfg.seed,
    );
    let val = ImageFolder::scan(&cfg.data.join("val"), Check::List, DecodeLimits::default())?;
    for &k_train in &train_res {
        let model_path = out
            .join("models")
            .join(format!("{}_k{k_train}.safetensors", cfg.arch.name()));
        if !model_path.is_file() {
            let started = Instant::now();
            report(Progress::Training { res: k_train });
            let trained = train(
                &TrainConfig {
                    data: cfg.data.clone(),
                    arch: cfg.arch,
                    res: k_train,
                    epochs: cfg.epochs,
                    batch: cfg.batch,
                    lr: 0.1,
                    weight_decay: 5e-4,
                    seed: cfg.seed,
                },
                backend,
                &mut |_| true,
            )?;
            export_model(&trained, cfg.arch, &model_path)?;
            stage(&mut grid, out, format!("train at {k_train}"), started, report)?;
        }
        let model = Model::load(&model_path, &backend.device)?;
        let missing: Vec<usize> = test_res
            .iter()
            .copied()
            .filter(|&k| grid.cell(k_train, k).is_none())
            .collect();
        if !missing.is_empty() {
            let started = Instant::now();
            let scores = evaluate(&model, backend, &val, &missing)?;
            for (&k, (acc, macs)) in missing.iter().zip(scores) {
                grid.cells.push(Cell {
                    train_res: k_train,
                    test_res: k,
                    top1: acc,
                    finetuned_top1: None,
                    macs: Some(macs),
                });
            }
            let what = format!("evaluate the {k_train} model at {} resolutions", missing.len());
            stage(&mut grid, out, what, started, report)?;
        }
        if !cfg.finetune {
            continue;
        }
        for &k_test in &test_res {
            if grid.cell(k_train, k_test).is_some_and(|c| c.finetuned_top1.is_some()) {
                continue;
            }
            let started = Instant::now();
            let outcome = finetune(
                &model,
                &model_path,
                backend,
                &FinetuneConfig {
                    data: cfg.data.clone(),
                    res: k_test,
                    epochs: cfg.finetune_epochs,
                    batch: cfg.batch,
                    lr: None,
                    trainable: Trainable {
                        classifier: true,
                        bn_affine: true,
                    },
                    da: Augmentation::Test,
                    cache_bytes: 1 << 30,
                    trunk_cache: true,
                    trunk_parts: None,
                    seed: cfg.seed,
                    schedule: Schedule::Constant,
                    curve: vec![k_test],
                    recipe: model.recipe,
                    new_classifier: None,
                },
                &mut |_| true,
            )?;
            if let Some(cell) = grid.cell_mut(k_train, k_test) {
                cell.finetuned_top1 = Some(outcome.after);
            }
            let what = format!("fine-tune the {k_train} model at {k_test}");
            stage(&mut grid, out, what, started, report)?;
        }
    }
    write_atomic(&out.join("grid.csv"), grid.csv(&train_res, &test_res).as_bytes())?;
    write_atomic(&out.join("grid.png"), &grid.heatmap(&train_res, &test_res)?)?;
    Ok(grid)
}

/// Records a stage's time and saves the grid (so a stop loses at most one stage), then reports it.
fn stage(
    grid: &mut Grid,
    out: &Path,
    what: String,
    started: Instant,
    report: &mut dyn FnMut(Progress),
) -> anyhow::Result<()> {
    let seconds = started.elapsed().as_secs_f64();
    grid.stages.push((what.clone(), seconds));
    grid.save(out)?;
    report(Progress::Stage { what, seconds });
    Ok(())
}

/// Refuses an output folder whose models or cells were made with other settings than `cfg`'s.
fn check_resumable(grid: &Grid, cfg: &Config) -> anyhow::Result<()> {
    let out = &cfg.out;
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_owned());
    let models_exist = std::fs::read_dir(out.join("models")).is_ok_and(|mut d| d.next().is_some());
    // Grids from before the batch size was recorded have 0 there, which any batch matches.
    let matches = canonical(&grid.data) == canonical(&cfg.data)
        && (grid.batch == 0 || grid.batch == cfg.batch)
        && (grid.arch.as_str(), grid.epochs, grid.finetune_epochs, grid.seed)
            == (cfg.arch.name(), cfg.epochs, cfg.finetune_epochs, cfg.seed);
    if grid.cells.is_empty() && models_exist && grid.arch.is_empty() {
        anyhow::bail!(
            "{}: holds trained models but no grid.json to say how they were made; use another --out (or delete models/)",
            out.display()
        );
    }
    if (!grid.cells.is_empty() || models_exist) && !matches {
        anyhow::bail!(
            "{}: holds a grid made with other settings (data {}, batch {}, arch {}, epochs {}, fine-tune epochs {}, seed {}); use another --out",
            out.display(),
            grid.data.display(),
            grid.batch,
            grid.arch,
            grid.epochs,
            grid.finetune_epochs,
            grid.seed
        );
    }
    Ok(())
}

/// Validation top-1 and multiply-accumulates per image at each of `resolutions` (each image
/// decoded once).
fn evaluate(
    model: &Model,
    backend: &Backend,
    val: &ImageFolder,
    resolutions: &[usize],
) -> anyhow::Result<Vec<(f64, u64)>> {
    let labels = class_map(&val.classes, model).map_err(|why| anyhow::anyhow!("{}: {why}", val.root.display()))?;
    let files: Vec<PathBuf> = val.samples.iter().map(|s| s.path.clone()).collect();
    let targets: Vec<usize> = val.samples.iter().map(|s| labels[s.class]).collect();
    let sweep = Sweep::new(model, backend, &files, resolutions, 128);
    top1_per_resolution(&sweep, &targets)
}
