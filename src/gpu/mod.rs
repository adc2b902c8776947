//! Custom wgpu compute over `shaders/*.wgsl`: PIL-exact resampling of an image uploaded once to
//! any number of test resolutions (`resample.wgsl`), and the histogram, min, max and mean of
//! pooled activations (`histogram.wgsl`). Pipelines are built once per `Gpu`.
//!
//! The results are read back to the CPU for now; handing the buffer to Burn without that copy
//! needs Burn and this module to share one wgpu device (DESIGN §1), which is not done yet.

use std::borrow::Cow;

use wgpu::util::DeviceExt;

use crate::data::resample::{Plan, Taps, plan};
use crate::data::transforms::{center_crop_origin, resized_size, test_resize_size};
use crate::data::{RgbImage, TestTransform};

/// Why the GPU path cannot run (callers fall back to the CPU path).
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No wgpu adapter.
    #[error("no wgpu adapter: {0}")]
    NoAdapter(String),
    /// The adapter refused a device.
    #[error("the GPU refused a device: {0}")]
    Device(String),
    /// The image does not fit the device's buffer limits.
    #[error("a {width}x{height} image needs {bytes} bytes, over the device's storage-buffer limit of {limit}")]
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
    /// Reading the result back failed (e.g. the device was lost).
    #[error("reading back from the GPU failed: {0}")]
    Readback(String),
}

/// A wgpu device with the resampling pipelines built.
pub struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    horizontal: wgpu::ComputePipeline,
    vertical: wgpu::ComputePipeline,
    histogram: wgpu::ComputePipeline,
    /// The adapter's name and backend.
    pub adapter: String,
}

/// An image uploaded once, packed RGB8 (one u32 per pixel).
pub struct GpuImage {
    buffer: wgpu::Buffer,
    width: usize,
    height: usize,
}

/// `Params` in `resample.wgsl` (std140-compatible layout: 8 u32, then two vec4<f32>).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    src_width: u32,
    out_width: u32,
    out_height: u32,
    ksize: u32,
    row_offset: u32,
    mode: u32,
    col_offset: u32,
    pad: u32,
    mean: [f32; 4],
    std: [f32; 4],
}

const WORKGROUP: u32 = 8;

impl Gpu {
    /// Opens the first adapter wgpu finds (a hardware GPU first; a software one, e.g. lavapipe,
    /// when that is all there is) and builds the pipelines.
    pub fn new() -> Result<Self, GpuError> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        }))
        .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
        let info = adapter.get_info();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("fixres-gpu"),
            required_limits: adapter.limits(),
            ..Default::default()
        }))
        .map_err(|e| GpuError::Device(e.to_string()))?;
        // Validation errors would otherwise panic in wgpu's default handler: catch them here.
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("resample.wgsl"),
            source: wgpu::ShaderSource::Wgsl(Cow::Borrowed(include_str!("../../shaders/resample.wgsl"))),
        });
        let pipeline = |entry: &str| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        let (horizontal, vertical) = (pipeline("horizontal"), pipeline("vertical"));
        let histogram_module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("histogram.wgsl"),
            source: wgpu::ShaderSource::Wgsl(Cow::Borrowed(include_str!("../../shaders/histogram.wgsl"))),
        });
        let histogram = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("histogram"),
            layout: None,
            module: &histogram_module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Device(format!("resample.wgsl: {e}")));
        }
        Ok(Self {
            horizontal,
            vertical,
            histogram,
            adapter: format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type),
            device,
            queue,
        })
    }

    /// Uploads `img` (decode once, resample many times).
    pub fn upload(&self, img: &RgbImage) -> Result<GpuImage, GpuError> {
        let bytes = (img.width() * img.height() * 4) as u64;
        let limit = self.device.limits().max_storage_buffer_binding_size;
        if bytes > limit {
            return Err(GpuError::TooLarge {
                width: img.width(),
                height: img.height(),
                bytes,
                limit,
            });
        }
        let packed: Vec<u32> = img
            .as_raw()
            .chunks_exact(3)
            .map(|p| u32::from(p[0]) | u32::from(p[1]) << 8 | u32::from(p[2]) << 16)
            .collect();
        let buffer = self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("image"),
            contents: bytemuck::cast_slice(if packed.is_empty() { &[0u32] } else { &packed }),
            usage: wgpu::BufferUsages::STORAGE,
        });
        Ok(GpuImage {
            buffer,
            width: img.width(),
            height: img.height(),
        })
    }

    /// The test transform of an uploaded image: the uint8 crop and the normalised network input
    /// (f32 `[3, K, K]`), bytes identical to `TestTransform::apply` + `to_tensor_normalized`.
    /// `None` when the crop reaches past the resized image (zero padding: the CPU path does it).
    pub fn test_input(
        &self,
        img: &GpuImage,
        t: &TestTransform,
        mean: [f32; 3],
        std: [f32; 3],
    ) -> Result<Option<(RgbImage, Vec<f32>)>, GpuError> {
        let k = t.res;
        let (w, h) = resized_size(img.width, img.height, test_resize_size(k, t.crop_ratio));
        let (top, left) = center_crop_origin(w, h, k, k);
        if top < 0 || left < 0 || top as usize + k > h || left as usize + k > w || img.width == 0 || img.height == 0 {
            return Ok(None);
        }
        let (top, left) = (top as usize, left as usize);
        let columns = left..left + k;
        let rows = top..top + k;
        let p = plan((img.width, img.height), (w, h), t.interpolation, &columns, &rows);
        self.run(img, &p, columns.start, k, mean, std).map(Some)
    }

    fn run(
        &self,
        img: &GpuImage,
        p: &Plan,
        first_column: usize,
        k: usize,
        mean: [f32; 3],
        std: [f32; 3],
    ) -> Result<(RgbImage, Vec<f32>), GpuError> {
        // Errors inside (e.g. out of memory) come back as values, not wgpu's default panic.
        let out_of_memory = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let storage = |label: &str, contents: &[u8]| {
            self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: if contents.is_empty() { &[0; 4] } else { contents },
                usage: wgpu::BufferUsages::STORAGE,
            })
        };
        let taps = |t: Option<&Taps>| -> (Vec<u32>, Vec<i32>, u32) {
            t.map_or((vec![0, 0], vec![0], 0), |t| {
                (
                    t.bounds.iter().flat_map(|&(a, n)| [a as u32, n as u32]).collect(),
                    t.weights.clone(),
                    t.ksize as u32,
                )
            })
        };
        let (h_bounds, h_weights, h_ksize) = taps(p.horizontal.as_ref());
        let (v_bounds, v_weights, v_ksize) = taps(p.vertical.as_ref());
        let n_rows = p.n_rows;
        let tmp = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("tmp"),
            size: (k * n_rows * 4).max(4) as u64,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let out_bytes = (k * k * 4) as u64;
        let dst = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("dst"),
            size: out_bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let input = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("input"),
            size: 3 * out_bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let params = |src_width: usize, out_height: usize, ksize: u32, row_offset: usize, mode: u32| Params {
            src_width: src_width as u32,
            out_width: k as u32,
            out_height: out_height as u32,
            ksize,
            row_offset: row_offset as u32,
            mode,
            col_offset: first_column as u32,
            pad: 0,
            mean: [mean[0], mean[1], mean[2], 0.0],
            std: [std[0], std[1], std[2], 1.0],
        };
        let h_params = params(
            img.width,
            n_rows,
            h_ksize,
            p.first_row,
            u32::from(p.horizontal.is_none()),
        );
        let v_params = params(k, k, v_ksize, p.first_row, u32::from(p.vertical.is_none()));
        let uniform = |label: &str, p: &Params| {
            self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::bytes_of(p),
                usage: wgpu::BufferUsages::UNIFORM,
            })
        };
        let (hu, vu) = (uniform("h-params", &h_params), uniform("v-params", &v_params));
        let (hb, hw) = (
            storage("h-bounds", bytemuck::cast_slice(&h_bounds)),
            storage("h-weights", bytemuck::cast_slice(&h_weights)),
        );
        let (vb, vw) = (
            storage("v-bounds", bytemuck::cast_slice(&v_bounds)),
            storage("v-weights", bytemuck::cast_slice(&v_weights)),
        );
        // Each pipeline's layout holds the bindings its entry point uses (the horizontal pass
        // writes no network input: bindings 0–4).
        let bind = |pipeline: &wgpu::ComputePipeline, buffers: &[&wgpu::Buffer]| {
            let entries: Vec<wgpu::BindGroupEntry<'_>> = buffers
                .iter()
                .enumerate()
                .map(|(i, b)| wgpu::BindGroupEntry {
                    binding: i as u32,
                    resource: b.as_entire_binding(),
                })
                .collect();
            self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            })
        };
        let h_group = bind(&self.horizontal, &[&hu, &img.buffer, &hb, &hw, &tmp]);
        let v_group = bind(&self.vertical, &[&vu, &tmp, &vb, &vw, &dst, &input]);
        let readback = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: 4 * out_bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            let groups = |n: usize| (n as u32).div_ceil(WORKGROUP);
            pass.set_pipeline(&self.horizontal);
            pass.set_bind_group(0, &h_group, &[]);
            pass.dispatch_workgroups(groups(k), groups(n_rows), 1);
            pass.set_pipeline(&self.vertical);
            pass.set_bind_group(0, &v_group, &[]);
            pass.dispatch_workgroups(groups(k), groups(k), 1);
        }
        encoder.copy_buffer_to_buffer(&dst, 0, &readback, 0, out_bytes);
        encoder.copy_buffer_to_buffer(&input, 0, &readback, out_bytes, 3 * out_bytes);
        self.queue.submit([encoder.finish()]);
        for scope in [validation, out_of_memory] {
            if let Some(e) = pollster::block_on(scope.pop()) {
                return Err(GpuError::Readback(e.to_string()));
            }
        }
        let data = self.read(&readback)?;
        let words: &[u32] = bytemuck::cast_slice(&data[..out_bytes as usize]);
        let mut rgb = Vec::with_capacity(k * k * 3);
        for &w in words {
            rgb.extend_from_slice(&[(w & 0xff) as u8, (w >> 8 & 0xff) as u8, (w >> 16 & 0xff) as u8]);
        }
        let normalized: Vec<f32> = bytemuck::cast_slice(&data[out_bytes as usize..]).to_vec();
        let image = RgbImage::from_raw(k, k, rgb).ok_or_else(|| GpuError::Readback("wrong size".into()))?;
        Ok((image, normalized))
    }
}

/// `Gpu::histogram`'s result.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramStats {
    /// Values per bin over [0, top].
    pub counts: Vec<u64>,
    /// Smallest value.
    pub min: f32,
    /// Largest value.
    pub max: f32,
    /// Mean (per-workgroup f32 sums, added in f64).
    pub mean: f64,
}

impl Gpu {
    /// Histogram (`bins` over [0, `top`]), min, max and mean of `values`, on the GPU.
    pub fn histogram(&self, values: &[f32], bins: usize, top: f32) -> Result<HistogramStats, GpuError> {
        // One workgroup of 256 per 256 values, in one dispatch dimension.
        const MAX_VALUES: usize = 65_535 * 256;
        if values.is_empty() || bins == 0 || values.len() > MAX_VALUES || !(top > 0.0 && top.is_finite()) {
            return Err(GpuError::Input(format!(
                "histogram of {} values in {bins} bins over [0, {top}]: need 1..={MAX_VALUES} values, bins > 0, a finite top > 0",
                values.len()
            )));
        }
        let out_of_memory = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let n = values.len();
        let groups = (n as u32).div_ceil(256).max(1);
        #[repr(C)]
        #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        struct Params {
            n: u32,
            bins: u32,
            top: f32,
            pad: u32,
        }
        let init = |label: &str, contents: &[u8], usage: wgpu::BufferUsages| {
            self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage,
            })
        };
        let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
        let params = init(
            "histogram-params",
            bytemuck::bytes_of(&Params {
                n: n as u32,
                bins: bins as u32,
                top,
                pad: 0,
            }),
            wgpu::BufferUsages::UNIFORM,
        );
        let input = init(
            "values",
            bytemuck::cast_slice(if n == 0 { &[0f32] } else { values }),
            wgpu::BufferUsages::STORAGE,
        );
        let counts = init("counts", &vec![0u8; bins.max(1) * 4], storage);
        let extremes = init("extremes", bytemuck::cast_slice(&[u32::MAX, 0u32]), storage);
        let partial = init("partial-sums", &vec![0u8; groups as usize * 4], storage);
        let group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &self.histogram.get_bind_group_layout(0),
            entries: &[&params, &input, &counts, &extremes, &partial]
                .iter()
                .enumerate()
                .map(|(i, b)| wgpu::BindGroupEntry {
                    binding: i as u32,
                    resource: b.as_entire_binding(),
                })
                .collect::<Vec<_>>(),
        });
        let sizes = [bins.max(1) * 4, 8, groups as usize * 4];
        let readback = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("histogram-readback"),
            size: sizes.iter().sum::<usize>() as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&self.histogram);
            pass.set_bind_group(0, &group, &[]);
            pass.dispatch_workgroups(groups, 1, 1);
        }
        encoder.copy_buffer_to_buffer(&counts, 0, &readback, 0, sizes[0] as u64);
        encoder.copy_buffer_to_buffer(&extremes, 0, &readback, sizes[0] as u64, 8);
        encoder.copy_buffer_to_buffer(&partial, 0, &readback, (sizes[0] + 8) as u64, sizes[2] as u64);
        self.queue.submit([encoder.finish()]);
        for scope in [validation, out_of_memory] {
            if let Some(e) = pollster::block_on(scope.pop()) {
                return Err(GpuError::Readback(e.to_string()));
            }
        }
        let data = self.read(&readback)?;
        let words: &[u32] = bytemuck::cast_slice(&data);
        let unordered = |u: u32| f32::from_bits(if u & 0x8000_0000 != 0 { u & 0x7fff_ffff } else { !u });
        let sums: &[f32] = bytemuck::cast_slice(&data[sizes[0] + 8..]);
        Ok(HistogramStats {
            counts: words[..bins].iter().map(|&c| u64::from(c)).collect(),
            min: unordered(words[bins]),
            max: unordered(words[bins + 1]),
            mean: sums.iter().map(|&s| f64::from(s)).sum::<f64>() / n.max(1) as f64,
        })
    }

    /// Maps `buffer` (MAP_READ) and copies it out.
    fn read(&self, buffer: &wgpu::Buffer) -> Result<Vec<u8>, GpuError> {
        let slice = buffer.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r); // the receiver waits below
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        rx.recv()
            .map_err(|e| GpuError::Readback(e.to_string()))?
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        let bytes = slice
            .get_mapped_range()
            .map_err(|e| GpuError::Readback(e.to_string()))?
            .to_vec();
        buffer.unmap();
        Ok(bytes)
    }
}

/// The GPU the sweeps resample on, if they should: when Burn runs on a hardware GPU
/// (`backend::choose` says so through `use_for_sweeps`), or when `FIXRES_GPU_PREPROCESS=1` asks
/// for it on any adapter (a software one included: for tests and benchmarks).
#[must_use]
pub fn for_sweeps() -> Option<&'static Gpu> {
    use std::sync::atomic::Ordering;
    static GPU: std::sync::OnceLock<Option<Gpu>> = std::sync::OnceLock::new();
    let wanted =
        SWEEPS_ON_GPU.load(Ordering::Relaxed) || std::env::var("FIXRES_GPU_PREPROCESS").is_ok_and(|v| v == "1");
    if !wanted {
        return None;
    }
    GPU.get_or_init(|| match Gpu::new() {
        Ok(g) => Some(g),
        Err(e) => {
            eprintln!("warning: GPU preprocessing unavailable, resampling on the CPU: {e}");
            None
        }
    })
    .as_ref()
}

static SWEEPS_ON_GPU: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sweeps resample on the GPU from now on (a hardware GPU was chosen for the model).
pub fn use_for_sweeps() {
    SWEEPS_ON_GPU.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// `img` through every transform, on `gpu`: uploaded once, resampled per transform; crops that
/// need padding, and any GPU failure, fall back to the CPU path (same bytes).
#[must_use]
pub fn sweep_crops(gpu: &Gpu, img: &RgbImage, transforms: &[TestTransform]) -> Vec<RgbImage> {
    let cpu = |t: &TestTransform| t.apply(img);
    let Ok(uploaded) = gpu.upload(img) else {
        return transforms.iter().map(cpu).collect();
    };
    transforms
        .iter()
        .map(|t| match gpu.test_input(&uploaded, t, [0.0; 3], [1.0; 3]) {
            Ok(Some((crop, _))) => crop,
            _ => cpu(t),
        })
        .collect()
}

impl GpuImage {
    /// Width and height.
    #[must_use]
    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }
}
