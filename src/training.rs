//! What the two trainers share, `train` (a network from scratch) and `finetune` (the FixRes
//! head, or a transfer): the learning-rate schedule, the seed of an epoch's random crops, a new
//! classifier's initialisation, validation top-1 of a whole network, and the pieces of their
//! reports that have one shape in both (an epoch's record, the device).

use std::path::PathBuf;

use rayon::prelude::*;
use serde::Serialize;

use crate::backend::{Backend, BackendKind};
use crate::data::{RgbImage, SeededRng};
use crate::fsutil::serialize_path;
use crate::model::{Architecture, Recipe, input_batch, rows};
use crate::stats::Tally;

/// Learning rate against epochs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// The same rate throughout.
    Constant,
    /// ×0.1 after each third of the epochs.
    Step,
    /// Cosine from the rate down to 0.
    Cosine,
}

impl Schedule {
    /// The rate for `epoch` of `epochs`.
    #[must_use]
    pub fn lr(self, base: f64, epoch: usize, epochs: usize) -> f64 {
        match self {
            Self::Constant => base,
            Self::Step => base * 0.1f64.powi((3 * epoch / epochs.max(1)) as i32),
            Self::Cosine => base * 0.5 * (1.0 + (std::f64::consts::PI * epoch as f64 / epochs.max(1) as f64).cos()),
        }
    }
}

/// The seed of `epoch`'s random crops (image `i` draws from `SeededRng::for_item(seed, i)`), so
/// that every epoch crops differently and a run is the same for the same `seed`.
#[must_use]
pub fn crop_seed(seed: u64, epoch: usize) -> u64 {
    seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9)
}

/// One epoch in a run's report.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct EpochRecord {
    /// Epoch, from 0.
    pub epoch: usize,
    /// Mean training loss (the f32 mean, widened: the reports always printed it so).
    pub loss: f64,
    /// Validation top-1 after the epoch.
    pub val_top1: f64,
}

impl EpochRecord {
    /// The record of `epoch`, from its f32 mean loss.
    #[must_use]
    pub fn new(epoch: usize, loss: f32, val_top1: f64) -> Self {
        Self {
            epoch,
            loss: f64::from(loss),
            val_top1,
        }
    }
}

/// A validation top-1 from its tally: NaN when there was no validation image, never a 0 % that
/// reads like a result. The JSON reports write it as null (serde_json's NaN), `val_text` as "no
/// validation images"; it wins no best-so-far comparison.
#[must_use]
pub fn val_top1(tally: &crate::stats::Tally) -> f64 {
    if tally.scored == 0 {
        f64::NAN
    } else {
        tally.top1_share()
    }
}

/// A validation top-1 for people: "val top-1 12.34%", or "no validation images" (`val_top1`'s
/// NaN).
#[must_use]
pub fn val_text(top1: f64) -> String {
    if top1.is_nan() {
        "no validation images".to_owned()
    } else {
        format!("val top-1 {:.2}%", 100.0 * top1)
    }
}

/// The device a run used, as its report names it: `Backend`'s own JSON, without holding the
/// device (a report outlives the run, and may outlive a lost GPU).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceName {
    /// Which backend.
    pub backend: BackendKind,
    /// The adapter's name, or the CPU backend's.
    pub adapter: String,
}

impl From<&Backend> for DeviceName {
    fn from(b: &Backend) -> Self {
        Self {
            backend: b.kind,
            adapter: b.adapter.clone(),
        }
    }
}

/// How much of a pretrained network a transfer (`fixres train --from`) trains, beside its new
/// classifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Part {
    /// The new classifier and the last normalisation's affine and running statistics (the
    /// FixRes fine-tune's head, `model::head`), over the trunk frozen in eval mode: any family.
    Head,
    /// Also the last stage (ResNet's `layer4`; EfficientNet-Lite's last stage and head
    /// convolution), its BatchNorms in training mode; the rest frozen in eval mode. Families
    /// built of Burn modules only (`model::end_to_end`).
    LastStage,
    /// The whole network, every BatchNorm in training mode (the usual fine-tune of a pretrained
    /// network). Families built of Burn modules only.
    All,
}

impl Part {
    /// The name `--trainable` takes.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Head => "head",
            Self::LastStage => "last-stage",
            Self::All => "all",
        }
    }
}

/// What a transfer's report adds: where the network came from, what trained, and the classes
/// its new classifier was made for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Transfer {
    /// The dataset's class names: the new classifier's outputs, in order.
    pub classes: Vec<String>,
    /// The pretrained weights.
    #[serde(serialize_with = "serialize_path")]
    pub from: PathBuf,
    /// What trained.
    pub trainable: Part,
}

/// The stream a new classifier's initial values are drawn from, for a run seeded with `seed`: one
/// of its own (the split draws `for_item(seed, class)`, the shuffle `new(seed)`, the crops
/// `for_item(crop_seed(..), image)`).
#[must_use]
pub fn classifier_rng(seed: u64) -> SeededRng {
    SeededRng::for_item(seed, u64::MAX)
}

/// PyTorch's initialisation of `nn.Linear(fan_in, out)` (`reset_parameters`): the weight by
/// `kaiming_uniform_(a=√5)`, whose bound is 1/√fan_in, then the bias uniform in ±1/√fan_in; drawn
/// from `rng` in that order, the weight row by row (PyTorch's `[out, fan_in]` layout).
#[must_use]
pub fn linear_init(rng: &mut SeededRng, out: usize, fan_in: usize) -> (Vec<f32>, Vec<f32>) {
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    let mut draw = |n: usize| (0..n).map(|_| rng.uniform(-bound, bound) as f32).collect::<Vec<f32>>();
    let weight = draw(out * fan_in);
    let bias = draw(out);
    (weight, bias)
}

/// Validation top-1 of `net` at `res` with the test transform and normalisation of `recipe`
/// (NaN without images: `training::val_top1`).
pub fn accuracy(
    net: &dyn Architecture,
    recipe: &Recipe,
    images: &[RgbImage],
    labels: &[usize],
    res: usize,
    device: &burn::tensor::Device,
) -> anyhow::Result<f64> {
    let t = recipe.test_transform(res);
    let mut tally = Tally::default();
    for (chunk, chunk_labels) in images.chunks(256).zip(labels.chunks(256)) {
        let inputs: Vec<RgbImage> = chunk.par_iter().map(|img| t.apply(img)).collect();
        let out = net.forward(input_batch(&inputs, recipe.mean, recipe.std, device));
        tally.add_rows(&rows(&out.logits)?, chunk_labels);
    }
    Ok(crate::training::val_top1(&tally))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_init_is_pytorchs_bound_and_the_seed_fixes_it() {
        let (w, b) = linear_init(&mut classifier_rng(3), 5, 64);
        assert_eq!((w.len(), b.len()), (5 * 64, 5));
        let bound = 1.0 / 8.0;
        assert!(w.iter().chain(&b).all(|x| x.abs() <= bound));
        assert!(w.iter().any(|x| x.abs() > 0.9 * bound), "spread over ±1/√64");
        let mean = w.iter().sum::<f32>() / w.len() as f32;
        assert!(mean.abs() < 0.1 * bound, "centred: {mean}");
        let again = linear_init(&mut classifier_rng(3), 5, 64);
        assert_eq!((w.clone(), b), again, "the same seed, the same values, bit for bit");
        assert_ne!(w, linear_init(&mut classifier_rng(4), 5, 64).0);
    }

    #[test]
    fn schedules_start_at_the_rate_and_decay() {
        assert_eq!(Schedule::Constant.lr(0.1, 5, 10), 0.1);
        assert_eq!(Schedule::Cosine.lr(0.1, 0, 10), 0.1);
        assert!((Schedule::Cosine.lr(0.1, 5, 10) - 0.05).abs() < 1e-12);
        assert!((Schedule::Step.lr(1.0, 4, 9) - 0.1).abs() < 1e-12);
        assert!((Schedule::Step.lr(1.0, 8, 9) - 0.01).abs() < 1e-12);
    }
}
