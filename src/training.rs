//! What the two trainers share, `train` (a network from scratch) and `finetune` (the FixRes
//! head): the learning-rate schedule, the seed of an epoch's random crops, and the pieces of
//! their reports that have one shape in both (an epoch's record, the device).

use serde::Serialize;

use crate::backend::{Backend, BackendKind};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_start_at_the_rate_and_decay() {
        assert_eq!(Schedule::Constant.lr(0.1, 5, 10), 0.1);
        assert_eq!(Schedule::Cosine.lr(0.1, 0, 10), 0.1);
        assert!((Schedule::Cosine.lr(0.1, 5, 10) - 0.05).abs() < 1e-12);
        assert!((Schedule::Step.lr(1.0, 4, 9) - 0.1).abs() < 1e-12);
        assert!((Schedule::Step.lr(1.0, 8, 9) - 0.01).abs() < 1e-12);
    }
}
