//! The desktop app. Until the explorer views land, a small window that says what the tool is
//! and shows the paper's apparent-size figures live for the chosen resolutions.

use std::path::PathBuf;
use std::process::ExitCode;

use eframe::egui;

use crate::data::RandomResizedCrop;
use crate::size::{SizeSetup, analytic};

/// What the command line asked the GUI to open.
#[derive(Debug, Default, Clone)]
pub struct Startup {
    /// An ImageFolder to open instead of the demo.
    pub data: Option<PathBuf>,
    /// Weights to open instead of the embedded model.
    pub weights: Option<PathBuf>,
}

/// The window's state.
pub struct ExplorerApp {
    startup: Startup,
    train_res: usize,
    test_res: usize,
}

impl ExplorerApp {
    /// A fresh window at the paper's 224/224 setting.
    #[must_use]
    pub fn new(startup: Startup) -> Self {
        Self {
            startup,
            train_res: 224,
            test_res: 224,
        }
    }
}

impl eframe::App for ExplorerApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        egui::CentralPanel::default().show(ui, |ui| {
            ui.heading("FixRes Explorer");
            ui.label(
                "Train-time RandomResizedCrop zooms objects in; test-time Resize + CenterCrop does not, \
                 so objects look smaller at test time. This tool measures that discrepancy and repairs it \
                 (Touvron et al., NeurIPS 2019).",
            );
            ui.separator();
            ui.add(egui::Slider::new(&mut self.train_res, 32..=640).text("train resolution K_train"));
            ui.add(egui::Slider::new(&mut self.test_res, 32..=640).text("test resolution K_test"));
            let setup = SizeSetup {
                train_res: self.train_res,
                test_res: self.test_res,
                crop_ratio: 0.875,
                crop: RandomResizedCrop::default(),
            };
            let a = analytic(&setup);
            ui.label(format!(
                "E[r_test / r_train] = {:.3}   (E[sqrt(sigma)] = {:.3}, test resize {})",
                a.mean_ratio, a.mean_sqrt_sigma, a.test_resize
            ));
            ui.label(format!("Test resolution that matches apparent sizes: {}", a.recommended_test_res));
            ui.separator();
            if let Some(d) = &self.startup.data {
                ui.label(format!("Dataset requested: {}", d.display()));
            }
            if let Some(w) = &self.startup.weights {
                ui.label(format!("Weights requested: {}", w.display()));
            }
            ui.weak("The crop, activation and accuracy views arrive with the explorer GUI; the CLI (fixres --help) works today.");
        });
    }
}

/// Opens the window; returns when it closes. Fails with a message, never a panic, when no
/// window can be opened (no display, no graphics adapter).
pub fn run(startup: Startup) -> anyhow::Result<ExitCode> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([900.0, 560.0])
            .with_title("FixRes Explorer"),
        ..Default::default()
    };
    eframe::run_native("FixRes Explorer", options, Box::new(|_cc| Ok(Box::new(ExplorerApp::new(startup)))))
        .map_err(|e| anyhow::anyhow!("cannot open the window: {e} (a display and a Vulkan, Metal or DX12 adapter are needed; on Linux without a GPU install Mesa's lavapipe: apt-get install mesa-vulkan-drivers)"))?;
    Ok(ExitCode::SUCCESS)
}
