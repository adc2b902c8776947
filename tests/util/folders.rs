//! ImageFolder datasets (one folder per class) made of fixture photos and hand-written files.

use std::path::PathBuf;

use super::fixtures::photo;

/// An ImageFolder being made, at `root`: `Folder::new(root).photo("cat", "chelsea.png").file(..)`.
pub struct Folder {
    root: PathBuf,
}

impl Folder {
    /// A dataset at `root` (created, with any missing parents).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        std::fs::create_dir_all(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display()));
        Self { root }
    }

    /// Class folders, empty until something is put in them.
    pub fn classes<S: AsRef<str>>(&self, names: impl IntoIterator<Item = S>) -> &Self {
        for name in names {
            std::fs::create_dir_all(self.root.join(name.as_ref())).unwrap();
        }
        self
    }

    /// The fixture photo `photo` in `class`, under its own name.
    pub fn photo(&self, class: &str, photo: &str) -> &Self {
        self.photo_as(class, photo, photo)
    }

    /// The fixture photo `photo` in `class`, as `name` (which may name a subfolder).
    pub fn photo_as(&self, class: &str, photo_name: &str, name: &str) -> &Self {
        let to = self.place(class, name);
        std::fs::copy(photo(photo_name), &to).unwrap_or_else(|e| panic!("{photo_name} to {}: {e}", to.display()));
        self
    }

    /// A file of `bytes` in `class`, as `name` (a broken image, a text file).
    pub fn file(&self, class: &str, name: &str, bytes: &[u8]) -> &Self {
        std::fs::write(self.place(class, name), bytes).unwrap();
        self
    }

    fn place(&self, class: &str, name: &str) -> PathBuf {
        let to = self.root.join(class).join(name);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        to
    }
}
