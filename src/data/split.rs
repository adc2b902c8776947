//! A labelled ImageFolder's training and validation images, decoded: `train/` and `val/` when
//! the folder has both, else a seeded fifth of each class held out for validation.

use std::path::Path;

use rayon::prelude::*;

use super::{Check, DecodeLimits, ImageFolder, RgbImage, SeededRng, decode_file};

/// Decoded images and their class indices.
pub struct Labelled {
    /// The images.
    pub images: Vec<RgbImage>,
    /// Index into `Splits::classes`, per image.
    pub labels: Vec<usize>,
}

/// Both splits.
pub struct Splits {
    /// Training images.
    pub train: Labelled,
    /// Validation images.
    pub val: Labelled,
    /// Class names (sorted, as torchvision's ImageFolder).
    pub classes: Vec<String>,
    /// Files that could not be decoded (skipped).
    pub unreadable: usize,
}

fn decode(folder: &ImageFolder, pick: &[usize]) -> (Labelled, usize) {
    let decoded: Vec<_> = pick
        .par_iter()
        .map(|&i| {
            decode_file(&folder.samples[i].path, DecodeLimits::default()).map(|img| (img, folder.samples[i].class))
        })
        .collect();
    let failed = decoded.iter().filter(|r| r.is_err()).count();
    let (images, labels) = decoded.into_iter().flatten().unzip();
    (Labelled { images, labels }, failed)
}

/// Train / validation indices into `folder.samples`: every fifth image of each class, in a
/// seeded order, is held out (so classes of fewer than five images have no validation image).
#[must_use]
pub fn seeded_split(folder: &ImageFolder, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for class in 0..folder.classes.len() {
        let mut idx: Vec<usize> = (0..folder.samples.len())
            .filter(|&i| folder.samples[i].class == class)
            .collect();
        SeededRng::for_item(seed, class as u64).shuffle(&mut idx);
        for (j, i) in idx.into_iter().enumerate() {
            if j % 5 == 4 { val.push(i) } else { train.push(i) }
        }
    }
    (train, val)
}

/// A split dataset: one with `train/` and `val/` sub-folders.
#[must_use]
pub fn is_split(dir: &Path) -> bool {
    dir.join("train").is_dir() && dir.join("val").is_dir()
}

/// The folder a model is judged on: `val/` of a split dataset, else `dir` itself (torchvision
/// would take `train` and `val` for two classes).
#[must_use]
pub fn held_out(dir: &Path) -> std::path::PathBuf {
    if is_split(dir) { dir.join("val") } else { dir.to_owned() }
}

/// Scans and decodes `data`'s two splits.
pub fn load_splits(data: &Path, seed: u64) -> anyhow::Result<Splits> {
    let all = |f: &ImageFolder| (0..f.samples.len()).collect::<Vec<_>>();
    let (train, val, classes, unreadable) = if is_split(data) {
        let train = ImageFolder::scan(&data.join("train"), Check::List, DecodeLimits::default())?;
        let val = ImageFolder::scan(&data.join("val"), Check::List, DecodeLimits::default())?;
        anyhow::ensure!(
            train.classes == val.classes,
            "{}: train/ and val/ have different classes",
            data.display()
        );
        let (t, tf) = decode(&train, &all(&train));
        let (v, vf) = decode(&val, &all(&val));
        (t, v, train.classes, tf + vf)
    } else {
        let folder = ImageFolder::scan(data, Check::List, DecodeLimits::default())?;
        let (train, val) = seeded_split(&folder, seed);
        let (t, tf) = decode(&folder, &train);
        let (v, vf) = decode(&folder, &val);
        (t, v, folder.classes, tf + vf)
    };
    anyhow::ensure!(
        !train.images.is_empty(),
        "{}: no training images could be read",
        data.display()
    );
    Ok(Splits {
        train,
        val,
        classes,
        unreadable,
    })
}
