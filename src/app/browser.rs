//! The left panel: the dataset's images by class, with thumbnails. Only the visible rows are
//! laid out (so 10,000+ images scroll smoothly), and only their thumbnails are decoded, off the
//! UI thread, then cached.

use std::collections::HashMap;
use std::path::PathBuf;

use eframe::egui;
use rayon::prelude::*;

use super::messages::count;
use super::panel::{Panel, Place};
use super::{Command, Shared};
use crate::data::{DecodeLimits, Interpolation, RgbImage, Sample, decode_file, resize};
use crate::jobs::Latest;

/// Thumbnail side, in pixels.
const THUMB: usize = 48;
/// Row height, in points.
const ROW: f32 = 52.0;
/// Thumbnails kept; the farthest from view go first beyond this.
const CACHE: usize = 2000;

enum Thumb {
    Ready(egui::TextureHandle),
    Broken(String),
}

/// One line of the list.
#[derive(Clone, Copy)]
enum Row {
    Class(usize),
    Image(usize),
}

/// The browser's state.
#[derive(Default)]
pub struct Browser {
    dataset_id: u64,
    rows: Vec<Row>,
    thumbs: HashMap<usize, Thumb>,
    job: Latest<(usize, Result<egui::ColorImage, String>)>,
    /// The selection the list last showed, to scroll to a new one.
    shown_selection: Option<usize>,
    /// The thumbnails whose job did not start: not asked for again (every frame) until the
    /// rows in view change.
    not_started: Vec<usize>,
}

impl Panel for Browser {
    fn place(&self) -> Place {
        // A fixed width: long file names are cut (their full path is on hover).
        Place::Left("browser", 240.0)
    }

    fn jobs(&self) -> Vec<String> {
        self.job
            .running()
            .map(|_| "thumbnails".to_owned())
            .into_iter()
            .collect()
    }

    /// Draws the list.
    fn ui(&mut self, ui: &mut egui::Ui, shared: &Shared<'_>) -> Vec<Command> {
        let mut out = Vec::new();
        let Some(dataset) = shared.dataset else {
            ui.label("Open an ImageFolder: File > Open dataset folder…, or drop a folder here.");
            return out;
        };
        if dataset.id != self.dataset_id {
            *self = Self {
                dataset_id: dataset.id,
                rows: rows(&dataset.folder.classes, dataset.folder.samples.iter().map(|s| s.class)),
                ..Self::default()
            };
        }
        for (index, result) in self.job.drain() {
            let thumb = match result {
                Ok(img) => Thumb::Ready(ui.ctx().load_texture(format!("thumb-{index}"), img, Default::default())),
                Err(e) => Thumb::Broken(e),
            };
            self.thumbs.insert(index, thumb);
        }
        ui.heading(count(dataset.folder.samples.len(), "image", "images"));
        let samples = &dataset.folder.samples;
        let mut scroll = egui::ScrollArea::vertical().auto_shrink(false);
        if self.shown_selection != Some(shared.selected) {
            self.shown_selection = Some(shared.selected);
            if let Some(row) = self
                .rows
                .iter()
                .position(|r| matches!(r, Row::Image(i) if *i == shared.selected))
            {
                let spacing = ui.spacing().item_spacing.y;
                scroll = scroll.vertical_scroll_offset((row as f32 * (ROW + spacing) - 3.0 * ROW).max(0.0));
            }
        }
        let mut visible = Vec::new();
        scroll.show_rows(ui, ROW, self.rows.len(), |ui, range| {
            for row in &self.rows[range] {
                match *row {
                    Row::Class(c) => {
                        ui.horizontal(|ui| {
                            ui.set_height(ROW);
                            ui.strong(&dataset.folder.classes[c]);
                        });
                    }
                    Row::Image(i) => {
                        visible.push(i);
                        let name = samples[i]
                            .path
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        let selected = i == shared.selected;
                        let response = ui
                            .horizontal(|ui| {
                                ui.set_height(ROW);
                                match self.thumbs.get(&i) {
                                    Some(Thumb::Ready(t)) => {
                                        ui.add(
                                            egui::Image::new(t)
                                                .fit_to_exact_size(egui::vec2(THUMB as f32, THUMB as f32)),
                                        );
                                    }
                                    Some(Thumb::Broken(e)) => {
                                        ui.add_sized([THUMB as f32, THUMB as f32], egui::Label::new("broken"))
                                            .on_hover_text(e);
                                    }
                                    None => {
                                        ui.add_sized([THUMB as f32, THUMB as f32], egui::Spinner::new());
                                    }
                                }
                                ui.add(egui::Button::selectable(selected, name).truncate())
                                    .on_hover_text(samples[i].path.display().to_string())
                            })
                            .inner;
                        if response.clicked() {
                            out.push(Command::Select(i));
                        }
                    }
                }
            }
        });
        out.extend(self.request(&visible, samples, shared));
        out
    }
}

impl Browser {
    /// Starts decoding the visible thumbnails not cached yet, when no batch is running; evicts
    /// the farthest thumbnails beyond the cache size.
    fn request(&mut self, visible: &[usize], samples: &[Sample], shared: &Shared<'_>) -> Option<Command> {
        if self.thumbs.len() > CACHE
            && let (Some(&lo), Some(&hi)) = (visible.first(), visible.last())
        {
            let mut far: Vec<usize> = self.thumbs.keys().copied().collect();
            far.sort_by_key(|&i| std::cmp::Reverse(i.abs_diff(lo).min(i.abs_diff(hi))));
            for i in far.into_iter().take(self.thumbs.len() - CACHE) {
                self.thumbs.remove(&i);
            }
        }
        if self.job.running().is_some() {
            return None;
        }
        let wanted: Vec<(usize, PathBuf)> = visible
            .iter()
            .filter(|i| !self.thumbs.contains_key(i))
            .map(|&i| (i, samples[i].path.clone()))
            .collect();
        let indices: Vec<usize> = wanted.iter().map(|(i, _)| *i).collect();
        if wanted.is_empty() || indices == self.not_started {
            return None;
        }
        let started = self.job.start("thumbnails", shared.wake.clone(), move |r| {
            wanted.par_iter().for_each(|(i, path)| {
                if !r.cancelled() {
                    r.send((*i, thumbnail(path)));
                }
            });
        });
        match started {
            Ok(_) => {
                self.not_started.clear();
                None
            }
            Err(e) => {
                self.not_started = indices;
                Some(Command::not_started("decoding the thumbnails", &e))
            }
        }
    }
}

/// Class headers, each followed by its images (samples are sorted by class).
fn rows(classes: &[String], sample_classes: impl Iterator<Item = usize>) -> Vec<Row> {
    let mut out = Vec::new();
    let mut last = None;
    for (i, c) in sample_classes.enumerate() {
        if last != Some(c) {
            // Empty classes still get a header, so the class list reads as the dataset's.
            let first = last.map_or(0, |l| l + 1);
            out.extend((first..=c).map(Row::Class));
            last = Some(c);
        }
        out.push(Row::Image(i));
    }
    let first = last.map_or(0, |l| l + 1);
    out.extend((first..classes.len()).map(Row::Class));
    out
}

/// Decodes `path` and shrinks it to fit `THUMB`×`THUMB`.
fn thumbnail(path: &std::path::Path) -> Result<egui::ColorImage, String> {
    let img = decode_file(path, DecodeLimits::default()).map_err(|e| e.to_string())?;
    let small = fit(&img, THUMB);
    Ok(egui::ColorImage::from_rgb(
        [small.width(), small.height()],
        small.as_raw(),
    ))
}

/// `img` shrunk (never enlarged) so its longer side is at most `side`.
pub fn fit(img: &RgbImage, side: usize) -> RgbImage {
    let long = img.width().max(img.height());
    if long <= side {
        return img.clone();
    }
    let w = (img.width() * side / long).max(1);
    let h = (img.height() * side / long).max(1);
    resize(img, w, h, Interpolation::Bilinear)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_put_each_class_header_before_its_images_and_keep_empty_classes() {
        let classes: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| (*s).to_owned()).collect();
        let rows = rows(&classes, [0, 0, 2].into_iter());
        let text: Vec<String> = rows
            .iter()
            .map(|r| match r {
                Row::Class(c) => format!("C{c}"),
                Row::Image(i) => format!("I{i}"),
            })
            .collect();
        assert_eq!(text, ["C0", "I0", "I1", "C1", "C2", "I2", "C3"]);
    }
}
