//! The bottom bar: dataset, model, backend, running jobs; the skipped-files list on click.

use eframe::egui;

use super::messages::count;
use super::panel::{Panel, Place};
use super::{Command, Shared};

/// The status bar's own state.
#[derive(Default)]
pub struct StatusBar {
    show_skipped: bool,
}

impl Panel for StatusBar {
    fn place(&self) -> Place {
        Place::Bottom("status")
    }

    /// Draws the bar (and the skipped-files window when open).
    fn ui(&mut self, ui: &mut egui::Ui, shared: &Shared<'_>) -> Vec<Command> {
        let jobs = shared.jobs;
        ui.horizontal(|ui| {
            match shared.dataset {
                Some(d) => {
                    let f = &d.folder;
                    ui.label(format!(
                        "Dataset: {} — {}, {}",
                        d.name(),
                        count(f.samples.len(), "image", "images"),
                        count(f.classes.len(), "class", "classes")
                    ))
                    .on_hover_text(f.root.display().to_string());
                    if let Some(n) = shared.filter_matches {
                        ui.label(format!("{n} match the filter"));
                    }
                    if !f.skipped.is_empty()
                        && ui
                            .link(format!("{} skipped", f.skipped.len()))
                            .on_hover_text("Show what was skipped and why")
                            .clicked()
                    {
                        self.show_skipped = true;
                    }
                }
                None => {
                    ui.label("Dataset: none");
                }
            }
            ui.separator();
            match shared.model {
                Some(m) => {
                    let r = &m.model.recipe;
                    ui.label(format!(
                        "Model: {} ({}, {}, {})",
                        m.name(),
                        m.model.arch,
                        m.model.library,
                        count(m.model.classes, "class", "classes")
                    ))
                    .on_hover_text(m.path.display().to_string());
                    ui.separator();
                    let mode = match r.crop_mode {
                        crate::data::CropMode::Center => String::new(),
                        other => format!(" {}", other.name()),
                    };
                    ui.label(format!(
                        "Recipe: {}, crop {:.3}{mode}",
                        r.interpolation.name(),
                        r.crop_ratio
                    ))
                    .on_hover_text(format!(
                        "mean {:?}, std {:?}; from {}",
                        r.mean, r.std, m.model.recipe_source
                    ));
                    ui.separator();
                    ui.label(format!("Backend: {}", m.backend.adapter));
                    if let Some(gpu) = m.backend.inputs_if_up().gpu() {
                        ui.separator();
                        ui.label("Sweeps resample on the GPU")
                            .on_hover_text(format!("shaders/resample.wgsl on {}", gpu.adapter));
                    }
                }
                None => {
                    ui.label("Model: none");
                }
            }
            ui.separator();
            if jobs.is_empty() {
                ui.weak("idle");
            } else {
                ui.spinner();
                ui.label(jobs.join(" · "));
            }
        });
        if let Some(d) = shared.dataset {
            egui::Window::new("Skipped files")
                .open(&mut self.show_skipped)
                .default_size([520.0, 300.0])
                .show(ui.ctx(), |ui| {
                    egui::ScrollArea::vertical().show(ui, |ui| {
                        for skip in &d.folder.skipped {
                            // Each skip names its own path.
                            ui.label(skip.to_string());
                        }
                    });
                });
        }
        Vec::new()
    }
}
