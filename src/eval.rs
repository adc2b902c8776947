//! Running a model over images at one or more test resolutions: top-1/top-5 and the statistics of
//! the pooled activations. Each image is decoded once and resampled for every resolution; a
//! decoding thread pool keeps the next batch ready while the model runs (bounded channel).

use std::path::PathBuf;
use std::sync::mpsc::sync_channel;

use rayon::prelude::*;
use serde::Serialize;

use crate::data::{DecodeError, DecodeLimits, RgbImage, SeededRng, TestTransform, decode_file};
use crate::gpu::{GpuError, GpuImage};
use crate::model::{Model, Recipe, input_batch, rows};
use crate::size::{Quantile, quantile};

/// One decoded batch: the indices (into the input list) that decoded, their inputs, and the
/// files that failed.
struct Batch {
    indices: Vec<usize>,
    inputs: Inputs,
    failed: Vec<DecodeError>,
    /// The GPU failed (e.g. the device was lost): the run stops with this.
    gpu_error: Option<GpuError>,
}

/// One image, prepared on the decoding thread.
enum Prepared {
    Crops(Vec<RgbImage>),
    Uploaded(RgbImage, Option<GpuImage>),
}

/// A batch's images, ready for the model.
enum Inputs {
    /// The test crops, per resolution (resampled on the CPU, or on the GPU and read back).
    Crops(Vec<Vec<RgbImage>>),
    /// Decoded and uploaded to the GPU Burn runs on (None: the GPU could not take it; its slot is
    /// the CPU's): resampled per resolution straight into the model's input tensor.
    Uploaded(Vec<(RgbImage, Option<GpuImage>)>),
}

/// Runs `model` over `files` at each of `resolutions` (test transform and normalisation from `recipe`), calling `on_output(res_index, indices,
/// pooled rows, logit rows)` per batch and `progress(done, total)` as batches finish; `progress`
/// returning false stops the run early (cancellation). Returns the files that could not be decoded.
#[allow(clippy::too_many_arguments)] // what to run, on what, and two callbacks: a struct would only rename them
pub fn run_model(
    model: &Model,
    recipe: Recipe,
    device: &burn::tensor::Device,
    files: &[PathBuf],
    resolutions: &[usize],
    batch_size: usize,
    mut on_output: impl FnMut(usize, &[usize], Vec<Vec<f32>>, Vec<Vec<f32>>),
    mut progress: impl FnMut(usize, usize) -> bool,
) -> anyhow::Result<Vec<DecodeError>> {
    let transforms: Vec<TestTransform> = resolutions
        .iter()
        .map(|&res| TestTransform {
            res,
            crop_ratio: recipe.crop_ratio,
            interpolation: recipe.interpolation,
        })
        .collect();
    let transforms = &transforms[..]; // shared by the decoding thread and the model loop
    let gpu = crate::gpu::for_sweeps();
    let gpu = gpu.as_deref();
    // On the device Burn runs on, the inputs are written straight into Burn's tensors.
    let into_burn = gpu.is_some_and(|g| g.shares_burn_device(device));
    let (tx, rx) = sync_channel::<Batch>(2);
    let mut failures = Vec::new();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        // `move`: the sender must drop when decoding ends, or the loop below never finishes.
        std::thread::Builder::new()
            .name("eval-decode".into())
            .spawn_scoped(scope, move || {
                for (chunk_index, chunk) in files.chunks(batch_size.max(1)).enumerate() {
                    let first = chunk_index * batch_size.max(1);
                    let decoded: Vec<_> = chunk
                        .par_iter()
                        .map(|p| {
                            decode_file(p, DecodeLimits::default()).map(|img| {
                                let cpu = |img: &RgbImage| transforms.iter().map(|t| t.apply(img)).collect();
                                // Decoded once, uploaded once, resampled on the GPU per resolution.
                                // A lost device under the model stops the run; any other GPU
                                // failure (an image too large for it, out of memory) leaves this
                                // image to the CPU.
                                match gpu {
                                    Some(gpu) if into_burn => match gpu.upload(&img) {
                                        Ok(up) => Ok(Prepared::Uploaded(img, Some(up))),
                                        Err(e @ GpuError::Lost(_)) => Err(e),
                                        Err(e) => {
                                            eprintln!("warning: {}: resampled on the CPU: {e}", p.display());
                                            Ok(Prepared::Uploaded(img, None))
                                        }
                                    },
                                    // The model does not run on this GPU: even its loss only
                                    // moves the resampling to the CPU.
                                    Some(gpu) => match crate::gpu::sweep_crops(gpu, &img, transforms) {
                                        Ok(crops) => Ok(Prepared::Crops(crops)),
                                        Err(e) => {
                                            eprintln!("warning: {}: resampled on the CPU: {e}", p.display());
                                            Ok(Prepared::Crops(cpu(&img)))
                                        }
                                    },
                                    None => Ok(Prepared::Crops(cpu(&img))),
                                }
                            })
                        })
                        .collect();
                    let mut batch = Batch {
                        indices: Vec::new(),
                        inputs: if into_burn {
                            Inputs::Uploaded(Vec::new())
                        } else {
                            Inputs::Crops(vec![Vec::new(); transforms.len()])
                        },
                        failed: Vec::new(),
                        gpu_error: None,
                    };
                    for (i, result) in decoded.into_iter().enumerate() {
                        match (result, &mut batch.inputs) {
                            (Ok(Ok(Prepared::Crops(per_res))), Inputs::Crops(slots)) => {
                                batch.indices.push(first + i);
                                for (slot, img) in slots.iter_mut().zip(per_res) {
                                    slot.push(img);
                                }
                            }
                            (Ok(Ok(Prepared::Uploaded(img, up))), Inputs::Uploaded(list)) => {
                                batch.indices.push(first + i);
                                list.push((img, up));
                            }
                            (Ok(Err(e)), _) => batch.gpu_error = Some(e),
                            (Ok(Ok(_)), _) => unreachable!("every image of a run is prepared the same way"),
                            (Err(e), _) => batch.failed.push(e),
                        }
                    }
                    if tx.send(batch).is_err() {
                        return; // the consumer stopped
                    }
                }
            })?;
        let mut done = 0;
        for batch in rx {
            if let Some(e) = batch.gpu_error {
                return Err(e.into());
            }
            done += batch.indices.len() + batch.failed.len();
            failures.extend(batch.failed);
            if !batch.indices.is_empty() {
                for (r, t) in transforms.iter().enumerate() {
                    let input = match (&batch.inputs, gpu) {
                        (Inputs::Crops(crops), _) => input_batch(&crops[r], recipe.mean, recipe.std, device),
                        (Inputs::Uploaded(list), Some(gpu)) => {
                            let refs: Vec<_> = list.iter().map(|(img, up)| (img, up.as_ref())).collect();
                            match gpu.batch_input(&refs, t, recipe.mean, recipe.std) {
                                Ok(Some(input)) => input,
                                Err(e @ GpuError::Lost(_)) => return Err(e.into()),
                                // Over one storage buffer, or the GPU failed otherwise: the CPU
                                // path's input.
                                failed => {
                                    if let Err(e) = failed {
                                        eprintln!("warning: a batch's input made on the CPU: {e}");
                                    }
                                    let crops: Vec<_> = list.iter().map(|(img, _)| t.apply(img)).collect();
                                    input_batch(&crops, recipe.mean, recipe.std, device)
                                }
                            }
                        }
                        (Inputs::Uploaded(_), None) => unreachable!("uploads need the GPU"),
                    };
                    let out = model.net.forward(input);
                    let read = rows(&out.pooled).and_then(|pooled| Ok((pooled, rows(&out.logits)?)));
                    let (pooled, logits) = match read {
                        // Burn failed to read its result: on a GPU that is lost?
                        Err(e) if crate::gpu::burn_device_lost(device) => {
                            return Err(GpuError::Lost(format!("{e:#}")).into());
                        }
                        read => read?,
                    };
                    on_output(r, &batch.indices, pooled, logits);
                }
            }
            if !progress(done, files.len()) {
                break; // dropping the receiver stops the decoding thread at its next send
            }
        }
        Ok(())
    })?;
    Ok(failures)
}

/// Histogram of pooled activations.
#[derive(Clone, Debug, Serialize)]
pub struct Histogram {
    /// `bins + 1` bin edges.
    pub edges: Vec<f64>,
    /// Values per bin.
    pub counts: Vec<u64>,
}

/// Statistics of pooled activations at one resolution.
#[derive(Clone, Debug, Serialize)]
pub struct PooledStats {
    /// Values seen (images × features).
    pub values: u64,
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub std: f64,
    /// Share of exact zeros (units the ReLU switched off for the whole image).
    pub zero_share: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// Quantiles (from a uniform sample of up to 2^20 values when there are more).
    pub quantiles: Vec<Quantile>,
    /// 50-bin histogram over [0, max] (same sample).
    pub histogram: Histogram,
}

/// Streaming accumulator for `PooledStats`: exact moments, a reservoir sample for the rest.
pub struct StatsAccumulator {
    n: u64,
    sum: f64,
    sum_sq: f64,
    zeros: u64,
    min: f64,
    max: f64,
    sample: Vec<f32>,
    rng: SeededRng,
}

const RESERVOIR: usize = 1 << 20;
/// Quantiles reported for pooled activations.
pub const POOLED_QUANTILES: [f64; 7] = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99];

impl Default for StatsAccumulator {
    fn default() -> Self {
        Self {
            n: 0,
            sum: 0.0,
            sum_sq: 0.0,
            zeros: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sample: Vec::new(),
            rng: SeededRng::new(0),
        }
    }
}

impl StatsAccumulator {
    /// Adds values.
    pub fn extend(&mut self, values: &[f32]) {
        for &v in values {
            let x = f64::from(v);
            self.n += 1;
            self.sum += x;
            self.sum_sq += x * x;
            self.zeros += u64::from(v == 0.0);
            self.min = self.min.min(x);
            self.max = self.max.max(x);
            if self.sample.len() < RESERVOIR {
                self.sample.push(v);
            } else {
                let j = self.rng.below(self.n) as usize;
                if j < RESERVOIR {
                    self.sample[j] = v;
                }
            }
        }
    }

    /// The statistics so far.
    #[must_use]
    pub fn finish(&self) -> PooledStats {
        let n = self.n.max(1) as f64;
        let mean = self.sum / n;
        let mut sorted: Vec<f64> = self.sample.iter().map(|&v| f64::from(v)).collect();
        sorted.sort_by(f64::total_cmp);
        let top = if self.max.is_finite() && self.max > 0.0 {
            self.max
        } else {
            1.0
        };
        let bins = 50;
        let edges: Vec<f64> = (0..=bins).map(|i| top * i as f64 / bins as f64).collect();
        let mut counts = vec![0u64; bins];
        for &v in &sorted {
            let b = ((v / top) * bins as f64).floor().clamp(0.0, (bins - 1) as f64) as usize;
            counts[b] += 1;
        }
        PooledStats {
            values: self.n,
            mean,
            std: (self.sum_sq / n - mean * mean).max(0.0).sqrt(),
            zero_share: self.zeros as f64 / n,
            min: if self.n > 0 { self.min } else { 0.0 },
            max: if self.n > 0 { self.max } else { 0.0 },
            quantiles: POOLED_QUANTILES
                .iter()
                .map(|&q| Quantile {
                    q,
                    value: quantile(&sorted, q),
                })
                .collect(),
            histogram: Histogram { edges, counts },
        }
    }
}

/// Indices of the `k` largest values, largest first.
#[must_use]
pub fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    idx.truncate(k);
    idx
}

/// For each dataset class, the model output it corresponds to: by name when the model has class
/// names, else by position when the counts agree (torchvision's ImageFolder convention).
pub fn class_map(dataset_classes: &[String], model: &Model) -> Result<Vec<usize>, String> {
    match &model.class_names {
        Some(names) => {
            let mut out = Vec::new();
            let mut unknown = Vec::new();
            for c in dataset_classes {
                match names.iter().position(|n| n.eq_ignore_ascii_case(c)) {
                    Some(i) => out.push(i),
                    None => unknown.push(c.clone()),
                }
            }
            if unknown.is_empty() {
                Ok(out)
            } else {
                Err(format!(
                    "dataset classes not among the model's class names: {}",
                    unknown.join(", ")
                ))
            }
        }
        None if dataset_classes.len() == model.classes => Ok((0..model.classes).collect()),
        None => Err(format!(
            "the dataset has {} classes, the model {} outputs and no class names to match them by",
            dataset_classes.len(),
            model.classes
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_largest_first() {
        assert_eq!(top_k(&[0.1, 3.0, -1.0, 2.0], 2), vec![1, 3]);
    }

    #[test]
    fn stats_are_exact_on_small_inputs() {
        let mut acc = StatsAccumulator::default();
        acc.extend(&[0.0, 1.0, 2.0, 3.0]);
        let s = acc.finish();
        assert_eq!((s.values, s.mean, s.zero_share, s.max), (4, 1.5, 0.25, 3.0));
        assert!((s.std - 1.25f64.sqrt()).abs() < 1e-12);
        assert_eq!(s.histogram.counts.iter().sum::<u64>(), 4);
        assert_eq!(s.quantiles[3].value, 1.5);
    }
}
