//! Apparent object size (paper §3.1): the distribution of r_test / r_train from the real
//! RandomResizedCrop sampler over the dataset's image sizes, and E[r_test / r_train] against
//! K_test (analytic and sampled) with the matching K_test marked. Recomputed when a slider moves;
//! sampling 20,000 crops takes about a millisecond, so it follows the slider every frame.

use eframe::egui;
use egui_plot::{Bar, BarChart, HLine, Line, Plot, Points, VLine};

use super::controls::RES_RANGE;
use super::messages::count;
use super::panel::{Panel, Place};
use super::plot_widgets::{export_buttons, legend, set_png_rect};
use super::{Command, Shared};
use crate::data::transforms::test_resize_size;
use crate::size::{MonteCarlo, SizeSetup, analytic, analytic_curve, monte_carlo};

/// Crops sampled.
const SAMPLES: usize = 20_000;
/// Histogram bins.
const BINS: usize = 40;

/// A histogram bin: `(lo, hi, share)`.
type Bin = (f64, f64, f64);

/// The view's cache.
#[derive(Default)]
pub struct SizeView {
    /// The sample and its histogram, for (dataset, setup).
    cached: Option<((u64, SizeSetup), MonteCarlo, Vec<Bin>)>,
}

impl SizeView {
    /// K_test of the last computed sample.
    pub fn test_res(&self) -> Option<usize> {
        self.cached.as_ref().map(|((_, setup), ..)| setup.test_res)
    }

    /// Samples again when the dataset or a setting changed (about a millisecond).
    fn refresh(&mut self, shared: &Shared<'_>) {
        let setup = shared.settings.size_setup();
        let key = (shared.dataset.map_or(0, |d| d.id), setup);
        if self.cached.as_ref().is_none_or(|(k, ..)| *k != key) {
            let sizes = shared.dataset.map(|d| d.image_sizes()).unwrap_or_default();
            let mc = monte_carlo(&setup, &sizes, SAMPLES, 0);
            let hist = histogram(&mc.ratios);
            self.cached = Some((key, mc, hist));
        }
    }
}

impl Panel for SizeView {
    fn place(&self) -> Place {
        Place::Column
    }

    /// Draws both plots.
    fn ui(&mut self, ui: &mut egui::Ui, shared: &Shared<'_>) -> Vec<Command> {
        let mut out = Vec::new();
        let setup = shared.settings.size_setup();
        let a = analytic(&setup);
        self.refresh(shared);
        let Some((_, mc, hist)) = &self.cached else {
            return out;
        };
        ui.horizontal(|ui| {
            ui.strong("Apparent object size");
            out.extend(export_buttons(ui, "apparent-size", || csv(&setup, mc, hist)));
        });
        ui.label(format!(
            "E[r_test/r_train]: {:.3} sampled over {}, {:.3} analytic (square images)",
            mc.mean_ratio,
            count(mc.image_sizes, "image size", "image sizes"),
            a.mean_ratio
        ));
        let response = Plot::new("size-hist")
            .height(190.0)
            .legend(legend())
            .x_axis_label("r_test / r_train")
            .allow_scroll(false)
            .show(ui, |p| {
                let width = hist.first().map_or(0.05, |b| b.1 - b.0);
                let bars = hist
                    .iter()
                    .map(|&(lo, _, share)| Bar::new(lo + width / 2.0, share).width(width))
                    .collect();
                p.bar_chart(BarChart::new("sampled crops", bars).color(egui::Color32::from_rgb(255, 150, 30)));
                p.vline(VLine::new(format!("mean {:.3}", mc.mean_ratio), mc.mean_ratio).color(egui::Color32::RED));
                p.vline(VLine::new("same size", 1.0).color(egui::Color32::GRAY));
            })
            .response;
        let mut rect = response.rect;
        let curve = analytic_curve(&setup, curve_resolutions(&setup));
        let response = Plot::new("size-curve")
            .height(210.0)
            .legend(legend())
            .x_axis_label("K_test")
            .allow_scroll(false)
            .show(ui, |p| {
                let points: Vec<[f64; 2]> = curve.iter().map(|&(k, r)| [k as f64, r]).collect();
                p.line(Line::new("analytic E[ratio]", points).color(egui::Color32::from_rgb(60, 170, 255)));
                let sampled: Vec<[f64; 2]> = curve_resolutions(&setup)
                    .map(|k| [k as f64, sampled_mean_at(&setup, mc, k)])
                    .collect();
                p.line(Line::new("sampled E[ratio]", sampled).color(egui::Color32::from_rgb(255, 150, 30)));
                p.hline(HLine::new("same size", 1.0).color(egui::Color32::GRAY));
                p.vline(
                    VLine::new(format!("K_test {}", setup.test_res), setup.test_res as f64).color(egui::Color32::RED),
                );
                p.points(
                    Points::new(
                        format!(
                            "match: {} analytic, {} sampled",
                            a.recommended_test_res, mc.recommended_test_res
                        ),
                        vec![
                            [a.recommended_test_res as f64, 1.0],
                            [mc.recommended_test_res as f64, 1.0],
                        ],
                    )
                    .radius(5.0)
                    .color(egui::Color32::from_rgb(80, 220, 100)),
                );
            })
            .response;
        rect = rect.union(response.rect);
        set_png_rect(&mut out, rect);
        out
    }
}

/// The K_test axis of the curve: up to three times the larger resolution (within the sliders'
/// range), about 100 points, so 28-pixel and 224-pixel setups both fill the plot.
fn curve_resolutions(setup: &SizeSetup) -> impl Iterator<Item = usize> {
    let top = (3 * setup.train_res.max(setup.test_res)).clamp(*RES_RANGE.start() + 8, *RES_RANGE.end());
    (*RES_RANGE.start()..=top).step_by((top / 100).max(1))
}

/// The sampled E[ratio] at another K_test: r_test scales with the resize side, the draws stay.
fn sampled_mean_at(setup: &SizeSetup, mc: &MonteCarlo, test_res: usize) -> f64 {
    test_resize_size(test_res, setup.crop_ratio) as f64 * mc.mean_zoom / setup.train_res as f64
}

/// `(lo, hi, share)` bins over [0, 99th percentile · 1.1].
fn histogram(ratios: &[f64]) -> Vec<(f64, f64, f64)> {
    if ratios.is_empty() {
        return Vec::new();
    }
    let mut sorted = ratios.to_vec();
    sorted.sort_by(f64::total_cmp);
    let top = (crate::stats::quantile(&sorted, 0.99) * 1.1).max(1e-9);
    let mut counts = vec![0usize; BINS];
    for &r in ratios {
        counts[((r / top * BINS as f64) as usize).min(BINS - 1)] += 1;
    }
    counts
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            (
                top * i as f64 / BINS as f64,
                top * (i + 1) as f64 / BINS as f64,
                c as f64 / ratios.len() as f64,
            )
        })
        .collect()
}

fn csv(setup: &SizeSetup, mc: &MonteCarlo, hist: &[(f64, f64, f64)]) -> String {
    let mut s = String::from("section,x_lo,x_hi_or_k_test,value\n");
    for (lo, hi, share) in hist {
        s += &format!("ratio_histogram,{lo},{hi},{share}\n");
    }
    for (k, r) in analytic_curve(setup, curve_resolutions(setup)) {
        s += &format!("analytic_mean_ratio,,{k},{r}\n");
        s += &format!("sampled_mean_ratio,,{k},{}\n", sampled_mean_at(setup, mc, k));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::RandomResizedCrop;

    #[test]
    fn sampled_curve_at_the_current_k_test_is_the_sampled_mean() {
        let setup = SizeSetup {
            train_res: 224,
            test_res: 224,
            crop_ratio: 0.875,
            crop: RandomResizedCrop::default(),
        };
        let mc = monte_carlo(&setup, &[(500, 375), (640, 480)], 5000, 1);
        assert!((sampled_mean_at(&setup, &mc, 224) - mc.mean_ratio).abs() < 1e-9);
    }

    #[test]
    fn histogram_shares_sum_to_one() {
        let h = histogram(&[0.1, 0.5, 0.9, 2.0, 0.7]);
        assert!((h.iter().map(|b| b.2).sum::<f64>() - 1.0).abs() < 1e-12);
    }
}
