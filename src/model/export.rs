//! Writing a model the tool made (trained, or fine-tuned): safetensors with torchvision key names
//! that PyTorch's strict `load_state_dict` takes, the run's report in its metadata and beside it
//! as JSON, both written atomically so that a stopped run never leaves half a file.

use std::path::Path;

use serde::Serialize;

use super::burn_modules::Named;
use super::weights::{Metadata, WeightFile};
use super::{Model, Recipe};
use crate::fsutil::write_atomic;

/// The metadata of an exported model: `format` "pt" (the safetensors convention for PyTorch
/// weights), the architecture name `Model` reads back, the class names when known (JSON list),
/// and the run's report (compact JSON) under `fixres`.
pub fn metadata(arch: &str, class_names: Option<&[String]>, report: &impl Serialize) -> anyhow::Result<Metadata> {
    let mut metadata = Metadata::new();
    metadata.insert("format".into(), "pt".into());
    metadata.insert("arch".into(), arch.to_owned());
    metadata.insert("fixres".into(), serde_json::to_string(report)?);
    if let Some(names) = class_names {
        metadata.insert("classes".into(), serde_json::to_string(names)?);
    }
    Ok(metadata)
}

/// What an export must carry beside the weights for the loaders to rebuild the same network
/// with the same recipe: the source's architecture name (timm's `tf_` ports are told by it) and
/// number of attention heads, and the model's recipe as a timm `pretrained_cfg`.
fn carry_over(metadata: &mut Metadata, architecture: Option<String>, num_heads: Option<&String>, recipe: &Recipe) {
    if let Some(a) = architecture {
        metadata.insert("architecture".into(), a);
    }
    if let Some(h) = num_heads {
        metadata.insert("num_heads".into(), h.clone());
    }
    metadata.insert("pretrained_cfg".into(), recipe.timm_cfg(None).to_string());
}

/// Writes `model` (read from `file`) with the tensors of `replace` (a head's `named_tensors`, or
/// a whole network's state dict) swapped in, to `out`: every key under the source library's
/// name, f32, so PyTorch's strict `load_state_dict` takes it; `reshaped` the keys whose shape may
/// differ from the file's (a new classifier), `class_names` the outputs' names; the run's
/// `report` in the metadata and in the JSON sidecar.
pub fn write_model(
    file: &WeightFile,
    model: &Model,
    replace: &[Named],
    class_names: Option<&[String]>,
    reshaped: &[String],
    out: &Path,
    report: &impl Serialize,
) -> anyhow::Result<()> {
    let mut metadata = metadata(&model.arch, class_names, report)?;
    carry_over(
        &mut metadata,
        super::recipe::architecture_name(file)?,
        file.metadata.get("num_heads"),
        &model.recipe,
    );
    let bytes = file.export_with(replace, reshaped, &metadata)?;
    write_with_sidecar(out, &bytes, report)
}

/// Writes the safetensors `bytes` to `out` and `report`, pretty JSON, to the sidecar `out` +
/// `.json`; each atomically.
pub fn write_with_sidecar(out: &Path, bytes: &[u8], report: &impl Serialize) -> anyhow::Result<()> {
    write_atomic(out, bytes)?;
    let mut sidecar = out.as_os_str().to_owned();
    sidecar.push(".json");
    write_atomic(Path::new(&sidecar), serde_json::to_string_pretty(report)?.as_bytes())
}
