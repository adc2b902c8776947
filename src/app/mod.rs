//! The desktop app (eframe, wgpu renderer). One panel per file; panels draw and return
//! `Command`s, which the app runs after drawing, so no panel reaches into another's state. Every
//! slow thing (scanning, decoding, resampling a dataset, running the model) is a job
//! (`crate::jobs`); the UI thread only drains events and draws.

mod accuracy_plot;
mod activation_plot;
mod browser;
mod controls;
mod crops;
mod export;
mod finetune_panel;
mod grid_view;
mod session;
mod settings;
mod size_plot;
mod status_bar;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use eframe::egui;

pub use self::session::{Dataset, LoadedModel, demo_photos, demo_weights, fashion_photos, fashion_weights};
pub use self::settings::Settings;
use crate::jobs::{Latest, Wake};

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
    /// Show the fine-tune window.
    ShowFinetune,
    /// Ask where to save the fine-tuned model (the default file name given).
    PickFinetuneExport(String),
    /// Save the fine-tuned model here.
    ExportFinetuned(PathBuf),
    /// Tell the user something went wrong.
    Error(String),
    /// Tell the user something went right.
    Info(String),
}

/// A dismissable line at the top of the window.
struct Message {
    text: String,
    error: bool,
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
    browser: browser::Browser,
    crops: crops::CropsView,
    size: size_plot::SizeView,
    activations: activation_plot::ActivationView,
    accuracy: accuracy_plot::AccuracyView,
    finetune: finetune_panel::FinetunePanel,
    grid: grid_view::GridView,
    status: status_bar::StatusBar,
    messages: Vec<Message>,
    /// Commands from other threads (dialogs, screenshots).
    inbox: Receiver<Command>,
    outbox: SyncSender<Command>,
    /// `FIXRES_FRAME_LOG=1`: frame intervals, for measuring the real window (see README).
    frame_log: Option<FrameLog>,
    /// PNG exports requested and not written yet.
    png_exports: Arc<std::sync::atomic::AtomicUsize>,
    /// The model was reopened on the CPU after a GPU loss (once: if that fails, it says so once).
    reopened_after_gpu_loss: bool,
}

/// Times between frames; the app repaints continuously while it logs.
struct FrameLog {
    last: std::time::Instant,
    intervals: Vec<f64>,
}

impl FrameLog {
    fn tick(&mut self, ctx: &egui::Context) {
        let now = std::time::Instant::now();
        self.intervals.push((now - self.last).as_secs_f64() * 1000.0);
        self.last = now;
        if self.intervals.len() == 100 {
            self.intervals.sort_by(f64::total_cmp);
            eprintln!(
                "frames: median {:.1} ms, p90 {:.1} ms over 100 frames",
                self.intervals[50], self.intervals[90]
            );
            self.intervals.clear();
        }
        ctx.request_repaint();
    }
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
            browser: browser::Browser::default(),
            crops: crops::CropsView::default(),
            size: size_plot::SizeView::default(),
            activations: activation_plot::ActivationView::default(),
            accuracy: accuracy_plot::AccuracyView::default(),
            finetune: finetune_panel::FinetunePanel::default(),
            grid: grid_view::GridView::default(),
            status: status_bar::StatusBar::default(),
            messages: Vec::new(),
            inbox,
            outbox,
            png_exports: Arc::default(),
            reopened_after_gpu_loss: false,
            frame_log: std::env::var("FIXRES_FRAME_LOG")
                .is_ok_and(|v| v == "1")
                .then(|| FrameLog {
                    last: std::time::Instant::now(),
                    intervals: Vec::new(),
                }),
        };
        app.run(Command::OpenDataset(startup.data.clone().unwrap_or_else(demo_photos)));
        app.run(Command::OpenWeights(
            startup.weights.clone().unwrap_or_else(demo_weights),
        ));
        app
    }

    /// Runs one command (what the panels, dialogs and tests send).
    pub fn run(&mut self, command: Command) {
        match command {
            Command::OpenDataset(dir) => {
                let started = self.dataset_job.start("scan", self.wake.clone(), move |r| {
                    let result = Dataset::open(&dir).map_err(|e| format!("{e:#}"));
                    r.send(result);
                });
                self.report_spawn(started);
            }
            Command::OpenWeights(path) => {
                let started = self.model_job.start("load-model", self.wake.clone(), move |r| {
                    let result = LoadedModel::open(&path).map_err(|e| format!("{e:#}"));
                    r.send(result);
                });
                self.report_spawn(started);
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
            Command::ShowGrid => self.grid.open = true,
            Command::PickDataset => self.dialog(|| rfd::FileDialog::new().pick_folder().map(Command::OpenDataset)),
            Command::PickWeights => self.dialog(|| {
                rfd::FileDialog::new()
                    .add_filter("weights", &["safetensors", "pth", "pt", "bin"])
                    .pick_file()
                    .map(Command::OpenWeights)
            }),
            Command::PickExportDir => self.dialog(|| rfd::FileDialog::new().pick_folder().map(Command::SetExportDir)),
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
            Command::Error(text) => self.messages.push(Message { text, error: true }),
            Command::SetExportDir(dir) => self.settings.export_dir = dir,
            Command::ShowFinetune => self.finetune.open = true,
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
                let shared = Shared {
                    settings: &self.settings,
                    dataset: self.dataset.as_ref(),
                    model: self.model.as_ref(),
                    selected: self.selected,
                    wake: &self.wake,
                };
                self.finetune.export_to(path, &shared);
            }
            Command::Info(text) => self.messages.push(Message { text, error: false }),
        }
    }

    fn report_spawn(&mut self, started: std::io::Result<u64>) {
        if let Err(e) = started {
            self.run(Command::Error(format!("cannot start a background job: {e}")));
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

    /// Takes in what the background jobs and other threads sent since the last frame.
    fn poll(&mut self, ctx: &egui::Context) {
        for result in self.dataset_job.drain() {
            match result {
                Ok(dataset) => {
                    if dataset.opened != demo_photos() {
                        Settings::remember(&mut self.settings.recent_data, &dataset.opened);
                    }
                    self.selected = 0;
                    self.dataset = Some(Arc::new(dataset));
                }
                Err(e) => self.run(Command::Error(format!("cannot open the dataset: {e}"))),
            }
        }
        for result in self.model_job.drain() {
            match result {
                Ok(model) => {
                    if model.path != demo_weights() {
                        Settings::remember(&mut self.settings.recent_weights, &model.path);
                    }
                    for w in &model.model.warnings {
                        self.messages.push(Message {
                            text: format!("{}: {w}", model.path.display()),
                            error: true,
                        });
                    }
                    // The model's own test recipe is where its accuracy is known to hold.
                    self.settings.crop_ratio = model.model.recipe.crop_ratio;
                    self.settings.interpolation = model.model.recipe.interpolation;
                    self.model = Some(Arc::new(model));
                }
                Err(e) => self.run(Command::Error(format!("cannot open the weights: {e}"))),
            }
        }
        while let Ok(command) = self.inbox.try_recv() {
            self.run(command);
        }
        // The GPU under the model was lost (its jobs failed with a message): reopen it on the CPU.
        if let Some(model) = &self.model
            && model.backend.kind == "wgpu"
            && !self.reopened_after_gpu_loss
            && crate::gpu::burn_gpu_lost()
        {
            self.reopened_after_gpu_loss = true;
            let path = model.path.clone();
            self.messages.push(Message {
                text: format!("The GPU was lost: {} is reopened on the CPU.", path.display()),
                error: true,
            });
            self.run(Command::OpenWeights(path));
        }
        let dropped: Vec<PathBuf> = ctx.input(|i| i.raw.dropped_files.iter().map(|f| f.path().to_owned()).collect());
        for path in dropped {
            let command = if path.is_dir() {
                Command::OpenDataset(path)
            } else if path.extension().is_some_and(|e| {
                ["safetensors", "pth", "pt", "bin"].contains(&e.to_string_lossy().to_lowercase().as_str())
            }) {
                Command::OpenWeights(path)
            } else {
                Command::Error(format!(
                    "{}: drop an ImageFolder (a folder of class folders) or a weights file (.safetensors, .pth)",
                    path.display()
                ))
            };
            self.run(command);
        }
    }

    /// Keyboard shortcuts, when no text field or slider has the keyboard.
    fn shortcuts(&self, ctx: &egui::Context) -> Vec<Command> {
        if ctx.memory(|m| m.focused().is_some()) {
            return Vec::new();
        }
        ctx.input(|i| {
            let mut out = Vec::new();
            if i.key_pressed(egui::Key::R) {
                out.push(Command::Resample);
            }
            if i.key_pressed(egui::Key::N) || i.key_pressed(egui::Key::ArrowDown) {
                out.push(Command::Step(1));
            }
            if i.key_pressed(egui::Key::P) || i.key_pressed(egui::Key::ArrowUp) {
                out.push(Command::Step(-1));
            }
            out
        })
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
        jobs.extend(self.browser.jobs());
        jobs.extend(self.crops.jobs());
        jobs.extend(self.activations.jobs());
        jobs.extend(self.accuracy.jobs());
        jobs.extend(self.finetune.jobs());
        jobs
    }

    /// Whether anything is still working (tests wait for this).
    #[must_use]
    pub fn busy(&self) -> bool {
        !self.running_jobs().is_empty()
            || self.crops.pending()
            || self.activations.pending(&self.shared())
            || self.png_exports.load(std::sync::atomic::Ordering::SeqCst) > 0
    }

    fn shared(&self) -> Shared<'_> {
        Shared {
            settings: &self.settings,
            dataset: self.dataset.as_ref(),
            model: self.model.as_ref(),
            selected: self.selected,
            wake: &self.wake,
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
        ViewSummary {
            test_crop_side: self.crops.test_crop_side(),
            train_crop_side: self.crops.train_crop_side(),
            activation_resolutions: self.activations.complete_resolutions(),
            activation_progress: self.activations.progress(&self.shared()),
            size_plot_test_res: self.size.test_res(),
            selected: self.selected,
        }
    }

    /// The open dataset and model (tests).
    #[must_use]
    pub fn opened(&self) -> (Option<&Arc<Dataset>>, Option<&Arc<LoadedModel>>) {
        (self.dataset.as_ref(), self.model.as_ref())
    }

    fn menu(&mut self, ui: &mut egui::Ui) -> Vec<Command> {
        let mut out = Vec::new();
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui.button("Open dataset folder…").clicked() {
                    out.push(Command::PickDataset);
                }
                if ui.button("Open weights…").clicked() {
                    out.push(Command::PickWeights);
                }
                if ui.button("Demo: ImageNet photos").clicked() {
                    out.push(Command::OpenDemo);
                }
                if ui.button("Demo: Fashion").clicked() {
                    out.push(Command::OpenFashionDemo);
                }
                ui.separator();
                ui.menu_button("Recent datasets", |ui| {
                    for p in &self.settings.recent_data {
                        if ui.button(p.display().to_string()).clicked() {
                            out.push(Command::OpenDataset(p.clone()));
                        }
                    }
                });
                ui.menu_button("Recent weights", |ui| {
                    for p in &self.settings.recent_weights {
                        if ui.button(p.display().to_string()).clicked() {
                            out.push(Command::OpenWeights(p.clone()));
                        }
                    }
                });
                ui.separator();
                if ui
                    .button(format!("Export folder: {}…", self.settings.export_dir.display()))
                    .clicked()
                {
                    out.push(Command::PickExportDir);
                }
            });
            if ui
                .button("Fine-tune…")
                .on_hover_text("FixRes fine-tune at K_test")
                .clicked()
            {
                out.push(Command::ShowFinetune);
            }
            if ui
                .button("Grid…")
                .on_hover_text("The train x test resolution table fixres grid made for this dataset")
                .clicked()
            {
                out.push(Command::ShowGrid);
            }
            ui.menu_button("Help", |ui| {
                ui.label("Drop a folder (ImageFolder) or a weights file on the window to open it.");
                ui.label("R: new train crops   N or Down: next image   P or Up: previous image");
                ui.label("Drag on the image to measure an object's apparent size.");
            });
        });
        out
    }
}

/// The dismissable messages, floating over the top of the window (so they never move the views).
fn messages_ui(ctx: &egui::Context, messages: &mut Vec<Message>) {
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
                        ui.colored_label(color, &m.text);
                    });
                }
            });
        });
    if let Some(i) = dismissed {
        messages.remove(i);
    }
}

impl eframe::App for ExplorerApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        if let Some(log) = &mut self.frame_log {
            log.tick(&ctx);
        }
        self.poll(&ctx);
        let mut commands = self.shortcuts(&ctx);
        egui::Panel::top("menu").show(ui, |ui| commands.extend(self.menu(ui)));
        let jobs = self.running_jobs();
        let mut settings = self.settings.clone();
        let Self {
            settings: current,
            dataset,
            model,
            selected,
            wake,
            browser,
            crops,
            size,
            activations,
            accuracy,
            finetune,
            grid,
            status,
            messages,
            ..
        } = self;
        let shared = Shared {
            settings: current,
            dataset: dataset.as_ref(),
            model: model.as_ref(),
            selected: *selected,
            wake,
        };
        egui::Panel::bottom("status").show(ui, |ui| {
            commands.extend(status.ui(ui, &shared, &jobs));
        });
        egui::Panel::left("browser")
            // A fixed width: long file names are cut (their full path is on hover).
            .resizable(false)
            .exact_size(240.0)
            .show(ui, |ui| {
                commands.extend(browser.ui(ui, &shared));
            });
        egui::Panel::right("controls")
            .resizable(false)
            .exact_size(290.0)
            .show(ui, |ui| {
                commands.extend(controls::ui(ui, &mut settings));
            });
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                commands.extend(crops.ui(ui, &shared));
                ui.separator();
                ui.columns(3, |columns| {
                    commands.extend(size.ui(&mut columns[0], &shared));
                    commands.extend(activations.ui(&mut columns[1], &shared));
                    commands.extend(accuracy.ui(&mut columns[2], &shared));
                });
            });
        });
        commands.extend(finetune.ui(&ctx, &shared));
        grid.ui(&ctx, &shared);
        messages_ui(&ctx, messages);
        // Slider changes land after drawing, so one frame draws one consistent state.
        self.settings = settings;
        for command in commands {
            self.run(command);
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        if self.persist {
            eframe::set_value(storage, eframe::APP_KEY, &self.settings);
        }
    }
}

/// The renderer: wgpu on a hardware GPU; OpenGL when the only adapters are software ones and
/// OpenGL is installed (Mesa's llvmpipe draws the window about 4x faster through OpenGL than
/// lavapipe through Vulkan, measured in README). `FIXRES_RENDERER=wgpu|glow` overrides.
fn renderer() -> eframe::Renderer {
    match std::env::var("FIXRES_RENDERER").as_deref() {
        Ok("glow") => return eframe::Renderer::Glow,
        Ok("wgpu") => return eframe::Renderer::Wgpu,
        _ => {}
    }
    let hardware = crate::backend::adapters().iter().any(|(_, t)| {
        matches!(
            t,
            wgpu::DeviceType::DiscreteGpu | wgpu::DeviceType::IntegratedGpu | wgpu::DeviceType::VirtualGpu
        )
    });
    if hardware || !opengl_installed() {
        eframe::Renderer::Wgpu
    } else {
        eframe::Renderer::Glow
    }
}

/// Whether an OpenGL driver library is installed (Linux: Mesa's libEGL or libGL), so a glow
/// window can open; elsewhere wgpu's native backends are used.
fn opengl_installed() -> bool {
    if !cfg!(target_os = "linux") {
        return false;
    }
    let dirs = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
        "/lib/x86_64-linux-gnu",
    ];
    dirs.iter().any(|d| {
        ["libEGL.so.1", "libGL.so.1"]
            .iter()
            .any(|l| std::path::Path::new(d).join(l).exists())
    })
}

/// Opens the window; returns when it closes. Fails with a message, never a panic, when no
/// window can be opened (no display, no graphics adapter).
pub fn run(startup: Startup) -> anyhow::Result<ExitCode> {
    crate::jobs::background_thread_pool();
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([1440.0, 900.0])
            .with_title("FixRes Explorer")
            .with_drag_and_drop(true),
        renderer: renderer(),
        ..Default::default()
    };
    eframe::run_native(
        "FixRes Explorer",
        options,
        Box::new(move |cc| Ok(Box::new(ExplorerApp::new(cc, &startup)))),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e} (a display and an OpenGL driver or a Vulkan, Metal or DX12 adapter are needed; on Linux without a GPU install Mesa: apt-get install libgl1-mesa-dri libegl1 mesa-vulkan-drivers)"))?;
    Ok(ExitCode::SUCCESS)
}
