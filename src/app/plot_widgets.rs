//! What every plot shares: the legend style and the CSV/PNG export buttons, so the plots look
//! and export alike.

use eframe::egui;
use egui_plot::Legend;

use super::Command;

/// The legend every plot uses: small and see-through, so it hides little of the data.
pub fn legend() -> Legend {
    Legend::default()
        .text_style(egui::TextStyle::Small)
        .background_alpha(0.6)
}

/// Gives the PNG export among `commands` the screen rectangle of the plot, once it is drawn.
pub fn set_png_rect(commands: &mut [Command], rect: egui::Rect) {
    for c in commands {
        if let Command::ExportPng { rect: r, .. } = c {
            *r = rect;
        }
    }
}

/// "CSV" and "PNG" buttons; the PNG command's rectangle is filled in by `set_png_rect` once the
/// plot is drawn.
pub fn export_buttons(ui: &mut egui::Ui, name: &str, csv: impl FnOnce() -> String) -> Vec<Command> {
    let mut out = Vec::new();
    if ui
        .small_button("CSV")
        .on_hover_text("Export this plot's data")
        .clicked()
    {
        out.push(Command::ExportCsv {
            name: name.to_owned(),
            csv: csv(),
        });
    }
    if ui
        .small_button("PNG")
        .on_hover_text("Export this plot as an image")
        .clicked()
    {
        out.push(Command::ExportPng {
            name: name.to_owned(),
            rect: egui::Rect::NOTHING,
        });
    }
    out
}
