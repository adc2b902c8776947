//! Binary PGM/PPM (P5/P6) whose maxval is not 255, read as Pillow 13 reads them
//! (`PpmImagePlugin`): the `image` crate keeps such samples as they are (or widens them to 16
//! bits), Pillow rescales them, so the bytes would differ.
//!
//! Pillow: every sample becomes `min(255, round(v / maxval * 255))` (Python's `round`: ties to
//! even), except a grey image with maxval above 255, which opens as mode "I" (`v` itself when
//! maxval is 65535, else `round(v / maxval * 65535)`), and whose `convert("RGB")` clips at 255.

use std::path::Path;

use super::{DecodeError, RgbImage};

/// `Some` for a binary PGM/PPM with maxval ≠ 255 (decoded, or why not); `None` for anything
/// else, which the general decoder reads the same way Pillow does.
pub(crate) fn decode_rescaled(path: &Path, bytes: &[u8]) -> Option<Result<RgbImage, DecodeError>> {
    let (colour, width, height, maxval, raster) = header(bytes)?;
    if maxval == 255 {
        return None;
    }
    let bands = if colour { 3 } else { 1 };
    let wide = maxval > 255;
    let sample_bytes = if wide { 2 } else { 1 };
    let needed = width * height * bands * sample_bytes;
    let Some(data) = bytes.get(raster..).filter(|d| d.len() >= needed) else {
        return Some(Err(DecodeError::Truncated {
            path: path.to_owned(),
            format: "PNM",
        }));
    };
    let sample = |i: usize| -> u32 {
        if wide {
            u32::from(u16::from_be_bytes([data[2 * i], data[2 * i + 1]]))
        } else {
            u32::from(data[i])
        }
    };
    let rescale = |v: u32, out_max: u32| -> u32 {
        let scaled = (f64::from(v) / f64::from(maxval) * f64::from(out_max)).round_ties_even();
        (scaled as u32).min(out_max)
    };
    let to_u8 = |v: u32| -> u8 {
        if !colour && wide {
            // Mode "I", then convert("RGB"), which clips.
            let i = if maxval == 65535 { v } else { rescale(v, 65535) };
            i.min(255) as u8
        } else {
            rescale(v, 255) as u8
        }
    };
    let mut rgb = Vec::with_capacity(width * height * 3);
    for p in 0..width * height {
        if colour {
            rgb.extend((0..3).map(|c| to_u8(sample(3 * p + c))));
        } else {
            let g = to_u8(sample(p));
            rgb.extend([g, g, g]);
        }
    }
    Some(Ok(RgbImage::from_raw(width, height, rgb).expect("3 bytes per pixel")))
}

/// `(colour, width, height, maxval, raster offset)` of a P5/P6 header: whitespace-separated
/// tokens, `#` comments to the end of the line, one whitespace byte after maxval.
fn header(bytes: &[u8]) -> Option<(bool, usize, usize, u32, usize)> {
    let colour = match bytes.get(..2)? {
        b"P5" => false,
        b"P6" => true,
        _ => return None,
    };
    let mut pos = 2;
    let mut next = || -> Option<u64> {
        loop {
            match *bytes.get(pos)? {
                b'#' => {
                    while *bytes.get(pos)? != b'\n' {
                        pos += 1;
                    }
                }
                c if c.is_ascii_whitespace() => pos += 1,
                _ => break,
            }
        }
        let start = pos;
        while bytes.get(pos).is_some_and(u8::is_ascii_digit) {
            pos += 1;
        }
        std::str::from_utf8(&bytes[start..pos]).ok()?.parse().ok()
    };
    let (width, height, maxval) = (next()?, next()?, next()?);
    if !(1..65536).contains(&maxval) || !bytes.get(pos)?.is_ascii_whitespace() {
        return None;
    }
    Some((colour, width as usize, height as usize, maxval as u32, pos + 1))
}
