//! Top-1 / top-5 against test resolution on a labelled dataset, as plot and table. Each image is
//! decoded once and resampled for every resolution of the sweep. Curves are kept per model, so a
//! fine-tuned model's curve overlays the original's.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use eframe::egui;
use egui_plot::{Line, LineStyle, Plot, VLine};

use super::messages::count;
use super::panel::{Panel, Place};
use super::plot_widgets::{export_buttons, legend, set_png_rect};
use super::{Command, LoadedModel, Shared};
use crate::data::Interpolation;
use crate::eval::{Sweep, class_map};
use crate::jobs::Latest;
use crate::stats::Tally;

/// Images per model batch.
const BATCH: usize = 16;
const PALETTE: [egui::Color32; 4] = [
    egui::Color32::from_rgb(60, 170, 255),
    egui::Color32::from_rgb(255, 150, 30),
    egui::Color32::from_rgb(80, 220, 100),
    egui::Color32::from_rgb(220, 90, 200),
];

/// What a curve depends on: dataset, model, crop ratio (bits) and filter.
type CurveKey = (u64, u64, u64, Interpolation);

fn curve_key(dataset: u64, model: u64, s: &super::Settings) -> CurveKey {
    (dataset, model, s.crop_ratio.to_bits(), s.interpolation)
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
}

impl Curve {
    fn accuracy(&self, i: usize) -> (f64, f64) {
        let n = self.scored[i].max(1) as f64;
        (self.top1[i] as f64 / n, self.top5[i] as f64 / n)
    }
}

enum Event {
    Batch {
        res_index: usize,
        top1: usize,
        top5: usize,
        scored: usize,
    },
    Progress {
        done: usize,
    },
    Done {
        failed: usize,
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
                    top1,
                    top5,
                    scored,
                } => {
                    c.top1[res_index] += top1;
                    c.top5[res_index] += top5;
                    c.scored[res_index] += scored;
                }
                Event::Progress { done } => c.done = done,
                Event::Done { failed } => {
                    c.complete = true;
                    c.failed = failed;
                }
                Event::Failed(e) => self.error = Some(e),
            }
        }
    }

    /// Starts the sweep for the open model and dataset.
    fn start(&mut self, shared: &Shared<'_>, model: &Arc<LoadedModel>) -> Option<Command> {
        let dataset = shared.dataset?;
        let labels = match class_map(&dataset.folder.classes, &model.model) {
            Ok(l) => l,
            Err(why) => {
                self.error = Some(format!("cannot score this dataset with this model: {why}"));
                self.error_for = (dataset.id, model.id);
                self.mismatch = true;
                return None;
            }
        };
        self.error = None;
        self.mismatch = false;
        let resolutions = shared.settings.sweep_resolutions();
        let files: Vec<PathBuf> = dataset.folder.samples.iter().map(|s| s.path.clone()).collect();
        let targets: Vec<usize> = dataset.folder.samples.iter().map(|s| labels[s.class]).collect();
        let key = curve_key(dataset.id, model.id, shared.settings);
        let n = resolutions.len();
        self.curves.insert(
            key,
            Curve {
                // The name says when the test transform is not the model's own.
                model_name: if (shared.settings.crop_ratio, shared.settings.interpolation)
                    == (model.model.recipe.crop_ratio, model.model.recipe.interpolation)
                {
                    model.name()
                } else {
                    format!(
                        "{} (crop {:.3}, {:?})",
                        model.name(),
                        shared.settings.crop_ratio,
                        shared.settings.interpolation
                    )
                },
                res: resolutions.clone(),
                top1: vec![0; n],
                top5: vec![0; n],
                scored: vec![0; n],
                done: 0,
                total: files.len(),
                complete: false,
                failed: 0,
            },
        );
        self.job_key = Some(key);
        let recipe = shared.settings.recipe_for(&model.model.recipe);
        let model = Arc::clone(model);
        let started = self.job.start("accuracy-sweep", shared.wake.clone(), move |r| {
            let sweep = Sweep {
                recipe,
                ..Sweep::new(&model.model, &model.backend, &files, &resolutions, BATCH)
            };
            let result = sweep.run(
                |out| {
                    let mut tally = Tally::default();
                    for (&i, l) in out.indices.iter().zip(&out.logits) {
                        tally.add(l, targets[i]);
                    }
                    r.send(Event::Batch {
                        res_index: out.res_index,
                        top1: tally.top1,
                        top5: tally.top5,
                        scored: tally.scored,
                    });
                },
                |done, _| r.send(Event::Progress { done }),
            );
            match result {
                Ok(failed) => drop(r.send(Event::Done { failed: failed.len() })),
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

impl Panel for AccuracyView {
    fn place(&self) -> Place {
        Place::Column
    }

    fn jobs(&self) -> Vec<String> {
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
                out.extend(self.start(shared, model));
            }
            if running && ui.button("Cancel").clicked() {
                self.job.cancel();
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
        let plot = Plot::new("accuracy")
            .height(240.0)
            .legend(legend())
            .x_axis_label("K_test")
            .include_y(0.0)
            .include_y(1.0)
            .allow_scroll(false)
            .show(ui, |p| {
                for (i, (_, c)) in shown.iter().enumerate() {
                    let color = PALETTE[i % PALETTE.len()];
                    let measured: Vec<usize> = (0..c.res.len()).filter(|&j| c.scored[j] > 0).collect();
                    let top1: Vec<[f64; 2]> = measured.iter().map(|&j| [c.res[j] as f64, c.accuracy(j).0]).collect();
                    let top5: Vec<[f64; 2]> = measured.iter().map(|&j| [c.res[j] as f64, c.accuracy(j).1]).collect();
                    p.line(Line::new(format!("{} top-1", c.model_name), top1).color(color));
                    p.line(
                        Line::new(format!("{} top-5", c.model_name), top5)
                            .color(color)
                            .style(LineStyle::dashed_loose()),
                    );
                }
                p.vline(VLine::new("K_test", shared.settings.test_res as f64).color(egui::Color32::RED));
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
                        for h in ["K_test", "top-1", "top-5", "images"] {
                            ui.strong(h);
                        }
                        ui.end_row();
                        for j in 0..c.res.len() {
                            let (t1, t5) = c.accuracy(j);
                            ui.label(c.res[j].to_string());
                            ui.label(format!("{:.1} %", 100.0 * t1));
                            ui.label(format!("{:.1} %", 100.0 * t5));
                            ui.label(c.scored[j].to_string());
                            ui.end_row();
                        }
                    });
                });
        } else {
            ui.weak("Run the sweep to measure this model at each test resolution.");
        }
        set_png_rect(&mut out, plot.rect);
        out
    }
}

fn csv(curves: &[(&CurveKey, &Curve)]) -> String {
    let mut s = String::from("model,k_test,top1,top5,images\n");
    for (_, c) in curves {
        for j in 0..c.res.len() {
            let (t1, t5) = c.accuracy(j);
            s += &format!("{},{},{t1},{t5},{}\n", c.model_name, c.res[j], c.scored[j]);
        }
    }
    s
}
