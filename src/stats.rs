//! Small statistics every engine and panel reads the same way: quantiles of a sorted sample, and
//! top-1/top-5 tallies of classifier outputs. One home each, so that "accuracy" and "the 95 %
//! quantile" mean the same thing in the CLI, the GUI and the sweeps.

use serde::Serialize;

/// One quantile of a distribution.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct Quantile {
    /// Probability, in [0, 1].
    pub q: f64,
    /// The value below which that share of the samples lies.
    pub value: f64,
}

/// Linear-interpolated quantile of sorted values (numpy's default).
#[must_use]
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The quantiles `qs` of sorted values, as reports list them.
#[must_use]
pub fn quantiles(sorted: &[f64], qs: &[f64]) -> Vec<Quantile> {
    qs.iter()
        .map(|&q| Quantile {
            q,
            value: quantile(sorted, q),
        })
        .collect()
}

/// Indices of the `k` largest values, largest first (of equal values the lower index first:
/// the sort is stable).
#[must_use]
pub fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    idx.truncate(k);
    idx
}

/// One image scored from its logits and its label: the top-1/top-5 hit, what the model
/// predicted, and the softmax probabilities of that prediction and of the true class.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Scored {
    /// The largest output is the label.
    pub top1: bool,
    /// The label is among the five largest outputs.
    pub top5: bool,
    /// The largest output (of equal ones the lowest index, as `top_k`).
    pub predicted: usize,
    /// Its softmax probability.
    pub p_predicted: f32,
    /// The label's softmax probability.
    pub p_true: f32,
}

impl Scored {
    /// Scores `logits` against `label` (a model output index); the softmax is taken in f64, so
    /// large logits neither overflow nor lose the small probabilities.
    #[must_use]
    pub fn of(logits: &[f32], label: usize) -> Self {
        let best = top_k(logits, 5);
        let predicted = best.first().copied().unwrap_or(0);
        let max = logits.get(predicted).map_or(0.0, |&m| f64::from(m));
        let sum: f64 = logits.iter().map(|&l| (f64::from(l) - max).exp()).sum();
        let p = |i: usize| {
            logits
                .get(i)
                .map_or(0.0, |&l| ((f64::from(l) - max).exp() / sum) as f32)
        };
        Self {
            top1: best.first() == Some(&label),
            top5: best.contains(&label),
            predicted,
            p_predicted: p(predicted),
            p_true: p(label),
        }
    }
}

/// How an image's top-1 changes from one resolution to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Flip {
    /// Right at the first, wrong at the second.
    RightToWrong,
    /// Wrong at the first, right at the second.
    WrongToRight,
}

impl Flip {
    /// The flip between an image's results at two resolutions, if its top-1 changed (an image
    /// not scored at both has none).
    #[must_use]
    pub fn between(a: Option<&Scored>, b: Option<&Scored>) -> Option<Self> {
        match (a?.top1, b?.top1) {
            (true, false) => Some(Self::RightToWrong),
            (false, true) => Some(Self::WrongToRight),
            _ => None,
        }
    }
}

/// The flips of top-1 between two resolutions over a set of images.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FlipCounts {
    /// Images scored at both resolutions.
    pub images: usize,
    /// Right at the first resolution, wrong at the second.
    pub right_to_wrong: usize,
    /// Wrong at the first, right at the second.
    pub wrong_to_right: usize,
}

impl FlipCounts {
    /// Counts over images' results at two resolutions (`a[i]` and `b[i]` the same image; `None`
    /// where it was not scored).
    #[must_use]
    pub fn count(a: &[Option<Scored>], b: &[Option<Scored>]) -> Self {
        let mut c = Self::default();
        for (x, y) in a.iter().zip(b) {
            if x.is_some() && y.is_some() {
                c.images += 1;
            }
            match Flip::between(x.as_ref(), y.as_ref()) {
                Some(Flip::RightToWrong) => c.right_to_wrong += 1,
                Some(Flip::WrongToRight) => c.wrong_to_right += 1,
                None => {}
            }
        }
        c
    }
}

/// Top-1 and top-5 hits over the images scored so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Images whose largest output is their label.
    pub top1: usize,
    /// Images whose label is among the five largest outputs.
    pub top5: usize,
    /// Images scored.
    pub scored: usize,
}

impl Tally {
    /// Scores one image from its logits and its label (a model output index).
    pub fn add(&mut self, logits: &[f32], label: usize) {
        self.count(&Scored::of(logits, label));
    }

    /// Counts an image already scored.
    pub fn count(&mut self, s: &Scored) {
        self.top1 += usize::from(s.top1);
        self.top5 += usize::from(s.top5);
        self.scored += 1;
    }

    /// Scores a batch: one row of logits per label.
    pub fn add_rows(&mut self, rows: &[Vec<f32>], labels: &[usize]) {
        for (row, &label) in rows.iter().zip(labels) {
            self.add(row, label);
        }
    }

    /// Top-1 accuracy, in [0, 1] (0 when nothing was scored).
    #[must_use]
    pub fn top1_share(&self) -> f64 {
        self.top1 as f64 / self.scored.max(1) as f64
    }

    /// Top-5 accuracy, in [0, 1] (0 when nothing was scored).
    #[must_use]
    pub fn top5_share(&self) -> f64 {
        self.top5 as f64 / self.scored.max(1) as f64
    }

    /// The 95 % interval of top-1 accuracy (`wilson_interval`): what the images scored so far say
    /// of the whole folder, when they are a random sample of it.
    #[must_use]
    pub fn top1_interval(&self) -> (f64, f64) {
        wilson_interval(self.top1, self.scored, Z_95)
    }
}

/// The standard normal quantile of 0.975: a two-sided 95 % interval (SciPy's
/// `norm.ppf(0.975)`).
pub const Z_95: f64 = 1.959_963_984_540_054;

/// Wilson's score interval for a proportion: `k` successes of `n`, `z` the normal quantile (SciPy's
/// `binomtest(k, n).proportion_ci(method="wilson")`, without continuity correction). Unlike the
/// normal approximation it stays inside [0, 1] and is sound for small `n` and for proportions near
/// 0 or 1. `(0, 1)` without observations.
#[must_use]
pub fn wilson_interval(k: usize, n: usize, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (k, n) = (k as f64, n as f64);
    let z2 = z * z;
    let center = (k + z2 / 2.0) / (n + z2);
    let half = z / (n + z2) * (k * (n - k) / n + z2 / 4.0).sqrt();
    ((center - half).max(0.0), (center + half).min(1.0))
}

/// A BatchNorm's running statistics re-estimated as `torch.optim.swa_utils.update_bn` does: the
/// statistics reset, the momentum `None`, so each batch's per-channel mean and UNBIASED variance
/// (over batch and space) enter a cumulative average in which every batch weighs the same
/// (PyTorch's factor 1/num_batches_tracked).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchStatsAverage {
    /// Running mean per channel.
    pub mean: Vec<f64>,
    /// Running (unbiased) variance per channel.
    pub var: Vec<f64>,
    /// Batches averaged.
    pub batches: usize,
}

impl BatchStatsAverage {
    /// Adds one batch: `values` in `[n, c, h, w]` order, `dims` = `[n, c, h, w]`. A batch of one
    /// value per channel has no unbiased variance (PyTorch refuses it in training): refused.
    pub fn add(&mut self, values: &[f32], dims: [usize; 4]) -> Result<(), String> {
        let [n, c, h, w] = dims;
        if values.len() != n * c * h * w {
            return Err(format!("{} values for a {dims:?} batch", values.len()));
        }
        let count = n * h * w;
        if count < 2 {
            return Err(format!(
                "a batch of {n} image(s) with {h}×{w} positions has one value per channel: no batch variance"
            ));
        }
        if self.batches == 0 {
            *self = Self {
                mean: vec![0.0; c],
                var: vec![0.0; c],
                batches: 0,
            };
        }
        self.batches += 1;
        let factor = 1.0 / self.batches as f64;
        let plane = h * w;
        for ch in 0..c {
            let channel = (0..n).flat_map(|i| &values[(i * c + ch) * plane..(i * c + ch + 1) * plane]);
            let (mut sum, mut sum_sq) = (0.0f64, 0.0f64);
            for &v in channel.clone() {
                sum += f64::from(v);
            }
            let mean = sum / count as f64;
            for &v in channel {
                let d = f64::from(v) - mean;
                sum_sq += d * d;
            }
            let var = sum_sq / (count - 1) as f64;
            self.mean[ch] += factor * (mean - self.mean[ch]);
            self.var[ch] += factor * (var - self.var[ch]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_statistics_average_weighs_each_batch_the_same_and_uses_the_unbiased_variance() {
        let mut avg = BatchStatsAverage::default();
        // Two batches of one channel: [1, 3] (mean 2, var 2) and [10, 10, 10, 14] (mean 11, var 4).
        avg.add(&[1.0, 3.0], [2, 1, 1, 1]).unwrap();
        avg.add(&[10.0, 10.0, 10.0, 14.0], [1, 1, 2, 2]).unwrap();
        assert_eq!(
            (avg.mean.clone(), avg.var.clone(), avg.batches),
            (vec![6.5], vec![3.0], 2)
        );
        assert!(avg.add(&[1.0], [1, 1, 1, 1]).is_err());
    }

    #[test]
    fn quantile_interpolates() {
        assert_eq!(quantile(&[0.0, 1.0, 2.0, 3.0], 0.5), 1.5);
        assert_eq!(quantile(&[5.0], 0.9), 5.0);
    }

    #[test]
    fn top_k_orders_largest_first() {
        assert_eq!(top_k(&[0.1, 3.0, -1.0, 2.0], 2), vec![1, 3]);
    }

    #[test]
    fn tallies_count_top1_and_top5() {
        let mut t = Tally::default();
        let logits = [0.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0];
        t.add(&logits, 1);
        t.add(&logits, 5);
        t.add(&logits, 6);
        assert_eq!((t.top1, t.top5, t.scored), (1, 2, 3));
        assert!((t.top1_share() - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(Tally::default().top1_share(), 0.0);
        let mut counted = Tally::default();
        for label in [1, 5, 6] {
            counted.count(&Scored::of(&logits, label));
        }
        assert_eq!(counted, t);
    }

    #[test]
    fn scored_gives_softmax_probabilities_without_overflow() {
        let s = Scored::of(&[0.0, 2f32.ln(), -1e30], 0);
        assert_eq!((s.top1, s.top5, s.predicted), (false, true, 1));
        assert!((s.p_predicted - 2.0 / 3.0).abs() < 1e-6 && (s.p_true - 1.0 / 3.0).abs() < 1e-6);
        // exp(1000) overflows f64: the softmax is taken from the largest logit.
        let big = Scored::of(&[1000.0, 1000.0], 1);
        assert_eq!((big.p_predicted, big.p_true, big.top1), (0.5, 0.5, false));
    }

    #[test]
    fn flips_count_each_direction_and_skip_images_not_scored_at_both() {
        let hit = |top1| Some(Scored::of(if top1 { &[1.0, 0.0] } else { &[0.0, 1.0] }, 0));
        let a = [hit(true), hit(true), hit(false), hit(false), None, hit(true)];
        let b = [hit(true), hit(false), hit(true), hit(false), hit(true), None];
        assert_eq!(
            FlipCounts::count(&a, &b),
            FlipCounts {
                images: 4,
                right_to_wrong: 1,
                wrong_to_right: 1
            }
        );
        assert_eq!(Flip::between(a[2].as_ref(), b[2].as_ref()), Some(Flip::WrongToRight));
    }
}
