//! Custom wgpu compute over `shaders/*.wgsl`: PIL-exact resampling of an image uploaded once to
//! any number of test resolutions (`resample.rs`), and the histogram, min, max and mean of pooled
//! activations (`histogram.rs`). Pipelines are built once per `Gpu`.
//!
//! When Burn runs on a wgpu GPU, `backend::choose` brings Burn's device up from a setup this
//! module keeps (`share_with_burn`): the resampler then writes the network input straight into a
//! Burn tensor's buffer on that one device (`Gpu::batch_input`), with no copy through the CPU.
//! Which GPU a sweep resamples on is the `Backend`'s to say (`backend::Backend::inputs`).

mod histogram;
mod resample;

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cubecl::wgpu::{AutoGraphicsApi, RuntimeOptions, try_init_setup};

use crate::data::{RgbImage, TestTransform};

pub use histogram::HistogramStats;
pub use resample::GpuImage;

/// Why the GPU path cannot run (callers fall back to the CPU path).
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No wgpu adapter.
    #[error("no wgpu adapter: {0}")]
    NoAdapter(String),
    /// The adapter refused a device.
    #[error("the GPU refused a device: {0}")]
    Device(String),
    /// The image does not fit the device's buffer limits, even in bands of rows.
    #[error("a {width}x{height} image needs {bytes} bytes per band, over the device's storage-buffer limit of {limit}")]
    TooLarge {
        /// Width.
        width: usize,
        /// Height.
        height: usize,
        /// Bytes needed.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// The request cannot run as asked.
    #[error("{0}")]
    Input(String),
    /// Running or reading back failed (out of memory, a validation error).
    #[error("the GPU failed: {0}")]
    Readback(String),
    /// The device is gone (driver reset, GPU removed): nothing more runs on it.
    #[error("the GPU device was lost ({0})")]
    Lost(String),
}

/// A wgpu device with the resampling and histogram pipelines built.
pub struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    horizontal: wgpu::ComputePipeline,
    vertical: wgpu::ComputePipeline,
    histogram: wgpu::ComputePipeline,
    /// Burn's side of the device, when Burn runs on it (`share_with_burn`).
    burn: Option<cubecl::Device>,
    /// Set once the device is lost: `Backend::inputs` stops handing this GPU out.
    lost: Arc<AtomicBool>,
    /// The most bytes one storage buffer may hold (bands of rows stay under it): the device's
    /// limit, or lower (`limit_buffers`).
    buffer_limit: AtomicU64,
    /// The adapter's name and backend.
    pub adapter: String,
}

impl Gpu {
    /// Opens the first adapter wgpu finds (a hardware GPU first; a software one, e.g. lavapipe,
    /// when that is all there is) on a device of its own, and builds the pipelines.
    pub fn new() -> Result<Self, GpuError> {
        // Vulkan/Metal/DX12 only, as Burn: probing OpenGL (EGL) would fight the window's OpenGL
        // context when the app draws with glow (EGL BadAccess).
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: wgpu::Backends::PRIMARY,
            ..wgpu::InstanceDescriptor::new_without_display_handle_from_env()
        });
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        }))
        .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("fixres-gpu"),
            required_limits: adapter.limits(),
            ..Default::default()
        }))
        .map_err(|e| GpuError::Device(e.to_string()))?;
        let lost = Arc::new(AtomicBool::new(false));
        // Our own device: the lost callback is ours to set (on Burn's, cubecl's watches it).
        let flag = lost.clone();
        device.set_device_lost_callback(move |_, _| flag.store(true, Ordering::Relaxed));
        Self::build(device, queue, &adapter.get_info(), None, lost)
    }

    fn build(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: &wgpu::AdapterInfo,
        burn: Option<cubecl::Device>,
        lost: Arc<AtomicBool>,
    ) -> Result<Self, GpuError> {
        // Errors would otherwise reach the device's uncaptured-error handler (a panic).
        let internal = device.push_error_scope(wgpu::ErrorFilter::Internal);
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipeline = |file: &str, source: &'static str, entry: &str| {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(file),
                source: wgpu::ShaderSource::Wgsl(Cow::Borrowed(source)),
            });
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        let resample = include_str!("../../shaders/resample.wgsl");
        let horizontal = pipeline("resample.wgsl", resample, "horizontal");
        let vertical = pipeline("resample.wgsl", resample, "vertical");
        let histogram = pipeline("histogram.wgsl", include_str!("../../shaders/histogram.wgsl"), "main");
        for scope in [scope, internal] {
            if let Some(e) = pollster::block_on(scope.pop()) {
                return Err(GpuError::Device(format!("building the shaders: {e}")));
            }
        }
        let limits = device.limits();
        Ok(Self {
            horizontal,
            vertical,
            histogram,
            burn,
            lost,
            buffer_limit: AtomicU64::new(limits.max_storage_buffer_binding_size.min(limits.max_buffer_size)),
            adapter: format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type),
            device,
            queue,
        })
    }

    /// Whether Burn runs on this device (network inputs can be written into its tensors).
    #[must_use]
    pub fn shares_burn_device(&self, device: &burn::tensor::Device) -> bool {
        let burn::backend::DispatchDevice::Cube(cube) = device.as_dispatch() else {
            return false;
        };
        self.burn.as_ref() == Some(cube)
    }

    /// The most bytes one buffer of this `Gpu` holds.
    fn buffer_limit(&self) -> u64 {
        self.buffer_limit.load(Ordering::Relaxed)
    }

    /// Lowers the most bytes one buffer may hold below the device's limit (tests: images and
    /// batches over the limit, without allocating gigabytes).
    pub fn limit_buffers(&self, bytes: u64) {
        self.buffer_limit.fetch_min(bytes, Ordering::Relaxed);
    }

    /// Whether the device was lost.
    #[must_use]
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// Destroys the device, as a driver reset would lose it (wgpu's `Device::destroy`), for tests:
    /// the next call on it must find out by itself.
    pub fn simulate_loss(&self) {
        self.device.destroy();
    }

    /// Whether the device is lost, checked now: a lost device hands out invalid buffers (wgpu
    /// reports nothing else after a loss). Marks it lost.
    pub fn probe_lost(&self) -> bool {
        self.is_lost()
            || matches!(
                self.init_buffer("probe", &[0; 4], wgpu::BufferUsages::STORAGE),
                Err(GpuError::Lost(_))
            )
    }

    /// A buffer holding `contents` (zero-padded to a multiple of 4 bytes, at least 4): wgpu's
    /// `create_buffer_init`, but a lost device or a failed allocation is an error, not a panic.
    fn init_buffer(&self, label: &str, contents: &[u8], usage: wgpu::BufferUsages) -> Result<wgpu::Buffer, GpuError> {
        let size = (contents.len() as u64).max(4).next_multiple_of(4);
        let scopes = self.scopes();
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage,
            mapped_at_creation: true,
        });
        let mapped = buffer
            .get_mapped_range_mut(..)
            .map(|mut view| view.slice(..contents.len()).copy_from_slice(contents));
        // Out of memory (or a bad size) is reported; after a loss wgpu reports nothing.
        for scope in scopes {
            if let Some(e) = pollster::block_on(scope.pop()) {
                return Err(GpuError::Readback(format!("creating {label} ({size} bytes): {e}")));
            }
        }
        if let Err(e) = mapped {
            self.lost.store(true, Ordering::Relaxed);
            return Err(GpuError::Lost(format!("creating {label}: {e}")));
        }
        buffer.unmap();
        Ok(buffer)
    }

    /// `Lost` once the device is gone: nothing more is sent to it.
    fn alive(&self) -> Result<(), GpuError> {
        if self.is_lost() {
            return Err(GpuError::Lost("an earlier call found it gone".into()));
        }
        Ok(())
    }

    /// The error for a failed GPU operation: `Lost` when the device is gone.
    fn fault(&self, what: &str) -> GpuError {
        if self.probe_lost() {
            GpuError::Lost(what.to_string())
        } else {
            GpuError::Readback(what.to_string())
        }
    }

    /// Maps `buffer` (MAP_READ) and copies it out. A failed wait or mapping means the device is
    /// gone: it is marked lost.
    fn read(&self, buffer: &wgpu::Buffer) -> Result<Vec<u8>, GpuError> {
        let lost = |e: String| {
            self.lost.store(true, Ordering::Relaxed);
            GpuError::Lost(e)
        };
        let slice = buffer.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r); // the receiver waits below
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| lost(e.to_string()))?;
        rx.recv()
            .map_err(|e| lost(e.to_string()))?
            .map_err(|e| lost(e.to_string()))?;
        let bytes = slice.get_mapped_range().map_err(|e| lost(e.to_string()))?.to_vec();
        buffer.unmap();
        Ok(bytes)
    }

    /// Error scopes (out of memory, validation) around a submission: errors come back as values
    /// rather than through the device's uncaptured-error handler.
    fn scopes(&self) -> [wgpu::ErrorScopeGuard; 2] {
        let out_of_memory = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        [validation, out_of_memory]
    }

    /// Pops `scopes`: the first error caught, as a `GpuError`.
    fn check_scopes(&self, scopes: [wgpu::ErrorScopeGuard; 2]) -> Result<(), GpuError> {
        let errors: Vec<wgpu::Error> = scopes.into_iter().filter_map(|s| pollster::block_on(s.pop())).collect();
        match errors.first() {
            Some(e) => Err(self.fault(&e.to_string())),
            None => Ok(()),
        }
    }
}

/// The devices Burn runs on that `share_with_burn` brought up, and their `Gpu`s. Process-wide
/// because cubecl's runtime is: a Burn device is brought up once per process and stays what it
/// was (lost, too) until the process ends, so its `Gpu` must be found again by whoever opens that
/// device next.
fn shared_devices() -> std::sync::MutexGuard<'static, Vec<(cubecl::Device, Arc<Gpu>)>> {
    static SHARED: Mutex<Vec<(cubecl::Device, Arc<Gpu>)>> = Mutex::new(Vec::new());
    SHARED.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether a device Burn ran on in this process was lost (`backend::choose` then stays on the
/// CPU: cubecl cannot bring it up again).
#[must_use]
pub fn burn_device_lost_in_this_process() -> bool {
    shared_devices().iter().any(|(_, gpu)| gpu.is_lost())
}

/// Brings Burn's wgpu device `device` up from a setup kept here, so that the sweeps' resampler and
/// Burn share that one wgpu device and queue. Returns the shared `Gpu`, or why not (Burn then
/// brings the device up by itself, and sweeps read their crops back). Call before Burn first uses
/// `device`; asking again for the same device returns the same `Gpu`.
pub fn share_with_burn(device: &burn::tensor::Device) -> Result<Arc<Gpu>, String> {
    let burn::backend::DispatchDevice::Cube(cube) = device.as_dispatch() else {
        return Err("not a wgpu device".into());
    };
    let cubecl::Device::Wgpu(wgpu_device) = cube else {
        return Err("not a wgpu device".into());
    };
    let mut shared = shared_devices();
    if let Some((_, gpu)) = shared.iter().find(|(d, _)| d == cube) {
        return Ok(gpu.clone());
    }
    let setup = try_init_setup::<AutoGraphicsApi>(wgpu_device, RuntimeOptions::default())
        .map_err(|e| format!("bringing up {wgpu_device:?}: {e}"))?;
    let gpu = Arc::new(
        Gpu::build(
            setup.device,
            setup.queue,
            &setup.adapter.get_info(),
            Some(cube.clone()),
            Arc::new(AtomicBool::new(false)),
        )
        .map_err(|e| e.to_string())?,
    );
    shared.push((cube.clone(), gpu.clone()));
    Ok(gpu)
}

/// `img` through every transform, on `gpu`: uploaded once, resampled per transform; crops that
/// need padding, and images with a row over a buffer's limit, are the CPU path's (same bytes). A
/// failure is returned (`Lost` when the device went away) for the caller to decide.
pub fn sweep_crops(gpu: &Gpu, img: &RgbImage, transforms: &[TestTransform]) -> Result<Vec<RgbImage>, GpuError> {
    let cpu = |t: &TestTransform| t.apply(img);
    let uploaded = match gpu.upload(img) {
        Ok(u) => u,
        // Not even one row fits a buffer: this image is the CPU's.
        Err(GpuError::TooLarge { .. }) => return Ok(transforms.iter().map(cpu).collect()),
        Err(e) => return Err(e),
    };
    transforms
        .iter()
        .map(|t| {
            Ok(match gpu.test_input(&uploaded, t, [0.0; 3], [1.0; 3])? {
                Some((crop, _)) => crop,
                None => cpu(t),
            })
        })
        .collect()
}
