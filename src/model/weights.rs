//! Reading weight files (safetensors, or PyTorch checkpoints parsed as data) and loading them into
//! a module with PyTorch's strict `load_state_dict` rules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::pytorch_reader::PickleValue;
use burn::store::{ApplyError, KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};

use crate::tensorfile::{Dtype, Tensor, f32_to_floats, floats_to_f32, to_bytes};

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

/// Refuses `key` unless its shape is `expected` (the shape the architecture gives it from the
/// tensors before it): a mismatch PyTorch's strict `load_state_dict` would refuse too, and one
/// the forward pass would otherwise stop on with a panic.
pub fn expect_shape(
    path: &Path,
    key: &str,
    actual: &[usize],
    expected: &[usize],
    arch: &str,
) -> Result<(), WeightsError> {
    if actual == expected {
        return Ok(());
    }
    Err(WeightsError::Mismatch {
        path: path.to_owned(),
        detail: format!("{key}: shape {actual:?}, but {arch} needs {expected:?} there"),
    })
}

/// Tensor entries of a safetensors header, by name.
pub type Header = BTreeMap<String, TensorInfo>;
/// The `__metadata__` of a safetensors header.
pub type Metadata = BTreeMap<String, String>;

/// A weights file in memory as safetensors bytes, with its parsed header. Read once: header,
/// NaN check and loading all work from these bytes. A PyTorch `.pth` is converted on the way
/// (its pickle parsed as data, never executed).
pub struct WeightFile {
    /// The file, for messages.
    pub path: PathBuf,
    /// Tensor entries.
    pub header: Header,
    /// `__metadata__`.
    pub metadata: Metadata,
    /// What a PyTorch checkpoint held besides tensors, left out (`non_tensor_entries`): one
    /// message a key, for the user to see.
    pub skipped: Vec<String>,
    bytes: Vec<u8>,
}

impl WeightFile {
    /// Reads `path` (safetensors, or a PyTorch checkpoint holding a state_dict).
    pub fn open(path: &Path) -> Result<Self, WeightsError> {
        let raw = std::fs::read(path).map_err(|source| WeightsError::Io {
            path: path.to_owned(),
            source,
        })?;
        // PyTorch writes zip archives ("PK\x03\x04"), or bare pickles (protocol 2+: 0x80); a
        // safetensors length's low byte may be 0x80 too, so safetensors is recognised first.
        let safetensors = looks_like_safetensors(&raw, raw.len() as u64);
        if !safetensors && (raw.starts_with(b"PK\x03\x04") || raw.first() == Some(&0x80)) {
            let (tensors, skipped) = read_state_dict(path, None)?;
            let views: Vec<Tensor<'_>> = tensors.iter().map(OwnedTensor::view).collect();
            let bytes = to_bytes(&views, &Metadata::new()).map_err(|e| WeightsError::Format {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
            Ok(Self {
                skipped,
                ..Self::from_bytes(path, bytes)?
            })
        } else {
            Self::from_bytes(path, raw)
        }
    }

    fn format_error(&self, reason: String) -> WeightsError {
        WeightsError::Format {
            path: self.path.clone(),
            reason,
        }
    }

    fn tensors(&self) -> Result<safetensors::SafeTensors<'_>, WeightsError> {
        safetensors::SafeTensors::deserialize(&self.bytes).map_err(|e| self.format_error(e.to_string()))
    }
}

/// A tensor read out of a checkpoint.
pub struct OwnedTensor {
    /// Key.
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Shape.
    pub shape: Vec<usize>,
    /// Little-endian data.
    pub bytes: Vec<u8>,
}

impl OwnedTensor {
    /// A view for `tensorfile`.
    #[must_use]
    pub fn view(&self) -> Tensor<'_> {
        Tensor {
            name: &self.name,
            dtype: self.dtype,
            shape: &self.shape,
            bytes: &self.bytes,
        }
    }
}

fn dtype_of_pytorch(d: burn::store::pytorch_reader::DType) -> Dtype {
    use burn::store::pytorch_reader::DType as D;
    match d {
        D::F64 => Dtype::F64,
        D::F32 => Dtype::F32,
        D::F16 => Dtype::F16,
        D::BF16 => Dtype::BF16,
        D::I64 => Dtype::I64,
        D::I32 => Dtype::I32,
        D::I16 => Dtype::I16,
        D::I8 => Dtype::I8,
        D::U64 => Dtype::U64,
        D::U32 => Dtype::U32,
        D::U16 => Dtype::U16,
        D::U8 => Dtype::U8,
        D::Bool => Dtype::Bool,
    }
}

/// Whether a file of `file_len` bytes that starts with `head` (its first 9 bytes suffice) is
/// safetensors: a little-endian header length that fits in the file, then the header's '{'.
pub fn looks_like_safetensors(head: &[u8], file_len: u64) -> bool {
    let header_len = head
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    header_len.is_some_and(|n| n.checked_add(8).is_some_and(|end| end <= file_len)) && head.get(8) == Some(&b'{')
}

/// Unwraps the usual containers around a state_dict: a training checkpoint's
/// `{"state_dict": ...}` or `{"model": ...}`, and `nn.DataParallel`'s `module.` prefix, when every
/// tensor sits under the same one.
pub fn strip_wrappers(tensors: &mut [OwnedTensor]) {
    for wrapper in ["state_dict.", "model.", "module."] {
        if !tensors.is_empty() && tensors.iter().all(|t| t.name.starts_with(wrapper)) {
            for t in tensors.iter_mut() {
                t.name.drain(..wrapper.len());
            }
        }
    }
}

/// The tensors of a PyTorch checkpoint (a state_dict, or the dict under `key`), sorted by name.
pub fn read_pytorch(path: &Path, key: Option<&str>) -> Result<Vec<OwnedTensor>, WeightsError> {
    use burn::store::pytorch_reader::PytorchReader;
    let format = |reason: String| WeightsError::Format {
        path: path.to_owned(),
        reason,
    };
    let reader = match key {
        Some(k) => PytorchReader::with_top_level_key(path, k),
        None => PytorchReader::new(path),
    }
    .map_err(|e| format(format!("not a readable PyTorch checkpoint: {e}")))?;
    let mut names = reader.keys();
    if names.is_empty() {
        return Err(format("holds no tensors".into()));
    }
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let t = reader
                .get(&name)
                .ok_or_else(|| format(format!("{name}: listed but missing")))?;
            let bytes = t.read().map_err(|e| format(format!("{name}: {e}")))?;
            Ok(OwnedTensor {
                dtype: dtype_of_pytorch(t.dtype()),
                shape: t.shape().to_vec(),
                bytes,
                name,
            })
        })
        .collect()
}

/// The model's tensors of a PyTorch checkpoint, and what it left out (`non_tensor_entries`).
/// The model is the dict under `key` when given; else a top-level `state_dict` or `model` entry
/// that is itself a dict, as training scripts save it beside `epoch` and `optimizer` (whose
/// tensors are not the model's); else the whole file, unwrapped (`strip_wrappers`).
pub fn read_state_dict(path: &Path, key: Option<&str>) -> Result<(Vec<OwnedTensor>, Vec<String>), WeightsError> {
    let root = read_pickle(path)?;
    let key = key.or_else(|| wrapper_key(&root));
    let mut tensors = read_pytorch(path, key)?;
    strip_wrappers(&mut tensors);
    Ok((tensors, non_tensor_entries(&root, key)))
}

/// The top-level entry of a checkpoint that holds the model as a dict of its own, if any (a
/// plain state_dict's entries are tensors, never dicts).
fn wrapper_key(root: &PickleValue) -> Option<&'static str> {
    let PickleValue::Dict(entries) = root else {
        return None;
    };
    ["state_dict", "model"]
        .into_iter()
        .find(|k| matches!(entries.get(*k), Some(PickleValue::Dict(_))))
}

fn read_pickle(path: &Path) -> Result<PickleValue, WeightsError> {
    burn::store::pytorch_reader::PytorchReader::read_pickle_data(path, None).map_err(|e| WeightsError::Format {
        path: path.to_owned(),
        reason: format!("not a readable PyTorch checkpoint: {e}"),
    })
}

/// What a checkpoint (its pickle, `root`) holds besides the tensors of the model (the dict
/// under `key`, or the whole file), which `read_pytorch` leaves out: one message a key, naming it
/// and what it holds, sorted. Plain values are listed inside the model's dict only (an epoch or
/// an optimizer's settings beside it are no news). A Python object is listed wherever it is: it
/// is a call that `torch.load` would make (with `weights_only=False`, any code at all); it is
/// read as data and never run, and this says so rather than dropping it unseen. PyTorch's own
/// `_metadata` (module version numbers) is not listed.
fn non_tensor_entries(root: &PickleValue, key: Option<&str>) -> Vec<String> {
    fn walk(value: &PickleValue, key: &mut Vec<String>, in_model: bool, model: Option<&str>, out: &mut Vec<String>) {
        let mut descend = |name: String, v: &PickleValue, out: &mut Vec<String>| {
            let inside = in_model || (key.is_empty() && model == Some(name.as_str()));
            key.push(name);
            walk(v, key, inside, model, out);
            key.pop();
        };
        let what = match value {
            PickleValue::Dict(entries) => {
                let mut names: Vec<&String> = entries.keys().filter(|n| *n != "_metadata").collect();
                names.sort();
                for name in names {
                    descend(name.clone(), &entries[name], out);
                }
                return;
            }
            // Indexed as `read_pytorch` names the tensors of a list (`weights.0`).
            PickleValue::List(items) => {
                for (i, v) in items.iter().enumerate() {
                    descend(i.to_string(), v, out);
                }
                return;
            }
            PickleValue::Unsupported(kind) if kind == "torch.Tensor" => return,
            PickleValue::Unsupported(kind) => {
                out.push(format!(
                    "{} is a Python object ({kind}), not a tensor: left out, without running it",
                    key.join(".")
                ));
                return;
            }
            _ if !in_model => return,
            PickleValue::None => "None",
            PickleValue::Bool(_) => "a bool",
            PickleValue::Int(_) => "an int",
            PickleValue::Float(_) => "a float",
            PickleValue::String(_) => "a string",
            PickleValue::Bytes(_) => "bytes",
        };
        out.push(format!("{} is {what}, not a tensor: left out", key.join(".")));
    }
    let mut out = Vec::new();
    walk(root, &mut Vec::new(), key.is_none(), key, &mut out);
    out.sort();
    out
}

/// Parses a safetensors header, checking that the data it describes is all there.
fn parse_header(path: &Path, bytes: &[u8]) -> Result<(Header, Metadata), WeightsError> {
    let format = |reason: String| WeightsError::Format {
        path: path.to_owned(),
        reason,
    };
    let file_len = bytes.len() as u64;
    let len: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format("shorter than the 8-byte header length".into()))?;
    let header_len = u64::from_le_bytes(len);
    if header_len > 100 << 20 || 8 + header_len > file_len {
        return Err(format(format!(
            "header length {header_len} does not fit a {file_len}-byte file"
        )));
    }
    let json: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len as usize])
        .map_err(|e| format(format!("header is not JSON: {e}")))?;
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

impl WeightFile {
    /// Every tensor of this file as f32 (integer tensors kept), with `replace`d tensors swapped
    /// in under their keys: the bytes of a safetensors file PyTorch's `load_state_dict` takes.
    /// A replacement keeps its tensor's shape, except under the keys in `reshaped` (a new
    /// classifier for other classes: PyTorch then loads the file into the model built with that
    /// many classes).
    pub fn export_with(
        &self,
        replace: &[(String, Vec<usize>, Vec<f32>)],
        reshaped: &[String],
        metadata: &Metadata,
    ) -> Result<Vec<u8>, WeightsError> {
        let st = self.tensors()?;
        let mut owned = Vec::new();
        for (name, view) in st.tensors() {
            let tensor = if let Some((_, shape, v)) = replace.iter().find(|(k, ..)| *k == name) {
                if shape.as_slice() != view.shape() && !reshaped.contains(&name) {
                    return Err(WeightsError::Mismatch {
                        path: self.path.clone(),
                        detail: format!("{name}: expected shape {:?}, found {:?}", view.shape(), shape),
                    });
                }
                OwnedTensor {
                    name,
                    dtype: Dtype::F32,
                    shape: shape.clone(),
                    bytes: bytemuck::cast_slice(v).to_vec(),
                }
            } else if let Some(from) = float_dtype(view.dtype()) {
                let values = floats_to_f32(from, view.data()).unwrap_or_default();
                OwnedTensor {
                    name,
                    dtype: Dtype::F32,
                    shape: view.shape().to_vec(),
                    bytes: bytemuck::cast_slice(&values).to_vec(),
                }
            } else {
                let dtype = other_dtype(view.dtype())
                    .ok_or_else(|| self.format_error(format!("{name}: unsupported dtype {:?}", view.dtype())))?;
                OwnedTensor {
                    name,
                    dtype,
                    shape: view.shape().to_vec(),
                    bytes: view.data().to_vec(),
                }
            };
            owned.push(tensor);
        }
        owned.sort_by(|a, b| a.name.cmp(&b.name));
        let views: Vec<Tensor<'_>> = owned.iter().map(OwnedTensor::view).collect();
        to_bytes(&views, metadata).map_err(|e| self.format_error(e.to_string()))
    }

    /// A weights file from bytes already in memory (`path` names it in messages).
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self, WeightsError> {
        let (header, metadata) = parse_header(path, &bytes)?;
        Ok(Self {
            path: path.to_owned(),
            header,
            metadata,
            skipped: Vec::new(),
            bytes,
        })
    }
}

/// The integer and boolean types weight files hold (`num_batches_tracked` is int64).
fn other_dtype(d: safetensors::Dtype) -> Option<Dtype> {
    match d {
        safetensors::Dtype::I64 => Some(Dtype::I64),
        safetensors::Dtype::I32 => Some(Dtype::I32),
        safetensors::Dtype::U8 => Some(Dtype::U8),
        safetensors::Dtype::BOOL => Some(Dtype::Bool),
        _ => None,
    }
}

fn float_dtype(d: safetensors::Dtype) -> Option<Dtype> {
    match d {
        safetensors::Dtype::F16 => Some(Dtype::F16),
        safetensors::Dtype::BF16 => Some(Dtype::BF16),
        safetensors::Dtype::F32 => Some(Dtype::F32),
        safetensors::Dtype::F64 => Some(Dtype::F64),
        _ => None,
    }
}

impl WeightFile {
    /// The values of the float tensor `key`, as f32 (widened from f16, bf16 or f64), row-major;
    /// `None` when there is no such key or it does not hold floats.
    pub fn f32_values(&self, key: &str) -> Result<Option<Vec<f32>>, WeightsError> {
        let st = self.tensors()?;
        let Ok(view) = st.tensor(key) else {
            return Ok(None);
        };
        Ok(float_dtype(view.dtype()).and_then(|from| floats_to_f32(from, view.data())))
    }
}

impl WeightFile {
    /// Keys whose float tensors hold NaN or infinite values, with how many: such weights load (a
    /// user may want to inspect them) but every result from them is suspect, so callers warn.
    pub fn non_finite_tensors(&self) -> Result<Vec<(String, usize)>, WeightsError> {
        let mut out = Vec::new();
        for (name, view) in self.tensors()?.tensors() {
            let Some(dtype) = float_dtype(view.dtype()) else {
                continue;
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

    /// The bytes with every f16/bf16/f64 tensor as f32 (Burn keeps a tensor's dtype as loaded,
    /// and f16 weights with f32 activations fail mid-forward), or `None` when all are f32.
    fn widened_to_f32(&self) -> Result<Option<Vec<u8>>, WeightsError> {
        if self
            .header
            .values()
            .all(|t| t.dtype != "F16" && t.dtype != "BF16" && t.dtype != "F64")
        {
            return Ok(None);
        }
        let st = self.tensors()?;
        let mut owned = Vec::new();
        for (name, view) in st.tensors() {
            let (dtype, bytes) = match float_dtype(view.dtype()) {
                Some(from) => {
                    let values = floats_to_f32(from, view.data()).unwrap_or_default();
                    (Dtype::F32, f32_to_floats(Dtype::F32, &values).unwrap_or_default())
                }
                None => {
                    let dtype = other_dtype(view.dtype())
                        .ok_or_else(|| self.format_error(format!("{name}: unsupported dtype {:?}", view.dtype())))?;
                    (dtype, view.data().to_vec())
                }
            };
            owned.push(OwnedTensor {
                name,
                dtype,
                shape: view.shape().to_vec(),
                bytes,
            });
        }
        let views: Vec<Tensor<'_>> = owned.iter().map(OwnedTensor::view).collect();
        to_bytes(&views, &Metadata::new())
            .map(Some)
            .map_err(|e| self.format_error(e.to_string()))
    }
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
    file: &WeightFile,
    arch: &str,
    renames: &[(&str, &str)],
) -> Result<(), WeightsError> {
    let path = &file.path;
    let mut remapper = KeyRemapper::new();
    for (from, to) in renames {
        remapper = remapper.add_pattern(*from, *to).map_err(|e| WeightsError::Format {
            path: path.to_owned(),
            reason: format!("rename {from}: {e}"),
        })?;
    }
    let bytes = match file.widened_to_f32()? {
        Some(bytes) => bytes,
        None => file.bytes.clone(),
    };
    let mut store = SafetensorsStore::from_bytes(Some(bytes))
        .with_from_adapter(PyTorchToBurnAdapter)
        .remap(remapper)
        .allow_partial(true)
        // The errors come back in `result`, to be told in PyTorch's names below.
        .validate(false);
    let result = module.load_from(&mut store).map_err(|e| WeightsError::Mismatch {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    if let Some(e) = result.errors.first() {
        let detail = match e {
            ApplyError::ShapeMismatch {
                path: burn_path,
                expected,
                found,
            } => {
                let name = torch_name(burn_path, renames);
                // Burn keeps a Linear weight as [in, out]; PyTorch and the file as [out, in].
                let torch = |shape: &[usize]| {
                    let mut dims = shape.to_vec();
                    if name.ends_with("fc.weight") && dims.len() == 2 {
                        dims.reverse();
                    }
                    dims
                };
                format!(
                    "{name}: shape {:?}, but {arch} needs {:?} there",
                    torch(found),
                    torch(expected)
                )
            }
            other => other.to_string(),
        };
        return Err(WeightsError::Mismatch {
            path: path.to_owned(),
            detail,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn named(names: &[&str]) -> Vec<OwnedTensor> {
        names
            .iter()
            .map(|n| OwnedTensor {
                name: (*n).to_owned(),
                dtype: Dtype::F32,
                shape: vec![1],
                bytes: vec![0; 4],
            })
            .collect()
    }

    fn names(tensors: &[OwnedTensor]) -> Vec<&str> {
        tensors.iter().map(|t| t.name.as_str()).collect()
    }

    #[test]
    fn checkpoint_wrappers_are_unwrapped_only_when_they_hold_everything() {
        let mut t = named(&["state_dict.module.conv1.weight", "state_dict.module.fc.bias"]);
        strip_wrappers(&mut t);
        assert_eq!(names(&t), ["conv1.weight", "fc.bias"]);
        let mut t = named(&["model.fc.weight", "model.fc.bias"]);
        strip_wrappers(&mut t);
        assert_eq!(names(&t), ["fc.weight", "fc.bias"]);
        // A key outside the wrapper: it is a state_dict of its own, left as it is.
        let mut t = named(&["model.fc.weight", "optimizer.step"]);
        strip_wrappers(&mut t);
        assert_eq!(names(&t), ["model.fc.weight", "optimizer.step"]);
    }

    /// A checkpoint in PyTorch's legacy format (`_use_new_zipfile_serialization=False`, protocol
    /// 2), written opcode by opcode: a tensor `w` = [1.0], a call `torch.load` would make
    /// (`os.system("echo pwned")`), an int, and PyTorch's own `_metadata`.
    fn legacy_checkpoint() -> Vec<u8> {
        fn text(s: &str) -> Vec<u8> {
            let mut b = vec![b'X'];
            b.extend((s.len() as u32).to_le_bytes());
            b.extend(s.as_bytes());
            b
        }
        let mut f = Vec::new();
        // The magic number (LONG1), the protocol version 1001 and the system info.
        f.extend(b"\x80\x02\x8a\x0a");
        f.extend([0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);
        f.extend(b".\x80\x02M\xe9\x03.\x80\x02}");
        f.extend(text("little_endian"));
        f.extend(b"\x88s.");
        // The state_dict.
        f.extend(b"\x80\x02}");
        f.extend(text("w"));
        f.extend(b"ctorch._utils\n_rebuild_tensor_v2\n((");
        f.extend(text("storage"));
        f.extend(b"ctorch\nFloatStorage\n");
        f.extend(text("0"));
        f.extend(text("cpu"));
        f.extend(b"K\x01tQK\x00K\x01\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtRs");
        f.extend(text("evil"));
        f.extend(b"cos\nsystem\n");
        f.extend(text("echo pwned"));
        f.extend(b"\x85Rs");
        f.extend(text("epoch"));
        f.extend(b"K\x03s");
        f.extend(text("_metadata"));
        f.extend(b"}");
        f.extend(text(""));
        f.extend(b"}");
        f.extend(text("version"));
        f.extend(b"K\x01sss.");
        // The storage keys, then each storage: its element count and its data.
        f.extend(b"\x80\x02]");
        f.extend(text("0"));
        f.extend(b"a.");
        f.extend(1u64.to_le_bytes());
        f.extend(1f32.to_le_bytes());
        f
    }

    #[test]
    fn entries_that_are_not_tensors_are_named_not_dropped_silently() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("legacy.pth");
        std::fs::write(&path, legacy_checkpoint()).unwrap();
        let file = WeightFile::open(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(file.header.keys().collect::<Vec<_>>(), ["w"]);
        assert_eq!(
            file.skipped,
            [
                "epoch is an int, not a tensor: left out",
                "evil is a Python object (os.system), not a tensor: left out, without running it",
            ]
        );
    }
}
