//! Writing safetensors files deterministically: the same tensors and metadata give the same
//! bytes (the `safetensors` crate keeps metadata in a HashMap, whose order changes run to run).

use std::collections::BTreeMap;
use std::path::Path;

use crate::fsutil::write_atomic;

/// Element types, with safetensors' names; all little-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum Dtype {
    Bool,
    U8,
    I8,
    U16,
    I16,
    F16,
    BF16,
    U32,
    I32,
    F32,
    U64,
    I64,
    F64,
}

impl Dtype {
    /// The name safetensors uses.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Bool => "BOOL",
            Self::U8 => "U8",
            Self::I8 => "I8",
            Self::U16 => "U16",
            Self::I16 => "I16",
            Self::F16 => "F16",
            Self::BF16 => "BF16",
            Self::U32 => "U32",
            Self::I32 => "I32",
            Self::F32 => "F32",
            Self::U64 => "U64",
            Self::I64 => "I64",
            Self::F64 => "F64",
        }
    }

    /// Bytes per element.
    #[must_use]
    pub fn size(self) -> usize {
        match self {
            Self::Bool | Self::U8 | Self::I8 => 1,
            Self::U16 | Self::I16 | Self::F16 | Self::BF16 => 2,
            Self::U32 | Self::I32 | Self::F32 => 4,
            Self::U64 | Self::I64 | Self::F64 => 8,
        }
    }

    /// Floating point.
    #[must_use]
    pub fn is_float(self) -> bool {
        matches!(self, Self::F16 | Self::BF16 | Self::F32 | Self::F64)
    }
}

/// Little-endian floats of type `from` as f32.
#[must_use]
pub fn floats_to_f32(from: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    Some(match from {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        _ => return None,
    })
}

/// f32 values as little-endian bytes of float type `to` (rounded to nearest).
#[must_use]
pub fn f32_to_floats(to: Dtype, values: &[f32]) -> Option<Vec<u8>> {
    Some(match to {
        Dtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        Dtype::F64 => values.iter().flat_map(|&v| f64::from(v).to_le_bytes()).collect(),
        Dtype::F16 => values
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect(),
        Dtype::BF16 => values
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
            .collect(),
        _ => return None,
    })
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

    /// A uint32 tensor.
    #[must_use]
    pub fn u32(name: &'a str, shape: &'a [usize], values: &'a [u32]) -> Self {
        Self {
            name,
            dtype: Dtype::U32,
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
