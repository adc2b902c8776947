//! The left panel: the dataset's images by class, with thumbnails. Only the visible rows are
//! laid out (so 10,000+ images scroll smoothly), and only their thumbnails are decoded, off the
//! UI thread, then cached. A filter box narrows the list to the classes and files whose names
//! contain what is typed, and a class list jumps to a class.

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
    /// What the filter box holds, and what `rows` were made for.
    filter: String,
    rows_for: Option<String>,
    /// Images the rows list.
    matching: usize,
    /// A class picked from the class list, to scroll to.
    jump: Option<usize>,
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
                ..Self::default()
            };
        }
        if self.rows_for.as_deref() != Some(self.filter.as_str()) {
            let folder = &dataset.folder;
            let shown = matching(
                &folder.classes,
                folder.samples.iter().map(|s| (s.class, &s.path)),
                &self.filter,
            );
            self.matching = shown.len();
            self.rows = if self.filter.trim().is_empty() {
                rows(&folder.classes, folder.samples.iter().map(|s| s.class))
            } else {
                filtered_rows(shown.iter().map(|&i| (i, folder.samples[i].class)))
            };
            self.rows_for = Some(self.filter.clone());
        }
        for (index, result) in self.job.drain() {
            let thumb = match result {
                Ok(img) => Thumb::Ready(ui.ctx().load_texture(format!("thumb-{index}"), img, Default::default())),
                Err(e) => Thumb::Broken(e),
            };
            self.thumbs.insert(index, thumb);
        }
        let total = dataset.folder.samples.len();
        if self.filter.trim().is_empty() {
            ui.heading(count(total, "image", "images"));
        } else {
            ui.heading(format!("{} of {total}", count(self.matching, "image", "images")));
        }
        ui.horizontal(|ui| {
            let label = ui.label("filter");
            ui.add(
                egui::TextEdit::singleline(&mut self.filter)
                    .hint_text("class or file name")
                    .desired_width(150.0),
            )
            .labelled_by(label.id)
            .on_hover_text("Shows the classes and files whose names contain this (any case)");
        });
        let classes = &dataset.folder.classes;
        let label = ui.label("go to class");
        egui::ComboBox::from_id_salt("browser-class")
            .selected_text(self.jump.map_or("", |c| classes[c].as_str()))
            .width(200.0)
            .show_ui(ui, |ui| {
                for (c, name) in classes.iter().enumerate() {
                    if ui.selectable_label(self.jump == Some(c), name).clicked() {
                        self.jump = Some(c);
                        // A class the filter hides: show everything to scroll to it.
                        if !self.rows.iter().any(|r| matches!(r, Row::Class(k) if *k == c)) {
                            self.filter.clear();
                        }
                        self.shown_selection = None;
                    }
                }
            })
            .response
            .labelled_by(label.id);
        if self.rows_for.as_deref() != Some(self.filter.as_str()) {
            // The filter changed this frame: the list follows next frame.
            ui.ctx().request_repaint();
        }
        let samples = &dataset.folder.samples;
        let mut scroll = egui::ScrollArea::vertical().auto_shrink(false);
        let spacing = ui.spacing().item_spacing.y;
        if let Some(c) = self.jump
            && self.shown_selection.is_none()
            && let Some(row) = self.rows.iter().position(|r| matches!(r, Row::Class(k) if *k == c))
        {
            scroll = scroll.vertical_scroll_offset(row as f32 * (ROW + spacing));
            self.shown_selection = Some(shared.selected);
        } else if self.shown_selection != Some(shared.selected) {
            self.shown_selection = Some(shared.selected);
            if let Some(row) = self
                .rows
                .iter()
                .position(|r| matches!(r, Row::Image(i) if *i == shared.selected))
            {
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
    /// How many images the filter shows, while it filters.
    #[must_use]
    pub fn filter_matches(&self) -> Option<usize> {
        (!self.filter.trim().is_empty() && self.rows_for.as_deref() == Some(self.filter.as_str()))
            .then_some(self.matching)
    }

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

/// The samples (indices) the filter shows: every image of a class whose name contains `filter`,
/// and every image whose file name does, ignoring case; all of them for an empty filter.
fn matching<'a>(classes: &[String], samples: impl Iterator<Item = (usize, &'a PathBuf)>, filter: &str) -> Vec<usize> {
    let needle = filter.trim().to_lowercase();
    let class_matches: Vec<bool> = classes.iter().map(|c| c.to_lowercase().contains(&needle)).collect();
    samples
        .enumerate()
        .filter(|(_, (class, path))| {
            needle.is_empty()
                || class_matches[*class]
                || path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().to_lowercase().contains(&needle))
        })
        .map(|(i, _)| i)
        .collect()
}

/// Class headers, each followed by its shown images (`(sample index, class)`, sorted by class);
/// classes without a shown image have no header.
fn filtered_rows(shown: impl Iterator<Item = (usize, usize)>) -> Vec<Row> {
    let mut out = Vec::new();
    let mut last = None;
    for (i, c) in shown {
        if last != Some(c) {
            out.push(Row::Class(c));
            last = Some(c);
        }
        out.push(Row::Image(i));
    }
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

    #[test]
    fn the_filter_matches_class_and_file_names_in_any_case() {
        let classes: Vec<String> = ["tabby cat", "espresso", "n01440764"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let paths: Vec<(usize, PathBuf)> = [
            (0, "tabby/a.jpg"),
            (0, "tabby/b.jpg"),
            (1, "espresso/Cat_Mug.png"),
            (1, "espresso/cup.png"),
            (2, "n01440764/ILSVRC2012_val_00000293.JPEG"),
        ]
        .iter()
        .map(|(c, p)| (*c, PathBuf::from(p)))
        .collect();
        let find = |f: &str| matching(&classes, paths.iter().map(|(c, p)| (*c, p)), f);
        assert_eq!(find("CAT"), [0, 1, 2], "a class name, and a file name, any case");
        assert_eq!(find("n0144"), [4], "a WordNet id folder");
        assert_eq!(find("val_0000029"), [4]);
        assert_eq!(find("  "), [0, 1, 2, 3, 4], "blank: everything");
        assert!(find("zebra").is_empty());
        let rows = filtered_rows(find("cat").into_iter().map(|i| (i, paths[i].0)));
        assert!(matches!(
            rows[..],
            [
                Row::Class(0),
                Row::Image(0),
                Row::Image(1),
                Row::Class(1),
                Row::Image(2)
            ]
        ));
    }
}
