//! Decoding files to RGB8 with the semantics of torchvision's default loader,
//! `PIL.Image.open(f).convert('RGB')`: grey replicated, alpha dropped (not composited), palette
//! expanded, 16-bit reduced as Pillow reduces it, EXIF orientation NOT applied.

use std::cell::Cell;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageFormat, ImageReader};

use super::RgbImage;

/// Pillow refuses images above twice its `MAX_IMAGE_PIXELS` (89,478,485) as decompression bombs.
pub const DEFAULT_MAX_PIXELS: u64 = 2 * 89_478_485;

/// A file that could not become an RGB image, and why. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The file could not be read at all.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Zero bytes.
    #[error("{}: empty file (0 bytes)", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The content is no image format we know (like PIL's `UnidentifiedImageError`).
    #[error("{}: not an image (unrecognised content)", path.display())]
    NotAnImage {
        /// The file.
        path: PathBuf,
    },
    /// A known format this loader does not decode.
    #[error("{}: {what} is not supported", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The format or variant.
        what: String,
    },
    /// The header claims more pixels than the limit (a decompression bomb, or just huge).
    #[error("{}: {width}x{height} is {} pixels, over the limit of {limit}", path.display(), *width as u64 * *height as u64)]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// The pixel limit in force.
        limit: u64,
    },
    /// The data ends before the image does.
    #[error("{}: truncated {format} file", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Format name.
        format: &'static str,
    },
    /// The data is damaged.
    #[error("{}: corrupt {format} data: {message}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Format name.
        format: &'static str,
        /// The decoder's words.
        message: String,
    },
}

impl DecodeError {
    /// The file this error is about.
    #[must_use]
    pub fn path(&self) -> &Path {
        match self {
            Self::Io { path, .. }
            | Self::Empty { path }
            | Self::NotAnImage { path }
            | Self::Unsupported { path, .. }
            | Self::TooLarge { path, .. }
            | Self::Truncated { path, .. }
            | Self::Corrupt { path, .. } => path,
        }
    }
}

/// Limits applied before any pixel memory is allocated.
#[derive(Clone, Copy, Debug)]
pub struct DecodeLimits {
    /// Most pixels (width × height) an image may have.
    pub max_pixels: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_pixels: DEFAULT_MAX_PIXELS,
        }
    }
}

/// Formats recognised from the first bytes, as PIL recognises them (by content, not name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sniffed {
    Jpeg,
    Other(ImageFormat),
}

fn sniff(bytes: &[u8]) -> Option<Sniffed> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some(Sniffed::Jpeg);
    }
    image::guess_format(bytes).ok().map(Sniffed::Other)
}

fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Png => "PNG",
        ImageFormat::Bmp => "BMP",
        ImageFormat::Tiff => "TIFF",
        ImageFormat::WebP => "WebP",
        ImageFormat::Pnm => "PNM",
        ImageFormat::Gif => "GIF",
        _ => "image",
    }
}

/// Formats decoded here: torchvision's `IMG_EXTENSIONS` minus JPEG, which goes through libjpeg.
const DECODED_BY_IMAGE_CRATE: [ImageFormat; 5] = [
    ImageFormat::Png,
    ImageFormat::Bmp,
    ImageFormat::Tiff,
    ImageFormat::WebP,
    ImageFormat::Pnm,
];

/// Reads and decodes `path` to RGB8.
pub fn decode_file(path: &Path, limits: DecodeLimits) -> Result<RgbImage, DecodeError> {
    let bytes = std::fs::read(path).map_err(|source| DecodeError::Io {
        path: path.to_owned(),
        source,
    })?;
    decode_bytes(path, &bytes, limits)
}

/// Decodes an in-memory file to RGB8; `path` only names it in errors.
pub fn decode_bytes(path: &Path, bytes: &[u8], limits: DecodeLimits) -> Result<RgbImage, DecodeError> {
    match check_header(path, bytes, limits)?.0 {
        Sniffed::Jpeg => decode_jpeg(path, bytes),
        Sniffed::Other(ImageFormat::Pnm) if let Some(rescaled) = super::pnm::decode_rescaled(path, bytes) => rescaled,
        Sniffed::Other(format) => decode_other(path, bytes, format, limits),
    }
}

/// Width and height from the header alone (cheap: nothing is decoded), with the same checks as
/// decoding (empty, unknown, unsupported, too large).
pub fn probe_file(path: &Path, limits: DecodeLimits) -> Result<(u32, u32), DecodeError> {
    use std::io::Read;
    let io = |source| DecodeError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    // Headers sit at the start, except for JPEG, whose SOF can follow large EXIF/ICC segments.
    let mut head = Vec::new();
    file.take(1 << 20).read_to_end(&mut head).map_err(io)?;
    check_header(path, &head, limits).map(|(_, size)| size)
}

/// The format and `(width, height)`, once the file has passed every check made before decoding.
fn check_header(path: &Path, bytes: &[u8], limits: DecodeLimits) -> Result<(Sniffed, (u32, u32)), DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty { path: path.to_owned() });
    }
    let sniffed = sniff(bytes).ok_or_else(|| DecodeError::NotAnImage { path: path.to_owned() })?;
    if let Sniffed::Other(format) = sniffed
        && !DECODED_BY_IMAGE_CRATE.contains(&format)
    {
        return Err(DecodeError::Unsupported {
            path: path.to_owned(),
            what: format!("{format:?}"),
        });
    }
    let (width, height) = dimensions(path, bytes)?;
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(DecodeError::TooLarge {
            path: path.to_owned(),
            width,
            height,
            limit: limits.max_pixels,
        });
    }
    Ok((sniffed, (width, height)))
}

fn dimensions(path: &Path, bytes: &[u8]) -> Result<(u32, u32), DecodeError> {
    match sniff(bytes) {
        Some(Sniffed::Jpeg) => with_libjpeg(path, || {
            let d = mozjpeg::Decompress::with_err(error_manager()).from_mem(bytes)?;
            let (w, h) = d.size();
            Ok((w as u32, h as u32))
        }),
        Some(Sniffed::Other(format)) => {
            let reader = ImageReader::with_format(Cursor::new(bytes), format);
            reader.into_dimensions().map_err(|e| image_error(path, format, e))
        }
        None => Err(DecodeError::NotAnImage { path: path.to_owned() }),
    }
}

fn image_error(path: &Path, format: ImageFormat, e: image::ImageError) -> DecodeError {
    let format = format_name(format);
    match e {
        image::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => DecodeError::Truncated {
            path: path.to_owned(),
            format,
        },
        image::ImageError::Unsupported(u) => DecodeError::Unsupported {
            path: path.to_owned(),
            what: u.to_string(),
        },
        other => {
            let message = other.to_string();
            // The png crate reports a missing end of stream as a format error, not as EOF.
            if message.contains("end of") || message.contains("EOF") || message.contains("No more data") {
                DecodeError::Truncated {
                    path: path.to_owned(),
                    format,
                }
            } else {
                DecodeError::Corrupt {
                    path: path.to_owned(),
                    format,
                    message,
                }
            }
        }
    }
}

fn decode_other(path: &Path, bytes: &[u8], format: ImageFormat, limits: DecodeLimits) -> Result<RgbImage, DecodeError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut image_limits = image::Limits::default();
    image_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8));
    reader.limits(image_limits);
    let decoder = reader.into_decoder().map_err(|e| image_error(path, format, e))?;
    let img = DynamicImage::from_decoder(decoder).map_err(|e| image_error(path, format, e))?;
    to_rgb8_like_pil(path, img)
}

/// PIL's `.convert('RGB')` of what PIL would have opened.
fn to_rgb8_like_pil(path: &Path, img: DynamicImage) -> Result<RgbImage, DecodeError> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let data: Vec<u8> = match img {
        DynamicImage::ImageRgb8(b) => b.into_raw(),
        DynamicImage::ImageRgba8(b) => b.pixels().flat_map(|p| [p[0], p[1], p[2]]).collect(),
        DynamicImage::ImageLuma8(b) => b.pixels().flat_map(|p| [p[0]; 3]).collect(),
        DynamicImage::ImageLumaA8(b) => b.pixels().flat_map(|p| [p[0]; 3]).collect(),
        // PIL reads 16-bit colour as 8-bit by keeping the high byte ...
        DynamicImage::ImageRgb16(b) => b.pixels().flat_map(|p| p.0.map(|v| (v >> 8) as u8)).collect(),
        DynamicImage::ImageRgba16(b) => b
            .pixels()
            .flat_map(|p| [p[0], p[1], p[2]].map(|v| (v >> 8) as u8))
            .collect(),
        // ... but opens 16-bit grey as mode "I;16", whose conversion to RGB clips at 255.
        DynamicImage::ImageLuma16(b) => b.pixels().flat_map(|p| [p[0].min(255) as u8; 3]).collect(),
        DynamicImage::ImageLumaA16(b) => b.pixels().flat_map(|p| [p[0].min(255) as u8; 3]).collect(),
        other => {
            return Err(DecodeError::Unsupported {
                path: path.to_owned(),
                what: format!("pixel type {:?}", other.color()),
            });
        }
    };
    Ok(RgbImage::from_raw(w, h, data).expect("decoder output matches its dimensions"))
}

thread_local! {
    /// Set by libjpeg's warning hook when the data ran out before the image did.
    static JPEG_HIT_EOF: Cell<bool> = const { Cell::new(false) };
}

extern "C-unwind" fn jpeg_warning(cinfo: &mut mozjpeg_sys::jpeg_common_struct, level: std::os::raw::c_int) {
    // SAFETY: libjpeg calls this with its error manager installed.
    let code = unsafe { (*cinfo.err).msg_code };
    if level < 0 && code == mozjpeg_sys::JWRN_JPEG_EOF as std::os::raw::c_int {
        JPEG_HIT_EOF.with(|c| c.set(true));
    }
}

extern "C-unwind" fn jpeg_fatal(cinfo: &mut mozjpeg_sys::jpeg_common_struct) {
    // SAFETY: as above; libjpeg's tables hold the message for every code it raises.
    let code = unsafe { (*cinfo.err).msg_code };
    std::panic::resume_unwind(Box::new(format!("libjpeg error {code}")));
}

fn error_manager() -> mozjpeg_sys::jpeg_error_mgr {
    // SAFETY: jpeg_std_error fills every field of a zeroed manager.
    let mut err: mozjpeg_sys::jpeg_error_mgr = unsafe { std::mem::zeroed() };
    unsafe { mozjpeg_sys::jpeg_std_error(&mut err) };
    err.error_exit = Some(jpeg_fatal);
    err.emit_message = Some(jpeg_warning);
    err
}

/// Runs libjpeg work, turning its unwinding errors into `DecodeError`s.
fn with_libjpeg<T>(path: &Path, f: impl FnOnce() -> std::io::Result<T>) -> Result<T, DecodeError> {
    JPEG_HIT_EOF.with(|c| c.set(false));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    let truncated = JPEG_HIT_EOF.with(Cell::get);
    let corrupt = |message: String| DecodeError::Corrupt {
        path: path.to_owned(),
        format: "JPEG",
        message,
    };
    match result {
        _ if truncated => Err(DecodeError::Truncated {
            path: path.to_owned(),
            format: "JPEG",
        }),
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(DecodeError::Truncated {
            path: path.to_owned(),
            format: "JPEG",
        }),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::Unsupported => Err(DecodeError::Unsupported {
            path: path.to_owned(),
            what: e.to_string(),
        }),
        Ok(Err(e)) => Err(corrupt(e.to_string())),
        Err(payload) => Err(corrupt(
            payload
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "decoder failed".to_owned()),
        )),
    }
}

/// libjpeg(-turbo) with Pillow's settings: ISLOW DCT, fancy upsampling, output in RGB.
fn decode_jpeg(path: &Path, bytes: &[u8]) -> Result<RgbImage, DecodeError> {
    use mozjpeg::ColorSpace;
    with_libjpeg(path, || {
        let d = mozjpeg::Decompress::with_err(error_manager()).from_mem(bytes)?;
        let cmyk = matches!(d.color_space(), ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK);
        let mut started = if cmyk {
            d.to_colorspace(ColorSpace::JCS_CMYK)?
        } else {
            d.rgb()?
        };
        let (w, h) = (started.width(), started.height());
        let data: Vec<u8> = started.read_scanlines()?;
        started.finish()?;
        Ok((w, h, if cmyk { cmyk_to_rgb_like_pil(&data) } else { data }))
    })
    .and_then(|(w, h, data)| {
        RgbImage::from_raw(w, h, data).ok_or(DecodeError::Truncated {
            path: path.to_owned(),
            format: "JPEG",
        })
    })
}

/// Pillow opens CMYK JPEGs with Adobe's inverted convention (rawmode "CMYK;I") and converts to
/// RGB with `cmyk2rgb`: R = 255 − K' − C·(255 − K')/255, rounded as its MULDIV255 rounds.
fn cmyk_to_rgb_like_pil(stored: &[u8]) -> Vec<u8> {
    let muldiv255 = |a: i32, b: i32| {
        let t = a * b + 128;
        ((t >> 8) + t) >> 8
    };
    stored
        .chunks_exact(4)
        .flat_map(|px| {
            let [c, m, y, k] = [px[0], px[1], px[2], px[3]].map(|v| 255 - i32::from(v));
            let nk = 255 - k;
            [c, m, y].map(|v| (nk - muldiv255(v, nk)).clamp(0, 255) as u8)
        })
        .collect()
}
