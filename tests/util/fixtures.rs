//! Where the fixtures and the demo assets are, and `reference.json`. Self-contained (std and
//! serde_json only), so `tests/gpu_loss.rs` can include it alone.

use std::path::{Path, PathBuf};

/// The crate's root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/fixtures/`.
pub fn fixtures() -> PathBuf {
    root().join("tests").join("fixtures")
}

/// A fixture photo by file name.
pub fn photo(name: &str) -> PathBuf {
    fixtures().join("photos").join(name)
}

/// A file of `tests/fixtures/models/` by name (`make_*_reference.py` wrote them).
pub fn model(name: &str) -> PathBuf {
    fixtures().join("models").join(name)
}

/// The narrow torchvision ResNet-18 (8..64 channels, 10 classes), as safetensors.
pub fn resnet18_narrow() -> PathBuf {
    model("resnet18_narrow.safetensors")
}

/// The same state_dict as `torch.save` pickles it.
pub fn resnet18_narrow_pth() -> PathBuf {
    model("resnet18_narrow.pth")
}

/// The embedded model: EfficientNet-Lite0 with its ImageNet weights.
pub fn efficientnet_lite0() -> PathBuf {
    root().join("assets/models/efficientnet_lite0.safetensors")
}

/// The demo's three photos, an ImageFolder named by ImageNet class.
pub fn demo_photos() -> PathBuf {
    root().join("assets/demo/photos")
}

/// The own-classes demo: coarse everyday classes (not ImageNet's) of the demo photos, `train/`
/// and `val/`.
pub fn demo_own() -> PathBuf {
    root().join("assets/demo/own")
}

/// The Fashion demo: `train/` and `val/` splits and its grid.
pub fn fashion() -> PathBuf {
    root().join("assets/demo/fashion")
}

/// The Fashion demo's validation split (1000 images, 10 classes).
pub fn fashion_val() -> PathBuf {
    fashion().join("val")
}

/// The Fashion demo's model trained at K = 20 (`resnet-tiny`, the small-image stem).
pub fn fashion_model() -> PathBuf {
    fashion().join("grid/models/resnet-tiny_k20.safetensors")
}

/// `tests/fixtures/reference.json`, written by `make_reference.py`.
pub fn reference() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("reference.json"))
        .expect("reference.json (run tests/fixtures/make_reference.py)");
    serde_json::from_str(&text).expect("reference.json is JSON")
}
