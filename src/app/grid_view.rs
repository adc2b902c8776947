//! The resolution-grid window: the train × test table `fixres grid` wrote for the open dataset
//! (`<dataset>/grid/grid.json`), as coloured cells, without and with the FixRes fine-tune.

use std::path::{Path, PathBuf};

use eframe::egui;
use serde::Deserialize;

use super::Shared;
use crate::cli::grid::{Cell, top1_range};

#[derive(Deserialize)]
struct Grid {
    cells: Vec<Cell>,
}

/// The window's state.
#[derive(Default)]
pub struct GridView {
    /// Whether the window is shown.
    pub open: bool,
    loaded: Option<(PathBuf, Result<Grid, String>)>,
}

/// Where `fixres grid --out` is expected for a dataset.
fn grid_file(dataset: &Path) -> PathBuf {
    dataset.join("grid").join("grid.json")
}

impl GridView {
    /// Draws the window (when open).
    pub fn ui(&mut self, ctx: &egui::Context, shared: &Shared<'_>) {
        let mut open = self.open;
        egui::Window::new("Resolution grid")
            .open(&mut open)
            .default_pos([420.0, 160.0])
            .show(ctx, |ui| self.window(ui, shared));
        self.open = open;
    }

    fn window(&mut self, ui: &mut egui::Ui, shared: &Shared<'_>) {
        let Some(dataset) = shared.dataset else {
            ui.label("Needs a dataset.");
            return;
        };
        let path = grid_file(&dataset.opened);
        if self.loaded.as_ref().is_none_or(|(p, _)| *p != path) || ui.button("Reload").clicked() {
            // A few kilobytes of JSON: read on demand, not per frame.
            let grid = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str::<Grid>(&t).map_err(|e| e.to_string()));
            self.loaded = Some((path.clone(), grid));
        }
        let Some((_, loaded)) = &self.loaded else {
            return;
        };
        let grid = match loaded {
            Ok(g) => g,
            Err(e) => {
                ui.label(format!("No grid for this dataset ({}: {e}).", path.display()));
                ui.label(format!(
                    "Make one with: fixres grid --data {} --train-res 16,20,24,28 --test-res 16..44 --finetune --out {}",
                    dataset.opened.display(),
                    path.parent().unwrap_or(&path).display()
                ));
                return;
            }
        };
        let mut train: Vec<usize> = grid.cells.iter().map(|c| c.train_res).collect();
        let mut test: Vec<usize> = grid.cells.iter().map(|c| c.test_res).collect();
        for v in [&mut train, &mut test] {
            v.sort_unstable();
            v.dedup();
        }
        let (lo, hi) = top1_range(&grid.cells);
        ui.label("Validation top-1 (%): rows train at K_train, columns test at K_test; the best K_test of each row is underlined.");
        for (title, finetuned) in [("as trained", false), ("after the FixRes fine-tune at K_test", true)] {
            if finetuned && grid.cells.iter().all(|c| c.finetuned_top1.is_none()) {
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
                    let value = |b: usize| {
                        grid.cells
                            .iter()
                            .find(|c| c.train_res == a && c.test_res == b)
                            .and_then(|c| if finetuned { c.finetuned_top1 } else { Some(c.top1) })
                    };
                    let best = test
                        .iter()
                        .filter_map(|&b| value(b).map(|v| (b, v)))
                        .max_by(|x, y| x.1.total_cmp(&y.1))
                        .map(|(b, _)| b);
                    for &b in &test {
                        match value(b) {
                            Some(v) => {
                                let t = if hi > lo { ((v - lo) / (hi - lo)) as f32 } else { 1.0 };
                                let fill = egui::Color32::from_rgb(
                                    (30.0 + 200.0 * t) as u8,
                                    (60.0 + 150.0 * t) as u8,
                                    (110.0 - 70.0 * t) as u8,
                                );
                                let mut text =
                                    egui::RichText::new(format!("{:.1}", 100.0 * v)).color(egui::Color32::BLACK);
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
