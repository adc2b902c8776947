//! PIL-exact resampling on the GPU (`shaders/resample.wgsl`): an image uploaded once (in bands of
//! rows when it is larger than one storage buffer) and resampled to any test transform, read back
//! (`test_input`) or written straight into a Burn tensor on the device Burn shares (`batch_input`).

use burn::tensor::{DType, Shape, Tensor};
use cubecl::wgpu::{AutoCompiler, WgpuServer};

use super::{Gpu, GpuError};
use crate::data::resample::{Plan, Taps, plan};
use crate::data::transforms::{center_crop_origin, normalization_table, to_tensor_normalized};
use crate::data::{RgbImage, TestTransform};

/// An image uploaded once, packed RGB8 (one u32 per pixel), in bands of whole rows.
pub struct GpuImage {
    bands: Vec<Band>,
    width: usize,
    height: usize,
}

struct Band {
    first_row: usize,
    rows: usize,
    buffer: wgpu::Buffer,
}

impl GpuImage {
    /// Width and height.
    #[must_use]
    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// How many buffers the image was uploaded in (1 unless it is over the device's limit).
    #[must_use]
    pub fn bands(&self) -> usize {
        self.bands.len()
    }
}

/// `Params` in `resample.wgsl` (12 u32).
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
    input_offset: u32,
    tmp_row: u32,
    write_crop: u32,
    pad: [u32; 2],
}

const WORKGROUP: u32 = 8;

/// Where the vertical pass writes the normalised input: a buffer range and the f32 offset of
/// this image's `[3, K, K]` in it; and whether it writes the packed crop too.
struct Target<'a> {
    binding: wgpu::BufferBinding<'a>,
    offset: usize,
    write_crop: bool,
}

/// One image's crop window at one transform.
struct Window {
    plan: Plan,
    first_column: usize,
    k: usize,
}

impl Gpu {
    /// Uploads `img` (decode once, resample many times), in bands of rows when it is larger than
    /// one storage buffer may be.
    pub fn upload(&self, img: &RgbImage) -> Result<GpuImage, GpuError> {
        self.upload_in_bands(img, self.buffer_limit())
    }

    /// Uploads `img` in bands of at most `max_band_bytes` (whole rows; `upload` uses the device's
    /// limit). `TooLarge` when not even one row fits.
    pub fn upload_in_bands(&self, img: &RgbImage, max_band_bytes: u64) -> Result<GpuImage, GpuError> {
        self.alive()?;
        let (width, height) = (img.width(), img.height());
        let row_bytes = (width * 4) as u64;
        let max_band_bytes = max_band_bytes.min(self.buffer_limit());
        if row_bytes > max_band_bytes {
            return Err(GpuError::TooLarge {
                width,
                height,
                bytes: row_bytes,
                limit: max_band_bytes,
            });
        }
        let rows_per_band = ((max_band_bytes / row_bytes.max(1)) as usize).max(1);
        let scopes = self.scopes();
        let mut bands = Vec::new();
        for first_row in (0..height.max(1)).step_by(rows_per_band) {
            let rows = rows_per_band.min(height.saturating_sub(first_row));
            let raw = &img.as_raw()[first_row * width * 3..(first_row + rows) * width * 3];
            let packed: Vec<u32> = raw
                .chunks_exact(3)
                .map(|p| u32::from(p[0]) | u32::from(p[1]) << 8 | u32::from(p[2]) << 16)
                .collect();
            let buffer = self.init_buffer("image-band", bytemuck::cast_slice(&packed), wgpu::BufferUsages::STORAGE)?;
            bands.push(Band {
                first_row,
                rows,
                buffer,
            });
        }
        self.check_scopes(scopes)?;
        Ok(GpuImage { bands, width, height })
    }

    /// The test transform of an uploaded image: the uint8 crop and the normalised network input
    /// (f32 `[3, K, K]`), bytes identical to `TestTransform::apply` + `to_tensor_normalized`.
    /// `None` when the GPU does not do this crop: it reaches past the resized image (zero
    /// padding), Pillow runs its vertical pass first (a tall image shrunk mostly in height), or
    /// its window is over a buffer's limit. The CPU path does those.
    pub fn test_input(
        &self,
        img: &GpuImage,
        t: &TestTransform,
        mean: [f32; 3],
        std: [f32; 3],
    ) -> Result<Option<(RgbImage, Vec<f32>)>, GpuError> {
        self.alive()?;
        let Some(window) = self.window(img, t) else {
            return Ok(None);
        };
        let k = window.k;
        let out_bytes = (k * k * 4) as u64;
        // The crop and the input come back in one buffer.
        if 4 * out_bytes > self.buffer_limit() {
            return Ok(None);
        }
        let scopes = self.scopes();
        let dst = self.scratch("dst", out_bytes, wgpu::BufferUsages::COPY_SRC);
        let input = self.scratch("input", 3 * out_bytes, wgpu::BufferUsages::COPY_SRC);
        let readback = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: 4 * out_bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let table = self.table(mean, std)?;
        let mut encoder = self.device.create_command_encoder(&Default::default());
        let target = Target {
            binding: input.as_entire_buffer_binding(),
            offset: 0,
            write_crop: true,
        };
        self.encode(&mut encoder, img, &window, &table, &dst, target)?;
        encoder.copy_buffer_to_buffer(&dst, 0, &readback, 0, out_bytes);
        encoder.copy_buffer_to_buffer(&input, 0, &readback, out_bytes, 3 * out_bytes);
        self.queue.submit([encoder.finish()]);
        self.check_scopes(scopes)?;
        let data = self.read(&readback)?;
        let words: &[u32] = bytemuck::cast_slice(&data[..out_bytes as usize]);
        let mut rgb = Vec::with_capacity(k * k * 3);
        for &w in words {
            rgb.extend_from_slice(&[(w & 0xff) as u8, (w >> 8 & 0xff) as u8, (w >> 16 & 0xff) as u8]);
        }
        let normalized: Vec<f32> = bytemuck::cast_slice(&data[out_bytes as usize..]).to_vec();
        let image = RgbImage::from_raw(k, k, rgb).ok_or_else(|| GpuError::Readback("wrong size".into()))?;
        Ok(Some((image, normalized)))
    }

    /// The network input of a batch at one test transform, `[N, 3, K, K]`, written by the shader
    /// straight into the buffer of a Burn tensor on the device Burn shares with this `Gpu`
    /// (`share_with_burn`): nothing goes through the CPU. Images without an upload, and crops the
    /// GPU does not do (`test_input`'s `None`), are computed on the CPU and copied into their slot;
    /// `None` when the batch is over one storage buffer (the caller builds it on the CPU).
    pub fn batch_input(
        &self,
        images: &[(&RgbImage, Option<&GpuImage>)],
        t: &TestTransform,
        mean: [f32; 3],
        std: [f32; 3],
    ) -> Result<Option<Tensor<4>>, GpuError> {
        self.alive()?;
        let cube = self
            .burn
            .as_ref()
            .ok_or_else(|| GpuError::Input("Burn does not run on this GPU's device".into()))?;
        let (n, k) = (images.len(), t.res);
        let per_image = 3 * k * k;
        if n == 0 || k == 0 {
            return Err(GpuError::Input(format!("an input batch of {n} images of {k}x{k}")));
        }
        let bytes = n * per_image * 4;
        if bytes as u64 > self.buffer_limit() || n * per_image > u32::MAX as usize {
            return Ok(None);
        }
        let client = cube.client();
        let handle = client.empty(bytes);
        let resource = client
            .get_resource::<WgpuServer<AutoCompiler>>(handle.clone())
            .map_err(|e| self.fault(&format!("Burn's buffer for the input: {e:?}")))?;
        // Burn's queued work goes first: the memory it hands out may still be read by it.
        client.flush().map_err(|e| self.fault(&format!("{e:?}")))?;
        let r = resource.resource();
        let scopes = self.scopes();
        let table = self.table(mean, std)?;
        let mut encoder = self.device.create_command_encoder(&Default::default());
        let dst = self.scratch("dst-unused", 4, wgpu::BufferUsages::empty());
        for (i, (img, uploaded)) in images.iter().enumerate() {
            match uploaded.and_then(|u| self.window(u, t).map(|w| (u, w))) {
                Some((uploaded, window)) => {
                    let target = Target {
                        binding: wgpu::BufferBinding {
                            buffer: &r.buffer,
                            offset: r.offset,
                            // Exactly the tensor: cubecl's slice may be rounded up past the limit.
                            size: std::num::NonZeroU64::new(bytes as u64),
                        },
                        offset: i * per_image,
                        write_crop: false,
                    };
                    self.encode(&mut encoder, uploaded, &window, &table, &dst, target)?;
                }
                None => {
                    let values = to_tensor_normalized(&t.apply(img), mean, std);
                    let at = r.offset + (i * per_image * 4) as u64;
                    self.queue.write_buffer(&r.buffer, at, bytemuck::cast_slice(&values));
                }
            }
        }
        self.queue.submit([encoder.finish()]);
        self.check_scopes(scopes)?;
        drop(resource);
        let tensor = burn::backend::wgpu::CubeTensor::new_contiguous(
            client,
            cube.clone(),
            Shape::new([n, 3, k, k]),
            handle,
            DType::F32,
        );
        Ok(Some(Tensor::from_primitive::<burn::backend::Cube>(tensor)))
    }

    /// The crop window of `t` on `img`, or None when the GPU does not do it (see `test_input`).
    fn window(&self, img: &GpuImage, t: &TestTransform) -> Option<Window> {
        let k = t.res;
        // Any crop mode whose crop lies inside the resized image; padding is the CPU path's.
        let (w, h) = t.resized_size(img.width, img.height);
        let (top, left) = center_crop_origin(w, h, k, k);
        if k == 0 || top < 0 || left < 0 || top as usize + k > h || left as usize + k > w || img.width == 0 {
            return None;
        }
        let (top, left) = (top as usize, left as usize);
        let plan = plan(
            (img.width, img.height),
            (w, h),
            t.interpolation,
            &(left..left + k),
            &(top..top + k),
        );
        // The shader runs the horizontal pass first; Pillow's other order (tall images shrunk
        // mostly in height) is left to the CPU path, which does it.
        if plan.vertical_first {
            return None;
        }
        if (k * plan.n_rows * 4) as u64 > self.buffer_limit() || (3 * k * k * 4) as u64 > self.buffer_limit() {
            return None;
        }
        Some(Window {
            plan,
            first_column: left,
            k,
        })
    }

    fn scratch(&self, label: &str, size: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: size.max(4),
            usage: wgpu::BufferUsages::STORAGE | usage,
            mapped_at_creation: false,
        })
    }

    /// Records the resampling of `img`'s `window`: the horizontal pass once per band of rows it
    /// reads, then the vertical pass, which writes the normalised input to `target` and, if it
    /// asks, the packed crop to `dst`.
    fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        img: &GpuImage,
        window: &Window,
        table: &wgpu::Buffer,
        dst: &wgpu::Buffer,
        target: Target<'_>,
    ) -> Result<(), GpuError> {
        let Window {
            plan: p,
            first_column,
            k,
        } = window;
        let (k, n_rows) = (*k, p.n_rows);
        let storage = |label: &str, contents: &[u8]| self.init_buffer(label, contents, wgpu::BufferUsages::STORAGE);
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
        let tmp = self.scratch("tmp", (k * n_rows * 4) as u64, wgpu::BufferUsages::empty());
        let params = Params {
            src_width: img.width as u32,
            out_width: k as u32,
            out_height: 0,
            ksize: h_ksize,
            row_offset: 0,
            mode: u32::from(p.horizontal.is_none()),
            col_offset: *first_column as u32,
            input_offset: target.offset as u32,
            tmp_row: 0,
            write_crop: u32::from(target.write_crop),
            pad: [0; 2],
        };
        let uniform =
            |p: &Params| self.init_buffer("resample-params", bytemuck::bytes_of(p), wgpu::BufferUsages::UNIFORM);
        let (hb, hw) = (
            storage("h-bounds", bytemuck::cast_slice(&h_bounds))?,
            storage("h-weights", bytemuck::cast_slice(&h_weights))?,
        );
        let (vb, vw) = (
            storage("v-bounds", bytemuck::cast_slice(&v_bounds))?,
            storage("v-weights", bytemuck::cast_slice(&v_weights))?,
        );
        let bind = |pipeline: &wgpu::ComputePipeline, resources: Vec<wgpu::BindingResource<'_>>| {
            let entries: Vec<wgpu::BindGroupEntry<'_>> = resources
                .into_iter()
                .enumerate()
                .map(|(i, resource)| wgpu::BindGroupEntry {
                    binding: i as u32,
                    resource,
                })
                .collect();
            self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            })
        };
        let groups = |n: usize| (n as u32).div_ceil(WORKGROUP);
        // The horizontal pass, per band: tmp rows y read source row first_row + y.
        let mut horizontal = Vec::new();
        for band in &img.bands {
            let start = band.first_row.max(p.first_row);
            let end = (band.first_row + band.rows).min(p.first_row + n_rows);
            if start >= end {
                continue;
            }
            let u = uniform(&Params {
                out_height: (end - start) as u32,
                row_offset: (start - band.first_row) as u32,
                tmp_row: (start - p.first_row) as u32,
                ..params
            })?;
            let group = bind(
                &self.horizontal,
                vec![
                    u.as_entire_binding(),
                    band.buffer.as_entire_binding(),
                    hb.as_entire_binding(),
                    hw.as_entire_binding(),
                    tmp.as_entire_binding(),
                ],
            );
            horizontal.push((group, end - start));
        }
        let vu = uniform(&Params {
            src_width: k as u32,
            out_height: k as u32,
            ksize: v_ksize,
            row_offset: p.first_row as u32,
            mode: u32::from(p.vertical.is_none()),
            ..params
        })?;
        let v_group = bind(
            &self.vertical,
            vec![
                vu.as_entire_binding(),
                tmp.as_entire_binding(),
                vb.as_entire_binding(),
                vw.as_entire_binding(),
                dst.as_entire_binding(),
                wgpu::BindingResource::Buffer(target.binding),
                table.as_entire_binding(),
            ],
        );
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&self.horizontal);
        for (group, rows) in &horizontal {
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(groups(k), groups(*rows), 1);
        }
        pass.set_pipeline(&self.vertical);
        pass.set_bind_group(0, &v_group, &[]);
        pass.dispatch_workgroups(groups(k), groups(k), 1);
        Ok(())
    }

    /// `transforms::normalization_table` on the GPU, for the vertical pass to look up.
    fn table(&self, mean: [f32; 3], std: [f32; 3]) -> Result<wgpu::Buffer, GpuError> {
        let table = normalization_table(mean, std);
        self.init_buffer(
            "normalization",
            bytemuck::cast_slice(&table),
            wgpu::BufferUsages::STORAGE,
        )
    }
}
