//! Images: decoding a fixture, comparing two images, writing hand-made PNG chunks.

use std::path::Path;

use fixres::data::{DecodeLimits, RgbImage, decode_file};

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
