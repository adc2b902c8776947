//! The Fréchet distribution of paper §3.2, which describes the pooled activations of a network at
//! one resolution: a generalised extreme-value law with a positive shape ξ (SciPy's `genextreme`
//! with `c = -ξ`). The paper fixes ξ = 0.3 and fits the location and scale at each resolution; the
//! parametric adaptation then maps the activations at K_test through the quantile transformation
//! between the two fits, `F_train⁻¹(F_test(x))`, before the classifier.

use serde::{Deserialize, Serialize};

/// The shape the paper fixes.
pub const PAPER_XI: f64 = 0.3;

/// A Fréchet (GEV, ξ > 0) distribution: `F(x) = exp(-(1 + ξ (x - loc) / scale)^(-1/ξ))` above
/// its lower bound `loc - scale / ξ`, 0 below.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Frechet {
    /// Location μ.
    pub loc: f64,
    /// Scale σ > 0.
    pub scale: f64,
    /// Shape ξ > 0.
    pub xi: f64,
}

impl Frechet {
    /// The lower end of the support.
    #[must_use]
    pub fn lower_bound(&self) -> f64 {
        self.loc - self.scale / self.xi
    }

    /// The cumulative distribution function.
    #[must_use]
    pub fn cdf(&self, x: f64) -> f64 {
        let s = 1.0 + self.xi * (x - self.loc) / self.scale;
        if s <= 0.0 { 0.0 } else { (-s.powf(-1.0 / self.xi)).exp() }
    }

    /// The quantile function, `F⁻¹(p)` for p in (0, 1) (the lower bound at 0, +∞ at 1).
    #[must_use]
    pub fn quantile(&self, p: f64) -> f64 {
        self.loc + self.scale / self.xi * ((-p.ln()).powf(-self.xi) - 1.0)
    }

    /// The negative log-likelihood of `x` (+∞ when a value lies at or below the lower bound).
    #[must_use]
    pub fn neg_log_likelihood(&self, x: &[f64]) -> f64 {
        if self.scale.is_nan() || self.scale <= 0.0 {
            return f64::INFINITY;
        }
        let (xi, inv) = (self.xi, 1.0 / self.xi);
        let mut nll = x.len() as f64 * self.scale.ln();
        for &v in x {
            let s = 1.0 + xi * (v - self.loc) / self.scale;
            if s <= 0.0 {
                return f64::INFINITY;
            }
            let ln_s = s.ln();
            nll += (1.0 + inv) * ln_s + (-inv * ln_s).exp();
        }
        nll
    }

    /// The maximum-likelihood location and scale for `x` with the shape fixed at `xi` (what
    /// SciPy's `genextreme.fit(x, f0=-xi)` estimates), by Nelder–Mead over (loc, ln scale) run to
    /// convergence and restarted at its optimum until it no longer moves. `None` for fewer than
    /// two distinct finite values.
    #[must_use]
    pub fn fit(x: &[f64], xi: f64) -> Option<Self> {
        let x: Vec<f64> = x.iter().copied().filter(|v| v.is_finite()).collect();
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n.max(1.0);
        let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n.max(1.0);
        let min = x.iter().copied().fold(f64::INFINITY, f64::min);
        if x.len() < 2 || var.is_nan() || var <= 0.0 {
            return None;
        }
        // Start from the Gumbel moments, widened until every value lies inside the support.
        let mut scale = var.sqrt() * 6f64.sqrt() / std::f64::consts::PI;
        let mut loc = mean - 0.5772 * scale;
        while loc - scale / xi >= min {
            scale *= 2.0;
            loc = mean - 0.5772 * scale;
        }
        let nll = |p: [f64; 2]| {
            Self {
                loc: p[0],
                scale: p[1].exp(),
                xi,
            }
            .neg_log_likelihood(&x)
        };
        let mut best = [loc, scale.ln()];
        let mut step = [scale * 0.1, 0.1];
        for _ in 0..20 {
            let next = nelder_mead(&nll, best, step, 1e-13, 20_000);
            let moved = (next[0] - best[0]).abs() + (next[1] - best[1]).abs();
            best = next;
            if moved < 1e-12 * (1.0 + best[0].abs()) {
                break;
            }
            step = [step[0] * 0.1 + 1e-9, step[1] * 0.1 + 1e-9];
        }
        Some(Self {
            loc: best[0],
            scale: best[1].exp(),
            xi,
        })
    }
}

/// Nelder–Mead in two dimensions (reflection 1, expansion 2, contraction ½, shrink ½, as SciPy's
/// `fmin`), from `start` with a simplex of `step` along each axis, until the simplex's values and
/// points agree to `tol` (relative) or after `max_iter` iterations.
fn nelder_mead(f: &dyn Fn([f64; 2]) -> f64, start: [f64; 2], step: [f64; 2], tol: f64, max_iter: usize) -> [f64; 2] {
    let mut pts = [start, [start[0] + step[0], start[1]], [start[0], start[1] + step[1]]];
    let mut vals = pts.map(f);
    let lerp = |a: [f64; 2], b: [f64; 2], t: f64| [a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])];
    for _ in 0..max_iter {
        let mut order = [0, 1, 2];
        order.sort_by(|&a, &b| vals[a].total_cmp(&vals[b]));
        pts = order.map(|i| pts[i]);
        vals = order.map(|i| vals[i]);
        let spread = (vals[2] - vals[0]).abs();
        let size = (0..2)
            .map(|d| (pts[1][d] - pts[0][d]).abs().max((pts[2][d] - pts[0][d]).abs()))
            .fold(0.0, f64::max);
        if spread <= tol * (1.0 + vals[0].abs()) && size <= tol * (1.0 + pts[0][0].abs() + pts[0][1].abs()) {
            break;
        }
        let centroid = lerp(pts[0], pts[1], 0.5);
        let reflected = lerp(centroid, pts[2], -1.0);
        let fr = f(reflected);
        if fr < vals[0] {
            let expanded = lerp(centroid, pts[2], -2.0);
            let fe = f(expanded);
            (pts[2], vals[2]) = if fe < fr { (expanded, fe) } else { (reflected, fr) };
        } else if fr < vals[1] {
            (pts[2], vals[2]) = (reflected, fr);
        } else {
            let contracted = if fr < vals[2] {
                lerp(centroid, reflected, 0.5)
            } else {
                lerp(centroid, pts[2], 0.5)
            };
            let fc = f(contracted);
            if fc < vals[2].min(fr) {
                (pts[2], vals[2]) = (contracted, fc);
            } else {
                for i in 1..3 {
                    pts[i] = lerp(pts[0], pts[i], 0.5);
                    vals[i] = f(pts[i]);
                }
            }
        }
    }
    let best = (0..3).min_by(|&a, &b| vals[a].total_cmp(&vals[b])).unwrap_or(0);
    pts[best]
}

/// The parametric adaptation of paper §3.2: pooled activations at the test resolution mapped
/// through the quantile transformation between the Fréchet fits at the test and the train
/// resolutions, `train.quantile(test.cdf(x))`, so that they follow the train-time law.
///
/// With the shape the same in both fits (the paper fixes it), that transformation is affine:
/// `(y − loc_train) / scale_train = (x − loc_test) / scale_test` on the test fit's support. So it
/// is computed as that line (exactly the quantile map where the cdf is defined, its continuation
/// outside), and it folds into the classifier's first layer: the adapted model is a plain
/// state_dict.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantileMap {
    /// The fit at K_train: the law the classifier was trained on.
    pub train: Frechet,
    /// The fit at K_test.
    pub test: Frechet,
}

impl QuantileMap {
    /// `(a, b)` with `map(x) = a·x + b`.
    #[must_use]
    pub fn affine(&self) -> (f64, f64) {
        let a = self.train.scale / self.test.scale;
        (a, self.train.loc - a * self.test.loc)
    }

    /// One activation mapped.
    #[must_use]
    pub fn apply(&self, x: f64) -> f64 {
        let (a, b) = self.affine();
        a * x + b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::SeededRng;

    #[test]
    fn quantile_inverts_the_cdf() {
        let f = Frechet {
            loc: 1.5,
            scale: 0.7,
            xi: PAPER_XI,
        };
        for p in [1e-6, 0.01, 0.3, 0.5, 0.9, 0.999] {
            assert!((f.cdf(f.quantile(p)) - p).abs() < 1e-12, "p = {p}");
        }
        assert_eq!(f.cdf(f.lower_bound() - 1.0), 0.0);
    }

    #[test]
    fn the_fit_recovers_the_law_samples_were_drawn_from() {
        let truth = Frechet {
            loc: 2.0,
            scale: 0.5,
            xi: PAPER_XI,
        };
        let mut rng = SeededRng::new(3);
        let x: Vec<f64> = (0..20_000).map(|_| truth.quantile(rng.uniform(0.0, 1.0))).collect();
        let fit = Frechet::fit(&x, PAPER_XI).unwrap();
        assert!(
            (fit.loc - 2.0).abs() < 0.02 && (fit.scale - 0.5).abs() < 0.02,
            "{fit:?}"
        );
        // The optimum: any nudge costs likelihood.
        let nll = fit.neg_log_likelihood(&x);
        for (dl, ds) in [(1e-4, 0.0), (-1e-4, 0.0), (0.0, 1e-4), (0.0, -1e-4)] {
            let nudged = Frechet {
                loc: fit.loc + dl,
                scale: fit.scale + ds,
                xi: PAPER_XI,
            };
            assert!(nudged.neg_log_likelihood(&x) >= nll);
        }
        assert!(Frechet::fit(&[1.0, 1.0], PAPER_XI).is_none());
    }

    #[test]
    fn the_map_is_the_quantile_transformation_between_the_fits() {
        let m = QuantileMap {
            train: Frechet {
                loc: 1.0,
                scale: 0.5,
                xi: PAPER_XI,
            },
            test: Frechet {
                loc: 2.0,
                scale: 1.3,
                xi: PAPER_XI,
            },
        };
        for p in [1e-4, 0.1, 0.5, 0.9, 0.9999] {
            let x = m.test.quantile(p);
            assert!((m.apply(x) - m.train.quantile(m.test.cdf(x))).abs() < 1e-9, "p = {p}");
        }
        assert!((m.apply(m.test.lower_bound()) - m.train.lower_bound()).abs() < 1e-12);
    }
}
