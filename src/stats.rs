//! Small statistics every engine and panel reads the same way: quantiles of a sorted sample, and
//! top-1/top-5 tallies of classifier outputs. One home each, so that "accuracy" and "the 95 %
//! quantile" mean the same thing in the CLI, the GUI and the sweeps.

use serde::Serialize;

/// One quantile of a distribution.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
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
        let best = top_k(logits, 5);
        self.top1 += usize::from(best.first() == Some(&label));
        self.top5 += usize::from(best.contains(&label));
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
