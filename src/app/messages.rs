//! What the app tells the user in so many words: dismissable lines over the top of the window,
//! and counts written as a person would ("1 image", "2 images").

use eframe::egui;

/// A dismissable line at the top of the window.
pub(super) struct Message {
    pub(super) text: String,
    pub(super) error: bool,
}

impl Message {
    /// Something went wrong.
    pub(super) fn error(text: String) -> Self {
        Self { text, error: true }
    }

    /// Something went right.
    pub(super) fn info(text: String) -> Self {
        Self { text, error: false }
    }
}

/// The dismissable messages, floating over the top of the window (so they never move the views).
pub(super) fn ui(ctx: &egui::Context, messages: &mut Vec<Message>) {
    if messages.is_empty() {
        return;
    }
    let mut dismissed = None;
    egui::Area::new(egui::Id::unique("messages"))
        .anchor(egui::Align2::CENTER_TOP, [0.0, 28.0])
        .show(ctx, |ui| {
            egui::Frame::popup(ui.style()).show(ui, |ui| {
                ui.set_max_width(720.0);
                for (i, m) in messages.iter().enumerate() {
                    ui.horizontal(|ui| {
                        let color = if m.error {
                            ui.visuals().error_fg_color
                        } else {
                            ui.visuals().text_color()
                        };
                        if ui.small_button("×").on_hover_text("Dismiss").clicked() {
                            dismissed = Some(i);
                        }
                        // Wrapped within the popup's width: a long message (a file path and a
                        // list of families) must not push the popup, and its ×, off screen.
                        ui.add(egui::Label::new(egui::RichText::new(&m.text).color(color)).wrap());
                    });
                }
            });
        });
    if let Some(i) = dismissed {
        messages.remove(i);
    }
}

/// `n` and the noun in its number: `count(1, "image", "images")` is "1 image".
pub(super) fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_is_singular_and_zero_plural() {
        let counts: Vec<String> = [0, 1, 2].map(|n| count(n, "image", "images")).into();
        assert_eq!(counts, ["0 images", "1 image", "2 images"]);
    }
}
