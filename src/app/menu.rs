//! The menu bar and the keyboard shortcuts: ways to ask for a command that belong to no view.

use eframe::egui;

use super::panel::{Panel, Place};
use super::{Command, Shared};

/// The menu bar (no state: what it lists comes from the settings).
#[derive(Default)]
pub struct Menu;

impl Panel for Menu {
    fn place(&self) -> Place {
        Place::Top("menu")
    }

    fn ui(&mut self, ui: &mut egui::Ui, shared: &Shared<'_>) -> Vec<Command> {
        let settings = shared.settings;
        let mut out = Vec::new();
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui.button("Open dataset folder…").clicked() {
                    out.push(Command::PickDataset);
                }
                if ui.button("Open weights…").clicked() {
                    out.push(Command::PickWeights);
                }
                if ui.button("Demo: ImageNet photos").clicked() {
                    out.push(Command::OpenDemo);
                }
                if ui.button("Demo: Fashion").clicked() {
                    out.push(Command::OpenFashionDemo);
                }
                if ui
                    .button("Demo: your own classes")
                    .on_hover_text("The demo photos in a few everyday classes: train a classifier for them")
                    .clicked()
                {
                    out.push(Command::OpenOwnClassesDemo);
                }
                ui.separator();
                ui.menu_button("Recent datasets", |ui| {
                    for p in &settings.recent_data {
                        if ui.button(p.display().to_string()).clicked() {
                            out.push(Command::OpenDataset(p.clone()));
                        }
                    }
                });
                ui.menu_button("Recent weights", |ui| {
                    for p in &settings.recent_weights {
                        if ui.button(p.display().to_string()).clicked() {
                            out.push(Command::OpenWeights(p.clone()));
                        }
                    }
                });
                ui.separator();
                if ui
                    .button(format!("Export folder: {}…", settings.export_dir.display()))
                    .clicked()
                {
                    out.push(Command::PickExportDir);
                }
            });
            if ui
                .button("Fine-tune…")
                .on_hover_text("FixRes fine-tune at K_test")
                .clicked()
            {
                out.push(Command::ShowFinetune);
            }
            if ui
                .button("Grid…")
                .on_hover_text("The train x test resolution table fixres grid made for this dataset")
                .clicked()
            {
                out.push(Command::ShowGrid);
            }
            ui.menu_button("Help", |ui| {
                ui.label("Drop a folder (ImageFolder) or a weights file on the window to open it.");
                ui.label("R: new train crops   N or Down: next image   P or Up: previous image");
                ui.label("Drag on the image to measure an object's apparent size.");
            });
        });
        out
    }
}

/// Keyboard shortcuts, when no text field or slider has the keyboard. Read before anything is
/// drawn, so the focus they check is the one the user typed into.
pub(super) fn shortcuts(ctx: &egui::Context) -> Vec<Command> {
    if ctx.memory(|m| m.focused().is_some()) {
        return Vec::new();
    }
    ctx.input(|i| {
        let mut out = Vec::new();
        if i.key_pressed(egui::Key::R) {
            out.push(Command::Resample);
        }
        if i.key_pressed(egui::Key::N) || i.key_pressed(egui::Key::ArrowDown) {
            out.push(Command::Step(1));
        }
        if i.key_pressed(egui::Key::P) || i.key_pressed(egui::Key::ArrowUp) {
            out.push(Command::Step(-1));
        }
        out
    })
}
