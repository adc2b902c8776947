//! Running a model over images at one or more test resolutions (`Sweep`): top-1/top-5 and the
//! statistics of the pooled activations. Each image is decoded once and resampled for every
//! resolution (`inputs`); a decoding thread pool keeps the next batch ready while the model runs
//! (bounded channel).

use std::path::PathBuf;
use std::sync::mpsc::sync_channel;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::data::{DecodeError, DecodeLimits, SeededRng, TestTransform, decode_file};
use crate::gpu::GpuError;
use crate::inputs::{InputPath, WithPath};
use crate::model::{Model, Recipe, rows};
use crate::stats::{FlipCounts, Quantile, Scored, Tally, quantiles};

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
    /// The model's multiply-accumulates per image at this resolution (`model::cost`).
    pub macs_per_image: u64,
    /// Wall time of the model on this batch: the forward pass and reading its outputs (on a
    /// GPU with the inputs resampled there, that includes finishing the resampling; on the CPU
    /// the decoding and resampling run beside it).
    pub model_seconds: f64,
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
            .map(|&res| self.recipe.test_transform(res))
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
                        let started = std::time::Instant::now();
                        let (read, macs) = crate::model::cost::counting(|| {
                            let out = sweep.model.net.forward(input);
                            rows(&out.pooled).and_then(|pooled| Ok((pooled, rows(&out.logits)?)))
                        });
                        let model_seconds = started.elapsed().as_secs_f64();
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
                            macs_per_image: macs / batch.indices.len() as u64,
                            model_seconds,
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

/// Top-1 and multiply-accumulates per image of a sweep at each of its resolutions,
/// `targets[i]` being the model output of `files[i]`'s class; images that do not decode are not
/// scored.
pub fn top1_per_resolution(sweep: &Sweep<'_>, targets: &[usize]) -> anyhow::Result<Vec<(f64, u64)>> {
    let mut tallies = vec![Tally::default(); sweep.resolutions.len()];
    let mut macs = vec![0; sweep.resolutions.len()];
    sweep.run(
        |out| {
            macs[out.res_index] = out.macs_per_image;
            for (&i, l) in out.indices.iter().zip(&out.logits) {
                tallies[out.res_index].add(l, targets[i]);
            }
        },
        |_, _| true,
    )?;
    Ok(tallies.iter().map(Tally::top1_share).zip(macs).collect())
}

/// Each image's result at each resolution of a sweep: what the resolution-flip browser and
/// `fixres eval --per-image` show, and the flip counts between two resolutions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PerImage {
    /// `results[r][i]`: image `i` at resolution `r`; `None` where it was not scored (not
    /// decoded, or the sweep stopped before it).
    pub results: Vec<Vec<Option<Scored>>>,
}

impl PerImage {
    /// An empty table for `resolutions` × `images`.
    #[must_use]
    pub fn new(resolutions: usize, images: usize) -> Self {
        Self {
            results: vec![vec![None; images]; resolutions],
        }
    }

    /// Scores one batch's logits, `targets[i]` being the model output of image `i`'s class;
    /// returns the batch's results in its order.
    pub fn record(&mut self, out: &BatchOutput<'_>, targets: &[usize]) -> Vec<Scored> {
        let row = &mut self.results[out.res_index];
        out.indices
            .iter()
            .zip(&out.logits)
            .map(|(&i, l)| *row[i].insert(Scored::of(l, targets[i])))
            .collect()
    }

    /// The same results for the images in another order: image `j` of the result is image
    /// `positions[j]` of this one.
    #[must_use]
    pub fn permuted(&self, positions: &[usize]) -> Self {
        Self {
            results: self
                .results
                .iter()
                .map(|row| positions.iter().map(|&p| row[p]).collect())
                .collect(),
        }
    }

    /// Top-1 flips from resolution index `from` to `to`.
    #[must_use]
    pub fn flips(&self, from: usize, to: usize) -> FlipCounts {
        FlipCounts::count(&self.results[from], &self.results[to])
    }

    /// One CSV row per image × resolution scored: `file,class,res,top1,top5,predicted,
    /// p_predicted,p_true`, `class_of[i]` being image `i`'s dataset class and `output_name` how a
    /// model output is named (its class name, else its index).
    #[must_use]
    pub fn csv(
        &self,
        resolutions: &[usize],
        files: &[PathBuf],
        class_of: &[&str],
        output_name: impl Fn(usize) -> String,
    ) -> String {
        let quote = |s: &str| {
            if s.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_owned()
            }
        };
        let mut out = String::from("file,class,res,top1,top5,predicted,p_predicted,p_true\n");
        for (i, file) in files.iter().enumerate() {
            for (r, &res) in resolutions.iter().enumerate() {
                if let Some(s) = &self.results[r][i] {
                    out.push_str(&format!(
                        "{},{},{res},{},{},{},{},{}\n",
                        quote(&crate::fsutil::path_text(file)),
                        quote(class_of[i]),
                        u8::from(s.top1),
                        u8::from(s.top5),
                        quote(&output_name(s.predicted)),
                        s.p_predicted,
                        s.p_true
                    ));
                }
            }
        }
        out
    }
}

/// Top-1 of a model before and after a remedy (at K_test, on the same images), where the
/// folder's classes match the model's.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Scores {
    /// Images scored.
    pub images: usize,
    /// Top-1 of the model as it came (NaN without images: `training::val_top1`).
    pub top1_before: f64,
    /// Top-1 after the remedy.
    pub top1_after: f64,
}

impl Scores {
    /// The scores from the tallies of the same images before and after.
    #[must_use]
    pub fn of(before: &Tally, after: &Tally) -> Self {
        Self {
            images: before.scored,
            top1_before: crate::training::val_top1(before),
            top1_after: crate::training::val_top1(after),
        }
    }

    /// "top-1 12.30% -> 45.60% (39 images)", or why there are no scores.
    #[must_use]
    pub fn text(scores: Option<&Self>, not_scored: Option<&str>) -> String {
        match scores {
            Some(s) => format!(
                "top-1 {:.2}% -> {:.2}% ({} images)",
                100.0 * s.top1_before,
                100.0 * s.top1_after,
                s.images
            ),
            None => not_scored.unwrap_or_default().to_owned(),
        }
    }
}

/// What running the model costs at one resolution: multiply-accumulates per image (from the
/// layers' shapes) and the measured throughput of the model alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    /// Multiply-accumulates per image.
    pub macs: u64,
    /// Images through the model.
    pub images: usize,
    /// Seconds the model took for them.
    pub seconds: f64,
    /// Images and seconds of the batches after the first: the first batch at a resolution
    /// pays one-off costs (a GPU compiles its kernels for the new shapes), so the rate is taken
    /// from the others when there are any.
    warm: (usize, f64),
}

impl Cost {
    /// Adds one batch's output.
    pub fn add(&mut self, out: &BatchOutput<'_>) {
        self.record(out.macs_per_image, out.indices.len(), out.model_seconds);
    }

    /// Adds a batch of `images` that took `seconds`, at `macs_per_image`.
    pub fn record(&mut self, macs_per_image: u64, images: usize, seconds: f64) {
        if self.images > 0 {
            self.warm.0 += images;
            self.warm.1 += seconds;
        }
        self.macs = macs_per_image;
        self.images += images;
        self.seconds += seconds;
    }

    /// Adds the cost of another shard of the same sweep (`fixres merge`): each shard paid its
    /// own first batch, so the rate is taken from each shard's later batches.
    pub fn merge(&mut self, other: &Self) {
        self.macs = if self.images > 0 { self.macs } else { other.macs };
        self.images += other.images;
        self.seconds += other.seconds;
        self.warm.0 += other.warm.0;
        self.warm.1 += other.warm.1;
    }

    /// Images and seconds the rate is taken from: the batches after the first, if any.
    fn timed(&self) -> (usize, f64) {
        if self.warm.0 > 0 {
            self.warm
        } else {
            (self.images, self.seconds)
        }
    }

    /// Images per second through the model (0 before any).
    #[must_use]
    pub fn images_per_s(&self) -> f64 {
        let (n, s) = self.timed();
        if s > 0.0 { n as f64 / s } else { 0.0 }
    }

    /// Milliseconds per image at the sweep's batch size.
    #[must_use]
    pub fn ms_per_image(&self) -> f64 {
        let (n, s) = self.timed();
        if n > 0 { 1e3 * s / n as f64 } else { 0.0 }
    }
}

/// The points of `(cost, accuracy)` that no other point beats, cheaper (or as cheap) and at least
/// as accurate: the Pareto front, by increasing cost.
#[must_use]
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by(|&a, &b| {
        points[a]
            .0
            .total_cmp(&points[b].0)
            .then(points[b].1.total_cmp(&points[a].1))
    });
    let mut best = f64::NEG_INFINITY;
    let mut front = Vec::new();
    for i in order {
        if points[i].1 > best {
            best = points[i].1;
            front.push(i);
        }
    }
    front
}

/// Histogram of pooled activations.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Histogram {
    /// `bins + 1` bin edges.
    pub edges: Vec<f64>,
    /// Values per bin.
    pub counts: Vec<u64>,
}

/// Statistics of pooled activations at one resolution.
#[derive(Clone, Debug, Serialize, Deserialize)]
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

/// The exact part of a `StatsAccumulator`: counts, sums, extremes. The floats are stored as
/// their bits: JSON has no infinity (the extremes before any value), and serde_json (built
/// without its `float_roundtrip` feature) may read a decimal back one ulp off.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatsState {
    /// Values seen.
    pub n: u64,
    /// Their sum.
    #[serde(with = "f64_bits")]
    pub sum: f64,
    /// Their sum of squares.
    #[serde(with = "f64_bits")]
    pub sum_sq: f64,
    /// Exact zeros.
    pub zeros: u64,
    /// Smallest (+inf before any).
    #[serde(with = "f64_bits")]
    pub min: f64,
    /// Largest (-inf before any).
    #[serde(with = "f64_bits")]
    pub max: f64,
}

/// An f64 (de)serialised as its IEEE-754 bits, exactly.
mod f64_bits {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(v.to_bits())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        u64::deserialize(d).map(f64::from_bits)
    }
}
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

    /// The exact part of the state, for a shard's part (`eval_report`); the sample goes beside.
    #[must_use]
    pub fn state(&self) -> StatsState {
        StatsState {
            n: self.n,
            sum: self.sum,
            sum_sq: self.sum_sq,
            zeros: self.zeros,
            min: self.min,
            max: self.max,
        }
    }

    /// An accumulator from a part's state and sample.
    #[must_use]
    pub fn from_state(state: &StatsState, sample: Vec<f32>) -> Self {
        Self {
            n: state.n,
            sum: state.sum,
            sum_sq: state.sum_sq,
            zeros: state.zeros,
            min: state.min,
            max: state.max,
            sample,
            ..Self::default()
        }
    }

    /// The accumulator of the values of several shards together. Counts, zeros, min and max are
    /// exact; the sums are added (equal to the one-process sums up to rounding); the sample is
    /// all the values when the shards' samples hold all of theirs and together fit the reservoir
    /// (then quantiles and histogram are exactly the one process's), else a seeded draw from each
    /// shard's sample in proportion to its values.
    pub fn merged<'a>(parts: impl IntoIterator<Item = &'a Self>) -> Self {
        let parts: Vec<&Self> = parts.into_iter().collect();
        let mut out = Self::default();
        for p in &parts {
            out.n += p.n;
            out.sum += p.sum;
            out.sum_sq += p.sum_sq;
            out.zeros += p.zeros;
            out.min = out.min.min(p.min);
            out.max = out.max.max(p.max);
        }
        let complete = parts.iter().all(|p| p.sample.len() as u64 == p.n);
        if complete && out.n <= RESERVOIR as u64 {
            out.sample = parts.iter().flat_map(|p| p.sample.iter().copied()).collect();
        } else {
            for p in &parts {
                let want = ((RESERVOIR as u128 * u128::from(p.n)) / u128::from(out.n.max(1))) as usize;
                let mut s = p.sample.clone();
                out.rng.shuffle(&mut s);
                s.truncate(want.min(s.len()));
                out.sample.extend(s);
            }
        }
        out
    }

    /// The uniform sample of the values so far (all of them, up to 2^20).
    #[must_use]
    pub fn sample(&self) -> &[f32] {
        &self.sample
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

/// How a dataset's class folders name a model's outputs (`match_classes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassRule {
    /// By the model's class names, in any case (`tabby/`).
    Name,
    /// By ImageNet-1k WordNet id (`n02123045/`, ImageNet's own folders and Imagenette's), for a
    /// model of 1000 outputs.
    WordnetId,
    /// By output index (`281/`, ImageNet-V2's folders `0/` … `999/`).
    Index,
    /// By position: a model without class names and as many outputs as the dataset has classes
    /// (torchvision's ImageFolder convention, the sorted folders in output order).
    Position,
}

impl ClassRule {
    /// How the messages name the rule ("by WordNet id").
    #[must_use]
    pub fn text(self) -> &'static str {
        match self {
            Self::Name => "by name",
            Self::WordnetId => "by WordNet id",
            Self::Index => "by index",
            Self::Position => "by position",
        }
    }
}

/// A dataset's classes matched to a model's outputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassMatch {
    /// The rule that matched every class.
    pub rule: ClassRule,
    /// The output of each dataset class, in the dataset's order.
    pub outputs: Vec<usize>,
}

/// A rule `match_classes` tried that left dataset classes unmatched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriedRule {
    /// The rule.
    pub rule: ClassRule,
    /// The dataset classes it did not match, in the dataset's order.
    pub unmatched: Vec<String>,
    /// The model's side under the rule, for the message: its first two names or ids, or the
    /// range of indices.
    pub model_side: String,
}

/// No rule matches every dataset class to a model output.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ClassMismatch {
    /// Classes of the dataset.
    pub dataset_classes: usize,
    /// Outputs of the model.
    pub outputs: usize,
    /// Whether the model has class names (without them, matching by position is the fallback).
    pub has_names: bool,
    /// The rules tried, in order.
    pub tried: Vec<TriedRule>,
}

impl std::fmt::Display for ClassMismatch {
    /// "dataset classes match none of the model's 1000 classes: by name (e.g. 'animals', 'fruit'
    /// vs 'tench', 'goldfish'), by WordNet id (vs 'n01440764', 'n01443537'), by index (vs
    /// 0..999)": per rule, how many classes it left unmatched when not all, two of them (unless
    /// they are the ones the rule before showed) and the model's side.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let none = self.tried.iter().all(|t| t.unmatched.len() == self.dataset_classes);
        let verb = if none { "match none of" } else { "do not all match" };
        write!(f, "dataset classes {verb} the model's {} classes", self.outputs)?;
        let mut shown: Option<&[String]> = None;
        for (i, t) in self.tried.iter().enumerate() {
            let examples = &t.unmatched[..t.unmatched.len().min(2)];
            let mut inside = Vec::new();
            if t.unmatched.len() < self.dataset_classes {
                inside.push(format!("{} of {} unmatched,", t.unmatched.len(), self.dataset_classes));
            }
            if shown != Some(examples) {
                let quoted: Vec<String> = examples.iter().map(|c| format!("'{c}'")).collect();
                inside.push(format!("e.g. {}", quoted.join(", ")));
                shown = Some(examples);
            }
            inside.push(format!("vs {}", t.model_side));
            let sep = if i == 0 { ": " } else { ", " };
            write!(f, "{sep}{} ({})", t.rule.text(), inside.join(" "))?;
        }
        if !self.has_names {
            write!(
                f,
                "; the model has no class names, and by position its {} outputs need as many dataset classes (this one has {})",
                self.outputs, self.dataset_classes
            )?;
        }
        Ok(())
    }
}

/// The model output a folder named `class` stands for under `rule`, for a model with `names`
/// (if known) and `outputs` outputs.
fn output_of(rule: ClassRule, class: &str, names: Option<&[String]>, outputs: usize) -> Option<usize> {
    match rule {
        ClassRule::Name => names?.iter().position(|n| n.eq_ignore_ascii_case(class)),
        ClassRule::WordnetId => crate::model::imagenet::wnid_index(class),
        ClassRule::Index => {
            let digits = !class.is_empty() && class.bytes().all(|b| b.is_ascii_digit());
            digits
                .then(|| class.parse::<usize>().ok())
                .flatten()
                .filter(|&i| i < outputs)
        }
        ClassRule::Position => None, // not per folder
    }
}

/// For each dataset class, the model output it stands for, by the first rule that matches every
/// class: by name when the model has class names, by ImageNet-1k WordNet id when it has 1000
/// outputs, by index when every class is a number below `outputs`; a subset of the model's
/// classes is fine. A model without class names whose outputs are as many as the classes maps
/// them by position. Without a match, the error names each rule tried, with examples.
pub fn match_classes(
    dataset_classes: &[String],
    names: Option<&[String]>,
    outputs: usize,
) -> Result<ClassMatch, ClassMismatch> {
    let mut rules = Vec::new();
    if names.is_some() {
        rules.push(ClassRule::Name);
    }
    if outputs == crate::model::imagenet::CLASSES {
        rules.push(ClassRule::WordnetId);
    }
    rules.push(ClassRule::Index);
    let mut tried = Vec::new();
    for rule in rules {
        let found: Vec<Option<usize>> = dataset_classes
            .iter()
            .map(|c| output_of(rule, c, names, outputs))
            .collect();
        if let Some(outputs) = found.iter().copied().collect::<Option<Vec<usize>>>() {
            return Ok(ClassMatch { rule, outputs });
        }
        let first_two = |side: &dyn Fn(usize) -> Option<String>| {
            let two: Vec<String> = (0..outputs.min(2)).filter_map(side).map(|s| format!("'{s}'")).collect();
            two.join(", ")
        };
        let model_side = match rule {
            ClassRule::Name => first_two(&|i| names.and_then(|n| n.get(i)).cloned()),
            ClassRule::WordnetId => first_two(&|i| crate::model::imagenet::wnid(i).map(str::to_owned)),
            _ => format!("0..{}", outputs.saturating_sub(1)),
        };
        tried.push(TriedRule {
            rule,
            unmatched: dataset_classes
                .iter()
                .zip(&found)
                .filter(|(_, o)| o.is_none())
                .map(|(c, _)| c.clone())
                .collect(),
            model_side,
        });
    }
    if names.is_none() && dataset_classes.len() == outputs {
        return Ok(ClassMatch {
            rule: ClassRule::Position,
            outputs: (0..outputs).collect(),
        });
    }
    Err(ClassMismatch {
        dataset_classes: dataset_classes.len(),
        outputs,
        has_names: names.is_some(),
        tried,
    })
}

/// For each dataset class, the model output it stands for (`match_classes` with the model's
/// class names and outputs).
pub fn class_map(dataset_classes: &[String], model: &Model) -> Result<Vec<usize>, ClassMismatch> {
    match_classes(dataset_classes, model.class_names.as_deref(), model.classes).map(|m| m.outputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// torchvision's 1000 ImageNet-1k names, as the embedded model carries them.
    fn imagenet_names() -> Vec<String> {
        include_str!("../assets/models/imagenet_classes.txt")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|&c| c.to_owned()).collect()
    }

    #[test]
    fn folders_match_by_name_in_any_case_and_a_subset_is_fine() {
        let names = imagenet_names();
        let m = match_classes(&strings(&["Tabby", "espresso"]), Some(&names), 1000).unwrap();
        assert_eq!(
            m,
            ClassMatch {
                rule: ClassRule::Name,
                outputs: vec![281, 967]
            }
        );
    }

    #[test]
    fn imagenet_val_and_imagenette_folders_named_by_wordnet_id_map_into_the_1000_classes() {
        // Imagenette's ten folders: they named no class of the embedded model.
        let imagenette = [
            ("n01440764", "tench"),
            ("n02102040", "English springer"),
            ("n02979186", "cassette player"),
            ("n03000684", "chain saw"),
            ("n03028079", "church"),
            ("n03394916", "French horn"),
            ("n03417042", "garbage truck"),
            ("n03425413", "gas pump"),
            ("n03445777", "golf ball"),
            ("n03888257", "parachute"),
        ];
        let names = imagenet_names();
        let folders: Vec<String> = imagenette.iter().map(|(id, _)| (*id).to_owned()).collect();
        for model_names in [Some(&names[..]), None] {
            let m = match_classes(&folders, model_names, 1000).unwrap();
            assert_eq!(m.rule, ClassRule::WordnetId);
            let named: Vec<&str> = m.outputs.iter().map(|&o| names[o].as_str()).collect();
            let expected: Vec<&str> = imagenette.iter().map(|(_, n)| *n).collect();
            assert_eq!(named, expected);
        }
        // Not a rule for a model of another size.
        assert!(match_classes(&folders[..2], None, 10).is_err());
    }

    #[test]
    fn imagenet_v2_folders_named_by_index_map_by_number_not_by_sorted_position() {
        // ImageFolder sorts "0", "1", "10", "100", …: by position "10" would be output 2.
        let mut folders: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
        folders.sort();
        let expected: Vec<usize> = folders.iter().map(|f| f.parse().unwrap()).collect();
        for names in [Some(imagenet_names()), None] {
            let m = match_classes(&folders, names.as_deref(), 1000).unwrap();
            assert_eq!(
                m,
                ClassMatch {
                    rule: ClassRule::Index,
                    outputs: expected.clone()
                }
            );
        }
        // A subset, and leading zeros.
        let m = match_classes(&strings(&["007", "281"]), None, 1000).unwrap();
        assert_eq!(m.outputs, vec![7, 281]);
        for not_an_index in ["1000", "-1", "+1", " 1", "1.0", ""] {
            let e = match_classes(&strings(&[not_an_index]), None, 1000).unwrap_err();
            assert_eq!(e.tried.last().unwrap().unmatched, strings(&[not_an_index]));
        }
    }

    #[test]
    fn a_model_without_class_names_maps_as_many_classes_by_position() {
        let folders: Vec<String> = (0..10).map(|c| format!("c{c}")).collect();
        let m = match_classes(&folders, None, 10).unwrap();
        assert_eq!(
            m,
            ClassMatch {
                rule: ClassRule::Position,
                outputs: (0..10).collect()
            }
        );
        // With class names that differ, position is no rule (the names say what the outputs are).
        let names = strings(&["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]);
        assert!(match_classes(&folders, Some(&names), 10).is_err());
    }

    #[test]
    fn the_model_names_come_before_numbers() {
        // A model whose class names are numbers, not in output order: "0" is output 1.
        let names = strings(&["2", "0", "1"]);
        let m = match_classes(&strings(&["0", "2"]), Some(&names), 3).unwrap();
        assert_eq!(
            m,
            ClassMatch {
                rule: ClassRule::Name,
                outputs: vec![1, 0]
            }
        );
    }

    #[test]
    fn own_classes_are_refused_naming_each_rule_tried_with_two_examples_a_side() {
        let e = match_classes(&strings(&["animals", "fruit", "scenes"]), Some(&imagenet_names()), 1000).unwrap_err();
        assert_eq!(
            e.to_string(),
            "dataset classes match none of the model's 1000 classes: by name (e.g. 'animals', 'fruit' vs \
             'tench', 'goldfish'), by WordNet id (vs 'n01440764', 'n01443537'), by index (vs 0..999)"
        );
        assert_eq!(
            e.tried.iter().map(|t| t.rule).collect::<Vec<_>>(),
            [ClassRule::Name, ClassRule::WordnetId, ClassRule::Index]
        );
        assert_eq!(e.tried[0].unmatched, strings(&["animals", "fruit", "scenes"]));
    }

    #[test]
    fn a_partial_match_is_counted_and_each_rule_shows_its_own_unmatched() {
        let folders = strings(&["fruit", "n01440764", "tabby"]);
        let e = match_classes(&folders, Some(&imagenet_names()), 1000).unwrap_err();
        assert_eq!(
            e.to_string(),
            "dataset classes do not all match the model's 1000 classes: by name (2 of 3 unmatched, e.g. \
             'fruit', 'n01440764' vs 'tench', 'goldfish'), by WordNet id (2 of 3 unmatched, e.g. 'fruit', \
             'tabby' vs 'n01440764', 'n01443537'), by index (e.g. 'fruit', 'n01440764' vs 0..999)"
        );
    }

    #[test]
    fn a_model_without_class_names_says_so_and_what_position_needs() {
        let e = match_classes(&strings(&["cat", "dog", "fox"]), None, 10).unwrap_err();
        assert_eq!(
            e.to_string(),
            "dataset classes match none of the model's 10 classes: by index (e.g. 'cat', 'dog' vs 0..9); \
             the model has no class names, and by position its 10 outputs need as many dataset classes (this one \
             has 3)"
        );
    }

    #[test]
    fn the_pareto_front_keeps_what_nothing_cheaper_beats() {
        // (cost, accuracy): the 3rd is beaten by the 2nd (cheaper, more accurate); the 4th ties
        // the 2nd's accuracy at a higher cost.
        let points = [(1.0, 0.5), (2.0, 0.7), (3.0, 0.6), (4.0, 0.7), (5.0, 0.8)];
        assert_eq!(pareto_front(&points), vec![0, 1, 4]);
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
