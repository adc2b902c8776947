//! The right panel: resolutions, the test transform, RandomResizedCrop's ranges, interpolation.

use eframe::egui;

use super::panel::{Panel, Place};
use super::{Command, Settings, Shared};
use crate::data::{CropMode, Interpolation};
use crate::model::Recipe;
use crate::size::analytic;

/// Resolution range of the sliders.
pub const RES_RANGE: std::ops::RangeInclusive<usize> = 8..=640;

/// The controls (no state of their own: they edit a copy of the settings).
#[derive(Default)]
pub struct Controls;

impl Panel for Controls {
    fn place(&self) -> Place {
        Place::Right("controls", 290.0)
    }

    fn ui(&mut self, ui: &mut egui::Ui, shared: &Shared<'_>) -> Vec<Command> {
        let mut settings = shared.settings.clone();
        let recipe = shared.model.map(|m| m.model.recipe);
        let mut out = edit(ui, &mut settings, recipe.as_ref());
        if settings != *shared.settings {
            out.insert(0, Command::SetSettings(Box::new(settings)));
        }
        out
    }
}

/// Draws the controls, changing `settings` in place; `recipe` is the open model's (for "Copy as
/// code": its normalisation with the test transform the controls set).
fn edit(ui: &mut egui::Ui, settings: &mut Settings, recipe: Option<&Recipe>) -> Vec<Command> {
    let mut out = Vec::new();
    ui.heading("Resolutions");
    let (old_train, old_test) = (settings.train_res, settings.test_res);
    ui.add(egui::Slider::new(&mut settings.train_res, RES_RANGE).text("K_train"))
        .on_hover_text("Train resolution: RandomResizedCrop's output side");
    ui.add(egui::Slider::new(&mut settings.test_res, RES_RANGE).text("K_test"))
        .on_hover_text("Test resolution: the centre crop's side");
    ui.checkbox(&mut settings.lock_ratio, "Keep K_test / K_train fixed");
    if settings.lock_ratio {
        keep_ratio(settings, old_train, old_test);
    }
    let a = analytic(&settings.size_setup());
    ui.horizontal(|ui| {
        ui.label(format!("Sizes match at K_test ≈ {}", a.recommended_test_res));
        if ui
            .small_button("Use")
            .on_hover_text("Set K_test to the analytic recommendation")
            .clicked()
        {
            settings.test_res = a.recommended_test_res.clamp(*RES_RANGE.start(), *RES_RANGE.end());
        }
    });
    if ui
        .button("Fine-tune at K_test…")
        .on_hover_text("FixRes: fine-tune the last BatchNorm and the classifier at this test resolution")
        .clicked()
    {
        out.push(Command::ShowFinetune);
    }
    ui.separator();
    ui.heading("Test transform");
    ui.add(
        egui::Slider::new(&mut settings.crop_ratio, 0.5..=1.0)
            .text("crop ratio")
            // Shown to 3 decimals, not rounded to them: a ratio the resize side set (224 / 232)
            // must keep every digit.
            .custom_formatter(|v, _| format!("{v:.3}")),
    )
    .on_hover_text("K_test / resize side: Resize(int(K_test / ratio)) + CenterCrop(K_test)");
    let mut s = crate::data::transforms::test_resize_size(settings.test_res, settings.crop_ratio);
    let k = settings.test_res;
    ui.horizontal(|ui| {
        let label = ui.label("resize side");
        // An explicit resize side (torchvision's 232 for 224) sets the ratio that gives it at K_test.
        if ui
            .add(egui::DragValue::new(&mut s).range(k..=k * 2))
            .labelled_by(label.id)
            .on_hover_text("The side the image is resized to at K_test; sets the crop ratio")
            .changed()
        {
            settings.crop_ratio = crate::data::transforms::crop_ratio_for(k, s);
        }
    });
    ui.label(match settings.crop_mode {
        CropMode::Center => format!("Resize({s}) + CenterCrop({k})"),
        CropMode::Squash => format!("Resize(({s}, {s})) + CenterCrop({k})"),
        CropMode::Border => format!("ResizeKeepRatio({s}, longest) + CenterCropOrPad({k})"),
    });
    egui::ComboBox::from_label("crop mode")
        .selected_text(settings.crop_mode.name())
        .show_ui(ui, |ui| {
            for (mode, what) in [
                (
                    CropMode::Center,
                    "the shorter side to the resize side, the longer cropped (torchvision, timm's default)",
                ),
                (
                    CropMode::Squash,
                    "both sides to the resize side: the aspect ratio changes, nothing is cropped away at crop ratio 1",
                ),
                (
                    CropMode::Border,
                    "the longer side to the resize side, padded with the mean colour (timm)",
                ),
            ] {
                ui.selectable_value(&mut settings.crop_mode, mode, mode.name())
                    .on_hover_text(what);
            }
        })
        .response
        .on_hover_text("How the image is fitted to the resize side before the crop (timm's crop_mode)");
    egui::ComboBox::from_label("interpolation")
        .selected_text(format!("{:?}", settings.interpolation))
        .show_ui(ui, |ui| {
            for f in [Interpolation::Bilinear, Interpolation::Bicubic, Interpolation::Lanczos] {
                ui.selectable_value(&mut settings.interpolation, f, format!("{f:?}"));
            }
        });
    if let Some(model_recipe) = recipe
        && ui
            .button("Copy as code")
            .on_hover_text("The test transform at K_test as torchvision code, and as timm's pretrained_cfg")
            .clicked()
    {
        let r = settings.recipe_for(model_recipe);
        let k = settings.test_res;
        let text = format!(
            "{}\n# timm pretrained_cfg:\n# {}\n",
            r.torchvision_code(k),
            r.timm_cfg(Some(k))
        );
        ui.ctx().copy_text(text);
        out.push(Command::Info(format!(
            "copied the test transform at K_test = {k} as torchvision code and timm's pretrained_cfg"
        )));
    }
    ui.separator();
    ui.heading("RandomResizedCrop");
    ui.add(
        egui::Slider::new(&mut settings.scale.0, 0.01..=1.0)
            .text("scale min")
            .fixed_decimals(2),
    );
    ui.add(
        egui::Slider::new(&mut settings.scale.1, 0.01..=1.0)
            .text("scale max")
            .fixed_decimals(2),
    );
    ui.add(
        egui::Slider::new(&mut settings.ratio.0, 0.25..=4.0)
            .logarithmic(true)
            .text("ratio min")
            .fixed_decimals(3),
    );
    ui.add(
        egui::Slider::new(&mut settings.ratio.1, 0.25..=4.0)
            .logarithmic(true)
            .text("ratio max")
            .fixed_decimals(3),
    );
    ui.horizontal(|ui| {
        ui.add(egui::Slider::new(&mut settings.train_crops, 1..=8).text("crops"));
    });
    ui.horizontal(|ui| {
        let label = ui.label("seed");
        ui.add(egui::DragValue::new(&mut settings.seed)).labelled_by(label.id);
        if ui.button("Resample").on_hover_text("New train crops (R)").clicked() {
            out.push(Command::Resample);
        }
    });
    if ui.button("Reset to torchvision defaults").clicked() {
        let d = Settings::default();
        (settings.scale, settings.ratio, settings.crop_ratio, settings.crop_mode) =
            (d.scale, d.ratio, d.crop_ratio, d.crop_mode);
    }
    out
}

/// After one resolution slider moved, moves the other to keep their old ratio.
fn keep_ratio(settings: &mut Settings, old_train: usize, old_test: usize) {
    let clamp = |x: f64| (x.round() as usize).clamp(*RES_RANGE.start(), *RES_RANGE.end());
    if settings.train_res != old_train {
        settings.test_res = clamp(settings.train_res as f64 * old_test as f64 / old_train as f64);
    } else if settings.test_res != old_test {
        settings.train_res = clamp(settings.test_res as f64 * old_train as f64 / old_test as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locked_ratio_follows_either_slider() {
        let mut s = Settings {
            train_res: 128,
            test_res: 160,
            ..Settings::default()
        };
        s.train_res = 256;
        keep_ratio(&mut s, 128, 160);
        assert_eq!(s.test_res, 320);
        s.test_res = 160;
        keep_ratio(&mut s, 256, 320);
        assert_eq!(s.train_res, 128);
    }
}
