//! The selected image with its crop boxes, and beside it the train crops (RandomResizedCrop at
//! K_train) and the test crop (Resize + CenterCrop at K_test), all drawn at the same screen size
//! per network pixel, so an object's apparent size can be compared by eye, as in the paper's
//! horse figure. Dragging on the image measures an object's apparent size at train and test time.

use std::path::PathBuf;
use std::sync::Arc;

use eframe::egui;

use super::browser::fit;
use super::panel::{Panel, Place};
use super::{Command, Shared};

use crate::data::{
    CropBox, DecodeLimits, RandomResizedCrop, RgbImage, SeededRng, TestTransform, TrainTransform, decode_file,
};
use crate::jobs::Latest;
use crate::stats::quantile;

/// Longest side of the preview texture of the original image.
const PREVIEW: usize = 1024;
/// Height of the original image on screen, in points.
const ORIGINAL_HEIGHT: f32 = 280.0;
/// Widest on-screen size of the original image, in points.
const ORIGINAL_WIDTH: f32 = 340.0;
/// Largest on-screen size of a crop, in points.
const MAX_CROP: f32 = 300.0;
/// Train crops sampled to measure an object's apparent size at train time.
const OBJECT_SAMPLES: u64 = 4000;
/// Keeps the measurement's draws apart from the crops shown (same seed, another stream).
const OBJECT_STREAM: u64 = 0x0b1e_c7ed;
/// Colours: train boxes, test box, the measured object.
const TRAIN_COLOR: egui::Color32 = egui::Color32::from_rgb(255, 150, 30);
const TEST_COLOR: egui::Color32 = egui::Color32::from_rgb(60, 170, 255);
const OBJECT_COLOR: egui::Color32 = egui::Color32::from_rgb(80, 220, 100);

/// Image width and height, sampler, seed.
type CropStatsKey = (usize, usize, RandomResizedCrop, u64);

struct Decoded {
    path: PathBuf,
    image: Arc<RgbImage>,
    preview: egui::ColorImage,
}

/// Everything the crops depend on.
#[derive(Clone, PartialEq)]
struct CropKey {
    path: PathBuf,
    train: TrainTransform,
    test: TestTransform,
    params: Vec<(CropBox, bool)>,
}

struct Rendered {
    key: CropKey,
    train: Vec<egui::ColorImage>,
    test: egui::ColorImage,
}

struct Shown {
    key: CropKey,
    train: Vec<egui::TextureHandle>,
    test: egui::TextureHandle,
}

/// The crops view's state.
#[derive(Default)]
pub struct CropsView {
    decode: Latest<Result<Decoded, String>>,
    requested_path: Option<PathBuf>,
    decoded: Option<(PathBuf, Arc<RgbImage>, egui::TextureHandle)>,
    decode_error: Option<String>,
    render: Latest<Rendered>,
    requested_key: Option<CropKey>,
    shown: Option<Shown>,
    /// The measured object, `(left, top, width, height)` in source pixels, for `object_path`.
    object: Option<[f64; 4]>,
    object_path: Option<PathBuf>,
    drag_origin: Option<egui::Pos2>,
    /// Mean, 5 % and 95 % of 1/√(crop area) over sampled train crops, for (size, sampler, seed).
    crop_stats: Option<(CropStatsKey, [f64; 3])>,
}

/// The train crops' draws for the image shown: crop `i` uses its own seeded stream, so
/// changing the number of crops keeps the others.
fn train_params(train: &TrainTransform, seed: u64, count: usize, width: usize, height: usize) -> Vec<(CropBox, bool)> {
    (0..count)
        .map(|i| train.sample_params(width, height, &mut SeededRng::for_item(seed, i as u64)))
        .collect()
}

fn color_image(img: &RgbImage) -> egui::ColorImage {
    egui::ColorImage::from_rgb([img.width(), img.height()], img.as_raw())
}

impl CropsView {
    /// Side of the test crop shown.
    pub fn test_crop_side(&self) -> Option<usize> {
        self.shown.as_ref().map(|s| s.test.size()[0])
    }

    /// Side of the train crops shown.
    pub fn train_crop_side(&self) -> Option<usize> {
        self.shown.as_ref().and_then(|s| s.train.first()).map(|t| t.size()[0])
    }

    /// Starts the decode of a newly selected image and the resampling of new crops. A job that
    /// does not start is not retried until the image or the settings change.
    fn update(&mut self, ctx: &egui::Context, shared: &Shared<'_>) -> Vec<Command> {
        let mut out = Vec::new();
        let Some(dataset) = shared.dataset else {
            return out;
        };
        let Some(sample) = dataset.folder.samples.get(shared.selected) else {
            return out;
        };
        if self.requested_path.as_ref() != Some(&sample.path) {
            self.requested_path = Some(sample.path.clone());
            self.decode_error = None;
            let path = sample.path.clone();
            let started = self.decode.start("decode", shared.wake.clone(), move |r| {
                let result = decode_file(&path, DecodeLimits::default())
                    .map(|img| Decoded {
                        preview: color_image(&fit(&img, PREVIEW)),
                        image: Arc::new(img),
                        path: path.clone(),
                    })
                    .map_err(|e| e.to_string());
                r.send(result);
            });
            if let Err(e) = started {
                out.push(Command::not_started("decoding the image", &e));
            }
        }
        for result in self.decode.drain() {
            match result {
                Ok(d) => {
                    let texture = ctx.load_texture("original", d.preview, egui::TextureOptions::LINEAR);
                    self.decoded = Some((d.path, d.image, texture));
                }
                Err(e) => {
                    self.decoded = None;
                    self.decode_error = Some(e);
                }
            }
        }
        for r in self.render.drain() {
            let load = |name: String, img: egui::ColorImage| ctx.load_texture(name, img, egui::TextureOptions::NEAREST);
            self.shown = Some(Shown {
                train: r
                    .train
                    .into_iter()
                    .enumerate()
                    .map(|(i, img)| load(format!("train-crop-{i}"), img))
                    .collect(),
                test: load("test-crop".into(), r.test),
                key: r.key,
            });
        }
        let Some((path, image, _)) = &self.decoded else {
            return out;
        };
        let s = shared.settings;
        let train = s.train_transform();
        let key = CropKey {
            path: path.clone(),
            train,
            test: s.test_transform(shared.model.map(|m| &m.model.recipe)),
            params: train_params(&train, s.seed, s.train_crops, image.width(), image.height()),
        };
        if self.requested_key.as_ref() != Some(&key) {
            self.requested_key = Some(key.clone());
            let image = image.clone();
            let started = self.render.start("crops", shared.wake.clone(), move |r| {
                let train = key
                    .params
                    .iter()
                    .map(|&(b, flipped)| color_image(&key.train.apply_params(&image, b, flipped).image))
                    .collect();
                let test = color_image(&key.test.apply(&image));
                r.send(Rendered { key, train, test });
            });
            if let Err(e) = started {
                out.push(Command::not_started("resampling the crops", &e));
            }
        }
        out
    }
}

impl Panel for CropsView {
    fn place(&self) -> Place {
        Place::Centre
    }

    fn jobs(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.decode.running().is_some() {
            out.push("decoding the image".to_owned());
        }
        if self.render.running().is_some() {
            out.push("resampling crops".to_owned());
        }
        out
    }

    /// Whether the crops shown are not yet those of the current settings.
    fn pending(&self, _shared: &Shared<'_>) -> bool {
        self.decode.running().is_some()
            || self.render.running().is_some()
            || self.requested_key.as_ref() != self.shown.as_ref().map(|s| &s.key)
    }

    /// Draws the view.
    fn ui(&mut self, ui: &mut egui::Ui, shared: &Shared<'_>) -> Vec<Command> {
        let out = self.update(ui.ctx(), shared);
        if let Some(e) = &self.decode_error {
            ui.colored_label(ui.visuals().error_fg_color, format!("cannot show this image: {e}"));
            return out;
        }
        let Some((path, image, texture)) = &self.decoded else {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("decoding…");
            });
            return out;
        };
        let (path, image, texture) = (path.clone(), Arc::clone(image), texture.id());
        if self.object_path.as_ref() != Some(&path) {
            self.object = None;
            self.object_path = Some(path.clone());
        }
        let (w, h) = (image.width(), image.height());
        let s = shared.settings;
        let test = s.test_transform(shared.model.map(|m| &m.model.recipe));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        ui.horizontal(|ui| {
            ui.strong(name);
            ui.label(format!("{w}×{h}"));
            ui.weak("— drag on the image to measure an object");
        });
        ui.horizontal_top(|ui| {
            // The original with the boxes.
            let scale = (ORIGINAL_HEIGHT / h as f32).min(ORIGINAL_WIDTH / w as f32);
            let size = egui::vec2(w as f32 * scale, h as f32 * scale);
            let (rect, response) = ui.allocate_exact_size(size, egui::Sense::drag());
            let painter = ui.painter_at(rect);
            painter.image(
                texture,
                rect,
                egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0)),
                egui::Color32::WHITE,
            );
            let to_screen = |l: f64, t: f64, bw: f64, bh: f64| {
                egui::Rect::from_min_size(
                    rect.min + egui::vec2(l as f32, t as f32) * scale,
                    egui::vec2(bw as f32, bh as f32) * scale,
                )
            };
            let params = train_params(&s.train_transform(), s.seed, s.train_crops, w, h);
            for (i, (b, _)) in params.iter().enumerate() {
                let r = to_screen(b.left as f64, b.top as f64, b.width as f64, b.height as f64);
                painter.rect_stroke(r, 0.0, egui::Stroke::new(2.0, TRAIN_COLOR), egui::StrokeKind::Middle);
                painter.text(
                    r.left_top() + egui::vec2(3.0, 2.0),
                    egui::Align2::LEFT_TOP,
                    format!("{}", i + 1),
                    egui::FontId::proportional(12.0),
                    TRAIN_COLOR,
                );
            }
            let (l, t, bw, bh) = test.source_rect(w, h);
            painter.rect_stroke(
                to_screen(l, t, bw, bh),
                0.0,
                egui::Stroke::new(2.0, TEST_COLOR),
                egui::StrokeKind::Middle,
            );
            self.measure(&response, rect, scale, w, h);
            if let Some([l, t, bw, bh]) = self.object {
                painter.rect_stroke(
                    to_screen(l, t, bw, bh),
                    0.0,
                    egui::Stroke::new(2.0, OBJECT_COLOR),
                    egui::StrokeKind::Middle,
                );
            }
            ui.add_space(12.0);
            ui.vertical(|ui| self.crops_ui(ui, shared, w, h));
        });
        out
    }
}

impl CropsView {
    /// Drag on the image: the object box, in source pixels. A click clears it.
    fn measure(&mut self, response: &egui::Response, rect: egui::Rect, scale: f32, w: usize, h: usize) {
        let to_source = |p: egui::Pos2| {
            let v = (p - rect.min) / scale;
            egui::pos2(v.x.clamp(0.0, w as f32), v.y.clamp(0.0, h as f32))
        };
        if response.drag_started() {
            self.drag_origin = response.interact_pointer_pos().map(to_source);
        }
        if let (Some(origin), Some(pos)) = (self.drag_origin, response.interact_pointer_pos())
            && response.dragged()
        {
            let r = egui::Rect::from_two_pos(origin, to_source(pos));
            if r.width() >= 1.0 && r.height() >= 1.0 {
                self.object = Some([r.min.x as f64, r.min.y as f64, r.width() as f64, r.height() as f64]);
            }
        }
        if response.drag_stopped() {
            self.drag_origin = None;
        }
        if response.clicked() {
            self.object = None;
        }
    }

    fn crops_ui(&mut self, ui: &mut egui::Ui, shared: &Shared<'_>, w: usize, h: usize) {
        let s = shared.settings;
        let test = s.test_transform(shared.model.map(|m| &m.model.recipe));
        let n = s.train_crops;
        let gap = ui.spacing().item_spacing.x;
        // One screen scale for every crop: points per network pixel.
        let scale = ((ui.available_width() - gap * (n as f32 + 1.0) - 10.0) / (n * s.train_res + s.test_res) as f32)
            .min(MAX_CROP / s.train_res.max(s.test_res) as f32)
            .max(0.05);
        let Some(shown) = &self.shown else {
            ui.spinner();
            return;
        };
        ui.horizontal_top(|ui| {
            for (i, t) in shown.train.iter().enumerate() {
                ui.vertical(|ui| {
                    let side = s.train_res as f32 * scale;
                    ui.set_max_width(side.max(60.0));
                    let image = ui.add(egui::Image::new(t).fit_to_exact_size(egui::vec2(side, side)));
                    ui.painter().rect_stroke(
                        image.rect,
                        0.0,
                        egui::Stroke::new(2.0, TRAIN_COLOR),
                        egui::StrokeKind::Outside,
                    );
                    if let Some((b, flipped)) = shown.key.params.get(i) {
                        let flip = if *flipped { ", flipped" } else { "" };
                        ui.small(format!("train {}: {}×{} px{flip}", i + 1, b.width, b.height));
                    }
                });
            }
            ui.vertical(|ui| {
                let side = s.test_res as f32 * scale;
                ui.set_max_width(side.max(60.0));
                let image = ui.add(egui::Image::new(&shown.test).fit_to_exact_size(egui::vec2(side, side)));
                ui.painter().rect_stroke(
                    image.rect,
                    0.0,
                    egui::Stroke::new(2.0, TEST_COLOR),
                    egui::StrokeKind::Outside,
                );
                let (rw, rh) = test.resized_size(w, h);
                ui.small(format!("test: resized to {rw}×{rh}"));
            });
        });
        ui.weak(format!(
            "train crops at K_train = {}, test crop at K_test = {}, all at {scale:.2} points per network pixel",
            s.train_res, s.test_res
        ));
        if let Some([_, _, ow, oh]) = self.object {
            let r = (ow * oh).sqrt();
            // The test crop's scale along each axis (they differ in the squash mode).
            let (rw, rh) = test.resized_size(w, h);
            let test = r * ((rw as f64 / w as f64) * (rh as f64 / h as f64)).sqrt();
            // Train-time size = r · K_train / √(crop area): the crop statistics depend on the
            // image size, the sampler and the seed only, so they are sampled once for those.
            let key = (w, h, s.sampler(), s.seed);
            if self.crop_stats.as_ref().is_none_or(|(k, _)| *k != key) {
                let mut inv: Vec<f64> = (0..OBJECT_SAMPLES)
                    .map(|i| {
                        let b = s
                            .sampler()
                            .sample(w, h, &mut SeededRng::for_item(s.seed ^ OBJECT_STREAM, i));
                        1.0 / ((b.width * b.height) as f64).sqrt()
                    })
                    .collect();
                inv.sort_by(f64::total_cmp);
                let mean = inv.iter().sum::<f64>() / inv.len() as f64;
                self.crop_stats = Some((key, [mean, quantile(&inv, 0.05), quantile(&inv, 0.95)]));
            }
            let [mean, q05, q95] = self
                .crop_stats
                .as_ref()
                .expect("filled above")
                .1
                .map(|v| v * r * s.train_res as f64);
            ui.label(
                egui::RichText::new(format!(
                    "object ≈ {r:.0} px in the image: at train time {mean:.0} px on average (5–95 %: {q05:.0}–{q95:.0}), at test time {test:.0} px (ratio {:.2})",
                    test / mean
                ))
                .color(OBJECT_COLOR),
            );
        }
    }
}
