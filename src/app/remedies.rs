//! The label-free remedies of the fine-tune window, beside the FixRes fine-tune: BatchNorm
//! re-estimation at K_test (`recalibrate`) and the parametric adaptation from K_train to K_test
//! (`adapt`). Each runs as a job on the open model and dataset, writes its model to the export
//! folder and offers to overlay its accuracy curve on the open model's (or to open it).

use std::path::PathBuf;
use std::sync::Arc;

use eframe::egui;

use super::messages::count;
use super::{Command, LoadedModel, Shared};
use crate::eval::Scores;
use crate::frechet::PAPER_XI;
use crate::jobs::Latest;
use crate::model::end_to_end::FAMILIES;
use crate::model::weights::WeightFile;
use crate::recalibrate::Layers;

/// Images per batch of both remedies (each batch's statistics weigh the same in the
/// re-estimation, as `update_bn`'s).
const BATCH: usize = 16;

/// Which remedy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Remedy {
    Recalibrate(Layers),
    Adapt,
}

enum Event {
    Progress(usize, usize),
    Done(Result<Finished, String>),
}

/// A remedy's result, written.
struct Finished {
    summary: String,
    scores: Option<Scores>,
    path: PathBuf,
    /// How the activation plot names its activations.
    name: String,
    /// The parametric adaptation's map of the pooled activations, `[a, b]`.
    map: Option<[f64; 2]>,
}

/// The remedies' state.
#[derive(Default)]
pub struct Remedies {
    job: Latest<Event>,
    running: Option<(Remedy, usize, usize)>,
    /// The (dataset, model) ids the running or last remedy is for: another pair hides its result.
    ids: (u64, u64),
    last: Option<Result<Finished, String>>,
}

impl Remedies {
    /// The running remedy, as the status bar names it.
    pub fn jobs(&self) -> Vec<String> {
        match (self.job.running(), self.running) {
            (Some(_), Some((remedy, done, total))) => vec![format!(
                "{} {done}/{}",
                match remedy {
                    Remedy::Recalibrate(_) => "BatchNorm re-estimation",
                    Remedy::Adapt => "parametric adaptation",
                },
                count(total, "image", "images")
            )],
            _ => Vec::new(),
        }
    }

    /// Takes in what the job sent.
    pub fn drain(&mut self) {
        for event in self.job.drain() {
            match event {
                Event::Progress(done, total) => {
                    if let Some((_, d, t)) = &mut self.running {
                        (*d, *t) = (done, total);
                    }
                }
                Event::Done(result) => {
                    self.running = None;
                    self.last = Some(result);
                }
            }
        }
    }

    /// Draws the section; `norm` is the head's normalisation ("BatchNorm", "LayerNorm").
    pub fn ui(&mut self, ui: &mut egui::Ui, shared: &Shared<'_>, model: &Arc<LoadedModel>, norm: &str) -> Vec<Command> {
        let mut out = Vec::new();
        let s = shared.settings;
        ui.separator();
        ui.strong(format!(
            "Without training, at K_test = {} (no labels needed)",
            s.test_res
        ));
        let busy = self.job.running().is_some();
        ui.horizontal(|ui| {
            let recal = ui
                .add_enabled(
                    !busy && norm == "BatchNorm",
                    egui::Button::new("Re-estimate the last BatchNorm"),
                )
                .on_hover_text(
                    "Resets its running statistics and re-estimates them over the dataset at K_test with the test \
                     transform (as torch.optim.swa_utils.update_bn: every batch weighs the same)",
                )
                .on_disabled_hover_text(format!(
                    "This model's last normalisation is a {norm}: no running statistics"
                ));
            if recal.clicked() {
                out.extend(self.start(Remedy::Recalibrate(Layers::Last), shared, model));
            }
            let all = ui
                .add_enabled(
                    !busy && model.model.net.trains_end_to_end(),
                    egui::Button::new("Re-estimate all BatchNorms"),
                )
                .on_hover_text(
                    "Resets every BatchNorm's running statistics and re-estimates them over the dataset at K_test, the \
                     network in training mode (torch.optim.swa_utils.update_bn itself)",
                )
                .on_disabled_hover_text(format!(
                    "Every BatchNorm is re-estimated for {FAMILIES}; this family folds its inner ones into its \
                     convolutions"
                ));
            if all.clicked() {
                out.extend(self.start(Remedy::Recalibrate(Layers::All), shared, model));
            }
            if ui
                .add_enabled(
                    !busy,
                    egui::Button::new(format!("Parametric adaptation {} -> {}", s.train_res, s.test_res)),
                )
                .on_hover_text(format!(
                    "Fits a Frechet law (shape xi = {PAPER_XI}) to the pooled activations at K_train and at K_test and maps \
                     the test-time ones through the quantile transformation between them (paper §3.2), folded into \
                     the classifier"
                ))
                .clicked()
            {
                out.extend(self.start(Remedy::Adapt, shared, model));
            }
            if busy && ui.button("Cancel").clicked() {
                self.job.cancel();
            }
        });
        if let Some((_, done, total)) = self.running {
            let fraction = if total > 0 { done as f32 / total as f32 } else { 0.0 };
            ui.add(
                egui::ProgressBar::new(fraction)
                    .text(format!("{done}/{total}"))
                    .animate(true),
            );
        }
        let current = shared.dataset.map(|d| d.id) == Some(self.ids.0) && model.id == self.ids.1;
        match self.last.as_ref().filter(|_| current) {
            Some(Ok(f)) => {
                ui.label(&f.summary);
                if let Some(sc) = &f.scores {
                    ui.strong(format!(
                        "top-1 at K_test: {:.1} % before, {:.1} % after ({})",
                        100.0 * sc.top1_before,
                        100.0 * sc.top1_after,
                        count(sc.images, "image", "images")
                    ));
                }
                ui.horizontal(|ui| {
                    if ui
                        .button("Overlay its accuracy curve")
                        .on_hover_text("Sweeps it on the dataset and draws its curve beside the open model's")
                        .clicked()
                    {
                        out.push(Command::OverlayCurve(f.path.clone()));
                    }
                    if ui
                        .button("Show its activations")
                        .on_hover_text(
                            "Its pooled activations at K_test beside the model's at K_test and K_train (the adaptation's \
                             mapped ones), following K_test",
                        )
                        .clicked()
                    {
                        out.push(Command::ShowActivationsAfter {
                            path: f.path.clone(),
                            name: f.name.clone(),
                            map: f.map,
                        });
                    }
                    if ui
                        .button("Open it")
                        .on_hover_text(format!("{}: make it the open model", f.path.display()))
                        .clicked()
                    {
                        out.push(Command::OpenWeights(f.path.clone()));
                    }
                });
            }
            Some(Err(e)) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            None => {}
        }
        out
    }

    fn start(&mut self, remedy: Remedy, shared: &Shared<'_>, model: &Arc<LoadedModel>) -> Option<Command> {
        let dataset = shared.dataset?;
        let s = shared.settings;
        let recipe = s.recipe_for(&model.model.recipe);
        let (data, train_res, res) = (dataset.opened.clone(), s.train_res, s.test_res);
        let path = s.export_dir.join(match remedy {
            Remedy::Recalibrate(Layers::Last) => format!("{}_bn{res}.safetensors", model.name()),
            Remedy::Recalibrate(Layers::All) => format!("{}_allbn{res}.safetensors", model.name()),
            Remedy::Adapt => format!("{}_frechet{train_res}to{res}.safetensors", model.name()),
        });
        self.ids = (dataset.id, model.id);
        let model = Arc::clone(model);
        self.last = None;
        self.running = Some((remedy, 0, 0));
        let started = self.job.start("remedy", shared.wake.clone(), move |r| {
            let mut progress = |done: usize, total: usize| r.send(Event::Progress(done, total));
            let (m, backend) = (&model.model, &model.backend);
            let result = (|| -> anyhow::Result<Finished> {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let file = WeightFile::open(&model.path)?;
                match remedy {
                    Remedy::Recalibrate(layers) => {
                        let cfg = crate::recalibrate::Config {
                            data,
                            res,
                            batch: BATCH,
                            recipe,
                            layers,
                        };
                        let (recalibrated, report) =
                            crate::recalibrate::recalibrate(m, &model.path, backend, &cfg, &mut progress)?;
                        let report = crate::recalibrate::export(&file, &recalibrated, &path, &report, m)?;
                        Ok(Finished {
                            summary: format!(
                                "{} re-estimated over {} ({} batches); wrote {}",
                                report.layer,
                                count(report.images, "image", "images"),
                                report.batches,
                                path.display()
                            ),
                            scores: report.scores,
                            path,
                            name: match layers {
                                Layers::Last => format!("last BatchNorm re-estimated at {res}"),
                                Layers::All => format!("all BatchNorms re-estimated at {res}"),
                            },
                            map: None,
                        })
                    }
                    Remedy::Adapt => {
                        let cfg = crate::adapt::Config {
                            data,
                            train_res,
                            res,
                            xi: PAPER_XI,
                            batch: BATCH,
                            recipe,
                        };
                        let (head, report) = crate::adapt::adapt(m, &model.path, backend, &cfg, &mut progress)?;
                        let report = crate::adapt::export(&file, &head, &path, &report, m)?;
                        let (t, q) = (report.map.train, report.map.test);
                        Ok(Finished {
                            summary: format!(
                                "Fréchet fits: K={train_res} loc {:.3} scale {:.3}, K={res} loc {:.3} scale {:.3}: \
                                 map {:.3}·x + {:.3}; wrote {}",
                                t.loc,
                                t.scale,
                                q.loc,
                                q.scale,
                                report.affine[0],
                                report.affine[1],
                                path.display()
                            ),
                            scores: report.scores,
                            path,
                            name: format!("adapted {train_res} -> {res}"),
                            map: Some(report.affine),
                        })
                    }
                }
            })();
            r.send_final(Event::Done(result.map_err(|e| format!("{e:#}"))));
        });
        let e = started.err()?;
        self.running = None;
        Some(Command::not_started("the remedy", &e))
    }
}
