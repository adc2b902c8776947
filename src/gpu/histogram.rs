//! Histogram, min, max and mean of pooled activations on the GPU (`shaders/histogram.wgsl`), for
//! the live activation plot.

use super::{Gpu, GpuError};

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
        self.alive()?;
        let scopes = self.scopes();
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
        let init = |label: &str, contents: &[u8], usage: wgpu::BufferUsages| self.init_buffer(label, contents, usage);
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
        )?;
        let input = init("values", bytemuck::cast_slice(values), wgpu::BufferUsages::STORAGE)?;
        let counts = init("counts", &vec![0u8; bins * 4], storage)?;
        let extremes = init("extremes", bytemuck::cast_slice(&[u32::MAX, 0u32]), storage)?;
        let partial = init("partial-sums", &vec![0u8; groups as usize * 4], storage)?;
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
        self.check_scopes(scopes)?;
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
}
