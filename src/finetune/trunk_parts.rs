//! Trunk caches written in shards (`fixres finetune --shard I/N --trunk-cache DIR`) and read back
//! by the fine-tune of the head (`fixres finetune --trunk-cache DIR`): with test-time
//! augmentation the trunk's output is all the head needs, so the heavy pass over a big training
//! set runs on N machines and the head trains on one. The format is in ARCHITECTURE.md,
//! "Shards": per shard, `trunk-I-of-N.json` (the manifest) and `trunk-I-of-N.f32` (each kept
//! image's trunk output, `pre_bn` then the residual, little-endian f32, in the manifest's order).

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::split::list_splits;
use crate::data::{DecodeLimits, decode_file};
use crate::model::head::TrunkOut;
use crate::model::{Model, Recipe, input_batch, values};
use crate::shard::{Shard, fingerprint};

/// The format tag of the manifests.
pub const FORMAT: &str = "fixres trunk cache 1";

/// What every shard of one cache, and the fine-tune that reads it, must agree on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrunkIdentity {
    /// The model's architecture.
    pub arch: String,
    /// The weight file's bytes (`shard::fingerprint`).
    pub weights_fingerprint: String,
    /// K_test: the test transform's resolution.
    pub res: usize,
    /// The preprocessing recipe.
    pub recipe: serde_json::Value,
    /// The dataset's classes.
    pub classes: Vec<String>,
    /// The training split: its files (relative to the dataset) in order, fingerprinted.
    pub train_fingerprint: String,
    /// Its size.
    pub train_images: usize,
}

impl TrunkIdentity {
    /// The identity of a run of `model` (its weights' bytes `weights`) at `res` with `recipe` on
    /// `data` split with `seed`; also returns the training split's files and classes.
    pub fn of(
        model: &Model,
        weights: &[u8],
        res: usize,
        recipe: Recipe,
        data: &Path,
        seed: u64,
    ) -> anyhow::Result<(Self, Vec<(PathBuf, usize)>)> {
        let listed = list_splits(data, seed)?;
        let relative: Vec<String> = listed
            .train
            .iter()
            .map(|(p, _)| crate::fsutil::path_text(p.strip_prefix(data).unwrap_or(p)))
            .collect();
        Ok((
            Self {
                arch: model.arch.clone(),
                weights_fingerprint: fingerprint(weights),
                res,
                recipe: serde_json::to_value(recipe)?,
                classes: listed.classes,
                train_fingerprint: fingerprint(relative.join("\n").as_bytes()),
                train_images: listed.train.len(),
            },
            listed.train,
        ))
    }
}

/// One shard's manifest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// `FORMAT`.
    pub format: String,
    /// Which shard.
    pub shard: Shard,
    /// What the shards agree on.
    pub identity: TrunkIdentity,
    /// Positions in the training split of the images kept (decoded), in the data file's order.
    pub positions: Vec<usize>,
    /// Their class indices.
    pub labels: Vec<usize>,
    /// The shape of one image's `pre_bn`, `[C, H, W]`.
    pub pre_bn: [usize; 3],
    /// The shape of one image's residual, if the head has one.
    pub residual: Option<[usize; 3]>,
    /// Files of the shard that failed to decode (left out, as the unsharded run leaves them).
    pub failed: Vec<String>,
}

fn names(dir: &Path, shard: Shard) -> (PathBuf, PathBuf) {
    let stem = format!("trunk-{}-of-{}", shard.index, shard.count);
    (dir.join(format!("{stem}.json")), dir.join(format!("{stem}.f32")))
}

/// What writing a shard did.
#[derive(Clone, Debug, Serialize)]
pub struct Written {
    /// Which shard.
    pub shard: Shard,
    /// The manifest written.
    pub manifest: String,
    /// Images of the training split in the shard.
    pub images: usize,
    /// Of which decoded and cached.
    pub cached: usize,
    /// Bytes of trunk outputs written.
    pub bytes: u64,
    /// Wall time.
    pub seconds: f64,
}

/// Runs the trunk over shard `shard` of `data`'s training split at `res` (test transform) and
/// writes its part of the cache into `dir`; `report(done, total)` after each batch, false
/// cancels (nothing is left behind).
#[allow(clippy::too_many_arguments)]
pub fn write_shard(
    model: &Model,
    weights: &[u8],
    recipe: Recipe,
    res: usize,
    data: &Path,
    seed: u64,
    batch: usize,
    shard: Shard,
    dir: &Path,
    device: &Device,
    report: &mut dyn FnMut(usize, usize) -> bool,
) -> anyhow::Result<Written> {
    let started = std::time::Instant::now();
    let (identity, train) = TrunkIdentity::of(model, weights, res, recipe, data, seed)?;
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let range = shard.range(train.len());
    let (manifest_path, data_path) = names(dir, shard);
    // Written under temporary names, renamed once complete: a part is there whole or not at all.
    let tmp = data_path.with_extension("f32.partial");
    let mut out = BufWriter::new(File::create(&tmp).with_context(|| format!("{}: cannot create", tmp.display()))?);
    let mut unfinished = RemoveOnDrop(Some(&tmp));
    let transform = recipe.test_transform(res);
    let mut manifest = Manifest {
        format: FORMAT.into(),
        shard,
        identity,
        positions: Vec::new(),
        labels: Vec::new(),
        pre_bn: [0; 3],
        residual: None,
        failed: Vec::new(),
    };
    let mut bytes = 0u64;
    let positions: Vec<usize> = range.collect();
    for (b, chunk) in positions.chunks(batch.max(1)).enumerate() {
        let decoded: Vec<_> = chunk
            .par_iter()
            .map(|&p| decode_file(&train[p].0, DecodeLimits::default()).map(|img| (p, transform.apply(&img))))
            .collect();
        let mut inputs = Vec::new();
        for d in decoded {
            match d {
                Ok((p, img)) => {
                    manifest.positions.push(p);
                    manifest.labels.push(train[p].1);
                    inputs.push(img);
                }
                Err(e) => manifest.failed.push(e.to_string()),
            }
        }
        if !inputs.is_empty() {
            let t = model.net.trunk(input_batch(&inputs, recipe.mean, recipe.std, device));
            let shape3 = |d: [usize; 4]| [d[1], d[2], d[3]];
            manifest.pre_bn = shape3(t.pre_bn.dims());
            manifest.residual = t.residual.as_ref().map(|r| shape3(r.dims()));
            let pre = values(&t.pre_bn);
            let res_values = t.residual.as_ref().map(values);
            let (per_pre, per_res) = (
                manifest.pre_bn.iter().product::<usize>(),
                manifest.residual.map_or(0, |r| r.iter().product::<usize>()),
            );
            for i in 0..inputs.len() {
                out.write_all(bytemuck::cast_slice(&pre[i * per_pre..(i + 1) * per_pre]))?;
                if let Some(r) = &res_values {
                    out.write_all(bytemuck::cast_slice(&r[i * per_res..(i + 1) * per_res]))?;
                }
                bytes += 4 * (per_pre + per_res) as u64;
            }
        }
        if !report((b * batch + chunk.len()).min(positions.len()), positions.len()) {
            anyhow::bail!("cancelled; nothing written");
        }
    }
    out.flush()?;
    drop(out);
    std::fs::rename(&tmp, &data_path).with_context(|| format!("{}: cannot write", data_path.display()))?;
    unfinished.0 = None;
    crate::fsutil::write_atomic(&manifest_path, serde_json::to_string_pretty(&manifest)?.as_bytes())?;
    Ok(Written {
        shard,
        manifest: crate::fsutil::path_text(&manifest_path),
        images: positions.len(),
        cached: manifest.positions.len(),
        bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Removes a partly written file when a shard's pass ends early (an error, a cancel).
struct RemoveOnDrop<'a>(Option<&'a Path>);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(path) = self.0 {
            // Best effort: the pass already failed with its own error, which is what the user
            // needs to see; a leftover `.partial` file is never read as a part.
            std::fs::remove_file(path).ok();
        }
    }
}

/// A complete cache, opened: every image's row, by position in the kept training images.
pub struct TrunkParts {
    files: Vec<(PathBuf, File)>,
    /// Per kept image, in the training split's order: (file, byte offset).
    rows: Vec<(usize, u64)>,
    labels: Vec<usize>,
    pre_bn: [usize; 3],
    residual: Option<[usize; 3]>,
    /// The shards' decode failures.
    pub failed: Vec<String>,
}

impl TrunkParts {
    /// Opens the cache in `dir`, refusing a missing, duplicated or foreign shard (naming it) and
    /// a cache of another model, dataset, resolution or recipe than `expect`.
    pub fn open(dir: &Path, expect: &TrunkIdentity) -> anyhow::Result<Self> {
        let mut found = Vec::new();
        for entry in
            std::fs::read_dir(dir).with_context(|| format!("{}: cannot read the trunk cache", dir.display()))?
        {
            let path = entry?.path();
            let is_manifest = path.extension().is_some_and(|e| e == "json")
                && path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("trunk-"));
            if is_manifest {
                let text =
                    std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
                let m: Manifest = serde_json::from_str(&text)
                    .with_context(|| format!("{}: not a trunk-cache manifest", path.display()))?;
                anyhow::ensure!(
                    m.format == FORMAT,
                    "{}: format {:?}, this fixres reads {FORMAT:?}",
                    path.display(),
                    m.format
                );
                found.push((path, m));
            }
        }
        anyhow::ensure!(
            !found.is_empty(),
            "{}: no trunk cache here (trunk-I-of-N.json); write one with `fixres finetune --shard I/N --trunk-cache {}`",
            dir.display(),
            dir.display()
        );
        let found = crate::shard::in_order(
            found,
            |(p, _)| p,
            |(_, m)| m.shard,
            |(_, a), (_, b)| {
                // A shard whose every image failed to decode has no shapes to compare.
                let shapes_differ = !a.positions.is_empty()
                    && !b.positions.is_empty()
                    && (a.pre_bn != b.pre_bn || a.residual != b.residual);
                (a.identity != b.identity || shapes_differ)
                    .then(|| "another model, dataset, resolution or recipe".to_owned())
            },
        )?;
        let first = &found[0].1;
        if first.identity != *expect {
            let (a, b) = (serde_json::to_value(&first.identity)?, serde_json::to_value(expect)?);
            let field = a
                .as_object()
                .and_then(|a| {
                    a.iter()
                        .find(|(k, v)| b.get(k.as_str()) != Some(v))
                        .map(|(k, _)| k.clone())
                })
                .unwrap_or_default();
            anyhow::bail!(
                "{}: the trunk cache is of another run than this one ({field} differs: cache {}, this run {})",
                found[0].0.display(),
                a.get(&field).map_or_else(String::new, ToString::to_string),
                b.get(&field).map_or_else(String::new, ToString::to_string)
            );
        }
        let shaped = found
            .iter()
            .map(|(_, m)| m)
            .find(|m| !m.positions.is_empty())
            .unwrap_or(first);
        let (pre_bn, residual) = (shaped.pre_bn, shaped.residual);
        let row_bytes =
            4 * (pre_bn.iter().product::<usize>() + residual.map_or(0, |r| r.iter().product::<usize>())) as u64;
        let mut parts = Self {
            files: Vec::new(),
            rows: Vec::new(),
            labels: Vec::new(),
            pre_bn,
            residual,
            failed: Vec::new(),
        };
        for (manifest_path, m) in &found {
            let (_, data_path) = names(dir, m.shard);
            let file = File::open(&data_path).with_context(|| {
                format!(
                    "{}: cannot open (its manifest is {})",
                    data_path.display(),
                    manifest_path.display()
                )
            })?;
            let len = file.metadata()?.len();
            anyhow::ensure!(
                len == row_bytes * m.positions.len() as u64,
                "{}: {len} bytes, its manifest lists {} images of {row_bytes} bytes",
                data_path.display(),
                m.positions.len()
            );
            anyhow::ensure!(
                m.labels.len() == m.positions.len()
                    && m.positions
                        .iter()
                        .all(|&p| m.shard.range(m.identity.train_images).contains(&p))
                    && m.positions.windows(2).all(|w| w[0] < w[1]),
                "{}: its positions are not those of shard {} of {} training images",
                manifest_path.display(),
                m.shard,
                m.identity.train_images
            );
            let f = parts.files.len();
            parts.files.push((data_path, file));
            for (i, &label) in m.labels.iter().enumerate() {
                parts.rows.push((f, i as u64 * row_bytes));
                parts.labels.push(label);
            }
            parts.failed.extend(m.failed.iter().cloned());
        }
        Ok(parts)
    }

    /// Class indices of the kept images, in the training split's order.
    #[must_use]
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// The trunk output of the kept images `rows` (indices into `labels`), as one batch.
    pub fn batch(&mut self, rows: &[usize], device: &Device) -> anyhow::Result<TrunkOut> {
        let per_pre = self.pre_bn.iter().product::<usize>();
        let per_res = self.residual.map_or(0, |r| r.iter().product::<usize>());
        let mut pre = Vec::with_capacity(rows.len() * per_pre);
        let mut res = Vec::with_capacity(rows.len() * per_res);
        let mut buf = vec![0u8; 4 * (per_pre + per_res)];
        for &r in rows {
            let (f, offset) = self.rows[r];
            let (path, file) = &mut self.files[f];
            file.seek(SeekFrom::Start(offset))?;
            file.read_exact(&mut buf)
                .with_context(|| format!("{}: cannot read", path.display()))?;
            let floats = buf
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            let mut floats = floats.collect::<Vec<f32>>().into_iter();
            pre.extend(floats.by_ref().take(per_pre));
            res.extend(floats);
        }
        let [c, h, w] = self.pre_bn;
        let pre_bn = Tensor::from_data(TensorData::new(pre, [rows.len(), c, h, w]), device);
        let residual = self
            .residual
            .map(|[c, h, w]| Tensor::from_data(TensorData::new(res, [rows.len(), c, h, w]), device));
        Ok(TrunkOut { pre_bn, residual })
    }
}
