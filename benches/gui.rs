//! GUI responsiveness on the demo, rendered on the CPU when there is no GPU (wgpu on lavapipe):
//! 1. frame time while K_test is dragged across its range (each frame runs the app, lays out,
//!    tessellates and renders), against the 16.7 ms of a 60 Hz frame;
//! 2. the activation plot for 64 images at a new K_test: time to the first partial result and
//!    to the full one.
//!
//! Run: `cargo bench --bench gui` (release profile, so nothing is rebuilt).

use std::path::Path;
use std::time::{Duration, Instant};

use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use fixres::app::{ExplorerApp, Startup, demo_photos};

fn harness(startup: Startup, render: bool) -> Harness<'static, ExplorerApp> {
    let startup = Startup { fresh: true, ..startup };
    let mut h = Harness::builder()
        .with_size([1440.0, 900.0])
        .with_max_steps(1_000_000)
        .with_render_every_step(render)
        .wgpu()
        .build_eframe(move |cc| ExplorerApp::new(cc, &startup));
    settle(&mut h);
    h
}

/// Milliseconds per frame over `frames` frames, K_test moving by 2 each frame when `drag`.
fn frame_times(h: &mut Harness<'_, ExplorerApp>, drag: bool, frames: usize) -> Vec<f64> {
    let start = h.state_mut().settings_mut().test_res;
    let mut out: Vec<f64> = (0..frames)
        .map(|i| {
            if drag {
                h.state_mut().settings_mut().test_res = start + 2 * (i + 1);
            }
            let t = Instant::now();
            h.step();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    out.sort_by(f64::total_cmp);
    out
}

fn report(what: &str, frames: &[f64]) {
    let median = percentile(frames, 0.5);
    println!(
        "{what}: median {median:.2} ms, p90 {:.2} ms, max {:.2} ms ({} frames); median / 16.7 ms = {:.2}",
        percentile(frames, 0.9),
        frames[frames.len() - 1],
        frames.len(),
        median / (1000.0 / 60.0)
    );
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

/// 10,000 small PNGs in 10 classes.
fn ten_thousand_images(root: &Path) -> std::path::PathBuf {
    let data = root.join("many");
    for i in 0..10_000u32 {
        let dir = data.join(format!("class{}", i % 10));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let img = image::RgbImage::from_fn(32, 24, |x, y| {
            image::Rgb([(x * 8) as u8, (y * 10) as u8, (i % 251) as u8])
        });
        img.save(dir.join(format!("{i:05}.png"))).expect("write png");
    }
    data
}

fn main() {
    // As the binary does: no "XDG_RUNTIME_DIR is invalid" lines from Mesa's device-select layer
    // on a headless machine. SAFETY: first thing in `main`, before any other thread exists.
    unsafe {
        fixres::backend::quiet_vulkan_device_select();
        fixres::backend::tune_allocator();
    }
    // As the app does: parallel work below the UI thread's priority.
    fixres::jobs::background_thread_pool();
    // 1. Frame time while dragging K_test: the app's own work per frame (layout, plots, starting
    //    jobs), then with the frame rendered too, then rendering an unchanged frame (the peer).
    let mut h = harness(Startup::default(), false);
    report("dragging K_test, app only (1440x900)", &frame_times(&mut h, true, 128));
    let mut h = harness(Startup::default(), true);
    report("unchanged frame, rendered (wgpu)", &frame_times(&mut h, false, 64));
    settle(&mut h);
    report("dragging K_test, rendered (wgpu)", &frame_times(&mut h, true, 128));

    // 2. Scrolling the browser through 10,000 images (thumbnails decode in the background).
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut h = harness(
        Startup {
            data: Some(ten_thousand_images(tmp.path())),
            ..Startup::default()
        },
        false,
    );
    h.hover_at(egui::pos2(120.0, 450.0));
    let mut frames: Vec<f64> = (0..200)
        .map(|_| {
            h.event(egui::Event::MouseWheel {
                unit: egui::MouseWheelUnit::Point,
                delta: egui::vec2(0.0, -400.0),
                phase: egui::TouchPhase::Move,
                source: egui::MouseWheelSource::Wheel,
                modifiers: egui::Modifiers::NONE,
            });
            let t = Instant::now();
            h.step();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    frames.sort_by(f64::total_cmp);
    let shown = h
        .query_all_by_label_contains(".png")
        .filter_map(|n| n.accesskit_node().label())
        .next()
        .unwrap_or_default();
    report(&format!("scrolling 10,000 images (to {shown}), app only"), &frames);
    drop(h);

    // 3. Activations for 64 images at a new K_test.
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = sixty_four_images(tmp.path());
    let mut h = harness(
        Startup {
            data: Some(data),
            ..Startup::default()
        },
        false,
    );
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
