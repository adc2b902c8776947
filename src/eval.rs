//! Running a model over images at one or more test resolutions (`Sweep`): top-1/top-5 and the
//! statistics of the pooled activations. Each image is decoded once and resampled for every
//! resolution (`inputs`); a decoding thread pool keeps the next batch ready while the model runs
//! (bounded channel).

use std::path::PathBuf;
use std::sync::mpsc::sync_channel;

use rayon::prelude::*;
use serde::Serialize;

use crate::backend::Backend;
use crate::data::{DecodeError, DecodeLimits, SeededRng, TestTransform, decode_file};
use crate::gpu::GpuError;
use crate::inputs::{InputPath, WithPath};
use crate::model::{Model, Recipe, rows};
use crate::stats::{Quantile, Tally, quantiles};

/// A run of a model over files at one or more test resolutions.
#[derive(Clone, Copy)]
pub struct Sweep<'a> {
    /// The model.
    pub model: &'a Model,
    /// Where it runs, and where its inputs are made (`Backend::inputs`).
    pub backend: &'a Backend,
    /// Test transform and normalisation (the model's own, or the user's).
    pub recipe: Recipe,
    /// The images.
    pub files: &'a [PathBuf],
    /// Test resolutions.
    pub resolutions: &'a [usize],
    /// Images per forward pass.
    pub batch_size: usize,
}

/// One batch's results at one resolution.
pub struct BatchOutput<'a> {
    /// Index into `Sweep::resolutions`.
    pub res_index: usize,
    /// Indices into `Sweep::files` of the images that decoded, in order.
    pub indices: &'a [usize],
    /// Their pooled features, one row per image.
    pub pooled: Vec<Vec<f32>>,
    /// Their logits, one row per image.
    pub logits: Vec<Vec<f32>>,
}

impl<'a> Sweep<'a> {
    /// A sweep with the model's own recipe.
    #[must_use]
    pub fn new(
        model: &'a Model,
        backend: &'a Backend,
        files: &'a [PathBuf],
        resolutions: &'a [usize],
        batch_size: usize,
    ) -> Self {
        Self {
            model,
            backend,
            recipe: model.recipe,
            files,
            resolutions,
            batch_size,
        }
    }

    /// The test transforms of the sweep's resolutions.
    #[must_use]
    pub fn transforms(&self) -> Vec<TestTransform> {
        self.resolutions
            .iter()
            .map(|&res| TestTransform {
                res,
                crop_ratio: self.recipe.crop_ratio,
                interpolation: self.recipe.interpolation,
            })
            .collect()
    }

    /// Runs the sweep, calling `on_output` per batch and resolution and `progress(done, total)`
    /// as batches finish; `progress` returning false stops the run early (cancellation). Each
    /// image is decoded once (a decoding thread pool keeps the next batch ready while the model
    /// runs, through a bounded channel) and its inputs made on the backend's input path. Returns
    /// the files that could not be decoded.
    pub fn run(
        &self,
        on_output: impl FnMut(BatchOutput<'_>),
        progress: impl FnMut(usize, usize) -> bool,
    ) -> anyhow::Result<Vec<DecodeError>> {
        self.backend.inputs().with_path(Run {
            sweep: self,
            on_output,
            progress,
        })
    }
}

/// `Sweep::run` on one input path.
struct Run<'s, 'a, O, P> {
    sweep: &'s Sweep<'a>,
    on_output: O,
    progress: P,
}

/// One decoded batch: the indices (into the file list) that decoded, their prepared inputs, and
/// the files that failed.
struct Batch<T> {
    indices: Vec<usize>,
    prepared: Vec<T>,
    failed: Vec<DecodeError>,
    /// The GPU the model runs on was lost: the run stops with this.
    gpu_error: Option<GpuError>,
}

impl<O, F> WithPath for Run<'_, '_, O, F>
where
    O: FnMut(BatchOutput<'_>),
    F: FnMut(usize, usize) -> bool,
{
    type Output = anyhow::Result<Vec<DecodeError>>;

    fn run<P: InputPath>(mut self, path: &P) -> Self::Output {
        let sweep = self.sweep;
        let (files, batch_size) = (sweep.files, sweep.batch_size.max(1));
        let transforms = sweep.transforms();
        let transforms = &transforms[..]; // shared by the decoding thread and the model loop
        let device = &sweep.backend.device;
        let (tx, rx) = sync_channel::<Batch<P::Prepared>>(2);
        let mut failures = Vec::new();
        std::thread::scope(|scope| -> anyhow::Result<()> {
            // `move`: the sender must drop when decoding ends, or the loop below never finishes.
            std::thread::Builder::new()
                .name("eval-decode".into())
                .spawn_scoped(scope, move || {
                    for (chunk_index, chunk) in files.chunks(batch_size).enumerate() {
                        let decoded: Vec<_> = chunk
                            .par_iter()
                            .map(|p| {
                                decode_file(p, DecodeLimits::default()).map(|img| path.prepare(p, img, transforms))
                            })
                            .collect();
                        let mut batch = Batch {
                            indices: Vec::new(),
                            prepared: Vec::new(),
                            failed: Vec::new(),
                            gpu_error: None,
                        };
                        for (i, result) in decoded.into_iter().enumerate() {
                            match result {
                                Ok(Ok(prepared)) => {
                                    batch.indices.push(chunk_index * batch_size + i);
                                    batch.prepared.push(prepared);
                                }
                                Ok(Err(e)) => batch.gpu_error = Some(e),
                                Err(e) => batch.failed.push(e),
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
                        let input = path.batch(&batch.prepared, r, t, &sweep.recipe, device)?;
                        let out = sweep.model.net.forward(input);
                        let read = rows(&out.pooled).and_then(|pooled| Ok((pooled, rows(&out.logits)?)));
                        let (pooled, logits) = match read {
                            // Burn failed to read its result: on a GPU that is lost?
                            Err(e) if sweep.backend.probe_lost() => {
                                return Err(GpuError::Lost(format!("{e:#}")).into());
                            }
                            read => read?,
                        };
                        (self.on_output)(BatchOutput {
                            res_index: r,
                            indices: &batch.indices,
                            pooled,
                            logits,
                        });
                    }
                }
                if !(self.progress)(done, files.len()) {
                    break; // dropping the receiver stops the decoding thread at its next send
                }
            }
            Ok(())
        })?;
        Ok(failures)
    }
}

/// Top-1 of a sweep at each of its resolutions, `targets[i]` being the model output of
/// `files[i]`'s class; images that do not decode are not scored.
pub fn top1_per_resolution(sweep: &Sweep<'_>, targets: &[usize]) -> anyhow::Result<Vec<f64>> {
    let mut tallies = vec![Tally::default(); sweep.resolutions.len()];
    sweep.run(
        |out| {
            for (&i, l) in out.indices.iter().zip(&out.logits) {
                tallies[out.res_index].add(l, targets[i]);
            }
        },
        |_, _| true,
    )?;
    Ok(tallies.iter().map(Tally::top1_share).collect())
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
            quantiles: quantiles(&sorted, &POOLED_QUANTILES),
            histogram: Histogram { edges, counts },
        }
    }
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
