//! Top-1 / top-5 against test resolution on a labelled dataset, as plot and table. Each image is
//! decoded once and resampled for every resolution of the sweep. Curves are kept per model, so a
//! fine-tuned (or re-estimated, or adapted) model's curve overlays the original's. The plot can
//! show accuracy against cost instead (the model's time per image, or its multiply-accumulates),
//! with the Pareto front marked; under the table, the resolution-flip browser (`flip_browser`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use eframe::egui;
use egui_plot::{Line, LineStyle, Plot, Points, VLine};

use super::flip_browser::FlipBrowser;
use super::messages::count;
use super::panel::{Panel, Place};
use super::plot_widgets::{export_buttons, legend, set_png_rect};
use super::{Command, LoadedModel, Shared};
use crate::data::{CropMode, Interpolation};
use crate::eval::{Cost, PerImage, Sweep, class_map, pareto_front};
use crate::jobs::Latest;
use crate::stats::{Scored, Z_95, wilson_interval};

/// Images per model batch.
const BATCH: usize = 16;
const PALETTE: [egui::Color32; 4] = [
    egui::Color32::from_rgb(60, 170, 255),
    egui::Color32::from_rgb(255, 150, 30),
    egui::Color32::from_rgb(80, 220, 100),
    egui::Color32::from_rgb(220, 90, 200),
];

/// What a curve depends on: dataset, model, crop ratio (bits), crop mode and filter.
type CurveKey = (u64, u64, u64, CropMode, Interpolation);

fn curve_key(dataset: u64, model: u64, s: &super::Settings) -> CurveKey {
    (dataset, model, s.crop_ratio.to_bits(), s.crop_mode, s.interpolation)
}

/// The test transform a curve is measured with: crop ratio, crop mode, filter.
type Transform = (f64, CropMode, Interpolation);

fn transform_of(r: &crate::model::Recipe) -> Transform {
    (r.crop_ratio, r.crop_mode, r.interpolation)
}

/// One model's sweep on one dataset.
struct Curve {
    model_name: String,
    res: Vec<usize>,
    top1: Vec<usize>,
    top5: Vec<usize>,
    scored: Vec<usize>,
    done: usize,
    total: usize,
    complete: bool,
    failed: usize,
    /// Why the sweep stopped before the end of the folder, if it did.
    stopped: Option<Stop>,
    /// Each image's result at each resolution (the flip browser's).
    per_image: PerImage,
    /// What the model costs at each resolution.
    cost: Vec<Cost>,
}

/// What the plot's horizontal axis shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Axis {
    /// K_test.
    #[default]
    Resolution,
    /// Milliseconds per image through the model, as measured in the sweep.
    Latency,
    /// Multiply-accumulates per image, in billions.
    Gmacs,
}

impl Axis {
    fn label(self) -> &'static str {
        match self {
            Self::Resolution => "K_test",
            Self::Latency => "ms per image (the model, on this device)",
            Self::Gmacs => "GMACs per image",
        }
    }

    /// Where resolution `j` of curve `c` lies on this axis.
    fn x(self, c: &Curve, j: usize) -> f64 {
        match self {
            Self::Resolution => c.res[j] as f64,
            Self::Latency => c.cost[j].ms_per_image(),
            Self::Gmacs => c.cost[j].macs as f64 / 1e9,
        }
    }
}

impl Curve {
    fn accuracy(&self, i: usize) -> (f64, f64) {
        let n = self.scored[i].max(1) as f64;
        (self.top1[i] as f64 / n, self.top5[i] as f64 / n)
    }

    /// Top-1's 95 % interval at resolution `i`: the images scored so far are a class-stratified
    /// random sample of the folder (`ImageFolder::stratified_order`).
    fn interval(&self, i: usize) -> (f64, f64) {
        wilson_interval(self.top1[i], self.scored[i], Z_95)
    }
}

/// Why a sweep stopped before the end of the folder.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Stop {
    /// Every interval was within ± this many points.
    Precision(f64),
    /// It scored the number of images asked for.
    Images(usize),
}

enum Event {
    /// One batch at one resolution: (image index, result) per image scored.
    Batch {
        res_index: usize,
        results: Vec<(usize, Scored)>,
        macs_per_image: u64,
        model_seconds: f64,
    },
    Progress {
        done: usize,
    },
    Done {
        failed: usize,
        /// Why it stopped before the end of the folder, if it did.
        stopped: Option<Stop>,
    },
    Failed(String),
}

/// The view's state.
#[derive(Default)]
pub struct AccuracyView {
    /// By (dataset id, model id, the test transform's crop ratio and filter).
    curves: BTreeMap<CurveKey, Curve>,
    job: Latest<Event>,
    job_key: Option<CurveKey>,
    error: Option<String>,
    /// The (dataset, model) ids the error is about: another pair clears it.
    error_for: (u64, u64),
    /// The last sweep was refused because the dataset's classes are not the model's: the view
    /// offers to train a classifier for them.
    mismatch: bool,
    flips: FlipBrowser,
    axis: Axis,
    /// Stop a sweep once every resolution's 95 % interval of top-1 is within ± this many points.
    stop_at: Option<f64>,
    /// Stop a sweep after this many images.
    stop_after: Option<usize>,
}

impl AccuracyView {
    fn drain(&mut self) {
        let Some(key) = self.job_key else {
            return;
        };
        for event in self.job.drain() {
            let Some(c) = self.curves.get_mut(&key) else {
                continue;
            };
            match event {
                Event::Batch {
                    res_index,
                    results,
                    macs_per_image,
                    model_seconds,
                } => {
                    c.cost[res_index].record(macs_per_image, results.len(), model_seconds);
                    for (i, r) in results {
                        c.top1[res_index] += usize::from(r.top1);
                        c.top5[res_index] += usize::from(r.top5);
                        c.scored[res_index] += 1;
                        c.per_image.results[res_index][i] = Some(r);
                    }
                }
                Event::Progress { done } => c.done = done,
                Event::Done { failed, stopped } => {
                    c.complete = true;
                    c.failed += failed; // a continued sweep adds its own
                    c.stopped = stopped;
                }
                Event::Failed(e) => {
                    self.error = Some(e);
                    // Nothing measured: no empty curve in the legend and the CSV.
                    if c.scored.iter().all(|&n| n == 0) {
                        self.curves.remove(&key);
                    }
                }
            }
        }
    }

    /// The sweep's job, as the status bar names it.
    fn sweep_jobs(&self) -> Vec<String> {
        match (self.job.running(), self.job_key.and_then(|k| self.curves.get(&k))) {
            (Some(_), Some(c)) => vec![format!(
                "accuracy sweep {}/{}",
                c.done,
                count(c.total, "image", "images")
            )],
            (Some(_), None) => vec!["accuracy sweep".to_owned()],
            _ => Vec::new(),
        }
    }

    /// Starts the sweep for the open model and dataset; `resume`: continue its stopped sweep
    /// where it stopped, in the same order.
    fn start(&mut self, shared: &Shared<'_>, model: &Arc<LoadedModel>, resume: bool) -> Option<Command> {
        let dataset = shared.dataset?;
        if let Err(why) = class_map(&dataset.folder.classes, &model.model) {
            self.error = Some(format!("cannot score this dataset with this model: {why}"));
            self.error_for = (dataset.id, model.id);
            self.mismatch = true;
            return None;
        }
        self.error = None;
        self.mismatch = false;
        let name = model.name();
        let own = transform_of(&model.model.recipe);
        self.sweep(shared, model.id, name, own, Source::Open(Arc::clone(model)), resume)
    }

    /// The open model's curve for the current settings, if its sweep stopped before the end of
    /// the folder (cancelled, or at the asked precision): images done and in all.
    fn resumable(&self, shared: &Shared<'_>) -> Option<(usize, usize)> {
        let (dataset, model) = (shared.dataset?, shared.model?);
        let c = self.curves.get(&curve_key(dataset.id, model.id, shared.settings))?;
        let stopped = !c.complete || c.stopped.is_some();
        (stopped && c.done < c.total && c.res == shared.settings.sweep_resolutions() && self.job.running().is_none())
            .then_some((c.done, c.total))
    }

    /// Sweeps the weights at `path` on the open dataset for their curve alone, beside the open
    /// model's (a remedy's or a fine-tune's export), without opening them.
    pub fn overlay(&mut self, shared: &Shared<'_>, path: PathBuf) -> Option<Command> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        path.hash(&mut h);
        // Apart from the loaded models' ids, which count up from 1.
        let id = h.finish() | (1 << 63);
        let name = path
            .file_stem()
            .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
        self.error = None;
        self.sweep(
            shared,
            id,
            name,
            (
                shared.settings.crop_ratio,
                shared.settings.crop_mode,
                shared.settings.interpolation,
            ),
            Source::File(path),
            false,
        )
    }

    /// Starts a sweep of `source` (named `name`, whose own test transform is `own`) on the open
    /// dataset, its curve under `model_id`.
    fn sweep(
        &mut self,
        shared: &Shared<'_>,
        model_id: u64,
        name: String,
        own: Transform,
        source: Source,
        resume: bool,
    ) -> Option<Command> {
        let dataset = Arc::clone(shared.dataset?);
        let resolutions = shared.settings.sweep_resolutions();
        // A class-stratified random order: the images scored so far are a sample of the folder at
        // every moment, so the curve is an estimate (with its intervals) from the first batch.
        let order = dataset.folder.stratified_order(0);
        let files: Vec<PathBuf> = order.iter().map(|&i| dataset.folder.samples[i].path.clone()).collect();
        let key = curve_key(dataset.id, model_id, shared.settings);
        let stop_at = self.stop_at;
        let stop_after = self.stop_after;
        let n = resolutions.len();
        let transform = (
            shared.settings.crop_ratio,
            shared.settings.crop_mode,
            shared.settings.interpolation,
        );
        // Continuing a stopped sweep: the images after those done, the counts kept.
        let skip = match self.curves.get_mut(&key) {
            Some(c) if resume && c.res == resolutions && c.total == files.len() && c.done < c.total => {
                c.complete = false;
                c.stopped = None;
                c.done
            }
            _ => 0,
        };
        let initial: Vec<(usize, usize)> = match self.curves.get(&key) {
            Some(c) if skip > 0 => c.top1.iter().copied().zip(c.scored.iter().copied()).collect(),
            _ => vec![(0, 0); n],
        };
        if skip == 0 {
            self.curves.insert(
                key,
                Curve {
                    // The name says when the test transform is not the model's own.
                    model_name: if transform == own {
                        name
                    } else {
                        match transform.1 {
                            CropMode::Center => format!("{name} (crop {:.3}, {:?})", transform.0, transform.2),
                            mode => format!("{name} (crop {:.3} {}, {:?})", transform.0, mode.name(), transform.2),
                        }
                    },
                    res: resolutions.clone(),
                    top1: vec![0; n],
                    top5: vec![0; n],
                    scored: vec![0; n],
                    done: 0,
                    total: files.len(),
                    complete: false,
                    failed: 0,
                    stopped: None,
                    per_image: PerImage::new(n, files.len()),
                    cost: vec![Cost::default(); n],
                },
            );
        }
        self.job_key = Some(key);
        let started = self.job.start("accuracy-sweep", shared.wake.clone(), move |r| {
            let model = match source {
                Source::Open(m) => m,
                Source::File(path) => match LoadedModel::open(&path) {
                    Ok(m) => Arc::new(m),
                    Err(e) => {
                        r.send(Event::Failed(format!("{}: {e:#}", path.display())));
                        return;
                    }
                },
            };
            let labels = match class_map(&dataset.folder.classes, &model.model) {
                Ok(l) => l,
                Err(why) => {
                    let text = format!("cannot score this dataset with {}: {why}", model.name());
                    r.send(Event::Failed(text));
                    return;
                }
            };
            let targets: Vec<usize> = dataset.folder.samples.iter().map(|s| labels[s.class]).collect();
            let recipe = crate::model::Recipe {
                crop_ratio: transform.0,
                crop_mode: transform.1,
                interpolation: transform.2,
                ..model.model.recipe
            };
            // An image count stops the sweep there; one already reached (a continued sweep)
            // lets it go on to the end.
            let end = stop_after
                .filter(|&m| m > skip)
                .map_or(files.len(), |m| m.min(files.len()));
            let rest = &files[skip..end];
            let sweep = Sweep {
                recipe,
                ..Sweep::new(&model.model, &model.backend, rest, &resolutions, BATCH)
            };
            // Top-1 hits and images per resolution, for the stop at a precision.
            let mut counts = initial;
            let precise_enough = std::cell::Cell::new(false);
            let result = sweep.run(
                |out| {
                    // Indices into the folder's samples (the flip browser's), not the order's.
                    let results: Vec<(usize, Scored)> = out
                        .indices
                        .iter()
                        .zip(&out.logits)
                        .map(|(&i, l)| (order[skip + i], Scored::of(l, targets[order[skip + i]])))
                        .collect();
                    let c = &mut counts[out.res_index];
                    c.0 += results.iter().filter(|(_, s)| s.top1).count();
                    c.1 += results.len();
                    if let Some(w) = stop_at
                        && out.res_index + 1 == n
                    {
                        precise_enough.set(counts.iter().all(|&(k, m)| {
                            let (lo, hi) = wilson_interval(k, m, Z_95);
                            m > 0 && 100.0 * (hi - lo) / 2.0 <= w
                        }));
                    }
                    r.send(Event::Batch {
                        res_index: out.res_index,
                        results,
                        macs_per_image: out.macs_per_image,
                        model_seconds: out.model_seconds,
                    });
                },
                |done, _| r.send(Event::Progress { done: skip + done }) && !precise_enough.get(),
            );
            match result {
                Ok(failed) => drop(r.send(Event::Done {
                    failed: failed.len(),
                    stopped: match stop_at {
                        Some(w) if precise_enough.get() => Some(Stop::Precision(w)),
                        _ => (end < files.len()).then_some(Stop::Images(end)),
                    },
                })),
                Err(e) => drop(r.send(Event::Failed(format!("accuracy sweep: {e:#}")))),
            }
        });
        // Not started: no curve waits for it.
        let e = started.err()?;
        self.curves.remove(&key);
        self.job_key = None;
        Some(Command::not_started("the accuracy sweep", &e))
    }
}

/// Whose curve a sweep draws.
enum Source {
    /// The open model.
    Open(Arc<LoadedModel>),
    /// Weights loaded for their curve alone.
    File(PathBuf),
}

impl Panel for AccuracyView {
    fn place(&self) -> Place {
        Place::Column
    }

    fn jobs(&self) -> Vec<String> {
        let mut jobs = self.sweep_jobs();
        if self.flips.busy() {
            jobs.push("flip crops".to_owned());
        }
        jobs
    }

    /// Draws the controls, plot and table.
    fn ui(&mut self, ui: &mut egui::Ui, shared: &Shared<'_>) -> Vec<Command> {
        self.drain();
        let mut out = Vec::new();
        let Some(dataset) = shared.dataset else {
            ui.strong("Accuracy vs test resolution");
            return out;
        };
        let shown: Vec<(&CurveKey, &Curve)> = self.curves.iter().filter(|(k, _)| k.0 == dataset.id).collect();
        ui.horizontal(|ui| {
            ui.strong("Accuracy vs test resolution");
            out.extend(export_buttons(ui, "accuracy", || csv(&shown)));
        });
        let (mut from, mut to, mut step) = shared.settings.sweep;
        ui.horizontal(|ui| {
            ui.add(egui::DragValue::new(&mut from).range(8..=1024).prefix("from "));
            ui.add(egui::DragValue::new(&mut to).range(8..=1024).prefix("to "));
            ui.add(egui::DragValue::new(&mut step).range(1..=256).prefix("step "));
        });
        if (from, to, step) != shared.settings.sweep {
            out.push(Command::SetSweep((from, to, step)));
        }
        // A refusal is about the dataset and model it was made for.
        if self.mismatch && shared.model.is_none_or(|m| (dataset.id, m.id) != self.error_for) {
            self.error = None;
            self.mismatch = false;
        }
        let running = self.job.running().is_some();
        ui.horizontal(|ui| {
            if let Some(model) = shared.model
                && ui
                    .add_enabled(!running, egui::Button::new("Run sweep"))
                    .on_hover_text(format!(
                        "{} × {}",
                        count(dataset.folder.samples.len(), "image", "images"),
                        count(shared.settings.sweep_resolutions().len(), "resolution", "resolutions")
                    ))
                    .clicked()
            {
                out.extend(self.start(shared, model, false));
            }
            if running && ui.button("Cancel").clicked() {
                self.job.cancel();
            }
            if let (Some((done, total)), Some(model)) = (self.resumable(shared), shared.model)
                && ui
                    .button("Continue")
                    .on_hover_text(format!(
                        "Go on from image {done} of {total}, in the same order, keeping what is scored"
                    ))
                    .clicked()
            {
                out.extend(self.start(shared, model, true));
            }
        });
        ui.horizontal(|ui| {
            // The images are visited in a class-stratified random order, so a stopped sweep is
            // an estimate of the whole folder.
            let mut stop = self.stop_at.is_some();
            let label = ui
                .add_enabled(!running, egui::Checkbox::new(&mut stop, "stop at ±"))
                .on_hover_text(
                    "Stop once every resolution's 95 % interval of top-1 is this narrow: the images are visited in a \
                     class-stratified random order, so those scored are a sample of the folder",
                );
            let mut points = self.stop_at.unwrap_or(2.0);
            ui.add_enabled(
                !running && stop,
                egui::DragValue::new(&mut points)
                    .range(0.1..=20.0)
                    .speed(0.1)
                    .suffix(" points"),
            )
            .labelled_by(label.id);
            self.stop_at = stop.then_some(points);
        });
        ui.horizontal(|ui| {
            let mut stop = self.stop_after.is_some();
            let label = ui
                .add_enabled(!running, egui::Checkbox::new(&mut stop, "stop after"))
                .on_hover_text("Stop after this many images of the class-stratified random order (Continue goes on)");
            let mut images = self.stop_after.unwrap_or(1000);
            ui.add_enabled(
                !running && stop,
                egui::DragValue::new(&mut images)
                    .range(1..=usize::MAX)
                    .speed(10.0)
                    .suffix(" images"),
            )
            .labelled_by(label.id);
            self.stop_after = stop.then_some(images);
        });
        ui.horizontal(|ui| {
            ui.label("against");
            for axis in [Axis::Resolution, Axis::Latency, Axis::Gmacs] {
                let text = match axis {
                    Axis::Resolution => "K_test",
                    Axis::Latency => "latency",
                    Axis::Gmacs => "GMACs",
                };
                ui.selectable_value(&mut self.axis, axis, text);
            }
        });
        if let Some(e) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, e);
            if self.mismatch
                && ui
                    .button(format!(
                        "Train a classifier for these {} classes at K_train = {}…",
                        dataset.folder.classes.len(),
                        shared.settings.train_res
                    ))
                    .on_hover_text("A new classifier for the dataset's own classes over the pretrained network")
                    .clicked()
            {
                out.push(Command::ShowTransfer);
            }
        }
        // `start` above may have added a curve: list again.
        let shown: Vec<(&CurveKey, &Curve)> = self.curves.iter().filter(|(k, _)| k.0 == dataset.id).collect();
        let axis = self.axis;
        let plot = Plot::new("accuracy")
            .height(240.0)
            .legend(legend())
            .x_axis_label(axis.label())
            .include_y(0.0)
            .include_y(1.0)
            .allow_scroll(false)
            .show(ui, |p| {
                for (i, (_, c)) in shown.iter().enumerate() {
                    let color = PALETTE[i % PALETTE.len()];
                    let measured: Vec<usize> = (0..c.res.len()).filter(|&j| c.scored[j] > 0).collect();
                    let top1: Vec<[f64; 2]> = measured.iter().map(|&j| [axis.x(c, j), c.accuracy(j).0]).collect();
                    let top5: Vec<[f64; 2]> = measured.iter().map(|&j| [axis.x(c, j), c.accuracy(j).1]).collect();
                    if axis != Axis::Resolution {
                        // The Pareto front of top-1 against this cost: nothing cheaper is as good.
                        let points: Vec<(f64, f64)> = top1.iter().map(|p| (p[0], p[1])).collect();
                        let front: Vec<[f64; 2]> = pareto_front(&points).into_iter().map(|i| top1[i]).collect();
                        // Unnamed: the legend lists each model's lines once.
                        p.points(Points::new("", front).color(color).radius(5.0));
                    }
                    // Top-1's 95 % interval at each resolution (unnamed: out of the legend).
                    for &j in &measured {
                        let (lo, hi) = c.interval(j);
                        let x = axis.x(c, j);
                        p.line(Line::new("", vec![[x, lo], [x, hi]]).color(color.gamma_multiply(0.6)));
                    }
                    p.line(Line::new(format!("{} top-1", c.model_name), top1).color(color));
                    p.line(
                        Line::new(format!("{} top-5", c.model_name), top5)
                            .color(color)
                            .style(LineStyle::dashed_loose()),
                    );
                }
                if axis == Axis::Resolution {
                    p.vline(VLine::new("K_test", shared.settings.test_res as f64).color(egui::Color32::RED));
                }
            })
            .response;
        let current = shared
            .model
            .and_then(|m| self.curves.get(&curve_key(dataset.id, m.id, shared.settings)));
        if let Some(c) = current {
            if !c.complete {
                ui.horizontal(|ui| {
                    if self.job.running().is_some() {
                        ui.spinner();
                    }
                    ui.label(format!("{}/{}", c.done, count(c.total, "image", "images")));
                });
            } else if let Some(stop) = c.stopped {
                let why = match stop {
                    Stop::Precision(w) => format!("stopped at ±{w} points"),
                    Stop::Images(m) => format!("stopped after {}", count(m, "image", "images")),
                };
                ui.label(format!(
                    "{why}: an estimate from {} of {} (a class-stratified random sample)",
                    c.done,
                    count(c.total, "image", "images")
                ));
            } else if c.failed > 0 {
                ui.colored_label(
                    ui.visuals().warn_fg_color,
                    format!("{} could not be decoded", count(c.failed, "image", "images")),
                );
            }
            egui::ScrollArea::vertical()
                .id_salt("acc-table")
                .max_height(220.0)
                .show(ui, |ui| {
                    egui::Grid::new("acc-grid").striped(true).show(ui, |ui| {
                        // Time per image is measured, so it differs run to run: shown on hover
                        // and in the latency view, not in the table (whose pixels tests compare).
                        for h in ["K_test", "top-1", "95 % CI", "top-5", "GMACs", "images"] {
                            ui.strong(h);
                        }
                        ui.end_row();
                        for j in 0..c.res.len() {
                            let (t1, t5) = c.accuracy(j);
                            ui.label(c.res[j].to_string());
                            ui.label(format!("{:.1} %", 100.0 * t1));
                            let (lo, hi) = c.interval(j);
                            if c.scored[j] > 0 {
                                ui.label(format!("{:.1}–{:.1}", 100.0 * lo, 100.0 * hi));
                            } else {
                                ui.label("");
                            }
                            ui.label(format!("{:.1} %", 100.0 * t5));
                            ui.label(format!("{:.3}", c.cost[j].macs as f64 / 1e9))
                                .on_hover_text(format!(
                                    "{:.1} ms per image through the model on this device",
                                    c.cost[j].ms_per_image()
                                ));
                            ui.label(c.scored[j].to_string());
                            ui.end_row();
                        }
                    });
                });
            if let Some(model) = shared.model {
                ui.separator();
                out.extend(self.flips.ui(ui, shared, model, &c.res, &c.per_image));
            }
        } else {
            ui.weak("Run the sweep to measure this model at each test resolution.");
        }
        set_png_rect(&mut out, plot.rect);
        out
    }
}

fn csv(curves: &[(&CurveKey, &Curve)]) -> String {
    let mut s =
        String::from("model,k_test,top1,top1_ci_low,top1_ci_high,top5,images,macs,ms_per_image,pareto_latency\n");
    for (_, c) in curves {
        // The front among the resolutions measured so far.
        let measured: Vec<usize> = (0..c.res.len()).filter(|&j| c.scored[j] > 0).collect();
        let points: Vec<(f64, f64)> = measured
            .iter()
            .map(|&j| (c.cost[j].ms_per_image(), c.accuracy(j).0))
            .collect();
        let front: Vec<usize> = pareto_front(&points).into_iter().map(|i| measured[i]).collect();
        for j in 0..c.res.len() {
            let (t1, t5) = c.accuracy(j);
            let (lo, hi) = c.interval(j);
            s += &format!(
                "{},{},{t1},{lo},{hi},{t5},{},{},{},{}\n",
                c.model_name,
                c.res[j],
                c.scored[j],
                c.cost[j].macs,
                c.cost[j].ms_per_image(),
                u8::from(front.contains(&j))
            );
        }
    }
    s
}
