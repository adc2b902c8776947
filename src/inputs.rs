//! How a sweep makes its network inputs from decoded images, one policy for every caller (the
//! accuracy and activation sweeps, `fixres eval`/`features`, the grid and `fixres bench sweep`):
//! each image is decoded once and resampled per test resolution on the CPU, on a GPU of its own
//! (crops read back), or on the GPU Burn runs on, straight into Burn's input tensor. Every path
//! gives the same bytes (tests/it/gpu.rs); which one runs is the `Backend`'s choice
//! (`Backend::inputs`).

use std::path::Path;
use std::sync::Arc;

use burn::tensor::{Device, Tensor};

use crate::data::{RgbImage, TestTransform};
use crate::gpu::{Gpu, GpuError, GpuImage, sweep_crops};
use crate::model::{Recipe, input_batch};

/// Where a sweep's inputs are made.
#[derive(Clone)]
pub enum Inputs {
    /// Resampled on the CPU, then copied into Burn's tensor.
    Cpu,
    /// Resampled on a GPU Burn does not run on, read back, then copied as the CPU's.
    GpuCrops(Arc<Gpu>),
    /// Uploaded once to the GPU Burn runs on and resampled per resolution into Burn's tensor.
    IntoBurn(Arc<Gpu>),
}

impl Inputs {
    /// The GPU this path resamples on, if any.
    #[must_use]
    pub fn gpu(&self) -> Option<&Arc<Gpu>> {
        match self {
            Self::Cpu => None,
            Self::GpuCrops(gpu) | Self::IntoBurn(gpu) => Some(gpu),
        }
    }

    /// What the path is, in words (reports and benchmarks).
    #[must_use]
    pub fn describe(&self) -> &'static str {
        match self {
            Self::Cpu => "resampled on the CPU",
            Self::GpuCrops(_) => "crops read back from a device of its own, then uploaded as the CPU's",
            Self::IntoBurn(_) => "written into Burn's tensors on the device Burn shares",
        }
    }
}

/// One of the three paths, as code: `prepare` runs on the decoding threads, `batch` on the
/// model's. `Inputs::with_path` hands the chosen one to generic code, so each path's prepared
/// images can only meet that path's batching.
pub trait InputPath: Sync {
    /// One image made ready for every resolution of the sweep.
    type Prepared: Send;

    /// Prepares a decoded image (`file` names it in warnings). `Err` only when the GPU Burn runs
    /// on is lost: any other GPU failure leaves the image to the CPU.
    fn prepare(&self, file: &Path, img: RgbImage, transforms: &[TestTransform]) -> Result<Self::Prepared, GpuError>;

    /// The `[n, 3, K, K]` input of prepared images at the `r`-th transform, `t`.
    fn batch(
        &self,
        images: &[Self::Prepared],
        r: usize,
        t: &TestTransform,
        recipe: &Recipe,
        device: &Device,
    ) -> Result<Tensor<4>, GpuError>;
}

/// Code generic over the input path, run with the one an `Inputs` names.
pub trait WithPath {
    /// What the code returns.
    type Output;
    /// Runs it on `path`.
    fn run<P: InputPath>(self, path: &P) -> Self::Output;
}

impl Inputs {
    /// Runs `code` with this path.
    pub fn with_path<W: WithPath>(&self, code: W) -> W::Output {
        match self {
            Self::Cpu => code.run(&OnCpu),
            Self::GpuCrops(gpu) => code.run(&GpuCrops(gpu)),
            Self::IntoBurn(gpu) => code.run(&IntoBurn(gpu)),
        }
    }
}

/// Resampling on the CPU.
pub struct OnCpu;

/// Resampling on a GPU of its own, crops read back.
pub struct GpuCrops<'a>(pub &'a Gpu);

/// Resampling into Burn's tensors on the GPU Burn runs on.
pub struct IntoBurn<'a>(pub &'a Gpu);

/// The crops of a batch at the `r`-th transform, into Burn's tensor.
fn crops_batch(images: &[Vec<RgbImage>], r: usize, recipe: &Recipe, device: &Device) -> Tensor<4> {
    input_batch(images.iter().map(|crops| &crops[r]), recipe.mean, recipe.std, device)
}

impl InputPath for OnCpu {
    type Prepared = Vec<RgbImage>;

    fn prepare(&self, _: &Path, img: RgbImage, transforms: &[TestTransform]) -> Result<Self::Prepared, GpuError> {
        Ok(transforms.iter().map(|t| t.apply(&img)).collect())
    }

    fn batch(
        &self,
        images: &[Self::Prepared],
        r: usize,
        _: &TestTransform,
        recipe: &Recipe,
        device: &Device,
    ) -> Result<Tensor<4>, GpuError> {
        Ok(crops_batch(images, r, recipe, device))
    }
}

impl InputPath for GpuCrops<'_> {
    type Prepared = Vec<RgbImage>;

    /// The model does not run on this GPU: even its loss only moves the resampling to the CPU.
    fn prepare(&self, file: &Path, img: RgbImage, transforms: &[TestTransform]) -> Result<Self::Prepared, GpuError> {
        Ok(sweep_crops(self.0, &img, transforms).unwrap_or_else(|e| {
            eprintln!("warning: {}: resampled on the CPU: {e}", file.display());
            transforms.iter().map(|t| t.apply(&img)).collect()
        }))
    }

    /// The crops were read back: batched as the CPU's.
    fn batch(
        &self,
        images: &[Self::Prepared],
        r: usize,
        t: &TestTransform,
        recipe: &Recipe,
        device: &Device,
    ) -> Result<Tensor<4>, GpuError> {
        OnCpu.batch(images, r, t, recipe, device)
    }
}

impl InputPath for IntoBurn<'_> {
    /// The decoded image (for crops the GPU leaves to the CPU) and its upload (`None`: the GPU
    /// could not take it, so its slot is the CPU's).
    type Prepared = (RgbImage, Option<GpuImage>);

    /// A lost device under the model stops the run; any other failure (an image too large for
    /// it, out of memory) leaves this image to the CPU.
    fn prepare(&self, file: &Path, img: RgbImage, _: &[TestTransform]) -> Result<Self::Prepared, GpuError> {
        match self.0.upload(&img) {
            Ok(up) => Ok((img, Some(up))),
            Err(e @ GpuError::Lost(_)) => Err(e),
            Err(e) => {
                eprintln!("warning: {}: resampled on the CPU: {e}", file.display());
                Ok((img, None))
            }
        }
    }

    fn batch(
        &self,
        images: &[Self::Prepared],
        _: usize,
        t: &TestTransform,
        recipe: &Recipe,
        device: &Device,
    ) -> Result<Tensor<4>, GpuError> {
        let refs: Vec<_> = images.iter().map(|(img, up)| (img, up.as_ref())).collect();
        match self.0.batch_input(&refs, t, recipe.mean, recipe.std) {
            Ok(Some(input)) => Ok(input),
            Err(e @ GpuError::Lost(_)) => Err(e),
            // Over one storage buffer, or the GPU failed otherwise: the CPU path's input.
            failed => {
                if let Err(e) = failed {
                    eprintln!("warning: a batch's input made on the CPU: {e}");
                }
                let crops: Vec<_> = images.iter().map(|(img, _)| t.apply(img)).collect();
                Ok(input_batch(&crops, recipe.mean, recipe.std, device))
            }
        }
    }
}
