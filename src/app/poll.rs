//! What arrived since the last frame: results of the dataset and model loads, commands from
//! other threads (dialogs, PNG exports), a lost GPU, files dropped on the window.

use std::path::PathBuf;
use std::sync::Arc;

use eframe::egui;

use super::messages::Message;
use super::{Command, ExplorerApp, Settings, demo_photos, demo_weights};
use crate::backend::BackendKind;

impl ExplorerApp {
    /// Takes in what the background jobs and other threads sent since the last frame.
    pub(super) fn poll(&mut self, ctx: &egui::Context) {
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
                        self.messages
                            .push(Message::error(format!("{}: {w}", model.path.display())));
                    }
                    // The model's own test recipe is where its accuracy is known to hold.
                    self.settings.crop_ratio = model.model.recipe.crop_ratio;
                    self.settings.crop_mode = model.model.recipe.crop_mode;
                    self.settings.interpolation = model.model.recipe.interpolation;
                    self.model = Some(Arc::new(model));
                }
                Err(e) => self.run(Command::Error(format!("cannot open the weights: {e}"))),
            }
        }
        while let Ok(command) = self.inbox.try_recv() {
            self.run(command);
        }
        // A job ended: if it panicked on a lost GPU, nobody else will have asked the device.
        let running = self.running_jobs().len();
        if running < self.jobs_running
            && let Some(model) = &self.model
            && model.backend.kind == BackendKind::Wgpu
        {
            model.backend.probe_lost();
        }
        self.jobs_running = running;
        // The GPU under the model was lost (its jobs failed with a message): reopen it on the CPU.
        if let Some(model) = &self.model
            && model.backend.kind == BackendKind::Wgpu
            && !self.reopened_after_gpu_loss
            && model.backend.gpu_lost()
        {
            self.reopened_after_gpu_loss = true;
            let path = model.path.clone();
            self.messages.push(Message::error(format!(
                "The GPU was lost: {} is reopened on the CPU.",
                path.display()
            )));
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
}
