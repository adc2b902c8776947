//! The report of `fixres eval` as a type, built from what a sweep gathered; a shard's part of it
//! (`fixres eval --shard I/N --out PART`), and the merge of the parts into exactly the report the
//! unsharded run writes (ARCHITECTURE.md, "Shards").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::eval::{ClassRule, Cost, PerImage, PooledStats, StatsAccumulator, StatsState, pareto_front};
use crate::shard::Shard;
use crate::stats::{FlipCounts, Scored, Tally};
use crate::tensorfile::{self, Tensor};

/// Who ran what on which images: the parts of one job agree on all of it (`Identity`) but the
/// paths and the device, which may differ from machine to machine.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Context {
    /// The weights' path as given.
    pub weights: String,
    /// The model's architecture.
    pub arch: String,
    /// Whose key names the weights use.
    pub library: String,
    /// The model's outputs.
    pub classes: usize,
    /// The folder as given.
    pub data: String,
    /// The folder's classes.
    pub dataset_classes: Vec<String>,
    /// How the folder's classes were matched to the model's outputs.
    pub classes_matched: ClassRule,
    /// The preprocessing recipe.
    pub recipe: Value,
    /// Where it came from.
    pub recipe_source: String,
    /// Where the model ran.
    pub device: Value,
    /// What loading the weights warned of.
    pub warnings: Value,
}

/// One resolution's line of the report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResResult {
    /// The test resolution.
    pub res: usize,
    /// Images scored.
    pub images: usize,
    /// Top-1, in [0, 1].
    pub top1: f64,
    /// The 95 % interval of top-1 (Wilson's), for the folder the scored images sample.
    pub top1_ci: [f64; 2],
    /// Top-5, in [0, 1].
    pub top5: f64,
    /// Multiply-accumulates per image (counted from the layers' shapes).
    pub macs: u64,
    /// Images per second through the model alone, at `--batch`, on this device.
    pub images_per_s: f64,
    /// Milliseconds per image, likewise.
    pub ms_per_image: f64,
    /// Whether no other resolution is both cheaper (in time) and at least as accurate (top-1).
    pub pareto: bool,
    /// Statistics of the pooled activations.
    pub pooled: PooledStats,
}

/// Top-1 flips from the first resolution to another.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Flips {
    /// From this resolution.
    pub from: usize,
    /// To this one.
    pub to: usize,
    /// The counts.
    #[serde(flatten)]
    pub counts: FlipCounts,
}

/// Which images the report rests on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// How the images were ordered.
    pub order: String,
    /// The seed of that order.
    pub order_seed: u64,
    /// Images in the folder.
    pub folder_images: usize,
    /// Images in the sample (after `limit` and `per_class`).
    pub in_sample: usize,
    /// `--limit`.
    pub limit: Option<usize>,
    /// `--per-class`.
    pub per_class: Option<usize>,
    /// `--until-ci`.
    pub until_ci: Option<f64>,
    /// Whether the sweep stopped because every interval was narrow enough.
    pub stopped_at_ci: bool,
}

/// The report of `fixres eval` (what `--json` prints and `--out` writes).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// The run.
    #[serde(flatten)]
    pub context: Context,
    /// One line per resolution.
    pub results: Vec<ResResult>,
    /// The images scored.
    pub sample: Sample,
    /// Flips from the first resolution to each other.
    pub flips: Vec<Flips>,
    /// The per-image CSV written, if any.
    pub per_image: Option<String>,
    /// What was left out: the folder scan's skips, then the files that failed to decode.
    pub skipped: Vec<Value>,
}

/// What a sweep gathered over its images, by position in the order they were visited.
pub struct Gathered {
    /// The resolutions.
    pub res: Vec<usize>,
    /// Each image's result at each resolution.
    pub per_image: PerImage,
    /// The model's cost per resolution.
    pub costs: Vec<Cost>,
    /// The pooled activations' statistics per resolution.
    pub stats: Vec<StatsAccumulator>,
}

impl Gathered {
    /// The tally of each resolution.
    #[must_use]
    pub fn tallies(&self) -> Vec<Tally> {
        self.per_image
            .results
            .iter()
            .map(|row| {
                let mut t = Tally::default();
                for s in row.iter().flatten() {
                    t.count(s);
                }
                t
            })
            .collect()
    }

    /// Per-resolution results and the flips from the first resolution.
    #[must_use]
    pub fn results(&self) -> (Vec<ResResult>, Vec<Flips>) {
        let tallies = self.tallies();
        let n_res = self.res.len();
        let front = pareto_front(
            &(0..n_res)
                .map(|r| (self.costs[r].ms_per_image(), tallies[r].top1_share()))
                .collect::<Vec<_>>(),
        );
        let results = (0..n_res)
            .map(|r| {
                let (lo, hi) = tallies[r].top1_interval();
                ResResult {
                    res: self.res[r],
                    images: tallies[r].scored,
                    top1: tallies[r].top1_share(),
                    top1_ci: [lo, hi],
                    top5: tallies[r].top5_share(),
                    macs: self.costs[r].macs,
                    images_per_s: self.costs[r].images_per_s(),
                    ms_per_image: self.costs[r].ms_per_image(),
                    pareto: front.contains(&r),
                    pooled: self.stats[r].finish(),
                }
            })
            .collect();
        let flips = (1..n_res)
            .map(|r| Flips {
                from: self.res[0],
                to: self.res[r],
                counts: self.per_image.flips(0, r),
            })
            .collect();
        (results, flips)
    }
}

/// The sampled images, in the order visited: index into the folder's samples, path, class.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Visited {
    /// Index into the folder's samples (the folder's order: by class, then path).
    pub folder_index: Vec<usize>,
    /// The file, as the folder listed it.
    pub files: Vec<String>,
    /// Its dataset class.
    pub class: Vec<usize>,
}

impl Visited {
    /// The per-image CSV, rows in the folder's order whatever the order of the visit;
    /// `output_names` names the model's outputs (else their index).
    #[must_use]
    pub fn csv(
        &self,
        res: &[usize],
        per_image: &PerImage,
        dataset_classes: &[String],
        output_names: Option<&[String]>,
    ) -> String {
        let mut positions: Vec<usize> = (0..self.folder_index.len()).collect();
        positions.sort_by_key(|&p| self.folder_index[p]);
        let files: Vec<PathBuf> = positions.iter().map(|&p| PathBuf::from(&self.files[p])).collect();
        let class_of: Vec<&str> = positions
            .iter()
            .map(|&p| dataset_classes[self.class[p]].as_str())
            .collect();
        per_image.permuted(&positions).csv(res, &files, &class_of, |o| {
            output_names
                .and_then(|n| n.get(o))
                .cloned()
                .unwrap_or_else(|| o.to_string())
        })
    }
}

/// What parts of one job must agree on: the model, the folder, and the settings that pick and
/// score the images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// The model's architecture.
    pub arch: String,
    /// The model's outputs.
    pub classes: usize,
    /// The weight file's bytes (`shard::fingerprint`).
    pub weights_fingerprint: String,
    /// The preprocessing recipe.
    pub recipe: Value,
    /// The folder's classes.
    pub dataset_classes: Vec<String>,
    /// The folder's files, relative to it, in its order (`shard::fingerprint` of their list).
    pub folder_fingerprint: String,
    /// Test resolutions.
    pub res: Vec<usize>,
    /// The sample (order seed, limits).
    pub sample: Sample,
}

/// A shard's part: the header (in the safetensors metadata) and its per-image results and
/// pooled-activation samples (tensors).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PartHeader {
    /// `fixres eval part 1`.
    pub format: String,
    /// Which part.
    pub shard: Shard,
    /// What the parts must agree on.
    pub identity: Identity,
    /// The run, as the part's machine saw it.
    pub context: Context,
    /// The part's images, in the order visited.
    pub visited: Visited,
    /// The model's outputs by name, for the per-image CSV.
    pub output_names: Option<Vec<String>>,
    /// The folder scan's skips (the same in every part).
    pub scan_skipped: Vec<Value>,
    /// The part's files that failed to decode.
    pub failed: Vec<Value>,
    /// Cost per resolution.
    pub costs: Vec<Cost>,
    /// Pooled-activation moments per resolution (their samples are tensors).
    pub stats: Vec<StatsState>,
}

/// The format tag of eval parts.
pub const PART_FORMAT: &str = "fixres eval part 1";
const METADATA_KEY: &str = "fixres_eval_part";

const SCORED: u8 = 1;
const TOP1: u8 = 2;
const TOP5: u8 = 4;

/// Writes a part: the header and the gathered results.
pub fn write_part(path: &Path, header: &PartHeader, gathered: &Gathered) -> anyhow::Result<()> {
    let (r, n) = (gathered.res.len(), header.visited.files.len());
    let mut flags = vec![0u8; r * n];
    let mut predicted = vec![0u32; r * n];
    let mut p_predicted = vec![0f32; r * n];
    let mut p_true = vec![0f32; r * n];
    for (ri, row) in gathered.per_image.results.iter().enumerate() {
        for (i, s) in row.iter().enumerate() {
            if let Some(s) = s {
                let at = ri * n + i;
                flags[at] = SCORED | if s.top1 { TOP1 } else { 0 } | if s.top5 { TOP5 } else { 0 };
                predicted[at] = u32::try_from(s.predicted)?;
                p_predicted[at] = s.p_predicted;
                p_true[at] = s.p_true;
            }
        }
    }
    let names: Vec<String> = (0..r).map(|i| format!("pooled_sample.{i}")).collect();
    let lens: Vec<[usize; 1]> = gathered.stats.iter().map(|s| [s.sample().len()]).collect();
    let shape = [r, n];
    let mut tensors = vec![
        Tensor::u8("flags", &shape, &flags),
        Tensor::u32("predicted", &shape, &predicted),
        Tensor::f32("p_predicted", &shape, &p_predicted),
        Tensor::f32("p_true", &shape, &p_true),
    ];
    for ((name, len), s) in names.iter().zip(&lens).zip(&gathered.stats) {
        tensors.push(Tensor::f32(name, len, s.sample()));
    }
    let metadata = BTreeMap::from([(METADATA_KEY.to_owned(), serde_json::to_string(header)?)]);
    tensorfile::write(path, &tensors, &metadata)
}

/// A part read back.
pub struct Part {
    /// Its file.
    pub path: PathBuf,
    /// Its header.
    pub header: PartHeader,
    /// Its results.
    pub gathered: Gathered,
}

/// Reads a part written by `write_part`.
pub fn read_part(path: &Path) -> anyhow::Result<Part> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: not a safetensors file ({e})", path.display()))?;
    let text = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(METADATA_KEY))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{}: not a part of `fixres eval --shard` (no {METADATA_KEY})",
                path.display()
            )
        })?;
    let header: PartHeader =
        serde_json::from_str(text).with_context(|| format!("{}: unreadable part header", path.display()))?;
    anyhow::ensure!(
        header.format == PART_FORMAT,
        "{}: part format {:?}, this fixres reads {PART_FORMAT:?}",
        path.display(),
        header.format
    );
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: not a safetensors file ({e})", path.display()))?;
    let (r, n) = (header.identity.res.len(), header.visited.files.len());
    let raw = |name: &str, size: usize| -> anyhow::Result<Vec<u8>> {
        let t = st
            .tensor(name)
            .map_err(|_| anyhow::anyhow!("{}: no tensor {name}", path.display()))?;
        anyhow::ensure!(
            t.data().len() == r * n * size,
            "{}: tensor {name} has shape {:?}, expected [{r}, {n}]",
            path.display(),
            t.shape()
        );
        Ok(t.data().to_vec())
    };
    let le4 = |b: &[u8]| [b[0], b[1], b[2], b[3]];
    let flags = raw("flags", 1)?;
    let predicted: Vec<u32> = raw("predicted", 4)?
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes(le4(b)))
        .collect();
    let f32s = |name: &str| -> anyhow::Result<Vec<f32>> {
        Ok(raw(name, 4)?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(le4(b)))
            .collect())
    };
    let (p_predicted, p_true) = (f32s("p_predicted")?, f32s("p_true")?);
    let mut per_image = PerImage::new(r, n);
    for (ri, row) in per_image.results.iter_mut().enumerate() {
        for (i, slot) in row.iter_mut().enumerate() {
            let at = ri * n + i;
            if flags[at] & SCORED != 0 {
                *slot = Some(Scored {
                    top1: flags[at] & TOP1 != 0,
                    top5: flags[at] & TOP5 != 0,
                    predicted: predicted[at] as usize,
                    p_predicted: p_predicted[at],
                    p_true: p_true[at],
                });
            }
        }
    }
    anyhow::ensure!(
        header.stats.len() == r && header.costs.len() == r,
        "{}: {} statistics and {} costs for {r} resolutions",
        path.display(),
        header.stats.len(),
        header.costs.len()
    );
    let mut stats = Vec::new();
    for (i, s) in header.stats.iter().enumerate() {
        let name = format!("pooled_sample.{i}");
        let t = st
            .tensor(&name)
            .map_err(|_| anyhow::anyhow!("{}: no tensor {name}", path.display()))?;
        let sample: Vec<f32> = t.data().chunks_exact(4).map(|b| f32::from_le_bytes(le4(b))).collect();
        stats.push(StatsAccumulator::from_state(s, sample));
    }
    Ok(Part {
        path: path.to_owned(),
        gathered: Gathered {
            res: header.identity.res.clone(),
            per_image,
            costs: header.costs.clone(),
            stats,
        },
        header,
    })
}

/// The first field where two identities differ, for the refusal's message.
fn first_difference(a: &Identity, b: &Identity) -> String {
    let (a, b) = (serde_json::to_value(a), serde_json::to_value(b));
    if let (Ok(Value::Object(a)), Ok(Value::Object(b))) = (a, b) {
        for (k, v) in &a {
            if b.get(k) != Some(v) {
                let show = |v: Option<&Value>| {
                    let t = v.map_or_else(|| "nothing".to_owned(), Value::to_string);
                    if t.chars().count() > 80 {
                        format!("{}…", t.chars().take(80).collect::<String>())
                    } else {
                        t
                    }
                };
                return format!("{k} {} vs {}", show(Some(v)), show(b.get(k)));
            }
        }
    }
    "the identity".to_owned()
}

/// The merge of a job's eval parts: the report the unsharded run writes (accuracies from the
/// merged counts), and its per-image CSV if asked for.
pub struct Merged {
    /// The report.
    pub report: Report,
    /// The per-image CSV, rows in the folder's order.
    pub csv: String,
    /// The parts, in shard order.
    pub parts: Vec<PathBuf>,
}

/// Merges eval parts (any order; each shard once).
pub fn merge(parts: Vec<Part>, per_image_csv: Option<&Path>) -> anyhow::Result<Merged> {
    let parts = crate::shard::in_order(
        parts,
        |p| &p.path,
        |p| p.header.shard,
        |a, b| {
            (a.header.identity != b.header.identity).then(|| first_difference(&a.header.identity, &b.header.identity))
        },
    )?;
    let first = &parts[0].header;
    let res = first.identity.res.clone();
    let mut visited = Visited::default();
    let mut results: Vec<Vec<Option<Scored>>> = vec![Vec::new(); res.len()];
    let mut costs = vec![Cost::default(); res.len()];
    let mut skipped = first.scan_skipped.clone();
    for p in &parts {
        let v = &p.header.visited;
        visited.folder_index.extend(&v.folder_index);
        visited.files.extend(v.files.iter().cloned());
        visited.class.extend(&v.class);
        for (r, row) in p.gathered.per_image.results.iter().enumerate() {
            results[r].extend(row);
            costs[r].merge(&p.gathered.costs[r]);
        }
        skipped.extend(p.header.failed.iter().cloned());
    }
    anyhow::ensure!(
        visited.files.len() == first.identity.sample.in_sample,
        "the parts hold {} images, the run's sample {}",
        visited.files.len(),
        first.identity.sample.in_sample
    );
    let stats = (0..res.len())
        .map(|r| StatsAccumulator::merged(parts.iter().map(|p| &p.gathered.stats[r])))
        .collect();
    let gathered = Gathered {
        res,
        per_image: PerImage { results },
        costs,
        stats,
    };
    let (lines, flips) = gathered.results();
    let csv = visited.csv(
        &gathered.res,
        &gathered.per_image,
        &first.identity.dataset_classes,
        first.output_names.as_deref(),
    );
    Ok(Merged {
        report: Report {
            context: first.context.clone(),
            results: lines,
            sample: first.identity.sample.clone(),
            flips,
            per_image: per_image_csv.map(crate::fsutil::path_text),
            skipped,
        },
        csv,
        parts: parts.iter().map(|p| p.path.clone()).collect(),
    })
}
