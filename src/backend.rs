//! Which device Burn runs on (ARCHITECTURE.md, "Devices"): a hardware GPU through wgpu when
//! there is one; Burn's `flex` CPU backend otherwise, since wgpu on a software adapter (lavapipe)
//! was measured 30–180× slower than `flex` here. `--device` overrides; the choice is always
//! reported. A `Backend` owns everything a job needs to know about its device: the Burn device,
//! its kind, the adapter's name, and the GPU that makes the sweeps' inputs (`inputs`).

use std::sync::{Arc, OnceLock};

use burn::tensor::{Device, DeviceKind};
use serde::Serialize;

use crate::gpu::Gpu;
use crate::inputs::Inputs;

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

/// Which of Burn's backends runs the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// wgpu (a GPU, or a software adapter).
    Wgpu,
    /// Burn's `flex` CPU backend.
    Flex,
}

impl BackendKind {
    /// Burn's name for it: "wgpu" or "flex".
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Wgpu => "wgpu",
            Self::Flex => "flex",
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a sweep's inputs are resampled, as asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preprocess {
    /// On the GPU Burn runs on when it is a hardware one, else on the CPU (the fastest here).
    Auto,
    /// On a GPU whenever there is one: Burn's own wgpu device even on a software adapter, or, with
    /// Burn on the CPU, a device of its own (tests and benchmarks: on lavapipe the GPU path is
    /// slower than the CPU's). `FIXRES_GPU_PREPROCESS=1` asks for it.
    OnGpu,
}

impl Preprocess {
    /// `OnGpu` when `FIXRES_GPU_PREPROCESS=1`, else `Auto`.
    #[must_use]
    pub fn from_env() -> Self {
        if std::env::var("FIXRES_GPU_PREPROCESS").is_ok_and(|v| v == "1") {
            Self::OnGpu
        } else {
            Self::Auto
        }
    }
}

/// The device chosen, how to name it, and the GPU its sweeps resample on.
#[derive(Clone)]
pub struct Backend {
    /// The Burn device.
    pub device: Device,
    /// Which backend.
    pub kind: BackendKind,
    /// The adapter's name, or the CPU backend's.
    pub adapter: String,
    /// The GPU Burn's wgpu device shares with the resampler (`gpu::share_with_burn`), if any.
    shared: Option<Arc<Gpu>>,
    /// Whether `shared` is a hardware GPU.
    hardware: bool,
    preprocess: Preprocess,
    /// A resampling device of its own (`Preprocess::OnGpu` with Burn elsewhere), brought up on
    /// first use; `None` inside when no adapter gave one. Shared by clones of this `Backend`.
    own: Arc<OnceLock<Option<Arc<Gpu>>>>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("kind", &self.kind)
            .field("adapter", &self.adapter)
            .field("preprocess", &self.preprocess)
            .finish_non_exhaustive()
    }
}

impl Serialize for Backend {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Named<'a> {
            backend: BackendKind,
            adapter: &'a str,
        }
        Named {
            backend: self.kind,
            adapter: &self.adapter,
        }
        .serialize(s)
    }
}

/// The wgpu adapters on this machine: `(name, type)`. Enumerated once per process (it loads the
/// Vulkan drivers, which takes a while and may print to stderr); the machine's adapters do not
/// change while it runs.
#[must_use]
pub fn adapters() -> Vec<(String, wgpu::DeviceType)> {
    static FOUND: OnceLock<Vec<(String, wgpu::DeviceType)>> = OnceLock::new();
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

/// Picks the device for `choice`, resampling as `FIXRES_GPU_PREPROCESS` asks.
pub fn choose(choice: DeviceChoice) -> anyhow::Result<Backend> {
    choose_with(choice, Preprocess::from_env())
}

/// Picks the device for `choice`, resampling as `preprocess` asks.
pub fn choose_with(choice: DeviceChoice, preprocess: Preprocess) -> anyhow::Result<Backend> {
    let cpu = |adapter: &str| Backend {
        device: Device::flex(),
        kind: BackendKind::Flex,
        adapter: adapter.into(),
        shared: None,
        hardware: false,
        preprocess,
        own: Arc::default(),
    };
    if choice == DeviceChoice::Cpu {
        return Ok(cpu("CPU (Burn flex backend)"));
    }
    // A device lost earlier in this process stays lost (cubecl cannot bring it up again).
    if crate::gpu::burn_device_lost_in_this_process() {
        anyhow::ensure!(
            choice == DeviceChoice::Auto,
            "--device gpu: the GPU was lost earlier in this run"
        );
        return Ok(cpu("CPU (Burn flex backend; the GPU was lost)"));
    }
    let found = adapters();
    let pick = |ty: wgpu::DeviceType| found.iter().find(|(_, t)| *t == ty).map(|(n, _)| n.clone());
    let hardware = [
        (wgpu::DeviceType::DiscreteGpu, DeviceKind::DiscreteGpu(0)),
        (wgpu::DeviceType::IntegratedGpu, DeviceKind::IntegratedGpu(0)),
        (wgpu::DeviceType::VirtualGpu, DeviceKind::VirtualGpu(0)),
    ]
    .into_iter()
    .find_map(|(ty, kind)| pick(ty).map(|name| (kind, name)));
    let (kind, adapter, is_hardware) = match (hardware, choice, pick(wgpu::DeviceType::Cpu)) {
        (Some((kind, name)), _, _) => (kind, name, true),
        (None, DeviceChoice::Gpu, Some(name)) => (DeviceKind::Cpu, format!("{name}, software"), false),
        (None, DeviceChoice::Gpu, None) => anyhow::bail!(
            "--device gpu: no wgpu adapter found (install a GPU driver, or Mesa's lavapipe: apt-get install mesa-vulkan-drivers)"
        ),
        _ => return Ok(cpu("CPU (Burn flex backend)")),
    };
    Ok(on_wgpu(kind, adapter, is_hardware, preprocess))
}

/// Burn on the wgpu device `kind`, brought up from a setup the GPU preprocessing shares
/// (`gpu::share_with_burn`), so sweeps resample into Burn's buffers on the same device. When
/// sharing fails, Burn brings the device up by itself and the sweeps read their crops back.
fn on_wgpu(kind: DeviceKind, adapter: String, hardware: bool, preprocess: Preprocess) -> Backend {
    let device = Device::wgpu(kind);
    let shared = crate::gpu::share_with_burn(&device)
        .inspect_err(|e| {
            eprintln!("warning: the GPU preprocessing does not share Burn's device ({e}); it reads crops back");
        })
        .ok();
    Backend {
        device,
        kind: BackendKind::Wgpu,
        adapter,
        shared,
        hardware,
        preprocess,
        own: Arc::default(),
    }
}

impl Backend {
    /// How a sweep on this backend makes its inputs: resampled on the GPU Burn runs on and
    /// written into its tensors (a hardware GPU, or any when `Preprocess::OnGpu`), resampled on a
    /// GPU of its own and read back (`OnGpu` with Burn elsewhere; brought up now if need be), or
    /// on the CPU. A lost GPU is never handed out.
    #[must_use]
    pub fn inputs(&self) -> Inputs {
        self.inputs_from(self.own_gpu(true))
    }

    /// `inputs`, without bringing a device up (for the UI thread: that takes a while).
    #[must_use]
    pub fn inputs_if_up(&self) -> Inputs {
        self.inputs_from(self.own_gpu(false))
    }

    fn inputs_from(&self, own: Option<Arc<Gpu>>) -> Inputs {
        let asked = self.preprocess == Preprocess::OnGpu;
        let inputs = match &self.shared {
            Some(gpu) if self.hardware || asked => Inputs::IntoBurn(gpu.clone()),
            _ => match own {
                Some(gpu) if asked => Inputs::GpuCrops(gpu),
                _ => Inputs::Cpu,
            },
        };
        match inputs.gpu() {
            Some(gpu) if gpu.is_lost() => Inputs::Cpu,
            _ => inputs,
        }
    }

    /// The GPU path whatever the policy says (benchmarks compare it with the CPU's): into Burn's
    /// tensors on the device Burn shares, else crops from a device of its own.
    pub fn gpu_inputs(&self) -> Result<Inputs, crate::gpu::GpuError> {
        match &self.shared {
            Some(gpu) => Ok(Inputs::IntoBurn(gpu.clone())),
            None => Ok(Inputs::GpuCrops(Arc::new(Gpu::new()?))),
        }
    }

    fn own_gpu(&self, bring_up: bool) -> Option<Arc<Gpu>> {
        if self.preprocess != Preprocess::OnGpu || self.shared.is_some() {
            return None;
        }
        let up = || match Gpu::new() {
            Ok(g) => Some(Arc::new(g)),
            Err(e) => {
                eprintln!("warning: GPU preprocessing unavailable, resampling on the CPU: {e}");
                None
            }
        };
        if bring_up {
            self.own.get_or_init(up).clone()
        } else {
            self.own.get().cloned().flatten()
        }
    }

    /// Whether the GPU Burn runs on was lost (as far as anyone has found out): the model must be
    /// reloaded on the CPU.
    #[must_use]
    pub fn gpu_lost(&self) -> bool {
        self.shared.as_ref().is_some_and(|g| g.is_lost())
    }

    /// After a failure of work on this backend (a read, a fine-tune, a job that ended early):
    /// whether Burn runs on a shared GPU that is lost, checked now (and marked, so `gpu_lost`
    /// and `choose` see it).
    pub fn probe_lost(&self) -> bool {
        self.shared.as_ref().is_some_and(|g| g.probe_lost())
    }
}

/// Mesa's implicit Vulkan layer `VK_LAYER_MESA_device_select` asks Wayland for the session's GPU
/// whenever Vulkan lists devices; without `XDG_RUNTIME_DIR` (a server, CI, a container) that can
/// only fail, and libwayland prints "error: XDG_RUNTIME_DIR is invalid or not set" on every run.
/// There the layer has nothing to select by, so it is switched off the way Mesa documents
/// (`NODEVICE_SELECT=1`); a user's own setting is left alone.
///
/// # Safety
/// Sets an environment variable: call it before any other thread exists (first thing in a
/// `main`).
pub unsafe fn quiet_vulkan_device_select() {
    let unset = |key| std::env::var_os(key).is_none_or(|v| v.is_empty());
    if unset("XDG_RUNTIME_DIR") && unset("WAYLAND_DISPLAY") && std::env::var_os("NODEVICE_SELECT").is_none() {
        // SAFETY: the caller runs this before any other thread exists.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}

/// Keeps freed memory in the process for the next forward pass. Burn's CPU backend allocates a
/// fresh buffer for every layer's output (tens of MB at batch 8); with glibc's defaults those
/// come and go between the arenas of rayon's threads and the kernel, and the page faults and
/// TLB shootdowns of handing them back were ~15 % of EfficientNet-Lite0's forward pass (perf,
/// 2026-12-06). A 256 MiB top pad and no trimming below 2 GiB keep them: Lite0 at 224, batch 8,
/// 23–26 → 35–39 images/s on this project's 2-core VM (ResNet-50 0–20 % faster). Set
/// `MALLOC_TOP_PAD_` or `MALLOC_TRIM_THRESHOLD_` to keep glibc's own choice.
///
/// # Safety
/// Changes the allocator's settings: call it before any other thread exists (first thing in a
/// `main`).
pub unsafe fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_TOP_PAD_").is_none() && std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_none() {
        // SAFETY: glibc's mallopt, before any other thread allocates (the caller's promise).
        unsafe {
            libc::mallopt(libc::M_TOP_PAD, 256 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        }
    }
}
