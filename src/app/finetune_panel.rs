//! The fine-tune window, in two modes. The FixRes fine-tune (paper §4) of the open model on the
//! open dataset at a test resolution; or a transfer: a new classifier for the dataset's own
//! classes, trained at K_train over the frozen pretrained network (`fixres train --from`), after
//! which the new model is exported and opened, so the sweep, the activations and the FixRes
//! fine-tune continue on it. Both with loss and validation curves, progress, ETA and cancel
//! (keeping the best weights so far); then export of the whole model (the file loads back here
//! and into PyTorch). Beside the fine-tune, the label-free remedies (`remedies`).

use std::path::PathBuf;
use std::sync::Arc;

use eframe::egui;
use egui_plot::{Line, Plot, Points};

use super::messages::count;
use super::panel::{Panel, Place};
use super::plot_widgets::legend;
use super::remedies::Remedies;
use super::{Command, LoadedModel, Shared};
use crate::eval::class_map;
use crate::finetune::run::{Augmentation, Config, CurvePoint, Outcome, Progress, Schedule, export, finetune};
use crate::finetune::{Sgd, Trainable};
use crate::jobs::{Latest, Wake};
use crate::model::end_to_end::FAMILIES;
use crate::model::weights::WeightFile;
use crate::training::Part;

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
    /// What a transfer trains.
    part: Part,
    da: Augmentation,
    schedule: Schedule,
    seed: u64,
}

impl Default for Form {
    /// The FixRes fine-tune's defaults.
    fn default() -> Self {
        Self {
            epochs: 5,
            batch: 16,
            fixres_lr: true,
            lr: Sgd::fixres_lr(16),
            train_bn: true,
            train_classifier: true,
            part: Part::Head,
            da: Augmentation::Test,
            schedule: Schedule::Constant,
            seed: 0,
        }
    }
}

impl Form {
    /// A transfer's defaults, as `fixres train --from`'s: train-time augmentation (the network
    /// plays one trained at K_train), cosine schedule, the linear-probe learning rate.
    fn transfer() -> Self {
        Self {
            epochs: 10,
            lr: Sgd::transfer_lr(16),
            da: Augmentation::Train,
            schedule: Schedule::Cosine,
            ..Self::default()
        }
    }

    /// The default learning rate of the mode for the form's batch.
    fn default_lr(&self, transfer: bool) -> f64 {
        Sgd::default_lr(transfer.then_some(self.part), self.batch)
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
    /// A new classifier for the dataset's classes (at K_train) rather than the FixRes fine-tune.
    transfer: bool,
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
    /// The window's mode: a new classifier for the dataset's classes (`fixres train --from`)
    /// rather than the FixRes fine-tune.
    pub transfer: bool,
    form: Form,
    transfer_form: Option<Form>,
    /// Open the export when it is written (a finished transfer).
    open_exported: bool,
    /// For the open (dataset, model) ids: the head's normalisation and why the dataset cannot be
    /// scored, if it cannot (worked out once per pair, not every frame).
    fit: Option<((u64, u64), &'static str, Option<String>)>,
    job: Latest<Event>,
    run: Option<Run>,
    export: Latest<Result<PathBuf, String>>,
    exported: Option<PathBuf>,
    /// The label-free remedies beside the fine-tune.
    remedies: Remedies,
}

impl FinetunePanel {
    /// The form of the window's mode.
    fn form_mut(&mut self) -> &mut Form {
        if self.transfer {
            self.transfer_form.get_or_insert_with(Form::transfer)
        } else {
            &mut self.form
        }
    }

    /// Where a finished transfer is written: `<export dir>/<model>_<classes>classes_k<K>.safetensors`.
    fn export_name(run: &Run) -> String {
        match run.outcome.as_ref().and_then(|o| o.summary.transfer.as_ref()) {
            Some(t) => format!(
                "{}_{}classes_k{}.safetensors",
                run.model.name(),
                t.classes.len(),
                run.res
            ),
            None => format!("{}_fixres{}.safetensors", run.model.name(), run.res),
        }
    }

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
                .and_then(|file| export(&file, &outcome.trained, &path, &outcome.summary, &model.model))
                .map(|_| path.clone())
                .map_err(|e| format!("{}: {e:#}", path.display()));
            r.send(result);
        });
        started.err().map(|e| Command::not_started("the export", &e))
    }

    fn drain(&mut self, shared: &Shared<'_>) -> Vec<Command> {
        let mut out = Vec::new();
        let mut export_after = false;
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
                        // A transfer's model is what the user goes on with: write it and open it.
                        if run.transfer {
                            export_after = true;
                        }
                    }
                    Err(e) => {
                        run.stage = "failed".into();
                        run.error = Some(format!("{e:#}"));
                    }
                },
            }
        }
        if export_after && let Some(run) = &self.run {
            let path = shared.settings.export_dir.join(Self::export_name(run));
            self.open_exported = true;
            out.extend(self.export_to(path, shared.wake));
        }
        for result in self.export.drain() {
            match result {
                Ok(path) => {
                    out.push(Command::Info(format!("wrote {}", path.display())));
                    if std::mem::take(&mut self.open_exported) {
                        // The new model is the open one; its FixRes fine-tune is what comes next.
                        out.push(Command::OpenWeights(path.clone()));
                        self.transfer = false;
                    }
                    self.exported = Some(path);
                }
                Err(e) => {
                    self.open_exported = false;
                    out.push(Command::Error(format!("export failed: {e}")));
                }
            }
        }
        out
    }

    fn start(&mut self, shared: &Shared<'_>) -> Option<Command> {
        let (model, dataset) = (shared.model?, shared.dataset?);
        let transfer = self.transfer;
        let f = self.form_mut().clone();
        let res = if transfer {
            shared.settings.train_res
        } else {
            shared.settings.test_res
        };
        let config = Config {
            data: dataset.opened.clone(),
            res,
            epochs: f.epochs,
            batch: f.batch,
            lr: (!f.fixres_lr).then_some(f.lr),
            // A transfer's head trains its classifier and norm whatever the fine-tune's boxes say.
            trainable: Trainable {
                classifier: transfer || f.train_classifier,
                bn_affine: transfer || f.train_bn,
            },
            da: f.da,
            cache_bytes: CACHE_BYTES,
            trunk_cache: true,
            trunk_parts: None,
            seed: f.seed,
            schedule: f.schedule,
            curve: Vec::new(),
            // The test transform the sliders set, as the plots use.
            recipe: shared.settings.recipe_for(&model.model.recipe),
            new_classifier: transfer.then_some(f.part),
        };
        self.exported = None;
        // An export still writing for the previous run must not open its file into this one.
        self.open_exported = false;
        self.run = Some(Run {
            model: Arc::clone(model),
            res,
            transfer,
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
        Some(Command::not_started(
            if transfer { "the training" } else { "the fine-tune" },
            &e,
        ))
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
            let what = if run.transfer { "training" } else { "fine-tune" };
            out.push(if total > 0 {
                format!(
                    "{what} {done}/{}, ETA {}",
                    count(total, "image", "images"),
                    duration(eta)
                )
            } else {
                format!("{what}: {}", run.stage)
            });
        }
        if self.export.running().is_some() {
            out.push("exporting".to_owned());
        }
        out.extend(self.remedies.jobs());
        out
    }

    /// Draws the window (when open).
    fn ui(&mut self, ui: &mut egui::Ui, shared: &Shared<'_>) -> Vec<Command> {
        let ctx = ui.ctx();
        let mut out = self.drain(shared);
        self.remedies.drain();
        let mut open = self.open;
        let title = if self.transfer {
            "Train a classifier"
        } else {
            "FixRes fine-tune"
        };
        egui::Window::new(title)
            .id(egui::Id::unique("finetune-window"))
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
        let ids = (dataset.id, model.id);
        if self.fit.as_ref().is_none_or(|(k, ..)| *k != ids) {
            let mismatch = class_map(&dataset.folder.classes, &model.model)
                .err()
                .map(|e| e.to_string());
            self.fit = Some((ids, model.model.net.head().norm_name(), mismatch));
        }
        let (norm, mismatch) = match &self.fit {
            Some((_, norm, mismatch)) => (*norm, mismatch.clone()),
            None => return out,
        };
        let running = self.job.running().is_some();
        let classes = dataset.folder.classes.len();
        ui.add_enabled_ui(!running, |ui| {
            ui.horizontal(|ui| {
                ui.selectable_value(&mut self.transfer, false, "FixRes fine-tune at K_test");
                ui.selectable_value(
                    &mut self.transfer,
                    true,
                    format!(
                        "New classifier for the {} at K_train",
                        count(classes, "class", "classes")
                    ),
                );
            });
        });
        let end_to_end = model.model.net.trains_end_to_end();
        if self.transfer {
            let part = self.transfer_form.as_ref().map_or(Part::Head, |f| f.part);
            let with = match part {
                Part::Head => format!(
                    "the network stays frozen, in eval mode, except the last {norm}, which trains with it: its affine{}",
                    if norm == "BatchNorm" { " and running statistics" } else { "" }
                ),
                Part::LastStage => "the last stage trains with it, its BatchNorms in training mode; the rest stays frozen, in eval mode".to_owned(),
                Part::All => "the whole network trains with it, every BatchNorm in training mode".to_owned(),
            };
            ui.label(format!(
                "Trains a new classifier for the {} of {} on {} at K_train = {} (the classifier starts as PyTorch initialises it; {with}). When it ends the new model is saved to the export folder and opened: the sweep, the activations and the FixRes fine-tune at K_test then run on it.",
                count(classes, "class", "classes"),
                dataset.name(),
                model.name(),
                shared.settings.train_res,
            ));
        } else {
            ui.label(format!(
                "Fine-tunes the last {norm} and the classifier of {} at K_test = {} on {} (the rest of the network stays frozen, in eval mode).",
                model.name(),
                shared.settings.test_res,
                dataset.name()
            ));
            if let Some(why) = &mismatch {
                ui.colored_label(
                    ui.visuals().warn_fg_color,
                    format!("This dataset cannot be scored with this model: {why}"),
                );
                if ui
                    .add_enabled(
                        !running,
                        egui::Button::new(format!(
                            "Train a classifier for these {classes} classes at K_train = {}…",
                            shared.settings.train_res
                        )),
                    )
                    .clicked()
                {
                    self.transfer = true;
                }
            }
        }
        let transfer = self.transfer;
        ui.add_enabled_ui(!running, |ui| {
            let f = self.form_mut();
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
                    ui.checkbox(
                        &mut f.fixres_lr,
                        if transfer && f.part == Part::Head {
                            "default (0.1 · batch / 256)"
                        } else if transfer {
                            "default (0.01 · batch / 256)"
                        } else {
                            "FixRes default"
                        },
                    );
                    if f.fixres_lr {
                        f.lr = f.default_lr(transfer);
                        ui.label(format!("{:.2e}", f.lr));
                    } else {
                        ui.add(egui::DragValue::new(&mut f.lr).speed(1e-5).range(1e-6..=1.0))
                            .labelled_by(l.id);
                    }
                });
                ui.end_row();
                ui.label("trains");
                if transfer {
                    ui.horizontal(|ui| {
                        ui.radio_value(&mut f.part, Part::Head, "head: the new classifier and the last norm")
                            .on_hover_text(format!("The classifier and the last {norm}'s affine (and statistics)"));
                        let why =
                            format!("Only the head of this family trains: the whole network trains for {FAMILIES}");
                        ui.add_enabled_ui(end_to_end, |ui| {
                            ui.radio_value(&mut f.part, Part::LastStage, "last stage")
                                .on_hover_text("Also the last block group, its BatchNorms in training mode")
                                .on_disabled_hover_text(&why);
                            ui.radio_value(&mut f.part, Part::All, "all")
                                .on_hover_text("The whole network, every BatchNorm in training mode")
                                .on_disabled_hover_text(&why);
                        });
                    });
                } else {
                    ui.horizontal(|ui| {
                        ui.checkbox(&mut f.train_classifier, "classifier");
                        ui.checkbox(&mut f.train_bn, format!("{norm} affine"));
                    });
                }
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
            let (start, blocked) = if transfer {
                ("Start training", classes < 2)
            } else {
                ("Start fine-tune", mismatch.is_some())
            };
            if ui.add_enabled(!running && !blocked, egui::Button::new(start)).clicked() {
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
        if !transfer {
            out.extend(self.remedies.ui(ui, shared, model, norm));
        }
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
                    "{}alidation top-1 at {}: {:.1} % before, {:.1} % after ({n_train} training, {})",
                    if run.transfer { "New classifier: v" } else { "V" },
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
                    out.push(Command::PickFinetuneExport(Self::export_name(run)));
                }
                let default = shared.settings.export_dir.join(Self::export_name(run));
                if ui
                    .button("Export to the export folder")
                    .on_hover_text(default.display().to_string())
                    .clicked()
                {
                    out.push(Command::ExportFinetuned(default));
                }
                if let Some(path) = &self.exported {
                    if ui
                        .button("Overlay its accuracy curve")
                        .on_hover_text("Sweeps the exported model on the dataset beside the open model's curve")
                        .clicked()
                    {
                        out.push(Command::OverlayCurve(path.clone()));
                    }
                    if ui
                        .button("Show its activations")
                        .on_hover_text("Its pooled activations at K_test beside the model's, following K_test")
                        .clicked()
                    {
                        out.push(Command::ShowActivationsAfter {
                            path: path.clone(),
                            name: format!("fine-tuned at {}", run.res),
                            map: None,
                        });
                    }
                    if ui
                        .button("Open the exported model")
                        .on_hover_text("Make it the open model")
                        .clicked()
                    {
                        out.push(Command::OpenWeights(path.clone()));
                    }
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
