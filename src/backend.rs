//! Which device Burn runs on (DESIGN §1): a hardware GPU through wgpu when there is one; Burn's
//! `flex` CPU backend otherwise, since wgpu on a software adapter (lavapipe) was measured 30–180×
//! slower than `flex` here. `--device` overrides; the choice is always reported.

use burn::tensor::{Device, DeviceKind};
use serde::Serialize;

/// What the user asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// A hardware GPU if there is one, else the CPU.
    #[default]
    Auto,
    /// Burn's CPU backend.
    Cpu,
    /// wgpu, on a hardware GPU, or on a software adapter if that is all there is.
    Gpu,
}

/// The device chosen, and how to name it.
#[derive(Clone, Debug)]
pub struct Backend {
    /// The Burn device.
    pub device: Device,
    /// "wgpu" or "flex".
    pub kind: &'static str,
    /// The adapter's name, or the CPU backend's.
    pub adapter: String,
}

impl Serialize for Backend {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serde_json::json!({"backend": self.kind, "adapter": self.adapter}).serialize(s)
    }
}

/// The wgpu adapters on this machine: `(name, type)`. Enumerated once per process (it loads the
/// Vulkan drivers, which takes a while and may print to stderr).
#[must_use]
pub fn adapters() -> Vec<(String, wgpu::DeviceType)> {
    static FOUND: std::sync::OnceLock<Vec<(String, wgpu::DeviceType)>> = std::sync::OnceLock::new();
    FOUND
        .get_or_init(|| {
            // Vulkan/Metal/DX12 only, as `gpu::Gpu::new`: Burn does not run on OpenGL, and probing
            // EGL here would fight the window's OpenGL context when the app draws with glow.
            let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
                backends: wgpu::Backends::PRIMARY,
                ..wgpu::InstanceDescriptor::new_without_display_handle_from_env()
            });
            pollster::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY))
                .into_iter()
                .map(|a| {
                    let info = a.get_info();
                    (format!("{} ({:?})", info.name, info.backend), info.device_type)
                })
                .collect()
        })
        .clone()
}

fn cpu() -> Backend {
    Backend {
        device: Device::flex(),
        kind: "flex",
        adapter: "CPU (Burn flex backend)".into(),
    }
}

/// Picks the device for `choice`.
pub fn choose(choice: DeviceChoice) -> anyhow::Result<Backend> {
    if choice == DeviceChoice::Cpu {
        return Ok(cpu());
    }
    if crate::gpu::burn_gpu_lost() {
        anyhow::ensure!(
            choice == DeviceChoice::Auto,
            "--device gpu: the GPU was lost earlier in this run"
        );
        return Ok(Backend {
            adapter: "CPU (Burn flex backend; the GPU was lost)".into(),
            ..cpu()
        });
    }
    let found = adapters();
    let pick = |ty: wgpu::DeviceType| found.iter().find(|(_, t)| *t == ty).map(|(n, _)| n.clone());
    for (ty, kind) in [
        (wgpu::DeviceType::DiscreteGpu, DeviceKind::DiscreteGpu(0)),
        (wgpu::DeviceType::IntegratedGpu, DeviceKind::IntegratedGpu(0)),
        (wgpu::DeviceType::VirtualGpu, DeviceKind::VirtualGpu(0)),
    ] {
        if let Some(name) = pick(ty) {
            return Ok(on_wgpu(kind, name, true));
        }
    }
    match (choice, pick(wgpu::DeviceType::Cpu)) {
        (DeviceChoice::Gpu, Some(name)) => Ok(on_wgpu(DeviceKind::Cpu, format!("{name}, software"), false)),
        (DeviceChoice::Gpu, None) => anyhow::bail!(
            "--device gpu: no wgpu adapter found (install a GPU driver, or Mesa's lavapipe: apt-get install mesa-vulkan-drivers)"
        ),
        _ => Ok(cpu()),
    }
}

/// Burn on the wgpu device `kind`, brought up from a setup the GPU preprocessing shares
/// (`gpu::share_with_burn`), so sweeps resample into Burn's buffers on the same device. When
/// sharing fails, Burn brings the device up by itself and the sweeps read their crops back.
fn on_wgpu(kind: DeviceKind, adapter: String, hardware: bool) -> Backend {
    let device = Device::wgpu(kind);
    match crate::gpu::share_with_burn(&device) {
        Ok(gpu) => crate::gpu::register_burn_gpu(gpu, hardware),
        Err(e) => eprintln!("warning: the GPU preprocessing does not share Burn's device ({e}); it reads crops back"),
    }
    Backend {
        device,
        kind: "wgpu",
        adapter,
    }
}
