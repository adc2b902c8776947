//! Helpers shared by the integration tests: fixture paths, reference data, image comparison.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use fixres::data::{DecodeLimits, RgbImage, decode_file};

/// `tests/fixtures/`.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures")
}

/// A fixture photo by file name.
pub fn photo(name: &str) -> PathBuf {
    fixtures().join("photos").join(name)
}

/// `tests/fixtures/reference.json`, written by `make_reference.py`.
pub fn reference() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("reference.json"))
        .expect("reference.json (run tests/fixtures/make_reference.py)");
    serde_json::from_str(&text).expect("reference.json is JSON")
}

/// Decodes a file that must decode.
pub fn load(path: &Path) -> RgbImage {
    decode_file(path, DecodeLimits::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// How two same-sized images differ: share of channel values within 1 level, largest
/// difference, share exactly equal.
#[derive(Debug, Clone, Copy)]
pub struct Diff {
    pub within_one: f64,
    pub max: u8,
    pub exact: f64,
}

pub fn diff(a: &RgbImage, b: &RgbImage) -> Diff {
    assert_eq!((a.width(), a.height()), (b.width(), b.height()), "sizes differ");
    let n = a.as_raw().len() as f64;
    let (mut within, mut exact, mut max) = (0usize, 0usize, 0u8);
    for (&x, &y) in a.as_raw().iter().zip(b.as_raw()) {
        let d = x.abs_diff(y);
        within += usize::from(d <= 1);
        exact += usize::from(d == 0);
        max = max.max(d);
    }
    Diff {
        within_one: within as f64 / n,
        max,
        exact: exact as f64 / n,
    }
}

/// Runs the `fixres` binary; returns (status, stdout, stderr).
pub fn fixres(args: &[&str]) -> (std::process::ExitStatus, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fixres"))
        .args(args)
        .output()
        .expect("run fixres");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// CRC-32 (PNG's), for writing hand-made PNG headers.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG chunk with its length and CRC.
pub fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
    out
}

/// A little-endian f32 buffer as values.
pub fn le_f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// An f32 tensor of a safetensors file: shape and values.
pub fn f32_tensor(st: &safetensors::SafeTensors<'_>, key: &str) -> (Vec<usize>, Vec<f32>) {
    let t = st.tensor(key).unwrap_or_else(|e| panic!("{key}: {e}"));
    (t.shape().to_vec(), le_f32s(t.data()))
}

/// Largest |ours − theirs| relative to the largest |theirs|.
pub fn relative_error(ours: &[f32], theirs: &[f32]) -> f32 {
    assert_eq!(ours.len(), theirs.len());
    let scale = theirs.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    ours.iter().zip(theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max) / scale
}
