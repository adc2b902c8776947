//! Files → RGB8 images → network inputs, with torchvision-on-PIL semantics throughout.

pub mod decode;
pub mod folder;
mod image;
mod pnm;
pub mod resample;
pub mod rng;
pub mod split;
pub mod transforms;

pub use self::image::RgbImage;
pub use decode::{DecodeError, DecodeLimits, decode_file};
pub use folder::{Check, ImageFolder, Sample, ScanError, Skip};
pub use resample::{Interpolation, resize, resize_window};
pub use rng::SeededRng;
pub use transforms::{CropBox, CropMode, RandomResizedCrop, TestTransform, TrainTransform};
