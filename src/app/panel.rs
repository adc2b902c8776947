//! What the app asks of every panel, and where in the window a panel goes. The app draws the
//! panels by their `place`, names their jobs in the status bar and waits on their `pending`
//! results in tests, all from one list (`panels!` in `app/mod.rs`), so a new panel is one line
//! there.

use eframe::egui;

use super::{Command, Shared};

/// Where the app lays a panel out. Edge panels go first, in list order (egui needs them before
/// the centre), then the centre, its columns, and the windows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Place {
    /// A bar across the top (egui id).
    Top(&'static str),
    /// A bar across the bottom (egui id).
    Bottom(&'static str),
    /// A column of fixed width at the left edge (egui id, width in points): fixed, so what it
    /// shows never pushes the views around.
    Left(&'static str, f32),
    /// A column of fixed width at the right edge (egui id, width in points).
    Right(&'static str, f32),
    /// The scrolling centre, full width, above the columns.
    Centre,
    /// One of the equal columns under the centre, left to right in list order.
    Column,
    /// A floating window; the panel shows (or hides) its own `egui::Window` on `ui.ctx()`.
    Window,
}

/// One part of the window. A panel reads what the app has open through `Shared` and asks for
/// everything else with the commands it returns, which the app runs after the frame is drawn: so
/// no panel reaches into another's state, and one frame draws one state.
pub trait Panel {
    /// Where the app puts it.
    fn place(&self) -> Place;

    /// Draws it (first taking in what its jobs sent).
    #[must_use]
    fn ui(&mut self, ui: &mut egui::Ui, shared: &Shared<'_>) -> Vec<Command>;

    /// Its running background jobs, as the status bar names them.
    fn jobs(&self) -> Vec<String> {
        Vec::new()
    }

    /// Whether it still waits for results of the current settings besides its running jobs (a
    /// debounced start, a result not laid out yet): tests step frames until nothing does.
    fn pending(&self, _shared: &Shared<'_>) -> bool {
        false
    }
}

/// The app's panels: a struct with one field per panel (for the commands and test queries that
/// address one) and `all`/`all_mut` listing them in drawing order (for everything done to each),
/// made from one list so the two cannot disagree.
macro_rules! panels {
    ($($field:ident: $panel:ty,)*) => {
        /// Every panel of the window.
        #[derive(Default)]
        struct Panels {
            $($field: $panel,)*
        }

        impl Panels {
            /// The panels in drawing order.
            fn all(&self) -> Vec<&dyn $crate::app::panel::Panel> {
                vec![$(&self.$field),*]
            }

            /// The panels in drawing order, to draw.
            fn all_mut(&mut self) -> Vec<&mut dyn $crate::app::panel::Panel> {
                vec![$(&mut self.$field),*]
            }
        }
    };
}
pub(super) use panels;

/// Draws `panels` into the window by their place; returns what they asked for, in drawing order.
pub(super) fn layout(ui: &mut egui::Ui, panels: &mut [&mut dyn Panel], shared: &Shared<'_>) -> Vec<Command> {
    let mut out = Vec::new();
    for panel in panels.iter_mut() {
        let edge = match panel.place() {
            Place::Top(id) => egui::Panel::top(id),
            Place::Bottom(id) => egui::Panel::bottom(id),
            Place::Left(id, width) => egui::Panel::left(id).resizable(false).exact_size(width),
            Place::Right(id, width) => egui::Panel::right(id).resizable(false).exact_size(width),
            Place::Centre | Place::Column | Place::Window => continue,
        };
        edge.show(ui, |ui| out.extend(panel.ui(ui, shared)));
    }
    egui::CentralPanel::default().show(ui, |ui| {
        egui::ScrollArea::vertical().show(ui, |ui| {
            for panel in panels.iter_mut().filter(|p| p.place() == Place::Centre) {
                out.extend(panel.ui(ui, shared));
                ui.separator();
            }
            let mut columns: Vec<&mut &mut dyn Panel> =
                panels.iter_mut().filter(|p| p.place() == Place::Column).collect();
            if !columns.is_empty() {
                ui.columns(columns.len(), |uis| {
                    for (ui, panel) in uis.iter_mut().zip(&mut columns) {
                        out.extend(panel.ui(ui, shared));
                    }
                });
            }
        });
    });
    for panel in panels.iter_mut().filter(|p| p.place() == Place::Window) {
        out.extend(panel.ui(ui, shared));
    }
    out
}
