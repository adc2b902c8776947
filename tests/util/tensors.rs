//! Reading safetensors files (weights, exported inputs and features, PyTorch's references), and
//! comparing values.

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

/// One tensor of a file, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

/// A tensor as (name, shape, f32 values).
pub type F32Tensor = (String, Vec<usize>, Vec<f32>);

fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse<'a>(path: &Path, bytes: &'a [u8]) -> SafeTensors<'a> {
    SafeTensors::deserialize(bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every tensor of the file at `path`, sorted by name.
pub fn read(path: &Path) -> Vec<Stored> {
    let bytes = bytes(path);
    let mut out: Vec<_> = parse(path, &bytes)
        .tensors()
        .into_iter()
        .map(|(name, t)| Stored {
            name,
            dtype: t.dtype(),
            shape: t.shape().to_vec(),
            data: t.data().to_vec(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The tensor `name` of `tensors` (from `read`).
pub fn named<'a>(tensors: &'a [Stored], name: &str) -> &'a Stored {
    tensors
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no tensor {name}"))
}

/// The f32 tensors of the file at `path`, sorted by name (others, such as BatchNorm's int64
/// `num_batches_tracked`, left out).
pub fn read_f32(path: &Path) -> Vec<F32Tensor> {
    read(path)
        .into_iter()
        .filter(|t| t.dtype == Dtype::F32)
        .map(|t| (t.name, t.shape, le_f32s(&t.data)))
        .collect()
}

/// The f32 tensor `key` of the file at `path`: shape and values.
pub fn f32_tensor(path: &Path, key: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = bytes(path);
    let st = parse(path, &bytes);
    let t = st
        .tensor(key)
        .unwrap_or_else(|e| panic!("{}: {key}: {e}", path.display()));
    assert_eq!(t.dtype(), Dtype::F32, "{}: {key}", path.display());
    (t.shape().to_vec(), le_f32s(t.data()))
}

/// The file's `__metadata__`.
pub fn metadata(path: &Path) -> HashMap<String, String> {
    let bytes = bytes(path);
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    meta.metadata()
        .clone()
        .unwrap_or_else(|| panic!("{}: no metadata", path.display()))
}

/// A little-endian f32 buffer as values.
pub fn le_f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Largest |ours − theirs| relative to the largest |theirs|.
pub fn relative_error(ours: &[f32], theirs: &[f32]) -> f32 {
    assert_eq!(ours.len(), theirs.len());
    let scale = theirs.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    ours.iter().zip(theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max) / scale
}
