//! GUI responsiveness on the demo, rendered on the CPU when there is no GPU (wgpu on lavapipe):
//! 1. frame time while K_test is dragged across its range (each frame runs the app, lays out,
//!    tessellates and renders), against the 16.7 ms of a 60 Hz frame;
//! 2. the activation plot for 64 images at a new K_test: time to the first partial result and
//!    to the full one.
//!
//! Run: `cargo bench --bench gui` (release profile, so nothing is rebuilt).

use std::path::Path;
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use fixres::app::{ExplorerApp, Startup, demo_photos};

fn harness(startup: Startup) -> Harness<'static, ExplorerApp> {
    let startup = Startup { fresh: true, ..startup };
    let mut h = Harness::builder()
        .with_size([1440.0, 900.0])
        .with_max_steps(1_000_000)
        .with_render_every_step(true)
        .wgpu()
        .build_eframe(move |cc| ExplorerApp::new(cc, &startup));
    settle(&mut h);
    h
}

fn settle(h: &mut Harness<'_, ExplorerApp>) {
    let start = Instant::now();
    while h.state().busy() || start.elapsed() < Duration::from_millis(50) {
        h.step();
        std::thread::sleep(Duration::from_millis(5));
        assert!(start.elapsed() < Duration::from_secs(900), "jobs never finished");
    }
    h.run_steps(3);
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// 64 image files: the demo photos, repeated (copies, so each is read and decoded on its own).
fn sixty_four_images(root: &Path) -> std::path::PathBuf {
    let mut photos = Vec::new();
    for class in std::fs::read_dir(demo_photos()).expect("demo photos").flatten() {
        for f in std::fs::read_dir(class.path()).expect("class folder").flatten() {
            photos.push((class.file_name(), f.path()));
        }
    }
    photos.sort();
    let data = root.join("data");
    for i in 0..64 {
        let (class, src) = &photos[i % photos.len()];
        let dir = data.join(class);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let ext = src.extension().and_then(|e| e.to_str()).unwrap_or("png");
        std::fs::copy(src, dir.join(format!("{i:02}.{ext}"))).expect("copy");
    }
    data
}

fn main() {
    // 1. Frame time while dragging K_test.
    let mut h = harness(Startup::default());
    let mut frames = Vec::new();
    for res in (224..=480).step_by(2) {
        h.state_mut().settings_mut().test_res = res;
        let t = Instant::now();
        h.step();
        frames.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    frames.sort_by(f64::total_cmp);
    let median = percentile(&frames, 0.5);
    println!(
        "frame while dragging K_test ({} frames, 1440x900, wgpu renderer): median {median:.2} ms, p90 {:.2} ms, max {:.2} ms; median / 16.7 ms = {:.2}",
        frames.len(),
        percentile(&frames, 0.9),
        frames[frames.len() - 1],
        median / (1000.0 / 60.0)
    );

    // 2. Activations for 64 images at a new K_test.
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = sixty_four_images(tmp.path());
    let mut h = harness(Startup {
        data: Some(data),
        ..Startup::default()
    });
    h.state_mut().settings_mut().activation_images = 64;
    settle(&mut h);
    for res in [288, 320] {
        h.state_mut().settings_mut().test_res = res;
        let start = Instant::now();
        let mut first = None;
        loop {
            h.step();
            let (done, total, complete) = h.state().view_summary().activation_progress.unwrap_or((0, 64, false));
            if done > 0 && first.is_none() {
                first = Some(start.elapsed());
            }
            if complete {
                assert_eq!(total, 64);
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let full = start.elapsed();
        let first = first.unwrap_or(full);
        println!(
            "activations, 64 images at new K_test {res}: first partial {:.0} ms, full {:.0} ms (first / full = {:.2})",
            first.as_secs_f64() * 1000.0,
            full.as_secs_f64() * 1000.0,
            first.as_secs_f64() / full.as_secs_f64()
        );
    }
}
