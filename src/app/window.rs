//! Opening the window: the renderer it draws with, and a log of its frame times for measuring
//! it (README).

use std::process::ExitCode;

use eframe::egui;

use super::{ExplorerApp, Startup};

/// Times between frames; the app repaints continuously while it logs.
pub(super) struct FrameLog {
    last: std::time::Instant,
    intervals: Vec<f64>,
}

impl FrameLog {
    /// A log when `FIXRES_FRAME_LOG=1` asks for one.
    pub(super) fn from_env() -> Option<Self> {
        std::env::var("FIXRES_FRAME_LOG").is_ok_and(|v| v == "1").then(|| Self {
            last: std::time::Instant::now(),
            intervals: Vec::new(),
        })
    }

    /// Counts a frame; every 100 frames, prints their median and 90th percentile.
    pub(super) fn tick(&mut self, ctx: &egui::Context) {
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
