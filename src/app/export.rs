//! Plots out of the app: their data as CSV, their pixels as PNG (a crop of a window screenshot).
//! Files are written atomically into the export folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;

use eframe::egui;

use super::Command;
use crate::fsutil::write_atomic;
use crate::jobs::Wake;

/// Writes `csv` to `dir/name.csv`.
pub fn write_csv(dir: &Path, name: &str, csv: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("{name}.csv"));
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    write_atomic(&path, csv.as_bytes())?;
    Ok(path)
}

/// The message that tells the user where an export went, or why it failed.
pub fn outcome(result: anyhow::Result<PathBuf>) -> Command {
    match result {
        Ok(path) => Command::Info(format!("wrote {}", path.display())),
        Err(e) => Command::Error(format!("export failed: {e:#}")),
    }
}

/// Asks for a screenshot of the next frame; when it arrives, crops it to `rect` and writes
/// `dir/name.png`, reporting through `outbox`; `in_flight` counts the exports not written yet
/// (the app reports itself busy until they are).
pub fn request_png(
    ctx: &egui::Context,
    outbox: &SyncSender<Command>,
    wake: &Wake,
    in_flight: &Arc<AtomicUsize>,
    dir: &Path,
    name: &str,
    rect: egui::Rect,
) {
    let (outbox, wake, dir, name) = (outbox.clone(), wake.clone(), dir.to_owned(), name.to_owned());
    in_flight.fetch_add(1, Ordering::SeqCst);
    let in_flight = Arc::clone(in_flight);
    let pixels_per_point = ctx.pixels_per_point();
    ctx.request_screenshot(move |shot| {
        // Reports the export's end. A full inbox (16 unread messages) or a closed app drops the
        // note, never the file.
        let finish = move |command: Command| {
            let _ = outbox.try_send(command);
            in_flight.fetch_sub(1, Ordering::SeqCst);
            wake();
        };
        let finish = Arc::new(finish);
        let finish_here = Arc::clone(&finish);
        // The callback runs on the UI thread: encode and write elsewhere.
        let spawned = std::thread::Builder::new()
            .name("fixres-export-png".into())
            .spawn(move || {
                let result = save_region(&shot, rect * pixels_per_point, &dir, &name);
                finish(outcome(result));
            });
        if let Err(e) = spawned {
            finish_here(Command::not_started("the PNG export", &e));
        }
    });
}

/// Crops `shot` to `rect` (both in physical pixels) and writes it as PNG.
fn save_region(shot: &egui::ColorImage, rect: egui::Rect, dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let [w, h] = shot.size;
    let x0 = (rect.min.x.floor().max(0.0) as usize).min(w);
    let y0 = (rect.min.y.floor().max(0.0) as usize).min(h);
    let x1 = (rect.max.x.ceil().max(0.0) as usize).clamp(x0, w);
    let y1 = (rect.max.y.ceil().max(0.0) as usize).clamp(y0, h);
    if x1 == x0 || y1 == y0 {
        anyhow::bail!("the plot is not on screen");
    }
    let mut rgba = Vec::with_capacity((x1 - x0) * (y1 - y0) * 4);
    for y in y0..y1 {
        for px in &shot.pixels[y * w + x0..y * w + x1] {
            rgba.extend_from_slice(&px.to_array());
        }
    }
    let img = image::RgbaImage::from_raw((x1 - x0) as u32, (y1 - y0) as u32, rgba)
        .ok_or_else(|| anyhow::anyhow!("screenshot crop has the wrong size"))?;
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    let path = dir.join(format!("{name}.png"));
    write_atomic(&path, &png)?;
    Ok(path)
}
