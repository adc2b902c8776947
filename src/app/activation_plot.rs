//! Pooled activations (paper §3.2) of a sample of the dataset at the current K_test, over the
//! same at K_train, and, once a remedy asks, those of its model at K_test (its values mapped as
//! the parametric adaptation maps them): histogram, CDF and a table. Computed in the background, batch by batch (the
//! plot fills in as batches finish); moving a slider cancels the run for the old value. The
//! histogram is binned once per batch's values, in the background (on the GPU the sweeps use,
//! when one is up: `shaders/histogram.wgsl`), not per frame.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use eframe::egui;
use egui_plot::{Line, Plot};

use super::messages::count;
use super::panel::{Panel, Place};
use super::plot_widgets::{export_buttons, legend, set_png_rect};
use super::{Command, LoadedModel, Shared};
use crate::data::{CropMode, Interpolation};
use crate::eval::{PooledStats, StatsAccumulator, Sweep};
use crate::jobs::Latest;
use crate::stats::quantile;

/// Histogram bins.
const BINS: usize = 40;
/// Images per model batch (small: a cancelled run stops at the end of its batch).
const BATCH: usize = 8;
/// Images of the first batch of a run: one image's forward pass is what stands between a new
/// K_test and the first histogram on screen, the full batches follow.
const FIRST_BATCH: usize = 1;
/// How long the settings must stay put before a run starts: dragging a slider starts none.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(150);
/// Finished results kept (each is one resolution's values).
const KEEP: usize = 48;
const TEST_COLOR: egui::Color32 = egui::Color32::from_rgb(60, 170, 255);
const TRAIN_COLOR: egui::Color32 = egui::Color32::from_rgb(255, 150, 30);
const AFTER_COLOR: egui::Color32 = egui::Color32::from_rgb(80, 220, 100);

/// A remedy's model whose activations at K_test are shown beside the open model's.
struct After {
    /// How the legend names it ("BatchNorm re-estimated").
    name: String,
    path: PathBuf,
    /// `a·x + b` applied to its pooled activations (the parametric adaptation's map, which its
    /// export folds into the classifier).
    map: Option<[f64; 2]>,
    /// Stands in for a model id in its keys.
    id: u64,
    /// The key whose run failed, not retried until the settings move on.
    failed: Option<Key>,
}

/// What one set of activations depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    model: u64,
    dataset: u64,
    res: usize,
    crop_ratio_bits: u64,
    crop_mode: CropMode,
    interpolation: Interpolation,
    images: usize,
}

/// Activations at one resolution, complete or filling in.
#[derive(Default)]
struct Entry {
    stats: Option<PooledStats>,
    /// Sorted values, for the CDF and common histogram bins.
    sorted: Vec<f64>,
    images: usize,
    total: usize,
    complete: bool,
}

enum Event {
    /// Everything so far at one resolution (statistics and sorting done in the job, not the UI).
    Partial {
        key: Key,
        stats: PooledStats,
        sorted: Vec<f64>,
        images: usize,
    },
    Done {
        key: Key,
        failed: usize,
    },
    Failed(String),
}

/// The view's state.
#[derive(Default)]
pub struct ActivationView {
    entries: HashMap<Key, Entry>,
    job: Latest<Event>,
    job_keys: Vec<Key>,
    /// The keys last asked for, and since when.
    wanted: Option<(Vec<Key>, std::time::Instant)>,
    note: Option<String>,
    /// The keys whose run failed (not retried until the settings move on).
    failed: Option<Vec<Key>>,
    /// Histogram densities of the entries, as last binned.
    binned: HashMap<Key, Binned>,
    /// The binning job.
    binning: Latest<(Key, Binned)>,
    /// The stale entries and range of a binning job that did not start: not asked for again
    /// (every frame) until they change.
    bin_not_started: Option<(Vec<(Key, usize)>, f64)>,
    /// A remedy's model shown beside, and the job computing its activations.
    after: Option<After>,
    after_job: Latest<Event>,
}

/// An entry's histogram density over [0, top], for `values` values.
struct Binned {
    values: usize,
    top: f64,
    density: Vec<(f64, f64, f64)>,
}

impl ActivationView {
    /// Resolutions with finished statistics, sorted.
    pub fn complete_resolutions(&self) -> Vec<usize> {
        let mut out: Vec<usize> = self
            .entries
            .iter()
            .filter(|(_, e)| e.complete)
            .map(|(k, _)| k.res)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Progress at the current K_test: images done, images wanted, finished.
    pub fn progress(&self, shared: &Shared<'_>) -> Option<(usize, usize, bool)> {
        let [test, _] = self.keys(shared)?;
        self.entries.get(&test).map(|e| (e.images, e.total, e.complete))
    }

    /// Shows the activations of the model at `path` at K_test beside the open model's, as `name`,
    /// each value mapped by `map` (`a·x + b`) if given; they follow K_test from then on.
    pub fn show_after(&mut self, path: PathBuf, name: String, map: Option<[f64; 2]>) {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&path, map.map(|m| m.map(f64::to_bits))).hash(&mut h);
        self.after_job.cancel();
        self.after = Some(After {
            name,
            path,
            map,
            // Apart from the loaded models' ids, which count up from 1.
            id: h.finish() | (1 << 63),
            failed: None,
        });
    }

    /// The key of the shown remedy's activations at the current K_test.
    fn after_key(&self, shared: &Shared<'_>) -> Option<Key> {
        let [test, _] = self.keys(shared)?;
        self.after.as_ref().map(|a| Key { model: a.id, ..test })
    }

    /// The keys the plots draw: K_test, K_train, and the remedy's once it has values. The
    /// common range and the binning are over these (`ui` and `pending` alike).
    fn drawn_keys(&self, shared: &Shared<'_>) -> Option<Vec<Key>> {
        let [test, train] = self.keys(shared)?;
        let mut keys = vec![test, train];
        keys.extend(self.after_key(shared).filter(|k| self.entries.contains_key(k)));
        Some(keys)
    }

    /// Starts the shown remedy's run when its activations at the current settings are missing,
    /// once the open model's are done (the two would share the cores).
    fn update_after(&mut self, shared: &Shared<'_>, main_done: bool) -> Option<Command> {
        for event in self.after_job.drain() {
            if let Some(Err(e)) = self.take(event) {
                self.note = Some(e);
                if let Some(a) = &mut self.after {
                    a.failed = self.entries.keys().find(|k| k.model == a.id).copied();
                }
            }
        }
        let key = self.after_key(shared)?;
        let after = self.after.as_ref()?;
        let done = self.entries.get(&key).is_some_and(|e| e.complete);
        if done || !main_done || self.after_job.running().is_some() || after.failed == Some(key) {
            return None;
        }
        let (model, dataset) = (shared.model?, shared.dataset?);
        self.entries.retain(|k, e| k.model != after.id || e.complete);
        let files = sample(dataset, key.images);
        self.entries.insert(
            key,
            Entry {
                total: files.len(),
                ..Entry::default()
            },
        );
        let recipe = shared.settings.recipe_for(&model.model.recipe);
        let (path, map) = (after.path.clone(), after.map);
        let started = self
            .after_job
            .start("activations-after", shared.wake.clone(), move |r| {
                let loaded = match LoadedModel::open(&path) {
                    Ok(m) => m,
                    Err(e) => {
                        r.send(Event::Failed(format!("{}: {e:#}", path.display())));
                        return;
                    }
                };
                let what = format!("activations of {}", path.display());
                run_activations(&loaded, recipe, &files, &[key], map, &what, &r);
            });
        let e = started.err()?;
        if let Some(a) = &mut self.after {
            a.failed = Some(key);
        }
        Some(Command::not_started("the remedy's activations", &e))
    }

    /// Takes in a run's event for its entry. A finished run gives back how many images could not
    /// be decoded, a failed one its message: what the caller makes of them differs.
    fn take(&mut self, event: Event) -> Option<Result<usize, String>> {
        match event {
            Event::Partial {
                key,
                stats,
                sorted,
                images,
            } => {
                let e = self.entries.entry(key).or_default();
                (e.stats, e.sorted, e.images) = (Some(stats), sorted, images);
                None
            }
            Event::Done { key, failed } => {
                if let Some(e) = self.entries.get_mut(&key) {
                    e.complete = true;
                }
                Some(Ok(failed))
            }
            Event::Failed(e) => Some(Err(e)),
        }
    }

    /// Of `keys`, those without finished statistics (K_test = K_train counted once).
    fn missing(&self, keys: &[Key; 2]) -> Vec<Key> {
        let mut missing: Vec<Key> = keys
            .iter()
            .filter(|k| self.entries.get(k).is_none_or(|e| !e.complete))
            .copied()
            .collect();
        missing.dedup();
        missing
    }

    /// The keys of the K_test and K_train activations the settings ask for.
    fn keys(&self, shared: &Shared<'_>) -> Option<[Key; 2]> {
        let (model, dataset) = (shared.model?, shared.dataset?);
        let s = shared.settings;
        let key = |res| Key {
            model: model.id,
            dataset: dataset.id,
            res,
            crop_ratio_bits: s.crop_ratio.to_bits(),
            crop_mode: s.crop_mode,
            interpolation: s.interpolation,
            images: s.activation_images.min(dataset.folder.samples.len()),
        };
        Some([key(s.test_res), key(s.train_res)])
    }

    /// Takes in the job's results and starts the run the settings ask for once they settle.
    fn update(&mut self, ctx: &egui::Context, shared: &Shared<'_>) -> Option<Command> {
        for event in self.job.drain() {
            match self.take(event) {
                Some(Ok(failed)) => {
                    self.note =
                        (failed > 0).then(|| format!("{} could not be decoded", count(failed, "image", "images")));
                }
                Some(Err(e)) => {
                    self.note = Some(e);
                    self.failed = Some(self.job_keys.clone());
                }
                None => {}
            }
        }
        let keys = self.keys(shared)?;
        let missing = self.missing(&keys);
        let after = self.after_key(shared);
        // Partial results of abandoned runs go; finished ones stay, up to `KEEP`.
        self.entries
            .retain(|k, e| e.complete || keys.contains(k) || Some(*k) == after);
        if self.entries.len() > KEEP {
            let old: Vec<Key> = self
                .entries
                .keys()
                .filter(|k| !keys.contains(k) && Some(**k) != after)
                .copied()
                .collect();
            for k in old.into_iter().take(self.entries.len() - KEEP) {
                self.entries.remove(&k);
            }
        }
        if missing.is_empty()
            || (self.job.running().is_some() && self.job_keys == missing)
            || self.failed.as_ref() == Some(&missing)
        {
            return None;
        }
        let (model, dataset) = (shared.model?, shared.dataset?);
        // Debounce: while a slider moves, the keys change every frame; start when they settle.
        match &self.wanted {
            Some((keys, since)) if *keys == missing => {
                let waited = since.elapsed();
                if waited < SETTLE {
                    ctx.request_repaint_after(SETTLE - waited);
                    return None;
                }
            }
            _ => {
                self.job.cancel(); // latest wins: the old run's results are no longer wanted
                self.wanted = Some((missing, std::time::Instant::now()));
                ctx.request_repaint_after(SETTLE);
                return None;
            }
        }
        let files = sample(dataset, missing[0].images);
        for k in &missing {
            self.entries.insert(
                *k,
                Entry {
                    total: files.len(),
                    ..Entry::default()
                },
            );
        }
        self.job_keys = missing.clone();
        self.note = None;
        self.failed = None;
        let recipe = shared.settings.recipe_for(&model.model.recipe);
        let model: Arc<LoadedModel> = Arc::clone(model);
        let started = self.job.start("activations", shared.wake.clone(), move |r| {
            run_activations(&model, recipe, &files, &missing, None, "activations", &r);
        });
        // Not started: marked failed like a run that failed, so it is not retried every frame.
        let e = started.err()?;
        self.failed = Some(self.job_keys.clone());
        Some(Command::not_started("the activations run", &e))
    }

    /// The plots' common range: the largest 99.5 % quantile of the entries of `keys`.
    fn top(&self, keys: &[Key]) -> f64 {
        keys.iter()
            .filter_map(|k| self.entries.get(k))
            .filter(|e| !e.sorted.is_empty())
            .map(|e| quantile(&e.sorted, 0.995))
            .fold(0.0f64, f64::max)
            .max(1e-6)
    }

    /// Of `keys`, the entries whose histogram is not binned for their values and `top`.
    fn stale(&self, keys: &[Key], top: f64) -> Vec<(Key, usize)> {
        let mut stale: Vec<(Key, usize)> = keys
            .iter()
            .filter_map(|k| self.entries.get(k).map(|e| (*k, e.sorted.len())))
            .filter(|(k, n)| self.binned.get(k).is_none_or(|b| b.values != *n || b.top != top))
            .collect();
        stale.dedup();
        stale
    }

    /// Takes in finished histograms and starts binning the stale ones, in the background: on the
    /// GPU the sweeps use, if one is up (it may be Burn's, busy with a run: the UI does not wait).
    fn bin(&mut self, keys: &[Key], top: f64, shared: &Shared<'_>) -> Option<Command> {
        for (key, binned) in self.binning.drain() {
            self.binned.insert(key, binned);
        }
        self.binned.retain(|k, _| self.entries.contains_key(k));
        let stale = self.stale(keys, top);
        // A running job is never cancelled: its result is valid for its own values and range, and
        // on a GPU busy with a run, restarting at every batch could starve it.
        if stale.is_empty()
            || self.binning.running().is_some()
            || self
                .bin_not_started
                .as_ref()
                .is_some_and(|(s, t)| *s == stale && *t == top)
        {
            return None;
        }
        let inputs: Vec<(Key, usize, Vec<f64>)> = stale
            .iter()
            .map(|&(key, n)| (key, n, nonzero(&self.entries[&key].sorted).to_vec()))
            .collect();
        let gpu = shared.model.and_then(|m| m.backend.inputs_if_up().gpu().cloned());
        let started = self
            .binning
            .start("activation-histogram", shared.wake.clone(), move |r| {
                for (key, n, values) in inputs {
                    if r.cancelled() {
                        return;
                    }
                    let density = density_on(gpu.as_deref(), &values, top);
                    r.send((
                        key,
                        Binned {
                            values: n,
                            top,
                            density,
                        },
                    ));
                }
            });
        let e = started.err()?;
        self.bin_not_started = Some((stale, top));
        Some(Command::not_started("binning the activation histogram", &e))
    }
}

impl Panel for ActivationView {
    fn place(&self) -> Place {
        Place::Column
    }

    fn jobs(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(key) = self.job_keys.first() {
            match (self.job.running(), self.entries.get(key)) {
                (Some(_), Some(e)) => out.push(format!(
                    "activations {}/{}",
                    e.images,
                    count(e.total, "image", "images")
                )),
                (Some(_), None) => out.push("activations".to_owned()),
                _ => {}
            }
        }
        if let (Some(_), Some(a)) = (self.after_job.running(), &self.after) {
            out.push(format!("activations after: {}", a.name));
        }
        out
    }

    /// Whether the plot is still waiting for the current settings' activations.
    fn pending(&self, shared: &Shared<'_>) -> bool {
        let Some(keys) = self.keys(shared) else {
            return false;
        };
        let missing = self.missing(&keys);
        let drawn = self.drawn_keys(shared).unwrap_or_default();
        let top = self.top(&drawn);
        let stale = self.stale(&drawn, top);
        let after_waiting = self.after.as_ref().is_some_and(|a| {
            self.after_key(shared)
                .is_some_and(|k| a.failed != Some(k) && self.entries.get(&k).is_none_or(|e| !e.complete))
        });
        (!missing.is_empty() && self.failed.as_ref() != Some(&missing))
            || after_waiting
            || self.binning.running().is_some()
            || (!stale.is_empty() && self.bin_not_started != Some((stale, top)))
    }

    /// Draws histogram, CDF and table.
    fn ui(&mut self, ui: &mut egui::Ui, shared: &Shared<'_>) -> Vec<Command> {
        let mut out: Vec<Command> = self.update(ui.ctx(), shared).into_iter().collect();
        let Some([test_key, train_key]) = self.keys(shared) else {
            ui.strong("Pooled activations");
            ui.label("Needs a dataset and a model.");
            return out;
        };
        let main_done = self.missing(&[test_key, train_key]).is_empty();
        out.extend(self.update_after(shared, main_done));
        let after_key = self.after_key(shared);
        let keys = self.drawn_keys(shared).unwrap_or_default();
        let top = self.top(&keys);
        out.extend(self.bin(&keys, top, shared));
        let after_name = self.after.as_ref().map(|a| format!("after: {}", a.name));
        let mut named = vec![
            ("K_test".to_owned(), test_key, TEST_COLOR),
            ("K_train".to_owned(), train_key, TRAIN_COLOR),
        ];
        if let (Some(name), Some(key)) = (after_name, after_key) {
            named.push((name, key, AFTER_COLOR));
        }
        let series: Vec<Series<'_>> = named
            .into_iter()
            .filter_map(|(name, key, color)| {
                self.entries.get(&key).map(|entry| Series {
                    name,
                    res: key.res,
                    entry,
                    color,
                    // Possibly the previous values' bins, for the few ms until the new ones arrive.
                    density: self.binned.get(&key).map_or(&[][..], |b| &b.density),
                })
            })
            .collect();
        ui.horizontal(|ui| {
            ui.strong("Pooled activations");
            out.extend(export_buttons(ui, "activations", || csv(&series, top)));
        });
        match series.first().map(|s| s.entry) {
            Some(e) if !e.complete => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(format!("{}/{} at K_test", e.images, count(e.total, "image", "images")));
                });
            }
            _ => {
                ui.label(format!(
                    "{} of the dataset (seeded sample)",
                    count(test_key.images, "image", "images")
                ));
            }
        }
        if let Some(note) = &self.note {
            ui.colored_label(ui.visuals().warn_fg_color, note);
        }
        let hist = Plot::new("act-hist")
            .height(180.0)
            .legend(legend())
            .x_axis_label("pooled activation (non-zero values)")
            .allow_scroll(false)
            .show(ui, |p| {
                for s in &series {
                    let points: Vec<[f64; 2]> = s.density.iter().flat_map(|&(lo, hi, d)| [[lo, d], [hi, d]]).collect();
                    p.line(Line::new(format!("{} = {}", s.name, s.res), points).color(s.color));
                }
            })
            .response;
        let cdf = Plot::new("act-cdf")
            .height(150.0)
            .legend(legend())
            .include_y(0.0)
            .include_y(1.0)
            .allow_scroll(false)
            .show(ui, |p| {
                for s in &series {
                    p.line(
                        Line::new(format!("CDF {} = {}", s.name, s.res), cdf_points(&s.entry.sorted, top))
                            .color(s.color),
                    );
                }
            })
            .response;
        egui::Grid::new("act-table").striped(true).show(ui, |ui| {
            for h in ["res", "mean", "std", "zeros", "median", "q95"] {
                ui.strong(h);
            }
            ui.end_row();
            for series in &series {
                if let Some(s) = &series.entry.stats {
                    let res = if series.color == AFTER_COLOR {
                        format!("{} after", series.res)
                    } else {
                        series.res.to_string()
                    };
                    ui.colored_label(series.color, res);
                    for v in [s.mean, s.std] {
                        ui.label(format!("{v:.3}"));
                    }
                    ui.label(format!("{:.1} %", 100.0 * s.zero_share));
                    for q in [0.5, 0.95] {
                        ui.label(format!("{:.3}", quantile(&series.entry.sorted, q)));
                    }
                    ui.end_row();
                }
            }
        });
        let rect = hist.rect.union(cdf.rect);
        set_png_rect(&mut out, rect);
        out
    }
}

/// The values above zero (a ReLU network's zeros are a spike the table reports as a share).
fn nonzero(sorted: &[f64]) -> &[f64] {
    &sorted[sorted.partition_point(|&v| v <= 0.0)..]
}

/// One curve of the plot: an entry and its binned density.
/// The pooled activations of `files` at each key's resolution, each value mapped by `map`
/// (`a·x + b`) if given, sent as they fill in (`Event::Partial` per batch, then `Done` per key, or
/// `Failed` with a message starting with `what`). A small first sweep gives a quick first
/// histogram, then the rest in full batches; each image is decoded once, in one of the two.
fn run_activations(
    model: &LoadedModel,
    recipe: crate::model::Recipe,
    files: &[PathBuf],
    keys: &[Key],
    map: Option<[f64; 2]>,
    what: &str,
    r: &crate::jobs::Reporter<Event>,
) {
    let resolutions: Vec<usize> = keys.iter().map(|k| k.res).collect();
    let mut values: Vec<Vec<f32>> = vec![Vec::new(); keys.len()];
    let mut images = vec![0usize; keys.len()];
    let first = FIRST_BATCH.min(files.len());
    let parts = [(&files[..first], FIRST_BATCH), (&files[first..], BATCH)];
    let mut result = Ok(Vec::new());
    for (part, batch) in parts {
        if part.is_empty() || r.cancelled() {
            continue;
        }
        let sweep = Sweep {
            recipe,
            ..Sweep::new(&model.model, &model.backend, part, &resolutions, batch)
        };
        let part_result = sweep.run(
            |out| {
                let ri = out.res_index;
                values[ri].extend(out.pooled.into_iter().flatten().map(|v| match map {
                    Some([a, b]) => (a * f64::from(v) + b) as f32,
                    None => v,
                }));
                images[ri] += out.indices.len();
                let mut acc = StatsAccumulator::default();
                acc.extend(&values[ri]);
                let mut sorted: Vec<f64> = values[ri].iter().map(|&v| f64::from(v)).collect();
                sorted.sort_by(f64::total_cmp);
                r.send(Event::Partial {
                    key: keys[ri],
                    stats: acc.finish(),
                    sorted,
                    images: images[ri],
                });
            },
            |_, _| !r.cancelled(),
        );
        match (&mut result, part_result) {
            (Ok(all), Ok(failed)) => all.extend(failed),
            (_, Err(e)) => {
                result = Err(e);
                break;
            }
            (Err(_), Ok(_)) => {}
        }
    }
    match result {
        Ok(failed) if !r.cancelled() => {
            for key in keys {
                r.send(Event::Done {
                    key: *key,
                    failed: failed.len(),
                });
            }
        }
        Ok(_) => {}
        Err(e) => drop(r.send(Event::Failed(format!("{what}: {e:#}")))),
    }
}

/// The sample of `images` of `dataset`'s files the plot runs on (the same for every model): the
/// first of the class-stratified order the accuracy sweep visits them in.
fn sample(dataset: &super::session::Dataset, images: usize) -> Vec<PathBuf> {
    let order = dataset.folder.stratified_order(0);
    order[..images.min(order.len())]
        .iter()
        .map(|&i| dataset.folder.samples[i].path.clone())
        .collect()
}

struct Series<'a> {
    name: String,
    res: usize,
    entry: &'a Entry,
    color: egui::Color32,
    density: &'a [(f64, f64, f64)],
}

/// `(lo, hi, density)` bins over [0, top].
fn density(values: &[f64], top: f64) -> Vec<(f64, f64, f64)> {
    let width = top / BINS as f64;
    let mut counts = vec![0u64; BINS];
    for &v in values {
        counts[((v / width) as usize).min(BINS - 1)] += 1;
    }
    to_density(&counts, values.len(), top)
}

/// `density`, binned on `gpu` when there is one (the CPU's when the GPU fails: same bins, a
/// value on a bin edge may land one bin over in f32).
fn density_on(gpu: Option<&crate::gpu::Gpu>, values: &[f64], top: f64) -> Vec<(f64, f64, f64)> {
    match gpu {
        Some(gpu) if !values.is_empty() => gpu_density(gpu, values, top).unwrap_or_else(|_| density(values, top)),
        _ => density(values, top),
    }
}

/// `density` by `histogram.wgsl`.
fn gpu_density(gpu: &crate::gpu::Gpu, values: &[f64], top: f64) -> Result<Vec<(f64, f64, f64)>, crate::gpu::GpuError> {
    let values32: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    let h = gpu.histogram(&values32, BINS, top as f32)?;
    Ok(to_density(&h.counts, values.len(), top))
}

fn to_density(counts: &[u64], n: usize, top: f64) -> Vec<(f64, f64, f64)> {
    if n == 0 {
        return Vec::new();
    }
    let width = top / counts.len() as f64;
    counts
        .iter()
        .enumerate()
        .map(|(i, &c)| (i as f64 * width, (i + 1) as f64 * width, c as f64 / n as f64 / width))
        .collect()
}

/// The empirical CDF at 200 points over [0, top].
fn cdf_points(sorted: &[f64], top: f64) -> Vec<[f64; 2]> {
    if sorted.is_empty() {
        return Vec::new();
    }
    (0..=200)
        .map(|i| {
            let x = top * f64::from(i) / 200.0;
            [x, sorted.partition_point(|&v| v <= x) as f64 / sorted.len() as f64]
        })
        .collect()
}

fn csv(series: &[Series<'_>], top: f64) -> String {
    let mut s = String::from("res,row,x_lo,x_hi,value\n");
    for Series {
        res, entry: e, density, ..
    } in series
    {
        if let Some(st) = &e.stats {
            for (name, v) in [
                ("mean", st.mean),
                ("std", st.std),
                ("zero_share", st.zero_share),
                ("max", st.max),
            ] {
                s += &format!("{res},{name},,,{v}\n");
            }
        }
        for (lo, hi, d) in *density {
            s += &format!("{res},nonzero_density,{lo},{hi},{d}\n");
        }
        for [x, c] in cdf_points(&e.sorted, top) {
            s += &format!("{res},cdf,{x},{x},{c}\n");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::SeededRng;

    #[test]
    fn density_integrates_to_one_and_cdf_ends_at_one() {
        let sorted = vec![0.0, 0.0, 0.5, 1.0, 2.0];
        let d = density(&sorted, 2.0);
        let area: f64 = d.iter().map(|(lo, hi, v)| (hi - lo) * v).sum();
        assert!((area - 1.0).abs() < 1e-12);
        let c = cdf_points(&sorted, 2.0);
        assert_eq!(c.first().unwrap()[1], 0.4);
        assert_eq!(c.last().unwrap()[1], 1.0);
        assert_eq!(nonzero(&sorted), &[0.5, 1.0, 2.0]);
    }

    /// The GPU histogram (lavapipe here) bins the plot's values as the CPU does.
    #[test]
    fn density_on_the_gpu_matches_the_cpu() {
        let gpu = crate::gpu::Gpu::new().expect("a wgpu adapter");
        let mut rng = SeededRng::new(3);
        let values: Vec<f64> = (0..20_000).map(|_| -(1.0 - rng.next_f64()).ln() * 0.7).collect();
        let (g, c) = (gpu_density(&gpu, &values, 2.0).unwrap(), density(&values, 2.0));
        assert_eq!(g.len(), BINS);
        let width = 2.0 / BINS as f64;
        let moved: f64 = g.iter().zip(&c).map(|(a, b)| (a.2 - b.2).abs() * width).sum::<f64>() / 2.0;
        assert!(moved <= 1e-3, "{moved} of the mass in another bin");
        assert_eq!((g[0].0, g[BINS - 1].1), (c[0].0, c[BINS - 1].1));
        assert!(density_on(Some(&gpu), &[], 2.0).is_empty());
    }
}
