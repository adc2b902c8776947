//! Bad files and folders: each gives a typed error naming its path; a scan skips, lists and
//! counts them, and never panics.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use fixres::data::decode::probe_file;
use fixres::data::{Check, DecodeError, DecodeLimits, ImageFolder, ScanError, Skip, decode_file};

use crate::util::cmd::{fixres_err, fixres_ok};
use crate::util::fixtures::photo;
use crate::util::folders::Folder;
use crate::util::images::png_chunk;

fn decode(path: &Path) -> DecodeError {
    let err = decode_file(path, DecodeLimits::default()).expect_err("must be refused");
    assert_eq!(err.path(), path, "the error names the file");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    err
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn half_of(name: &str) -> Vec<u8> {
    let bytes = std::fs::read(photo(name)).unwrap();
    bytes[..bytes.len() / 2].to_vec()
}

/// A PNG whose header claims `w`×`h`, followed by the start of a zlib stream (a decompression
/// bomb is tiny on disk: its compressed zeros would fill gigabytes).
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend(png_chunk(b"IHDR", &ihdr));
    bytes.extend(png_chunk(b"IDAT", &[0x78, 0x9c, 0xed, 0xc1, 0x01, 0x0d, 0x00, 0x00]));
    bytes.extend(png_chunk(b"IEND", &[]));
    bytes
}

#[test]
fn zero_byte_file() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        decode(&write(dir.path(), "empty.jpg", b"")),
        DecodeError::Empty { .. }
    ));
}

#[test]
fn truncated_jpeg() {
    let dir = tempfile::tempdir().unwrap();
    let err = decode(&write(dir.path(), "cut.jpg", &half_of("rocket.jpg")));
    assert!(matches!(err, DecodeError::Truncated { format: "JPEG", .. }), "{err:?}");
}

#[test]
fn truncated_progressive_jpeg() {
    let dir = tempfile::tempdir().unwrap();
    let err = decode(&write(dir.path(), "cut.jpg", &half_of("hubble_tall.jpg")));
    assert!(matches!(err, DecodeError::Truncated { format: "JPEG", .. }), "{err:?}");
}

#[test]
fn truncated_png() {
    let dir = tempfile::tempdir().unwrap();
    let err = decode(&write(dir.path(), "cut.png", &half_of("chelsea.png")));
    assert!(matches!(err, DecodeError::Truncated { format: "PNG", .. }), "{err:?}");
}

#[test]
fn text_file_named_jpg() {
    let dir = tempfile::tempdir().unwrap();
    let err = decode(&write(dir.path(), "notes.jpg", b"these are my notes, not a photo\n"));
    assert!(matches!(err, DecodeError::NotAnImage { .. }), "{err:?}");
}

#[test]
fn unsupported_format() {
    // A GIF named .png: PIL goes by content; torchvision's loader does not take GIFs.
    let dir = tempfile::tempdir().unwrap();
    let gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";
    let err = decode(&write(dir.path(), "anim.png", gif));
    assert!(matches!(err, DecodeError::Unsupported { .. }), "{err:?}");
}

#[test]
fn png_header_claiming_30000_squared_is_refused_before_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "bomb.png", &png_header_only(30_000, 30_000));
    let err = decode(&p);
    assert!(
        matches!(
            err,
            DecodeError::TooLarge {
                width: 30_000,
                height: 30_000,
                ..
            }
        ),
        "{err:?}"
    );
    let err = probe_file(&p, DecodeLimits::default()).expect_err("header check refuses it too");
    assert!(matches!(err, DecodeError::TooLarge { .. }), "{err:?}");
}

#[test]
fn unreadable_file() {
    // A dangling symlink cannot be opened, even by root (who reads chmod-000 files).
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("gone.jpg");
    std::os::unix::fs::symlink(dir.path().join("missing.jpg"), &p).unwrap();
    assert!(matches!(decode(&p), DecodeError::Io { .. }));
}

#[test]
fn folder_without_class_subfolders() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(photo("rocket.jpg"), dir.path().join("rocket.jpg")).unwrap();
    let err = ImageFolder::scan(dir.path(), Check::List, DecodeLimits::default()).expect_err("no classes");
    assert!(matches!(err, ScanError::NoClasses { .. }));
    assert!(err.to_string().contains(&dir.path().display().to_string()));
}

#[test]
fn missing_root_folder() {
    let err = ImageFolder::scan(Path::new("/nonexistent/dataset"), Check::List, DecodeLimits::default())
        .expect_err("missing");
    assert!(matches!(err, ScanError::Unreadable { .. }));
    assert!(err.to_string().contains("/nonexistent/dataset"));
}

#[test]
fn empty_class_folder_is_kept_as_a_class_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    Folder::new(dir.path())
        .classes(["b_empty"])
        .photo("a_cat", "chelsea.png");
    let f = ImageFolder::scan(dir.path(), Check::Header, DecodeLimits::default()).unwrap();
    assert_eq!(f.classes, ["a_cat", "b_empty"]);
    assert_eq!(f.samples.len(), 1);
    assert!(matches!(&f.skipped[..], [Skip::EmptyClass { path }] if path.ends_with("b_empty")));
}

#[test]
fn symlink_loop_is_not_followed_forever() {
    let dir = tempfile::tempdir().unwrap();
    Folder::new(dir.path()).photo_as("cls", "chelsea.png", "sub/chelsea.png");
    let class = dir.path().join("cls");
    std::os::unix::fs::symlink(&class, class.join("sub/back_up")).unwrap();
    let f = ImageFolder::scan(dir.path(), Check::List, DecodeLimits::default()).unwrap();
    assert_eq!(f.samples.len(), 1);
    assert!(matches!(&f.skipped[..], [Skip::SymlinkLoop { path }] if path.ends_with("sub/back_up")));
}

#[test]
fn a_scan_of_a_messy_folder_keeps_the_good_images_and_lists_every_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    Folder::new(root)
        .classes(["empty"])
        .photo("good", "rocket.jpg")
        .photo("good", "chelsea.png")
        .photo("good", "camera_grey.jpg")
        .file("bad", "empty.jpg", b"")
        .file("bad", "cut.jpg", &half_of("rocket.jpg"))
        .file("bad", "cut.png", &half_of("chelsea.png"))
        .file("bad", "text.JPG", b"hello")
        .file("bad", "bomb.png", &png_header_only(30_000, 30_000))
        .file(
            "bad",
            "readme.txt",
            b"not an image extension: ignored, as torchvision ignores it",
        );
    let bad = root.join("bad");
    std::os::unix::fs::symlink(root.join("nowhere.png"), bad.join("dangling.png")).unwrap();
    std::os::unix::fs::symlink(root, bad.join("loop")).unwrap();

    let f = ImageFolder::scan(root, Check::Decode, DecodeLimits::default()).unwrap();
    assert_eq!(f.classes, ["bad", "empty", "good"]);
    let kept: Vec<_> = f
        .samples
        .iter()
        .map(|s| s.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(kept, ["camera_grey.jpg", "chelsea.png", "rocket.jpg"]);
    assert!(f.samples.iter().all(|s| s.class == 2 && s.size.is_some()));
    let mut skipped: Vec<_> = f
        .skipped
        .iter()
        .map(|s| s.path().file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    skipped.sort();
    assert_eq!(
        skipped,
        [
            "bomb.png",
            "cut.jpg",
            "cut.png",
            "dangling.png",
            "empty",
            "empty.jpg",
            "loop",
            "text.JPG"
        ]
    );
    let json = serde_json::to_value(&f.skipped).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 8);
}

/// An export onto a FIFO (or a device) is refused and leaves it as it was; onto a symlink it
/// writes through to the file the link names, and the link stays.
#[test]
fn outputs_never_replace_a_fifo_and_write_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.safetensors");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let image = photo("chelsea.png");
    let preprocess = |out: &Path| {
        [
            "preprocess",
            "--image",
            image.to_str().unwrap(),
            "--res",
            "32",
            "--out",
            out.to_str().unwrap(),
        ]
        .map(str::to_owned)
    };
    let stderr = fixres_err(&preprocess(&fifo)).stderr;
    assert!(stderr.contains("not a regular file"), "{stderr}");
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());

    let target = dir.path().join("target.safetensors");
    std::fs::write(&target, b"old").unwrap();
    let link = dir.path().join("link.safetensors");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    fixres_ok(&preprocess(&link));
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert!(
        std::fs::read(&target).unwrap().len() > 1000,
        "the link's target holds the input"
    );
}

/// A FIFO named like an image is listed as skipped, not opened (opening it would block).
#[test]
fn a_fifo_in_a_class_folder_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    Folder::new(dir.path()).photo("tabby", "chelsea.png");
    let class = dir.path().join("tabby");
    let made = std::process::Command::new("mkfifo")
        .arg(class.join("pipe.png"))
        .status()
        .unwrap();
    assert!(made.success());
    let folder = ImageFolder::scan(dir.path(), Check::Decode, DecodeLimits::default()).unwrap();
    assert_eq!(folder.samples.len(), 1);
    assert!(
        matches!(&folder.skipped[..], [Skip::NotAFile { path }] if path.ends_with("pipe.png")),
        "{:?}",
        folder.skipped
    );
}
