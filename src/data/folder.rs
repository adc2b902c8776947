//! torchvision's `ImageFolder`: `root/<class>/**/<image>`, classes = sorted sub-folder names,
//! files sorted, extensions from torchvision's `IMG_EXTENSIONS` (case-insensitive), symlinks
//! followed. Unlike torchvision, problems do not abort the scan: each is skipped and listed.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use super::decode::{DecodeError, DecodeLimits, decode_file, probe_file};
use super::rng::SeededRng;

/// torchvision's `IMG_EXTENSIONS`, lower case, without the dot.
pub const IMG_EXTENSIONS: [&str; 9] = ["jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff", "webp"];

/// Whether ImageFolder would pick up `path` (by extension, case-insensitive).
#[must_use]
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMG_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Why the scan could not produce a dataset at all.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The root cannot be listed.
    #[error("{}: cannot read folder: {source}", path.display())]
    Unreadable {
        /// The root.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The root holds no sub-folders, so there are no classes.
    #[error("{}: no class sub-folders (an ImageFolder holds one folder of images per class)", path.display())]
    NoClasses {
        /// The root.
        path: PathBuf,
    },
}

/// Something the scan left out, naming its path.
#[derive(Debug, thiserror::Error)]
pub enum Skip {
    /// An image file that failed its check.
    #[error(transparent)]
    Image(#[from] DecodeError),
    /// A class folder with no image in it (torchvision would refuse the whole dataset).
    #[error("{}: class folder holds no image", path.display())]
    EmptyClass {
        /// The class folder.
        path: PathBuf,
    },
    /// A folder symlink that leads back to one of its own parents.
    #[error("{}: symlink loop, not followed", path.display())]
    SymlinkLoop {
        /// The link.
        path: PathBuf,
    },
    /// A name with an image extension that is a FIFO, device or socket: reading it could block
    /// forever (torchvision would hang there).
    #[error("{}: not a regular file (a FIFO, device or socket); not read", path.display())]
    NotAFile {
        /// The entry.
        path: PathBuf,
    },
    /// A folder inside a class that cannot be listed.
    #[error("{}: cannot read folder: {source}", path.display())]
    UnreadableFolder {
        /// The folder.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

impl Skip {
    /// The path this is about.
    #[must_use]
    pub fn path(&self) -> &Path {
        match self {
            Self::Image(e) => e.path(),
            Self::EmptyClass { path }
            | Self::SymlinkLoop { path }
            | Self::NotAFile { path }
            | Self::UnreadableFolder { path, .. } => path,
        }
    }
}

impl Serialize for Skip {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Skip", 2)?;
        st.serialize_field("path", &crate::fsutil::path_text(self.path()))?;
        st.serialize_field("reason", &self.to_string())?;
        st.end()
    }
}

/// How much the scan checks each image file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Only list files (fast; bad files surface when they are decoded).
    List,
    /// Read each header: catches empty, non-image, unsupported and oversized files, and gives the
    /// image sizes.
    Header,
    /// Decode every image fully: also catches truncated and corrupt data.
    Decode,
}

/// One image of the dataset.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// The file.
    #[serde(serialize_with = "crate::fsutil::serialize_path")]
    pub path: PathBuf,
    /// Index into `ImageFolder::classes`.
    pub class: usize,
    /// `(width, height)`, when the scan read the header.
    pub size: Option<(u32, u32)>,
}

/// A scanned dataset.
#[derive(Debug, Serialize)]
pub struct ImageFolder {
    /// The folder scanned.
    #[serde(serialize_with = "crate::fsutil::serialize_path")]
    pub root: PathBuf,
    /// Class names, sorted (empty classes kept, so indices match torchvision's).
    pub classes: Vec<String>,
    /// Images, by class then path, as torchvision orders them.
    pub samples: Vec<Sample>,
    /// What was left out, and why.
    pub skipped: Vec<Skip>,
}

impl ImageFolder {
    /// The samples in a seeded, class-stratified random order (indices into `samples`): each
    /// class shuffled, then the classes interleaved in proportion to their sizes, so that the
    /// first `n` images of the order are a random sample of the folder with every class in its
    /// share (to within two images). A sweep visiting them in this order is an estimate of the
    /// whole folder from its first batch on; the same seed gives the same order.
    #[must_use]
    pub fn stratified_order(&self, seed: u64) -> Vec<usize> {
        let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); self.classes.len()];
        for (i, s) in self.samples.iter().enumerate() {
            by_class[s.class].push(i);
        }
        // Image j of a class of n is due at (j + 1/2) / n of the way through the order (the
        // midpoint of its slot: Webster's apportionment), so every prefix holds each class in
        // proportion; classes due at the same point go in a seeded random order.
        let mut rank: Vec<usize> = (0..by_class.len()).collect();
        SeededRng::new(seed).shuffle(&mut rank);
        let mut keyed: Vec<(f64, usize, usize)> = Vec::with_capacity(self.samples.len());
        for (class, members) in by_class.iter_mut().enumerate() {
            SeededRng::for_item(seed, class as u64).shuffle(members);
            let n = members.len() as f64;
            for (j, &i) in members.iter().enumerate() {
                keyed.push(((j as f64 + 0.5) / n, rank[class], i));
            }
        }
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        keyed.into_iter().map(|(_, _, i)| i).collect()
    }

    /// Scans `root` as torchvision's ImageFolder does, checking each file as `check` says,
    /// in parallel.
    pub fn scan(root: &Path, check: Check, limits: DecodeLimits) -> Result<Self, ScanError> {
        let unreadable = |source| ScanError::Unreadable {
            path: root.to_owned(),
            source,
        };
        let mut classes = Vec::new();
        for entry in std::fs::read_dir(root).map_err(unreadable)? {
            let entry = entry.map_err(unreadable)?;
            // `is_dir` through symlinks, as Python's `DirEntry.is_dir()`.
            if entry.path().is_dir() {
                classes.push(entry.file_name());
            }
        }
        if classes.is_empty() {
            return Err(ScanError::NoClasses { path: root.to_owned() });
        }
        // Byte order of UTF-8 names = Python's code point order.
        classes.sort();
        let mut samples = Vec::new();
        let mut skipped = Vec::new();
        // A link back to the root counts as a loop too: it would reach every class again.
        let root_canonical = root.canonicalize().map_err(unreadable)?;
        for (class, name) in classes.iter().enumerate() {
            let dir = root.join(name);
            let mut files = Vec::new();
            walk(&dir, &mut vec![root_canonical.clone()], &mut files, &mut skipped);
            // `sorted(os.walk(...))` then `sorted(fnames)`: by folder path as a string, then name.
            files.sort_by(|a, b| {
                (a.parent().map(Path::as_os_str), a.file_name()).cmp(&(b.parent().map(Path::as_os_str), b.file_name()))
            });
            if files.is_empty() {
                skipped.push(Skip::EmptyClass { path: dir });
            }
            samples.extend(files.into_iter().map(|path| Sample {
                path,
                class,
                size: None,
            }));
        }
        let classes = classes.into_iter().map(|c| c.to_string_lossy().into_owned()).collect();
        let mut folder = Self {
            root: root.to_owned(),
            classes,
            samples,
            skipped,
        };
        folder.check(check, limits);
        Ok(folder)
    }

    fn check(&mut self, check: Check, limits: DecodeLimits) {
        let probe = |s: &Sample| -> Result<(u32, u32), DecodeError> {
            match check {
                Check::List => unreachable!("nothing to check"),
                Check::Header => probe_file(&s.path, limits),
                Check::Decode => decode_file(&s.path, limits).map(|i| (i.width() as u32, i.height() as u32)),
            }
        };
        if check == Check::List {
            return;
        }
        let results: Vec<_> = self.samples.par_iter().map(probe).collect();
        let mut kept = Vec::with_capacity(self.samples.len());
        for (mut sample, result) in std::mem::take(&mut self.samples).into_iter().zip(results) {
            match result {
                Ok(size) => {
                    sample.size = Some(size);
                    kept.push(sample);
                }
                Err(e) => self.skipped.push(Skip::Image(e)),
            }
        }
        self.samples = kept;
    }

    /// Number of images per class.
    #[must_use]
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for s in &self.samples {
            counts[s.class] += 1;
        }
        counts
    }
}

/// `os.walk(dir, followlinks=True)`, collecting image files; `ancestors` holds the canonical
/// folders above, so a link back to one of them is skipped rather than followed forever.
fn walk(dir: &Path, ancestors: &mut Vec<PathBuf>, files: &mut Vec<PathBuf>, skipped: &mut Vec<Skip>) {
    let canonical = match dir.canonicalize() {
        Ok(c) => c,
        Err(source) => {
            skipped.push(Skip::UnreadableFolder {
                path: dir.to_owned(),
                source,
            });
            return;
        }
    };
    if ancestors.contains(&canonical) {
        skipped.push(Skip::SymlinkLoop { path: dir.to_owned() });
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(source) => {
            skipped.push(Skip::UnreadableFolder {
                path: dir.to_owned(),
                source,
            });
            return;
        }
    };
    ancestors.push(canonical);
    let mut subdirs = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            subdirs.push(path);
        } else if has_image_extension(&path) {
            // `metadata` follows links; a dangling one fails here and is left to the decoder,
            // which names it.
            match std::fs::metadata(&path) {
                Ok(meta) if !meta.is_file() => skipped.push(Skip::NotAFile { path }),
                _ => files.push(path),
            }
        }
    }
    for sub in subdirs {
        walk(&sub, ancestors, files, skipped);
    }
    ancestors.pop();
}

#[cfg(test)]
impl ImageFolder {
    /// A folder of classes `c0`, `c1`, … with `sizes[c]` images each, nothing on disk (for tests
    /// of what reads only the list).
    pub(crate) fn of_sizes(sizes: &[usize]) -> Self {
        let samples = sizes
            .iter()
            .enumerate()
            .flat_map(|(class, &n)| {
                (0..n).map(move |i| Sample {
                    path: PathBuf::from(format!("c{class}/{i}.png")),
                    class,
                    size: None,
                })
            })
            .collect();
        Self {
            root: PathBuf::from("data"),
            classes: (0..sizes.len()).map(|c| format!("c{c}")).collect(),
            samples,
            skipped: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_prefix_of_the_stratified_order_holds_each_class_in_its_share() {
        // Uneven classes, one empty (ImageFolder keeps empty classes).
        for sizes in [
            &[50, 7, 0, 120, 13, 1, 300][..],
            &[50; 1000],
            &[3, 1300, 732, 1300, 1, 5, 260, 1300],
        ] {
            check_shares(sizes);
        }
    }

    fn check_shares(sizes: &[usize]) {
        let f = ImageFolder::of_sizes(sizes);
        let total: usize = sizes.iter().sum();
        let order = f.stratified_order(5);
        let mut seen = order.clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..total).collect::<Vec<_>>(), "a permutation");
        let mut counts = vec![0usize; sizes.len()];
        for (m, &i) in order.iter().enumerate() {
            counts[f.samples[i].class] += 1;
            for (c, &n) in sizes.iter().enumerate() {
                let share = (m + 1) as f64 * n as f64 / total as f64;
                assert!(
                    (counts[c] as f64 - share).abs() <= 2.0,
                    "prefix {}: class {c} has {} of its share {share:.2}",
                    m + 1,
                    counts[c]
                );
            }
        }
        assert_eq!(order, f.stratified_order(5), "the same seed, the same order");
        assert_ne!(order, f.stratified_order(6), "another seed, another order");
        // Within a class the order is shuffled, not the folder's.
        let class_six: Vec<usize> = order.iter().copied().filter(|&i| f.samples[i].class == 6).collect();
        assert!(class_six.windows(2).any(|w| w[0] > w[1]));
    }
}
