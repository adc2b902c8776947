//! Writing safetensors files deterministically: the same tensors and metadata give the same
//! bytes (the `safetensors` crate keeps metadata in a HashMap, whose order changes run to run).

use std::collections::BTreeMap;
use std::path::Path;

use crate::fsutil::write_atomic;

/// Element types written here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    /// uint8.
    U8,
    /// float32, little-endian.
    F32,
}

impl Dtype {
    fn name(self) -> &'static str {
        match self {
            Self::U8 => "U8",
            Self::F32 => "F32",
        }
    }

    fn size(self) -> usize {
        match self {
            Self::U8 => 1,
            Self::F32 => 4,
        }
    }
}

/// One named tensor: raw little-endian bytes and a shape.
#[derive(Clone, Copy, Debug)]
pub struct Tensor<'a> {
    /// Name in the file.
    pub name: &'a str,
    /// Element type.
    pub dtype: Dtype,
    /// Shape.
    pub shape: &'a [usize],
    /// `shape.product() * dtype size` bytes.
    pub bytes: &'a [u8],
}

impl<'a> Tensor<'a> {
    /// An f32 tensor.
    #[must_use]
    pub fn f32(name: &'a str, shape: &'a [usize], values: &'a [f32]) -> Self {
        Self {
            name,
            dtype: Dtype::F32,
            shape,
            bytes: bytemuck::cast_slice(values),
        }
    }

    /// A uint8 tensor.
    #[must_use]
    pub fn u8(name: &'a str, shape: &'a [usize], values: &'a [u8]) -> Self {
        Self {
            name,
            dtype: Dtype::U8,
            shape,
            bytes: values,
        }
    }
}

/// The file's bytes: tensors in the order given, metadata sorted by key.
pub fn to_bytes(tensors: &[Tensor<'_>], metadata: &BTreeMap<String, String>) -> anyhow::Result<Vec<u8>> {
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        header.insert("__metadata__".into(), serde_json::to_value(metadata)?);
    }
    let mut offset = 0usize;
    for t in tensors {
        let expect = t.shape.iter().product::<usize>() * t.dtype.size();
        anyhow::ensure!(
            t.bytes.len() == expect,
            "tensor {}: {} bytes for shape {:?}",
            t.name,
            t.bytes.len(),
            t.shape
        );
        header.insert(
            t.name.to_owned(),
            serde_json::json!({"dtype": t.dtype.name(), "shape": t.shape, "data_offsets": [offset, offset + expect]}),
        );
        offset += expect;
    }
    let mut json = serde_json::to_vec(&serde_json::Value::Object(header))?;
    // The format asks for the data to start 8-byte aligned; the header is padded with spaces.
    while json.len() % 8 != 0 {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + json.len() + offset);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    for t in tensors {
        out.extend_from_slice(t.bytes);
    }
    Ok(out)
}

/// Writes a safetensors file atomically.
pub fn write(path: &Path, tensors: &[Tensor<'_>], metadata: &BTreeMap<String, String>) -> anyhow::Result<()> {
    write_atomic(path, &to_bytes(tensors, metadata)?)
}
