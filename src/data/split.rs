//! A labelled ImageFolder's training and validation images, decoded: `train/` and `val/` when
//! the folder has both, else a seeded fifth of each class held out for validation (at least one
//! image of a class that has two).

use std::path::{Path, PathBuf};

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

/// Decodes listed images (in parallel), dropping those that fail; returns them and the count
/// that failed.
#[must_use]
pub fn decode_listed(listed: &[(PathBuf, usize)]) -> (Labelled, usize) {
    let decoded: Vec<_> = listed
        .par_iter()
        .map(|(path, class)| decode_file(path, DecodeLimits::default()).map(|img| (img, *class)))
        .collect();
    let failed = decoded.iter().filter(|r| r.is_err()).count();
    let (images, labels) = decoded.into_iter().flatten().unzip();
    (Labelled { images, labels }, failed)
}

/// Train / validation indices into `folder.samples`: every fifth image of each class, in a
/// seeded order, is held out; a class of two to four images gives its last one (so that a tiny
/// folder still has a validation image per class), a class of one image none.
#[must_use]
pub fn seeded_split(folder: &ImageFolder, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for class in 0..folder.classes.len() {
        let mut idx: Vec<usize> = (0..folder.samples.len())
            .filter(|&i| folder.samples[i].class == class)
            .collect();
        SeededRng::for_item(seed, class as u64).shuffle(&mut idx);
        let n = idx.len();
        for (j, i) in idx.into_iter().enumerate() {
            let held_out = if n >= 5 { j % 5 == 4 } else { n >= 2 && j == n - 1 };
            if held_out { val.push(i) } else { train.push(i) }
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

/// The folders a label-free remedy estimates on and scores on: `train/` and `val/` of a split
/// dataset, else `dir` for both (`None`: the same images).
#[must_use]
pub fn estimate_and_score(dir: &Path) -> (std::path::PathBuf, Option<std::path::PathBuf>) {
    if is_split(dir) {
        (dir.join("train"), Some(dir.join("val")))
    } else {
        (dir.to_owned(), None)
    }
}

/// Both splits' files, undecoded: path and class index, in the split's order (the folder's for
/// `train/` and `val/`, else `seeded_split`'s).
pub struct Listed {
    /// Training files.
    pub train: Vec<(PathBuf, usize)>,
    /// Validation files.
    pub val: Vec<(PathBuf, usize)>,
    /// Class names (sorted, as torchvision's ImageFolder).
    pub classes: Vec<String>,
}

/// Scans `data`'s two splits.
pub fn list_splits(data: &Path, seed: u64) -> anyhow::Result<Listed> {
    let pick = |f: &ImageFolder, idx: &[usize]| -> Vec<(PathBuf, usize)> {
        idx.iter()
            .map(|&i| (f.samples[i].path.clone(), f.samples[i].class))
            .collect()
    };
    let all = |f: &ImageFolder| (0..f.samples.len()).collect::<Vec<_>>();
    if is_split(data) {
        let train = ImageFolder::scan(&data.join("train"), Check::List, DecodeLimits::default())?;
        let val = ImageFolder::scan(&data.join("val"), Check::List, DecodeLimits::default())?;
        anyhow::ensure!(
            train.classes == val.classes,
            "{}: train/ and val/ have different classes",
            data.display()
        );
        Ok(Listed {
            train: pick(&train, &all(&train)),
            val: pick(&val, &all(&val)),
            classes: train.classes,
        })
    } else {
        let folder = ImageFolder::scan(data, Check::List, DecodeLimits::default())?;
        let (train, val) = seeded_split(&folder, seed);
        Ok(Listed {
            train: pick(&folder, &train),
            val: pick(&folder, &val),
            classes: folder.classes,
        })
    }
}

/// Scans and decodes `data`'s two splits.
pub fn load_splits(data: &Path, seed: u64) -> anyhow::Result<Splits> {
    let listed = list_splits(data, seed)?;
    let (train, tf) = decode_listed(&listed.train);
    let (val, vf) = decode_listed(&listed.val);
    anyhow::ensure!(
        !train.images.is_empty(),
        "{}: no training images could be read",
        data.display()
    );
    Ok(Splits {
        train,
        val,
        classes: listed.classes,
        unreadable: tf + vf,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_classes_of_two_to_four_images_give_one_to_validation() {
        // The 3-photo demo (one photo a class) and classes of 2–4 gave no validation image.
        let sizes = [1, 2, 3, 4, 5, 9, 10, 12];
        let f = ImageFolder::of_sizes(&sizes);
        let (train, val) = seeded_split(&f, 0);
        let per_class = |pick: &[usize], c: usize| pick.iter().filter(|&&i| f.samples[i].class == c).count();
        let held: Vec<usize> = (0..sizes.len()).map(|c| per_class(&val, c)).collect();
        assert_eq!(held, [0, 1, 1, 1, 1, 1, 2, 2]);
        assert_eq!(train.len() + val.len(), f.samples.len());
        let mut all: Vec<usize> = train.iter().chain(&val).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..f.samples.len()).collect::<Vec<_>>(), "each image once");
    }

    #[test]
    fn classes_of_five_or_more_split_as_before() {
        // Seeded results made before the tiny-class rule stay the same.
        let f = ImageFolder::of_sizes(&[5, 7, 23]);
        for seed in [0, 1, 42] {
            let mut before = Vec::new();
            for class in 0..f.classes.len() {
                let mut idx: Vec<usize> = (0..f.samples.len()).filter(|&i| f.samples[i].class == class).collect();
                SeededRng::for_item(seed, class as u64).shuffle(&mut idx);
                before.extend(idx.into_iter().enumerate().filter(|(j, _)| j % 5 == 4).map(|(_, i)| i));
            }
            assert_eq!(seeded_split(&f, seed).1, before);
        }
    }
}
