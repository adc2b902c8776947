//! `fixres merge`: the parts that shards of one job wrote (`--shard I/N`), joined into exactly
//! what the unsharded run writes. Eval parts are merged by `eval_report::merge`; features parts
//! here, bit for bit (ARCHITECTURE.md, "Shards").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::eval_report;
use crate::shard::{Shard, fingerprint};
use crate::tensorfile::{self, Tensor};

/// Metadata keys a features part adds to the unsharded file's (merge drops them).
const SHARD: &str = "shard";
const SHARD_OF: &str = "shard_of_files";
const WEIGHTS_FINGERPRINT: &str = "weights_fingerprint";
const FILES_FINGERPRINT: &str = "files_fingerprint";
/// Keys that name things by path, which may differ from machine to machine: not compared.
const BY_PATH: [&str; 2] = ["weights", "files"];

/// The metadata a features part adds: which shard, of how many files, of which weights and list.
#[must_use]
pub fn features_part_keys(shard: Shard, files: &[String], weights: &[u8]) -> Vec<(String, String)> {
    vec![
        (SHARD.to_owned(), shard.to_string()),
        (SHARD_OF.to_owned(), files.len().to_string()),
        (WEIGHTS_FINGERPRINT.to_owned(), fingerprint(weights)),
        (FILES_FINGERPRINT.to_owned(), fingerprint(files.join("\n").as_bytes())),
    ]
}

/// What kind of part a file is.
pub enum Kind {
    /// `fixres eval --shard`.
    Eval,
    /// `fixres features --shard`.
    Features,
}

/// What a merge wrote.
#[derive(serde::Serialize)]
pub struct Merged {
    /// `eval` or `features`.
    pub kind: &'static str,
    /// The parts, in shard order.
    pub parts: Vec<String>,
    /// The file written.
    pub out: String,
    /// Images in the merged result.
    pub images: usize,
    /// The per-image CSV written (eval parts).
    pub per_image: Option<String>,
    /// The merged eval report (eval parts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<eval_report::Report>,
}

/// A safetensors file's metadata, read from its header alone (parts can be large).
fn metadata_of(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    use std::io::Read;
    let not_safetensors = |why: &str| anyhow::anyhow!("{}: not a safetensors file ({why})", path.display());
    let mut file = std::fs::File::open(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|_| not_safetensors("shorter than its header"))?;
    let len = u64::from_le_bytes(len);
    anyhow::ensure!(len <= 100 << 20, not_safetensors("a header of over 100 MB"));
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header)
        .map_err(|_| not_safetensors("truncated header"))?;
    let header: serde_json::Value = serde_json::from_slice(&header).map_err(|e| not_safetensors(&e.to_string()))?;
    Ok(header
        .get("__metadata__")
        .and_then(serde_json::Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default())
}

/// The kind of part `path` is, or an error naming it.
pub fn kind_of(path: &Path) -> anyhow::Result<Kind> {
    let meta = metadata_of(path)?;
    if meta.contains_key("fixres_eval_part") {
        Ok(Kind::Eval)
    } else if meta.contains_key(SHARD) && meta.contains_key(FILES_FINGERPRINT) {
        Ok(Kind::Features)
    } else {
        anyhow::bail!(
            "{}: not a part written with --shard (by `fixres eval` or `fixres features`)",
            path.display()
        )
    }
}

/// Merges parts (any order) into `out`; eval parts also write `per_image` when given.
pub fn merge(parts: &[PathBuf], out: &Path, per_image: Option<&Path>) -> anyhow::Result<Merged> {
    anyhow::ensure!(!parts.is_empty(), "no parts to merge");
    let kinds: Vec<Kind> = parts.iter().map(|p| kind_of(p)).collect::<anyhow::Result<_>>()?;
    let evals = kinds.iter().filter(|k| matches!(k, Kind::Eval)).count();
    anyhow::ensure!(
        evals == 0 || evals == parts.len(),
        "{} and {}: one is an eval part, the other a features part",
        parts[0].display(),
        parts[kinds
            .iter()
            .position(|k| matches!(k, Kind::Eval) != matches!(kinds[0], Kind::Eval))
            .unwrap_or(0)]
        .display()
    );
    let names = |ps: Vec<&Path>| ps.iter().map(|p| crate::fsutil::path_text(p)).collect();
    if evals > 0 {
        let read: Vec<eval_report::Part> = parts
            .iter()
            .map(|p| eval_report::read_part(p))
            .collect::<anyhow::Result<_>>()?;
        let merged = eval_report::merge(read, per_image)?;
        if let Some(csv) = per_image {
            crate::fsutil::write_atomic(csv, merged.csv.as_bytes())?;
        }
        crate::fsutil::write_atomic(out, serde_json::to_string_pretty(&merged.report)?.as_bytes())?;
        return Ok(Merged {
            kind: "eval",
            parts: names(merged.parts.iter().map(PathBuf::as_path).collect()),
            out: crate::fsutil::path_text(out),
            images: merged.report.results.iter().map(|r| r.images).max().unwrap_or(0),
            per_image: per_image.map(crate::fsutil::path_text),
            report: Some(merged.report),
        });
    }
    anyhow::ensure!(
        per_image.is_none(),
        "--per-image: features parts have no per-image scores (it is for eval parts)"
    );
    let (images, order) = merge_features(parts, out)?;
    Ok(Merged {
        kind: "features",
        parts: names(order.iter().map(PathBuf::as_path).collect()),
        out: crate::fsutil::path_text(out),
        images,
        per_image: None,
        report: None,
    })
}

struct FeaturesPart {
    path: PathBuf,
    shard: Shard,
    meta: BTreeMap<String, String>,
    bytes: Vec<u8>,
}

/// Joins features parts into the unsharded file: rows concatenated in shard order, the files'
/// list likewise, the part's own keys dropped; returns the images and the parts in order.
fn merge_features(parts: &[PathBuf], out: &Path) -> anyhow::Result<(usize, Vec<PathBuf>)> {
    let mut read = Vec::new();
    for p in parts {
        let meta = metadata_of(p)?;
        let bytes = std::fs::read(p).with_context(|| format!("{}: cannot read", p.display()))?;
        let spec: crate::shard::ShardSpec = meta[SHARD]
            .parse()
            .map_err(|e| anyhow::anyhow!("{}: shard {e}", p.display()))?;
        let crate::shard::ShardSpec::Given(shard) = spec else {
            anyhow::bail!("{}: shard {:?} is not I/N", p.display(), meta[SHARD]);
        };
        read.push(FeaturesPart {
            path: p.clone(),
            shard,
            meta,
            bytes,
        });
    }
    let compared = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        m.iter()
            .filter(|(k, _)| k.as_str() != SHARD && !BY_PATH.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let read = crate::shard::in_order(
        read,
        |p| &p.path,
        |p| p.shard,
        |a, b| {
            let (x, y) = (compared(&a.meta), compared(&b.meta));
            x.iter()
                .find(|(k, v)| y.get(*k) != Some(v))
                .map(|(k, v)| format!("{k} {v} vs {}", y.get(k).map_or("nothing", String::as_str)))
                .or_else(|| {
                    y.keys()
                        .find(|k| !x.contains_key(*k))
                        .map(|k| format!("{k} only in the second"))
                })
        },
    )?;
    let mut files: Vec<String> = Vec::new();
    let (mut pooled, mut logits) = (Vec::<u8>::new(), Vec::<u8>::new());
    let (mut widths, mut n) = (None, 0usize);
    for p in &read {
        let st = safetensors::SafeTensors::deserialize(&p.bytes)
            .map_err(|e| anyhow::anyhow!("{}: not a safetensors file ({e})", p.path.display()))?;
        let part_files: Vec<String> = serde_json::from_str(&p.meta["files"])
            .with_context(|| format!("{}: unreadable files list", p.path.display()))?;
        let (pt, lt) = (
            st.tensor("pooled")
                .map_err(|_| anyhow::anyhow!("{}: no tensor pooled", p.path.display()))?,
            st.tensor("logits")
                .map_err(|_| anyhow::anyhow!("{}: no tensor logits", p.path.display()))?,
        );
        let shape_ok = pt.shape().len() == 2
            && lt.shape().len() == 2
            && pt.shape()[0] == part_files.len()
            && lt.shape()[0] == part_files.len();
        anyhow::ensure!(
            shape_ok,
            "{}: pooled {:?} and logits {:?} for {} files",
            p.path.display(),
            pt.shape(),
            lt.shape(),
            part_files.len()
        );
        let w = (pt.shape()[1], lt.shape()[1]);
        anyhow::ensure!(
            *widths.get_or_insert(w) == w,
            "{}: pooled/logits widths {w:?} differ from the other parts'",
            p.path.display()
        );
        n += part_files.len();
        files.extend(part_files);
        pooled.extend_from_slice(pt.data());
        logits.extend_from_slice(lt.data());
    }
    let (c, k) = widths.unwrap_or((0, 0));
    let mut meta: BTreeMap<String, String> = read[0]
        .meta
        .iter()
        .filter(|(key, _)| ![SHARD, SHARD_OF, WEIGHTS_FINGERPRINT, FILES_FINGERPRINT].contains(&key.as_str()))
        .map(|(a, b)| (a.clone(), b.clone()))
        .collect();
    meta.insert("files".into(), serde_json::to_string(&files)?);
    let as_f32 = |b: &[u8]| -> Vec<f32> {
        b.chunks_exact(4)
            .map(|x| f32::from_le_bytes([x[0], x[1], x[2], x[3]]))
            .collect()
    };
    let (pooled, logits) = (as_f32(&pooled), as_f32(&logits));
    tensorfile::write(
        out,
        &[
            Tensor::f32("pooled", &[n, c], &pooled),
            Tensor::f32("logits", &[n, k], &logits),
        ],
        &meta,
    )?;
    Ok((n, read.into_iter().map(|p| p.path).collect()))
}
