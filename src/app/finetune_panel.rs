//! The fine-tune window (paper §4): the FixRes fine-tune of the open model on the open dataset at
//! a test resolution, with loss and validation curves, progress, ETA and cancel; then export of
//! the whole model (the file loads back here and into PyTorch).

use std::path::PathBuf;
use std::sync::Arc;

use eframe::egui;
use egui_plot::{Line, Plot, Points};

use super::messages::count;
use super::panel::{Panel, Place};
use super::plot_widgets::legend;
use super::{Command, LoadedModel, Shared};
use crate::finetune::run::{Augmentation, Config, CurvePoint, Outcome, Progress, Schedule, export, finetune};
use crate::finetune::{Sgd, Trainable};
use crate::jobs::{Latest, Wake};
use crate::model::weights::WeightFile;

/// Memory for cached trunk outputs before they spill to a temporary file.
const CACHE_BYTES: usize = 2 << 30;

/// The form.
#[derive(Clone, Debug, PartialEq)]
struct Form {
    epochs: usize,
    batch: usize,
    fixres_lr: bool,
    lr: f64,
    train_bn: bool,
    train_classifier: bool,
    da: Augmentation,
    schedule: Schedule,
    seed: u64,
}

impl Default for Form {
    fn default() -> Self {
        Self {
            epochs: 5,
            batch: 16,
            fixres_lr: true,
            lr: Sgd::fixres_lr(16),
            train_bn: true,
            train_classifier: true,
            da: Augmentation::Test,
            schedule: Schedule::Constant,
            seed: 0,
        }
    }
}

enum Event {
    Progress(Progress),
    Done(Box<anyhow::Result<Outcome>>),
}

/// A run in progress or finished.
struct Run {
    model: Arc<LoadedModel>,
    res: usize,
    stage: String,
    /// `(step, loss)`.
    losses: Vec<[f64; 2]>,
    /// `(epoch, validation top-1)`; epoch 0 (the model before) is added when the run ends.
    val: Vec<[f64; 2]>,
    progress: (usize, usize, f64, f64),
    outcome: Option<Arc<Outcome>>,
    error: Option<String>,
}

/// The panel's state.
#[derive(Default)]
pub struct FinetunePanel {
    /// Whether the window is shown.
    pub open: bool,
    form: Form,
    job: Latest<Event>,
    run: Option<Run>,
    export: Latest<Result<PathBuf, String>>,
    exported: Option<PathBuf>,
}

impl FinetunePanel {
    /// Writes the fine-tuned model to `path` (a job); the error when its thread does not start.
    #[must_use]
    pub fn export_to(&mut self, path: PathBuf, wake: &Wake) -> Option<Command> {
        let (model, outcome) = self
            .run
            .as_ref()
            .and_then(|r| r.outcome.as_ref().map(|o| (Arc::clone(&r.model), Arc::clone(o))))?;
        let started = self.export.start("export", wake.clone(), move |r| {
            let result = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .map_err(anyhow::Error::from)
                .and_then(|()| WeightFile::open(&model.path).map_err(anyhow::Error::from))
                .and_then(|file| export(&file, &outcome.head, &path, &outcome.summary, &model.model))
                .map(|_| path.clone())
                .map_err(|e| format!("{}: {e:#}", path.display()));
            r.send(result);
        });
        started.err().map(|e| Command::not_started("the export", &e))
    }

    fn drain(&mut self) -> Vec<Command> {
        let mut out = Vec::new();
        for event in self.job.drain() {
            let Some(run) = &mut self.run else {
                continue;
            };
            match event {
                Event::Progress(Progress::Stage(s)) => run.stage = s,
                Event::Progress(Progress::Step {
                    loss,
                    images_done,
                    images_total,
                    images_per_s,
                    eta_s,
                    ..
                }) => {
                    run.losses.push([run.losses.len() as f64 + 1.0, f64::from(loss)]);
                    run.progress = (images_done, images_total, images_per_s, eta_s);
                    run.stage = "training".into();
                }
                // NaN: no validation images, nothing to plot.
                Event::Progress(Progress::Epoch { epoch, val_top1, .. }) if !val_top1.is_nan() => {
                    run.val.push([epoch as f64 + 1.0, val_top1]);
                }
                Event::Progress(Progress::Epoch { .. }) => {}
                Event::Done(result) => match *result {
                    Ok(outcome) => {
                        run.stage = "done".into();
                        if !outcome.before.is_nan() {
                            run.val.insert(0, [0.0, outcome.before]);
                        }
                        run.outcome = Some(Arc::new(outcome));
                    }
                    Err(e) => {
                        run.stage = "failed".into();
                        run.error = Some(format!("{e:#}"));
                    }
                },
            }
        }
        for result in self.export.drain() {
            match result {
                Ok(path) => {
                    out.push(Command::Info(format!("wrote {}", path.display())));
                    self.exported = Some(path);
                }
                Err(e) => out.push(Command::Error(format!("export failed: {e}"))),
            }
        }
        out
    }

    fn start(&mut self, shared: &Shared<'_>) -> Option<Command> {
        let (model, dataset) = (shared.model?, shared.dataset?);
        let f = &self.form;
        let res = shared.settings.test_res;
        let config = Config {
            data: dataset.opened.clone(),
            res,
            epochs: f.epochs,
            batch: f.batch,
            lr: (!f.fixres_lr).then_some(f.lr),
            trainable: Trainable {
                classifier: f.train_classifier,
                bn_affine: f.train_bn,
            },
            da: f.da,
            cache_bytes: CACHE_BYTES,
            trunk_cache: true,
            seed: f.seed,
            schedule: f.schedule,
            curve: Vec::new(),
            // The test transform the sliders set, as the plots use.
            recipe: shared.settings.recipe_for(&model.model.recipe),
            new_classifier: false,
        };
        self.exported = None;
        self.run = Some(Run {
            model: Arc::clone(model),
            res,
            stage: "starting".into(),
            losses: Vec::new(),
            val: Vec::new(),
            progress: (0, 0, 0.0, 0.0),
            outcome: None,
            error: None,
        });
        let model = Arc::clone(model);
        let started = self.job.start("finetune", shared.wake.clone(), move |r| {
            let result = finetune(&model.model, &model.path, &model.backend, &config, &mut |p| {
                r.send(Event::Progress(p))
            });
            if result.is_err() {
                model.backend.probe_lost(); // marks a lost GPU: the app reopens the model on the CPU
            }
            // A cancelled run still ends with its outcome (the best weights so far); the
            // owner asked to stop, so it is delivered past the cancel check.
            r.send_final(Event::Done(Box::new(result)));
        });
        // Not started: no run waits on it.
        let e = started.err()?;
        self.run = None;
        Some(Command::not_started("the fine-tune", &e))
    }
}

impl Panel for FinetunePanel {
    fn place(&self) -> Place {
        Place::Window
    }

    fn jobs(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let (Some(_), Some(run)) = (self.job.running(), &self.run) {
            let (done, total, _, eta) = run.progress;
            out.push(if total > 0 {
                format!(
                    "fine-tune {done}/{}, ETA {}",
                    count(total, "image", "images"),
                    duration(eta)
                )
            } else {
                format!("fine-tune: {}", run.stage)
            });
        }
        if self.export.running().is_some() {
            out.push("exporting".to_owned());
        }
        out
    }

    /// Draws the window (when open).
    fn ui(&mut self, ui: &mut egui::Ui, shared: &Shared<'_>) -> Vec<Command> {
        let ctx = ui.ctx();
        let mut out = self.drain();
        let mut open = self.open;
        egui::Window::new("FixRes fine-tune")
            .open(&mut open)
            .default_pos([700.0, 120.0])
            .default_width(520.0)
            .show(ctx, |ui| out.extend(self.window(ui, shared)));
        self.open = open;
        out
    }
}

impl FinetunePanel {
    fn window(&mut self, ui: &mut egui::Ui, shared: &Shared<'_>) -> Vec<Command> {
        let mut out = Vec::new();
        let (Some(model), Some(dataset)) = (shared.model, shared.dataset) else {
            ui.label("Needs a dataset and a model.");
            return out;
        };
        let norm = model.model.net.head().norm_name();
        ui.label(format!(
            "Fine-tunes the last {norm} and the classifier of {} at K_test = {} on {} (the rest of the network stays frozen, in eval mode).",
            model.name(),
            shared.settings.test_res,
            dataset.name()
        ));
        let running = self.job.running().is_some();
        ui.add_enabled_ui(!running, |ui| {
            let f = &mut self.form;
            egui::Grid::new("ft-form").num_columns(2).show(ui, |ui| {
                let l = ui.label("epochs");
                ui.add(egui::DragValue::new(&mut f.epochs).range(1..=500))
                    .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("batch");
                ui.add(egui::DragValue::new(&mut f.batch).range(2..=512))
                    .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("learning rate");
                ui.horizontal(|ui| {
                    ui.checkbox(&mut f.fixres_lr, "FixRes default");
                    if f.fixres_lr {
                        f.lr = Sgd::fixres_lr(f.batch);
                        ui.label(format!("{:.2e}", f.lr));
                    } else {
                        ui.add(egui::DragValue::new(&mut f.lr).speed(1e-5).range(1e-6..=1.0))
                            .labelled_by(l.id);
                    }
                });
                ui.end_row();
                ui.label("trains");
                ui.horizontal(|ui| {
                    ui.checkbox(&mut f.train_classifier, "classifier");
                    ui.checkbox(&mut f.train_bn, format!("{norm} affine"));
                });
                ui.end_row();
                ui.label("augmentation");
                ui.horizontal(|ui| {
                    ui.radio_value(&mut f.da, Augmentation::Test, "test (Resize + CenterCrop)");
                    ui.radio_value(&mut f.da, Augmentation::Train, "train (RandomResizedCrop)");
                });
                ui.end_row();
                ui.label("schedule");
                ui.horizontal(|ui| {
                    ui.radio_value(&mut f.schedule, Schedule::Constant, "constant");
                    ui.radio_value(&mut f.schedule, Schedule::Step, "step");
                    ui.radio_value(&mut f.schedule, Schedule::Cosine, "cosine");
                });
                ui.end_row();
                let l = ui.label("seed");
                ui.add(egui::DragValue::new(&mut f.seed)).labelled_by(l.id);
                ui.end_row();
            });
        });
        ui.horizontal(|ui| {
            if ui.add_enabled(!running, egui::Button::new("Start fine-tune")).clicked() {
                out.extend(self.start(shared));
            }
            if running
                && ui
                    .button("Cancel")
                    .on_hover_text("Stop and keep the best weights so far")
                    .clicked()
            {
                // The job sees the cancel at its next step and still reports its outcome.
                if let Some(job) = self.job.running() {
                    job.cancel();
                }
            }
        });
        let Some(run) = &self.run else {
            return out;
        };
        let (done, total, per_s, eta) = run.progress;
        let fraction = if total > 0 { done as f32 / total as f32 } else { 0.0 };
        let text = if total > 0 {
            format!(
                "{done}/{}, {per_s:.1} images/s, ETA {}",
                count(total, "image", "images"),
                duration(eta)
            )
        } else {
            run.stage.clone()
        };
        ui.add(egui::ProgressBar::new(fraction).text(text).animate(running));
        ui.label(format!("stage: {}", run.stage));
        ui.columns(2, |c| {
            Plot::new("ft-loss")
                .height(140.0)
                .legend(legend())
                .x_axis_label("step")
                .allow_scroll(false)
                .show(&mut c[0], |p| p.line(Line::new("loss", run.losses.clone())));
            Plot::new("ft-val")
                .height(140.0)
                .legend(legend())
                .x_axis_label("epoch")
                .include_y(0.0)
                .include_y(1.0)
                .allow_scroll(false)
                .show(&mut c[1], |p| {
                    p.line(Line::new("val top-1", run.val.clone()));
                    p.points(Points::new("", run.val.clone()).radius(3.0));
                });
        });
        if let Some(e) = &run.error {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        if let Some(o) = &run.outcome {
            let (n_train, n_val) = o.images;
            if n_val == 0 {
                ui.label(format!(
                    "{}; no validation images (a class gives one to validation when it has two or more).",
                    count(n_train, "training image", "training images")
                ));
            } else {
                ui.strong(format!(
                    "Validation top-1 at {}: {:.1} % before, {:.1} % after ({n_train} training, {})",
                    run.res,
                    100.0 * o.before,
                    100.0 * o.after,
                    count(n_val, "validation image", "validation images")
                ));
            }
            if let Some(s) = &o.stopped {
                ui.colored_label(ui.visuals().warn_fg_color, s);
            }
            if n_val > 0 {
                let curve = |top1: fn(&CurvePoint) -> f64| -> Vec<[f64; 2]> {
                    o.summary.curve.iter().map(|p| [p.res as f64, top1(p)]).collect()
                };
                Plot::new("ft-curve")
                    .height(130.0)
                    .legend(legend())
                    .x_axis_label("K_test (validation top-1, before and after)")
                    .include_y(0.0)
                    .include_y(1.0)
                    .allow_scroll(false)
                    .show(ui, |p| {
                        p.line(Line::new("before", curve(|p| p.before)));
                        p.line(Line::new("after", curve(|p| p.after)));
                    });
            }
            ui.horizontal(|ui| {
                if ui
                    .button("Export…")
                    .on_hover_text("Choose where to save the safetensors file")
                    .clicked()
                {
                    out.push(Command::PickFinetuneExport(format!(
                        "{}_fixres{}.safetensors",
                        run.model.name(),
                        run.res
                    )));
                }
                let default =
                    shared
                        .settings
                        .export_dir
                        .join(format!("{}_fixres{}.safetensors", run.model.name(), run.res));
                if ui
                    .button("Export to the export folder")
                    .on_hover_text(default.display().to_string())
                    .clicked()
                {
                    out.push(Command::ExportFinetuned(default));
                }
                if let Some(path) = &self.exported
                    && ui
                        .button("Open the exported model")
                        .on_hover_text("Load it, e.g. to overlay its accuracy sweep on the original's")
                        .clicked()
                {
                    out.push(Command::OpenWeights(path.clone()));
                }
            });
        }
        out
    }
}

/// "1 min 05 s" style.
fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 60 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{s} s")
    }
}
