//! The resolution-flip browser, under the accuracy sweep: of two resolutions of the current
//! model's sweep (by default the nearest to K_train and to K_test), the images whose top-1 turns
//! right → wrong or wrong → right between them, with the counts; choosing one selects it, and the
//! selected image's test crops at both resolutions are shown side by side with what the model
//! predicted there and how sure it was.

use std::path::PathBuf;
use std::sync::Arc;

use eframe::egui;

use super::{Command, LoadedModel, Shared};
use crate::data::{DecodeLimits, TestTransform, decode_file};
use crate::eval::PerImage;
use crate::jobs::Latest;
use crate::model::Recipe;
use crate::stats::{Flip, Scored};

/// Largest screen side of each test crop, in points (two fit the column).
const CROP_SIDE: f32 = 150.0;

/// The test crops of one image at the two resolutions, as rendered.
#[derive(Clone, PartialEq)]
struct CropKey {
    path: PathBuf,
    transforms: [TestTransform; 2],
}

/// The browser's state.
#[derive(Default)]
pub struct FlipBrowser {
    /// The two resolutions compared (values of K, not indices), once the user chose them;
    /// until then they follow K_train and K_test.
    pair: Option<(usize, usize)>,
    /// Which flips are listed.
    kind: Option<Flip>,
    render: Latest<(CropKey, Result<[egui::ColorImage; 2], String>)>,
    requested: Option<CropKey>,
    shown: Option<(CropKey, Result<[egui::TextureHandle; 2], String>)>,
}

/// The index in `res` of the resolution nearest `k`.
fn nearest(res: &[usize], k: usize) -> usize {
    (0..res.len()).min_by_key(|&i| res[i].abs_diff(k)).unwrap_or(0)
}

impl FlipBrowser {
    /// Whether its crops are still being rendered.
    pub fn busy(&self) -> bool {
        self.render.running().is_some()
    }

    /// Draws the browser for a sweep at `res` with `per_image` results (complete or not).
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        shared: &Shared<'_>,
        model: &Arc<LoadedModel>,
        res: &[usize],
        per_image: &PerImage,
    ) -> Vec<Command> {
        let mut out = Vec::new();
        let Some(dataset) = shared.dataset else {
            return out;
        };
        if res.len() < 2 {
            return out;
        }
        let (mut a, mut b) = match self.pair {
            Some((x, y)) if res.contains(&x) && res.contains(&y) => (nearest(res, x), nearest(res, y)),
            _ => {
                let a = nearest(res, shared.settings.train_res);
                // With K_test at K_train, the next resolution up (or down) is the question.
                let b = match nearest(res, shared.settings.test_res) {
                    b if b != a => b,
                    _ if a + 1 < res.len() => a + 1,
                    _ => a - 1,
                };
                (a, b)
            }
        };
        let shown = (a, b);
        ui.horizontal(|ui| {
            ui.strong("Resolution flips");
            for (label, index) in [("from", &mut a), ("to", &mut b)] {
                let l = ui.label(label);
                egui::ComboBox::from_id_salt(format!("flip-{label}"))
                    .selected_text(format!("K = {}", res[*index]))
                    .width(70.0)
                    .show_ui(ui, |ui| {
                        for (i, k) in res.iter().enumerate() {
                            ui.selectable_value(index, i, format!("K = {k}"));
                        }
                    })
                    .response
                    .labelled_by(l.id);
            }
        });
        if (a, b) != shown {
            self.pair = Some((res[a], res[b]));
        }
        let counts = per_image.flips(a, b);
        let kind = *self.kind.get_or_insert(Flip::RightToWrong);
        ui.horizontal(|ui| {
            for (k, text, n) in [
                (Flip::RightToWrong, "right -> wrong", counts.right_to_wrong),
                (Flip::WrongToRight, "wrong -> right", counts.wrong_to_right),
            ] {
                if ui.selectable_label(kind == k, format!("{text} ({n})")).clicked() {
                    self.kind = Some(k);
                }
            }
            ui.weak(format!("of {} scored at both", counts.images));
        });
        let listed: Vec<usize> = (0..dataset.folder.samples.len())
            .filter(|&i| {
                let at = |r: usize| per_image.results[r].get(i).copied().flatten();
                Flip::between(at(a).as_ref(), at(b).as_ref()) == self.kind
            })
            .collect();
        egui::ScrollArea::vertical()
            .id_salt("flip-list")
            .max_height(110.0)
            .show(ui, |ui| {
                if listed.is_empty() {
                    ui.weak("No image flips this way between these resolutions.");
                }
                for &i in &listed {
                    let s = &dataset.folder.samples[i];
                    let name = s
                        .path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let text = format!("{} / {name}", dataset.folder.classes[s.class]);
                    if ui.selectable_label(i == shared.selected, text).clicked() {
                        out.push(Command::Select(i));
                    }
                }
            });
        // The selected image at both resolutions, when it was scored at both.
        let i = shared.selected;
        let (Some(ra), Some(rb)) = (
            per_image.results[a].get(i).copied().flatten(),
            per_image.results[b].get(i).copied().flatten(),
        ) else {
            return out;
        };
        let Some(sample) = dataset.folder.samples.get(i) else {
            return out;
        };
        let recipe = shared.settings.recipe_for(&model.model.recipe);
        let key = CropKey {
            path: sample.path.clone(),
            transforms: [res[a], res[b]].map(|k| transform(k, &recipe)),
        };
        out.extend(self.request(&key, shared));
        self.take_rendered(ui.ctx());
        let names = model.model.class_names.as_deref();
        let name = |o: usize| {
            names
                .and_then(|n| n.get(o))
                .cloned()
                .unwrap_or_else(|| format!("class {o}"))
        };
        let side = ((ui.available_width() - 3.0 * ui.spacing().item_spacing.x) / 2.0).clamp(48.0, CROP_SIDE);
        ui.horizontal(|ui| {
            for (k, r, slot) in [(res[a], ra, 0), (res[b], rb, 1)] {
                ui.vertical(|ui| {
                    ui.set_max_width(side); // the caption wraps under its crop
                    match &self.shown {
                        Some((shown, Ok(textures))) if *shown == key => {
                            ui.add(egui::Image::new(&textures[slot]).fit_to_exact_size(egui::vec2(side, side)));
                        }
                        Some((shown, Err(e))) if *shown == key => {
                            ui.colored_label(ui.visuals().error_fg_color, e);
                        }
                        _ => {
                            ui.add_sized([side, side], egui::Spinner::new());
                        }
                    }
                    ui.label(caption(k, &r, &name));
                });
            }
        });
        out
    }

    /// Starts rendering `key`'s crops unless they are shown or on their way.
    fn request(&mut self, key: &CropKey, shared: &Shared<'_>) -> Option<Command> {
        if self.requested.as_ref() == Some(key) {
            return None;
        }
        self.requested = Some(key.clone());
        let job_key = key.clone();
        let started = self.render.start("flip-crops", shared.wake.clone(), move |r| {
            let rendered = decode_file(&job_key.path, DecodeLimits::default())
                .map(|img| {
                    job_key.transforms.map(|t| {
                        let crop = t.apply(&img);
                        egui::ColorImage::from_rgb([crop.width(), crop.height()], crop.as_raw())
                    })
                })
                .map_err(|e| e.to_string());
            r.send((job_key, rendered));
        });
        started
            .err()
            .map(|e| Command::not_started("rendering the flip's crops", &e))
    }

    fn take_rendered(&mut self, ctx: &egui::Context) {
        for (key, rendered) in self.render.drain() {
            let textures = rendered
                .map(|[x, y]| [x, y].map(|img| ctx.load_texture("flip-crop", img, egui::TextureOptions::NEAREST)));
            self.shown = Some((key, textures));
        }
    }
}

/// The test transform at `k` with the recipe the sliders set.
fn transform(k: usize, recipe: &Recipe) -> TestTransform {
    recipe.test_transform(k)
}

/// "K = 224: right, tabby 83.1 %" and, below, "true class 83.1 %".
fn caption(k: usize, r: &Scored, name: &dyn Fn(usize) -> String) -> String {
    format!(
        "K = {k}: {} {} {:.1} %\ntrue class {:.1} %",
        if r.top1 { "right," } else { "wrong," },
        name(r.predicted),
        100.0 * r.p_predicted,
        100.0 * r.p_true
    )
}
