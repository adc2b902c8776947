//! The dataset and model the app has open, how they are loaded (always off the UI thread), and
//! where the embedded demo lives.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::backend::{Backend, DeviceChoice, choose};
use crate::data::{Check, DecodeLimits, ImageFolder};
use crate::model::Model;

/// The demo's ImageFolder (real photos, one folder per ImageNet class).
#[must_use]
pub fn demo_photos() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/photos")
}

/// The demo's model: EfficientNet-Lite0, ImageNet-1k, f16.
#[must_use]
pub fn demo_weights() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/models/efficientnet_lite0.safetensors")
}

/// The own-classes demo: the demo photos sorted into a few everyday classes that are not
/// ImageNet's (`train/` and `val/`), for the transfer flow.
pub fn own_classes_photos() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/own")
}

/// The Fashion demo: a Fashion-MNIST subset with `train/` and `val/` (shown through `val/`).
#[must_use]
pub fn fashion_photos() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/fashion")
}

/// The Fashion demo's model: `resnet-tiny` trained from scratch at K_train = 20 by `fixres grid`.
#[must_use]
pub fn fashion_weights() -> PathBuf {
    fashion_photos().join("grid/models/resnet-tiny_k20.safetensors")
}

/// A fresh id, so caches can tell a reopened dataset or model from the one before.
fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// An open ImageFolder.
pub struct Dataset {
    /// The scan, with every image's size (headers read) and what was skipped.
    pub folder: ImageFolder,
    /// The folder the user opened (the scan may be of its `val/`).
    pub opened: PathBuf,
    /// Unique per open.
    pub id: u64,
}

impl Dataset {
    /// Scans `dir`. A folder with `train/` and `val/` is a split dataset: the explorer shows
    /// `val/`, the held-out images a test resolution is judged on.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let root = crate::data::split::held_out(dir);
        let folder = ImageFolder::scan(&root, Check::Header, DecodeLimits::default())?;
        if folder.samples.is_empty() {
            anyhow::bail!("{}: no readable images in the class folders", root.display());
        }
        Ok(Self {
            folder,
            opened: dir.to_owned(),
            id: next_id(),
        })
    }

    /// A short name for the status bar.
    #[must_use]
    pub fn name(&self) -> String {
        if self.opened == demo_photos() {
            return "demo photos".into();
        }
        if self.opened == fashion_photos() {
            return "Fashion demo".into();
        }
        if self.opened == own_classes_photos() {
            return "own-classes demo".into();
        }
        self.opened.file_name().map_or_else(
            || self.opened.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }

    /// Every image's `(width, height)`.
    #[must_use]
    pub fn image_sizes(&self) -> Vec<(u32, u32)> {
        self.folder.samples.iter().filter_map(|s| s.size).collect()
    }
}

/// An open model and the device it runs on.
pub struct LoadedModel {
    /// The network.
    pub model: Model,
    /// Where it came from.
    pub path: PathBuf,
    /// Unique per load.
    pub id: u64,
    /// The device.
    pub backend: Backend,
}

impl LoadedModel {
    /// Loads `path` on the best device (a hardware GPU, else the CPU backend).
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let backend = choose(DeviceChoice::Auto)?;
        let model = Model::load(path, &backend.device)?;
        Ok(Self {
            model,
            path: path.to_owned(),
            id: next_id(),
            backend,
        })
    }

    /// A short name: the file's stem.
    #[must_use]
    pub fn name(&self) -> String {
        self.path
            .file_stem()
            .map_or_else(|| self.path.display().to_string(), |n| n.to_string_lossy().into_owned())
    }
}
