//! Reading weight files: the safetensors header (names, dtypes, shapes) without loading the data,
//! and loading into a module with PyTorch's strict `load_state_dict` rules.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::{KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};

/// A tensor's entry in a safetensors header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// "F32", "F16", "BF16", ...
    pub dtype: String,
    /// Shape.
    pub shape: Vec<usize>,
}

/// Why weights were refused. Every variant names the file, and the key where there is one.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// Unreadable file.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Not a safetensors file, or a damaged one.
    #[error("{}: not a valid safetensors file: {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The keys do not describe a model this tool knows.
    #[error("{}: {reason}", path.display())]
    UnknownArchitecture {
        /// The file.
        path: PathBuf,
        /// What was looked for.
        reason: String,
    },
    /// Keys the model needs are not in the file.
    #[error("{}: missing key(s) for {arch}: {}", path.display(), keys.join(", "))]
    MissingKeys {
        /// The file.
        path: PathBuf,
        /// The architecture being loaded.
        arch: String,
        /// The keys, torchvision names.
        keys: Vec<String>,
    },
    /// Keys in the file the model has no place for.
    #[error("{}: unexpected key(s) for {arch}: {}", path.display(), keys.join(", "))]
    UnexpectedKeys {
        /// The file.
        path: PathBuf,
        /// The architecture being loaded.
        arch: String,
        /// The keys.
        keys: Vec<String>,
    },
    /// A tensor whose shape or data does not fit.
    #[error("{}: {detail}", path.display())]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// Key, expected and found shapes (or the loader's words).
        detail: String,
    },
}

/// Tensor entries of a safetensors header, by name.
pub type Header = BTreeMap<String, TensorInfo>;
/// The `__metadata__` of a safetensors header.
pub type Metadata = BTreeMap<String, String>;

/// Reads only the header of a safetensors file: its tensors.
pub fn read_header(path: &Path) -> Result<Header, WeightsError> {
    read_header_and_metadata(path).map(|(tensors, _)| tensors)
}

/// Reads only the header of a safetensors file: its tensors and its `__metadata__`.
pub fn read_header_and_metadata(path: &Path) -> Result<(Header, Metadata), WeightsError> {
    let io = |source| WeightsError::Io {
        path: path.to_owned(),
        source,
    };
    let format = |reason: String| WeightsError::Format {
        path: path.to_owned(),
        reason,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|_| format("shorter than the 8-byte header length".into()))?;
    let header_len = u64::from_le_bytes(len);
    if header_len > 100 << 20 || 8 + header_len > file_len {
        return Err(format(format!(
            "header length {header_len} does not fit a {file_len}-byte file"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header).map_err(io)?;
    let json: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| format(format!("header is not JSON: {e}")))?;
    let object = json
        .as_object()
        .ok_or_else(|| format("header is not a JSON object".into()))?;
    let mut out = BTreeMap::new();
    let mut metadata = BTreeMap::new();
    let mut data_end = 0u64;
    for (name, entry) in object {
        if name == "__metadata__" {
            for (k, v) in entry.as_object().into_iter().flatten() {
                metadata.insert(k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned));
            }
            continue;
        }
        let dtype = entry["dtype"]
            .as_str()
            .ok_or_else(|| format(format!("{name}: no dtype")))?
            .to_owned();
        let shape: Vec<usize> = entry["shape"]
            .as_array()
            .ok_or_else(|| format(format!("{name}: no shape")))?
            .iter()
            .map(|d| d.as_u64().map(|d| d as usize))
            .collect::<Option<_>>()
            .ok_or_else(|| format(format!("{name}: bad shape")))?;
        let end = entry["data_offsets"][1]
            .as_u64()
            .ok_or_else(|| format(format!("{name}: no data_offsets")))?;
        data_end = data_end.max(end);
        out.insert(name.clone(), TensorInfo { dtype, shape });
    }
    if 8 + header_len + data_end > file_len {
        return Err(format(format!(
            "truncated: the tensors need {} bytes, the file has {file_len}",
            8 + header_len + data_end
        )));
    }
    Ok((out, metadata))
}

/// Keys whose float tensors hold NaN or infinite values, with how many: such weights load (a
/// user may want to inspect them) but every result from them is suspect, so callers warn.
pub fn non_finite_tensors(path: &Path) -> Result<Vec<(String, usize)>, WeightsError> {
    use crate::tensorfile::{Dtype, floats_to_f32};
    let bytes = std::fs::read(path).map_err(|source| WeightsError::Io {
        path: path.to_owned(),
        source,
    })?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| WeightsError::Format {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        let dtype = match view.dtype() {
            safetensors::Dtype::F16 => Dtype::F16,
            safetensors::Dtype::BF16 => Dtype::BF16,
            safetensors::Dtype::F32 => Dtype::F32,
            safetensors::Dtype::F64 => Dtype::F64,
            _ => continue,
        };
        let bad = floats_to_f32(dtype, view.data())
            .unwrap_or_default()
            .iter()
            .filter(|v| !v.is_finite())
            .count();
        if bad > 0 {
            out.push((name, bad));
        }
    }
    out.sort();
    Ok(out)
}

/// The file with every f16/bf16/f64 tensor as f32, or `None` when it already is all f32.
fn widened_to_f32(path: &Path) -> Result<Option<Vec<u8>>, WeightsError> {
    use crate::tensorfile::{Dtype, Tensor, f32_to_floats, floats_to_f32, to_bytes};
    let header = read_header(path)?;
    if header
        .values()
        .all(|t| t.dtype != "F16" && t.dtype != "BF16" && t.dtype != "F64")
    {
        return Ok(None);
    }
    let format = |reason: String| WeightsError::Format {
        path: path.to_owned(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|source| WeightsError::Io {
        path: path.to_owned(),
        source,
    })?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| format(e.to_string()))?;
    let mut widened = Vec::new();
    for (name, view) in st.tensors() {
        let dtype = match view.dtype() {
            safetensors::Dtype::F16 => Dtype::F16,
            safetensors::Dtype::BF16 => Dtype::BF16,
            safetensors::Dtype::F64 => Dtype::F64,
            _ => {
                widened.push((name, None, view));
                continue;
            }
        };
        let values = floats_to_f32(dtype, view.data()).ok_or_else(|| format(format!("{name}: not floats")))?;
        let data = f32_to_floats(Dtype::F32, &values).unwrap_or_default();
        widened.push((name, Some(data), view));
    }
    let dtype_of = |d: safetensors::Dtype| match d {
        safetensors::Dtype::I64 => Some(Dtype::I64),
        safetensors::Dtype::I32 => Some(Dtype::I32),
        safetensors::Dtype::U8 => Some(Dtype::U8),
        safetensors::Dtype::BOOL => Some(Dtype::Bool),
        safetensors::Dtype::F32 => Some(Dtype::F32),
        _ => None,
    };
    let mut tensors = Vec::with_capacity(widened.len());
    for (name, data, view) in &widened {
        let tensor = match data {
            Some(d) => Tensor {
                name,
                dtype: Dtype::F32,
                shape: view.shape(),
                bytes: d,
            },
            None => {
                let dtype = dtype_of(view.dtype())
                    .ok_or_else(|| format(format!("{name}: unsupported dtype {:?}", view.dtype())))?;
                Tensor {
                    name,
                    dtype,
                    shape: view.shape(),
                    bytes: view.data(),
                }
            }
        };
        tensors.push(tensor);
    }
    to_bytes(&tensors, &Default::default())
        .map(Some)
        .map_err(|e| format(e.to_string()))
}

/// A module path in PyTorch's words: BatchNorm's gamma/beta are weight/bias there, and the
/// renames run backwards.
fn torch_name(burn_path: &str, renames: &[(&str, &str)]) -> String {
    let mut name = burn_path.replace(".gamma", ".weight").replace(".beta", ".bias");
    for (torch, ours) in renames {
        let plain = |s: &str| s.replace('\\', "");
        name = name.replace(&plain(ours), &plain(torch));
    }
    name
}

/// Loads torchvision-named weights from a safetensors file into `module`, as PyTorch's strict
/// `load_state_dict`: every parameter and buffer must be there with its shape, nothing else may
/// be (BatchNorm's `num_batches_tracked` aside). `renames` maps torchvision key patterns to the
/// module's paths (regex, replacement).
pub fn load_strict<M: Module + ModuleSnapshot>(
    module: &mut M,
    path: &Path,
    arch: &str,
    renames: &[(&str, &str)],
) -> Result<(), WeightsError> {
    // Refuses truncated or garbage files before the store touches them.
    read_header(path)?;
    let mut remapper = KeyRemapper::new();
    for (from, to) in renames {
        remapper = remapper.add_pattern(*from, *to).map_err(|e| WeightsError::Format {
            path: path.to_owned(),
            reason: format!("rename {from}: {e}"),
        })?;
    }
    // Burn keeps a tensor's dtype as loaded, and a network with f16 weights and f32 activations
    // fails mid-forward: half-precision files are widened to f32 first, in memory.
    let store = match widened_to_f32(path)? {
        Some(bytes) => SafetensorsStore::from_bytes(Some(bytes)),
        None => SafetensorsStore::from_file(path),
    };
    let mut store = store
        .with_from_adapter(PyTorchToBurnAdapter)
        .remap(remapper)
        .allow_partial(true)
        .validate(true);
    let result = module.load_from(&mut store).map_err(|e| WeightsError::Mismatch {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    if let Some(e) = result.errors.first() {
        return Err(WeightsError::Mismatch {
            path: path.to_owned(),
            detail: e.to_string(),
        });
    }
    let missing: Vec<String> = result.missing.iter().map(|(k, _)| torch_name(k, renames)).collect();
    if !missing.is_empty() {
        return Err(WeightsError::MissingKeys {
            path: path.to_owned(),
            arch: arch.to_owned(),
            keys: missing,
        });
    }
    let unexpected: Vec<String> = result
        .unused
        .iter()
        .filter(|k| !k.ends_with("num_batches_tracked"))
        .cloned()
        .collect();
    if !unexpected.is_empty() {
        return Err(WeightsError::UnexpectedKeys {
            path: path.to_owned(),
            arch: arch.to_owned(),
            keys: unexpected,
        });
    }
    Ok(())
}
