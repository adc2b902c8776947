//! What panels, dialogs, other threads and tests ask the app to do, and how the app does it.
//! Every change to what is open or shown goes through `ExplorerApp::run`, after the frame that
//! asked for it is drawn.

use std::path::PathBuf;

use eframe::egui;

use super::messages::Message;
use super::{
    Dataset, ExplorerApp, LoadedModel, Settings, Shared, demo_photos, demo_weights, export, fashion_photos,
    fashion_weights, own_classes_photos,
};

/// What a panel asks the app to do.
#[derive(Debug)]
#[must_use]
pub enum Command {
    /// Scan this folder as an ImageFolder and show it.
    OpenDataset(PathBuf),
    /// Load these weights.
    OpenWeights(PathBuf),
    /// Back to the embedded demo (photos and EfficientNet-Lite0).
    OpenDemo,
    /// The Fashion demo (Fashion-MNIST subset and a small ResNet trained at K_train = 20).
    OpenFashionDemo,
    /// The own-classes demo (the demo photos in a few everyday classes) with the embedded
    /// ImageNet model, and the window that trains a classifier for those classes.
    OpenOwnClassesDemo,
    /// Show the resolution-grid window.
    ShowGrid,
    /// Ask for a folder with the system dialog.
    PickDataset,
    /// Ask for a weights file with the system dialog.
    PickWeights,
    /// Ask where exports go.
    PickExportDir,
    /// Export into this folder from now on.
    SetExportDir(PathBuf),
    /// The settings as the controls left them this frame. The app applies them before the
    /// frame's other commands, so a command that changes one setting (a shortcut's new seed)
    /// is not undone by the controls' copy.
    SetSettings(Box<Settings>),
    /// Show this image (index into the dataset's samples).
    Select(usize),
    /// Next (+1) or previous (−1) image.
    Step(isize),
    /// New train crops (next seed).
    Resample,
    /// The accuracy sweep's first, last and step test resolution.
    SetSweep((usize, usize, usize)),
    /// Write a table to `<export dir>/<name>.csv`.
    ExportCsv {
        /// File stem.
        name: String,
        /// The CSV text.
        csv: String,
    },
    /// Write this part of the window to `<export dir>/<name>.png`.
    ExportPng {
        /// File stem.
        name: String,
        /// Screen rectangle, in points.
        rect: egui::Rect,
    },
    /// Sweep these weights on the open dataset and overlay their accuracy curve on the open
    /// model's, without opening them.
    OverlayCurve(PathBuf),
    /// Show the pooled activations at K_test of these weights (a remedy's) beside the open
    /// model's, named so, each value mapped by `a·x + b` if given (the parametric adaptation's
    /// map, which its export folds into the classifier).
    ShowActivationsAfter {
        path: PathBuf,
        name: String,
        map: Option<[f64; 2]>,
    },
    /// Show the fine-tune window.
    ShowFinetune,
    /// Show the fine-tune window in its transfer mode: a new classifier for the dataset's classes.
    ShowTransfer,
    /// Ask where to save the fine-tuned model (the default file name given).
    PickFinetuneExport(String),
    /// Save the fine-tuned model here.
    ExportFinetuned(PathBuf),
    /// Tell the user something went wrong.
    Error(String),
    /// Tell the user something went right.
    Info(String),
}

impl Command {
    /// The error for a background job whose thread did not start (`what` names the job): the
    /// view waiting on it would otherwise wait in silence.
    pub fn not_started(what: &str, error: &std::io::Error) -> Self {
        Self::Error(format!("cannot start {what}: {error}"))
    }
}

impl ExplorerApp {
    /// Runs one command (what the panels, dialogs and tests send).
    pub fn run(&mut self, command: Command) {
        match command {
            Command::OpenDataset(dir) => {
                let started = self.dataset_job.start("scan", self.wake.clone(), move |r| {
                    let result = Dataset::open(&dir).map_err(|e| format!("{e:#}"));
                    r.send(result);
                });
                if let Err(e) = started {
                    self.run(Command::not_started("scanning the dataset", &e));
                }
            }
            Command::OpenWeights(path) => {
                let started = self.model_job.start("load-model", self.wake.clone(), move |r| {
                    let result = LoadedModel::open(&path).map_err(|e| format!("{e:#}"));
                    r.send(result);
                });
                if let Err(e) = started {
                    self.run(Command::not_started("loading the model", &e));
                }
            }
            Command::OpenDemo => {
                self.run(Command::OpenDataset(demo_photos()));
                self.run(Command::OpenWeights(demo_weights()));
                let d = Settings::default();
                (self.settings.train_res, self.settings.test_res, self.settings.sweep) =
                    (d.train_res, d.test_res, d.sweep);
            }
            Command::OpenFashionDemo => {
                self.run(Command::OpenDataset(fashion_photos()));
                self.run(Command::OpenWeights(fashion_weights()));
                // 28-pixel images, a model trained at 20.
                (self.settings.train_res, self.settings.test_res, self.settings.sweep) = (20, 20, (12, 48, 4));
            }
            Command::OpenOwnClassesDemo => {
                self.run(Command::OpenDataset(own_classes_photos()));
                self.run(Command::OpenWeights(demo_weights()));
                let d = Settings::default();
                (self.settings.train_res, self.settings.test_res, self.settings.sweep) =
                    (d.train_res, d.test_res, d.sweep);
                self.run(Command::ShowTransfer);
            }
            Command::ShowGrid => self.panels.grid.open = true,
            Command::PickDataset => self.dialog(|| rfd::FileDialog::new().pick_folder().map(Command::OpenDataset)),
            Command::PickWeights => self.dialog(|| {
                rfd::FileDialog::new()
                    .add_filter("weights", &["safetensors", "pth", "pt", "bin"])
                    .pick_file()
                    .map(Command::OpenWeights)
            }),
            Command::PickExportDir => self.dialog(|| rfd::FileDialog::new().pick_folder().map(Command::SetExportDir)),
            Command::SetSettings(settings) => self.settings = *settings,
            Command::Select(i) => self.selected = i,
            Command::Step(delta) => {
                if let Some(d) = &self.dataset {
                    let n = d.folder.samples.len() as isize;
                    self.selected = (self.selected as isize + delta).rem_euclid(n.max(1)) as usize;
                }
            }
            Command::Resample => self.settings.seed = self.settings.seed.wrapping_add(1),
            Command::SetSweep(sweep) => self.settings.sweep = sweep,
            Command::ExportCsv { name, csv } => {
                let result = export::write_csv(&self.settings.export_dir, &name, &csv);
                self.run(export::outcome(result));
            }
            Command::ExportPng { name, rect } => {
                export::request_png(
                    &self.ctx,
                    &self.outbox,
                    &self.wake,
                    &self.png_exports,
                    &self.settings.export_dir,
                    &name,
                    rect,
                );
            }
            Command::Error(text) => self.messages.push(Message::error(text)),
            Command::SetExportDir(dir) => self.settings.export_dir = dir,
            Command::OverlayCurve(path) => {
                let jobs = Vec::new();
                let shared = Shared {
                    settings: &self.settings,
                    dataset: self.dataset.as_ref(),
                    model: self.model.as_ref(),
                    selected: self.selected,
                    wake: &self.wake,
                    jobs: &jobs,
                    filter_matches: None,
                };
                if let Some(failed) = self.panels.accuracy.overlay(&shared, path) {
                    self.run(failed);
                }
            }
            Command::ShowActivationsAfter { path, name, map } => {
                self.panels.activations.show_after(path, name, map);
            }
            Command::ShowFinetune => self.panels.finetune.open = true,
            Command::ShowTransfer => {
                self.panels.finetune.open = true;
                self.panels.finetune.transfer = true;
            }
            Command::PickFinetuneExport(name) => {
                let dir = self.settings.export_dir.clone();
                self.dialog(move || {
                    rfd::FileDialog::new()
                        .set_directory(dir)
                        .set_file_name(name)
                        .add_filter("safetensors", &["safetensors"])
                        .save_file()
                        .map(Command::ExportFinetuned)
                });
            }
            Command::ExportFinetuned(path) => {
                if let Some(failed) = self.panels.finetune.export_to(path, &self.wake) {
                    self.run(failed);
                }
            }
            Command::Info(text) => self.messages.push(Message::info(text)),
        }
    }

    /// Runs a file dialog on its own thread (it blocks), sending its answer back as a command.
    fn dialog(&mut self, ask: impl FnOnce() -> Option<Command> + Send + 'static) {
        let (outbox, wake) = (self.outbox.clone(), self.wake.clone());
        let spawned = std::thread::Builder::new().name("fixres-dialog".into()).spawn(move || {
            if let Some(command) = ask() {
                let _ = outbox.send(command); // the app has closed: nothing to open
                wake();
            }
        });
        if let Err(e) = spawned {
            self.run(Command::Error(format!("cannot open the file dialog: {e}")));
        }
    }
}
