//! The desktop app (eframe, wgpu renderer). One panel per file, each implementing `Panel`;
//! panels draw and return `Command`s, which the app runs after drawing, so no panel reaches into
//! another's state. Every slow thing (scanning, decoding, resampling a dataset, running the
//! model) is a job (`crate::jobs`); the UI thread only drains events and draws.
//!
//! Here: the app's state and its frame. `commands` runs what panels ask for, `poll` takes in
//! what arrived between frames, `panel` lays the panels out, `menu` and `messages` are the
//! window's chrome, `window` opens it.

mod accuracy_plot;
mod activation_plot;
mod browser;
mod commands;
mod controls;
mod crops;
mod export;
mod finetune_panel;
mod flip_browser;
mod grid_view;
mod menu;
mod messages;
mod panel;
mod plot_widgets;
mod poll;
mod remedies;
mod session;
mod settings;
mod size_plot;
mod status_bar;
mod window;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use eframe::egui;

pub use self::commands::Command;
use self::messages::Message;
pub use self::session::{
    Dataset, LoadedModel, demo_photos, demo_weights, fashion_photos, fashion_weights, own_classes_photos,
};
pub use self::settings::Settings;
pub use self::window::run;
use crate::jobs::{Latest, Wake};

// Every panel, in drawing order (which is also the order of their commands and status-bar
// jobs); each says where it goes. A new panel is one line here.
panel::panels! {
    menu: menu::Menu,
    status: status_bar::StatusBar,
    browser: browser::Browser,
    controls: controls::Controls,
    crops: crops::CropsView,
    size: size_plot::SizeView,
    activations: activation_plot::ActivationView,
    accuracy: accuracy_plot::AccuracyView,
    finetune: finetune_panel::FinetunePanel,
    grid: grid_view::GridView,
}

/// What the command line asked the GUI to open.
#[derive(Debug, Default, Clone)]
pub struct Startup {
    /// An ImageFolder to open instead of the demo.
    pub data: Option<PathBuf>,
    /// Weights to open instead of the embedded model.
    pub weights: Option<PathBuf>,
    /// Start from default settings, ignoring (and not saving) the stored ones (tests, screenshots).
    pub fresh: bool,
}

/// What the panels read: the open dataset and model and the settings.
pub struct Shared<'a> {
    /// Persisted settings.
    pub settings: &'a Settings,
    /// The open dataset.
    pub dataset: Option<&'a Arc<Dataset>>,
    /// The open model.
    pub model: Option<&'a Arc<LoadedModel>>,
    /// Index of the image shown.
    pub selected: usize,
    /// Wakes the UI when a job reports.
    pub wake: &'a Wake,
    /// The running jobs as the status bar names them, taken before this frame's panels start any.
    pub jobs: &'a [String],
    /// How many images the browser's filter shows, while it filters (the status bar says so).
    pub filter_matches: Option<usize>,
}

/// What the views show, for tests.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewSummary {
    /// Side of the test crop shown, in network pixels.
    pub test_crop_side: Option<usize>,
    /// Side of the train crops shown.
    pub train_crop_side: Option<usize>,
    /// Resolutions with finished pooled-activation statistics, sorted.
    pub activation_resolutions: Vec<usize>,
    /// Activations at the current K_test: images done, images wanted, finished.
    pub activation_progress: Option<(usize, usize, bool)>,
    /// K_test of the apparent-size plot.
    pub size_plot_test_res: Option<usize>,
    /// Index of the image shown.
    pub selected: usize,
}

/// The window's state.
pub struct ExplorerApp {
    settings: Settings,
    persist: bool,
    ctx: egui::Context,
    wake: Wake,
    dataset: Option<Arc<Dataset>>,
    model: Option<Arc<LoadedModel>>,
    dataset_job: Latest<Result<Dataset, String>>,
    model_job: Latest<Result<LoadedModel, String>>,
    selected: usize,
    panels: Panels,
    messages: Vec<Message>,
    /// Commands from other threads (dialogs, screenshots).
    inbox: Receiver<Command>,
    outbox: SyncSender<Command>,
    /// `FIXRES_FRAME_LOG=1`: frame intervals, for measuring the real window (see README).
    frame_log: Option<window::FrameLog>,
    /// PNG exports requested and not written yet.
    png_exports: Arc<std::sync::atomic::AtomicUsize>,
    /// The model was reopened on the CPU after a GPU loss (once: if that fails, it says so once).
    reopened_after_gpu_loss: bool,
    /// Jobs running at the last frame: when one ends, the GPU under the model is asked whether it
    /// is still there (a job that panicked may have met a lost device: Burn panics on some).
    jobs_running: usize,
}

impl ExplorerApp {
    /// The app, opening what `startup` names (the demo by default) in the background.
    #[must_use]
    pub fn new(cc: &eframe::CreationContext<'_>, startup: &Startup) -> Self {
        let settings = match cc.storage {
            Some(storage) if !startup.fresh => eframe::get_value(storage, eframe::APP_KEY).unwrap_or_default(),
            _ => Settings::default(),
        };
        let ctx = cc.egui_ctx.clone();
        let wake: Wake = Arc::new(move || ctx.request_repaint());
        let (outbox, inbox) = sync_channel(16);
        let mut app = Self {
            settings,
            persist: !startup.fresh,
            ctx: cc.egui_ctx.clone(),
            wake,
            dataset: None,
            model: None,
            dataset_job: Latest::default(),
            model_job: Latest::default(),
            selected: 0,
            panels: Panels::default(),
            messages: Vec::new(),
            inbox,
            outbox,
            png_exports: Arc::default(),
            reopened_after_gpu_loss: false,
            jobs_running: 0,
            frame_log: window::FrameLog::from_env(),
        };
        app.run(Command::OpenDataset(startup.data.clone().unwrap_or_else(demo_photos)));
        app.run(Command::OpenWeights(
            startup.weights.clone().unwrap_or_else(demo_weights),
        ));
        app
    }

    /// Names and progress of the running jobs, for the status bar.
    fn running_jobs(&self) -> Vec<String> {
        let mut jobs = Vec::new();
        if self.dataset_job.running().is_some() {
            jobs.push("scanning the dataset".to_owned());
        }
        if self.model_job.running().is_some() {
            jobs.push("loading the model".to_owned());
        }
        jobs.extend(self.panels.all().iter().flat_map(|p| p.jobs()));
        jobs
    }

    /// Whether anything is still working (tests wait for this).
    #[must_use]
    pub fn busy(&self) -> bool {
        let jobs = self.running_jobs();
        let shared = self.shared(&jobs);
        !jobs.is_empty()
            || self.panels.all().iter().any(|p| p.pending(&shared))
            || self.png_exports.load(std::sync::atomic::Ordering::SeqCst) > 0
    }

    fn shared<'a>(&'a self, jobs: &'a [String]) -> Shared<'a> {
        Shared {
            settings: &self.settings,
            dataset: self.dataset.as_ref(),
            model: self.model.as_ref(),
            selected: self.selected,
            wake: &self.wake,
            jobs,
            filter_matches: self.panels.browser.filter_matches(),
        }
    }

    /// The settings (tests read and set them as the sliders do).
    pub fn settings_mut(&mut self) -> &mut Settings {
        &mut self.settings
    }

    /// The texts of the messages shown.
    #[must_use]
    pub fn messages(&self) -> Vec<String> {
        self.messages.iter().map(|m| m.text.clone()).collect()
    }

    /// What the views show now (tests check that they follow the sliders).
    #[must_use]
    pub fn view_summary(&self) -> ViewSummary {
        let p = &self.panels;
        ViewSummary {
            test_crop_side: p.crops.test_crop_side(),
            train_crop_side: p.crops.train_crop_side(),
            activation_resolutions: p.activations.complete_resolutions(),
            activation_progress: p.activations.progress(&self.shared(&[])),
            size_plot_test_res: p.size.test_res(),
            selected: self.selected,
        }
    }

    /// The open dataset and model (tests).
    #[must_use]
    pub fn opened(&self) -> (Option<&Arc<Dataset>>, Option<&Arc<LoadedModel>>) {
        (self.dataset.as_ref(), self.model.as_ref())
    }
}

impl eframe::App for ExplorerApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        if let Some(log) = &mut self.frame_log {
            log.tick(&ctx);
        }
        self.poll(&ctx);
        let mut commands = menu::shortcuts(&ctx);
        let jobs = self.running_jobs();
        let shared = Shared {
            settings: &self.settings,
            dataset: self.dataset.as_ref(),
            model: self.model.as_ref(),
            selected: self.selected,
            wake: &self.wake,
            jobs: &jobs,
            filter_matches: self.panels.browser.filter_matches(),
        };
        commands.extend(panel::layout(ui, &mut self.panels.all_mut(), &shared));
        messages::ui(&ctx, &mut self.messages);
        // The controls' edits land first, after drawing, so one frame draws one consistent state.
        let (edits, rest): (Vec<Command>, Vec<Command>) =
            commands.into_iter().partition(|c| matches!(c, Command::SetSettings(_)));
        for command in edits.into_iter().chain(rest) {
            self.run(command);
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        if self.persist {
            eframe::set_value(storage, eframe::APP_KEY, &self.settings);
        }
    }
}
