//! The resolution-grid window: the train × test table `fixres grid` wrote for the open dataset
//! (`<dataset>/grid/grid.json`), as coloured cells, without and with the FixRes fine-tune.

use std::path::{Path, PathBuf};

use eframe::egui;

use super::panel::{Panel, Place};
use super::{Command, Shared};
use crate::grid::{Grid, grid_file, ramp};

/// The window's state.
#[derive(Default)]
pub struct GridView {
    /// Whether the window is shown.
    pub open: bool,
    loaded: Option<(PathBuf, Result<Grid, String>)>,
}

/// Where `fixres grid --out` is expected for a dataset.
fn dataset_grid(dataset: &Path) -> PathBuf {
    grid_file(&dataset.join("grid"))
}

impl Panel for GridView {
    fn place(&self) -> Place {
        Place::Window
    }

    /// Draws the window (when open).
    fn ui(&mut self, ui: &mut egui::Ui, shared: &Shared<'_>) -> Vec<Command> {
        let mut open = self.open;
        egui::Window::new("Resolution grid")
            .open(&mut open)
            .default_pos([420.0, 160.0])
            .show(ui.ctx(), |ui| self.window(ui, shared));
        self.open = open;
        Vec::new()
    }
}

impl GridView {
    fn window(&mut self, ui: &mut egui::Ui, shared: &Shared<'_>) {
        let Some(dataset) = shared.dataset else {
            ui.label("Needs a dataset.");
            return;
        };
        let path = dataset_grid(&dataset.opened);
        if self.loaded.as_ref().is_none_or(|(p, _)| *p != path) || ui.button("Reload").clicked() {
            // A few kilobytes of JSON: read on demand, not per frame.
            let grid = Grid::load(&path).map_err(|e| format!("{e:#}"));
            self.loaded = Some((path.clone(), grid));
        }
        let Some((_, loaded)) = &self.loaded else {
            return;
        };
        let grid = match loaded {
            Ok(g) => g,
            Err(e) => {
                ui.label(format!("No grid for this dataset ({e})."));
                ui.label(format!(
                    "Make one with: fixres grid --data {} --train-res 16,20,24,28 --test-res 16..44 --finetune --out {}",
                    dataset.opened.display(),
                    path.parent().unwrap_or(&path).display()
                ));
                return;
            }
        };
        let (train, test) = (grid.train_resolutions(), grid.test_resolutions());
        ui.label("Validation top-1 (%): rows train at K_train, columns test at K_test; the best K_test of each row is underlined.");
        for (title, finetuned) in [("as trained", false), ("after the FixRes fine-tune at K_test", true)] {
            if finetuned && !grid.has_finetuned() {
                continue;
            }
            ui.strong(title);
            egui::Grid::new(("grid", finetuned)).spacing([2.0, 2.0]).show(ui, |ui| {
                ui.label("K_train \\ K_test");
                for k in &test {
                    ui.label(k.to_string());
                }
                ui.end_row();
                for &a in &train {
                    ui.label(a.to_string());
                    let best = grid.best_test_res(a, &test, finetuned);
                    for &b in &test {
                        match grid.top1(a, b, finetuned) {
                            Some(v) => {
                                let t = grid.shade(v);
                                let [red, green, blue] = ramp(t);
                                let fill = egui::Color32::from_rgb(red, green, blue);
                                // The ramp's dark half takes light text.
                                let ink = if t < 0.5 {
                                    egui::Color32::WHITE
                                } else {
                                    egui::Color32::BLACK
                                };
                                let mut text = egui::RichText::new(format!("{:.1}", 100.0 * v)).color(ink);
                                if Some(b) == best {
                                    text = text.underline().strong();
                                }
                                egui::Frame::new()
                                    .fill(fill)
                                    .inner_margin(4.0)
                                    .show(ui, |ui| ui.label(text));
                            }
                            None => {
                                ui.label("");
                            }
                        }
                    }
                    ui.end_row();
                }
            });
        }
    }
}
