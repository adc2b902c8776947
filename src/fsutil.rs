//! File writes that never leave a half-written file behind, and paths as text for reports.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// A path as JSON text: its UTF-8 form, with U+FFFD for bytes that are not UTF-8 (serde_json
/// refuses such paths, and its `json!` macro panics on them; torchvision reads such files, so
/// they reach reports).
#[must_use]
pub fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// `#[serde(serialize_with = "crate::fsutil::serialize_path")]`: a path field as `path_text`.
pub fn serialize_path<S: serde::Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&path.to_string_lossy())
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, synced, then renamed
/// over `path`. A crash or a full disk leaves the old file (or none), never a torn one. A symlink
/// is written through (the file it points to is replaced, the link stays); a device, FIFO or
/// socket at `path` is refused, not replaced by a file (as root, `--out /dev/null` would have
/// replaced the system's).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let resolved;
    let path = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            resolved = std::fs::canonicalize(path)
                .with_context(|| format!("{}: a symlink to nothing; not written", path.display()))?;
            &resolved
        }
        _ => path,
    };
    if let Ok(meta) = std::fs::metadata(path)
        && !meta.is_file()
    {
        anyhow::bail!(
            "{}: exists and is not a regular file ({}); not replaced",
            path.display(),
            if meta.is_dir() {
                "a folder"
            } else {
                "a device, FIFO or socket"
            }
        );
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .with_context(|| format!("{}: not a file path", path.display()))?;
    let tmp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ignored_cleanup = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("{}: cannot write", path.display()))
}
