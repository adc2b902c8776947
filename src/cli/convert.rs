//! `fixres convert`: a PyTorch state_dict (`.pth`/`.pt`) to safetensors, optionally as f16.
//! The pickle is parsed as data (Burn's reader): nothing in the file is ever executed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::json;

use super::print_json;
use crate::model::weights::{looks_like_safetensors, read_state_dict};
use crate::tensorfile::{self, Dtype, Tensor, f32_to_floats, floats_to_f32};

/// Floating-point type of the converted tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FloatType {
    /// As in the source file.
    Keep,
    /// float32.
    F32,
    /// float16 (half the size; what the embedded model ships as).
    F16,
}

/// Arguments of `fixres convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// A PyTorch checkpoint holding a state_dict (or a dict with one under --key).
    #[arg(long = "in")]
    pub input: PathBuf,
    /// The safetensors file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Floating-point type of the output; integer tensors are kept as they are.
    #[arg(long, value_enum, default_value_t = FloatType::Keep)]
    pub dtype: FloatType,
    /// Take the state_dict from this key of the checkpoint (e.g. "state_dict", "model").
    #[arg(long)]
    pub key: Option<String>,
    /// Class names, one per line, stored in the metadata (key `classes`) for eval to match
    /// dataset folders by name.
    #[arg(long)]
    pub classes: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &ConvertArgs) -> anyhow::Result<ExitCode> {
    if let (Ok(a), Ok(b)) = (std::fs::canonicalize(&args.input), std::fs::canonicalize(&args.out))
        && a == b
    {
        anyhow::bail!(
            "{}: --out is the checkpoint being converted; write the safetensors elsewhere",
            args.out.display()
        );
    }
    let safetensors = (|| -> std::io::Result<bool> {
        use std::io::Read;
        let file = std::fs::File::open(&args.input)?;
        let len = file.metadata()?.len();
        let mut head = Vec::with_capacity(9);
        file.take(9).read_to_end(&mut head)?;
        Ok(looks_like_safetensors(&head, len))
    })()
    .unwrap_or(false);
    anyhow::ensure!(
        !safetensors,
        "{}: is already safetensors; every command reads it as it is",
        args.input.display()
    );
    let (source, skipped) = read_state_dict(&args.input, args.key.as_deref())?;
    for w in skipped {
        eprintln!("warning: {}: {w}", args.input.display());
    }
    let mut converted: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::with_capacity(source.len());
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for t in source {
        let from = t.dtype;
        let to = match args.dtype {
            FloatType::F32 if from.is_float() => Dtype::F32,
            FloatType::F16 if from.is_float() => Dtype::F16,
            _ => from,
        };
        let bytes = if to == from {
            t.bytes
        } else {
            let values = floats_to_f32(from, &t.bytes).context("float conversion")?;
            f32_to_floats(to, &values).context("float conversion")?
        };
        *counts.entry(to.name()).or_default() += 1;
        converted.push((t.name, to, t.shape, bytes));
    }
    let tensors: Vec<Tensor<'_>> = converted
        .iter()
        .map(|(name, dtype, shape, bytes)| Tensor {
            name,
            dtype: *dtype,
            shape,
            bytes,
        })
        .collect();
    let source = args
        .input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut metadata = BTreeMap::from([("format".to_owned(), "pt".to_owned()), ("source".to_owned(), source)]);
    if let Some(path) = &args.classes {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
        let names: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        // The classifier's outputs (torchvision ResNet `fc`, EfficientNet-Lite `_fc`), when there.
        let outputs = converted
            .iter()
            .find(|(name, _, shape, _)| (name == "fc.weight" || name == "_fc.weight") && shape.len() == 2)
            .map(|(_, _, shape, _)| shape[0]);
        if let Some(outputs) = outputs {
            anyhow::ensure!(
                names.len() == outputs,
                "{}: {} class names, but the classifier has {outputs} outputs (one name per line, in output order)",
                path.display(),
                names.len()
            );
        }
        metadata.insert("classes".to_owned(), serde_json::to_string(&names)?);
    }
    tensorfile::write(&args.out, &tensors, &metadata)?;
    let bytes = std::fs::metadata(&args.out)?.len();
    if args.json {
        print_json(
            &json!({"in": crate::fsutil::path_text(&args.input), "out": crate::fsutil::path_text(&args.out), "tensors": tensors.len(), "dtypes": counts, "bytes": bytes}),
        )?;
    } else {
        println!(
            "{} -> {}: {} tensors {:?}, {bytes} bytes",
            args.input.display(),
            args.out.display(),
            tensors.len(),
            counts
        );
    }
    Ok(ExitCode::SUCCESS)
}
