//! From-scratch training of a small torchvision-layout ResNet at a train resolution, with
//! RandomResizedCrop + flip at K_train (the train-time augmentation the paper studies), SGD with
//! momentum and a cosine learning rate, validation top-1 each epoch, and export in the same
//! format as the fine-tune (torchvision keys, f32, metadata, JSON sidecar, atomic).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Int, Tensor, TensorData};
use rayon::prelude::*;
use serde::Serialize;

use crate::backend::Backend;
use crate::data::split::{Splits, load_splits};
use crate::data::{RandomResizedCrop, RgbImage, SeededRng, TrainTransform};
use crate::fsutil::{path_text, serialize_path};
use crate::model::resnet::ResNet;
use crate::model::{Architecture, Recipe, export as export_model, input_batch};
use crate::tensorfile::{self, Dtype};
use crate::training::{DeviceName, EpochRecord, Schedule, accuracy, crop_seed};

/// The architectures `fixres train` builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// torchvision's ResNet-18 layout (BasicBlocks [2, 2, 2, 2]) at an eighth of its widths
    /// (8, 16, 32, 64), with the small-image stem (3×3 stride-1 `conv1`, no max-pool, as ResNets
    /// for CIFAR do): CPU-scale runs on images of a few dozen pixels.
    ResnetTiny,
    /// torchvision's ResNet-18 (widths 64, 128, 256, 512).
    Resnet18,
}

impl Arch {
    /// Blocks per stage, widths per stage, stem kernel.
    fn layout(self) -> ([usize; 4], [usize; 4], usize) {
        match self {
            Self::ResnetTiny => ([2, 2, 2, 2], [8, 16, 32, 64], 3),
            Self::Resnet18 => ([2, 2, 2, 2], [64, 128, 256, 512], 7),
        }
    }

    /// The name written into the weights' metadata.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::ResnetTiny => "resnet-tiny",
            Self::Resnet18 => "resnet18",
        }
    }
}

/// What to train, and how.
#[derive(Clone, Debug)]
pub struct Config {
    /// A labelled ImageFolder (`train/` + `val/`, or one folder split by seed).
    pub data: PathBuf,
    /// Architecture.
    pub arch: Arch,
    /// K_train.
    pub res: usize,
    /// Passes over the training images.
    pub epochs: usize,
    /// Images per step.
    pub batch: usize,
    /// Peak learning rate (cosine to 0 over the epochs).
    pub lr: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Seed (initial split, order, crops).
    pub seed: u64,
}

/// What a running training reports.
#[derive(Clone, Debug)]
pub enum Progress {
    /// One SGD step finished.
    Step {
        /// Epoch, from 0.
        epoch: usize,
        /// Loss of the step's batch.
        loss: f32,
        /// Training images processed, all epochs together.
        images_done: usize,
        /// Training images of the whole run.
        images_total: usize,
    },
    /// One epoch finished.
    Epoch {
        /// Epoch, from 0.
        epoch: usize,
        /// Mean training loss.
        loss: f32,
        /// Validation top-1 at K_train (test transform).
        val_top1: f64,
    },
}

/// The hyper-parameters a training used, as its report lists them (sorted keys).
#[derive(Clone, Debug, Serialize)]
pub struct SummaryConfig {
    /// The training augmentation, in words.
    pub augmentation: &'static str,
    /// Images per step.
    pub batch: usize,
    /// Blocks per stage.
    pub blocks: [usize; 4],
    /// Passes over the training images asked for.
    pub epochs: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Seed.
    pub seed: u64,
    /// Side of the stem's kernel.
    pub stem_kernel: usize,
    /// Weight decay.
    pub weight_decay: f64,
    /// Widths per stage.
    pub widths: [usize; 4],
}

/// Everything about a training, as `fixres train --json` prints it and the export stores it (in
/// the weights' metadata and the JSON sidecar). The fields are in the order of their JSON keys,
/// sorted, as the reports have always listed them.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Architecture.
    pub arch: Arch,
    /// Classes of the dataset.
    pub classes: usize,
    /// Hyper-parameters.
    pub config: SummaryConfig,
    /// The dataset.
    #[serde(serialize_with = "serialize_path")]
    pub data: PathBuf,
    /// Where it ran.
    pub device: DeviceName,
    /// Per epoch.
    pub epochs: Vec<EpochRecord>,
    /// Where the model was written, once it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out: Option<String>,
    /// Wall time.
    pub seconds: f64,
    /// SGD steps taken (the BatchNorms' `num_batches_tracked`).
    pub steps: usize,
    /// Why the run stopped early, if it did.
    pub stopped: Option<String>,
    /// Training images.
    pub train_images: usize,
    /// K_train.
    pub train_res: usize,
    /// Files that could not be decoded.
    pub unreadable: usize,
    /// Validation images.
    pub val_images: usize,
    /// Validation top-1 at K_train of the final network.
    pub val_top1: f64,
}

/// A trained network.
pub struct Trained {
    /// The network, in evaluation mode, on the backend's plain device.
    pub net: ResNet,
    /// Class names (the ImageFolder's).
    pub classes: Vec<String>,
    /// Everything about the run.
    pub summary: Summary,
}

/// torchvision's ResNet initialisation drawn from `seed`, so that the same seed trains the same
/// network (Burn's initialisers draw from an unseeded generator shared by the whole process):
/// convolutions Kaiming-normal (fan-out, ReLU gain: std √(2 / (out·kh·kw))), BatchNorm γ = 1,
/// β = 0, running mean 0 and variance 1, the classifier uniform in ±1/√fan-in (PyTorch's `Linear`
/// default).
fn seeded_init(
    arch: &str,
    header: &BTreeMap<String, crate::model::weights::TensorInfo>,
    seed: u64,
    device: &burn::tensor::Device,
) -> anyhow::Result<ResNet> {
    let path = Path::new(arch);
    let (shaped, _) = ResNet::from_header(path, header, device)?;
    let mut rng = SeededRng::new(seed);
    let fc_bound = 1.0 / (header["fc.weight"].shape[1] as f64).sqrt();
    let values: Vec<(String, Vec<usize>, Vec<f32>)> = shaped
        .state_dict()
        .into_iter()
        .map(|(key, shape, old)| {
            let n = old.len();
            let values = if key.starts_with("fc.") {
                (0..n).map(|_| rng.uniform(-fc_bound, fc_bound) as f32).collect()
            } else if shape.len() == 4 {
                let std = (2.0 / (shape[0] * shape[2] * shape[3]) as f64).sqrt();
                // Box–Muller; 1 − u keeps the logarithm finite.
                (0..n)
                    .map(|_| {
                        let (u1, u2) = (rng.next_f64(), rng.next_f64());
                        (std * (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
                    })
                    .collect()
            } else if key.ends_with(".weight") || key.ends_with(".running_var") {
                vec![1.0; n]
            } else {
                vec![0.0; n]
            };
            (key, shape, values)
        })
        .collect();
    let tensors: Vec<tensorfile::Tensor<'_>> = values
        .iter()
        .map(|(key, shape, v)| tensorfile::Tensor::f32(key, shape, v))
        .collect();
    let bytes = tensorfile::to_bytes(&tensors, &BTreeMap::new())?;
    let file = crate::model::weights::WeightFile::from_bytes(path, bytes)?;
    Ok(ResNet::from_file(&file, device)?.0)
}

/// Trains from scratch on `backend`, reporting through `report` (false stops after the step).
pub fn train(cfg: &Config, backend: &Backend, report: &mut dyn FnMut(Progress) -> bool) -> anyhow::Result<Trained> {
    let started = Instant::now();
    let Splits {
        train: train_split,
        val: val_split,
        classes,
        unreadable,
    } = load_splits(&cfg.data, cfg.seed)?;
    // The recipe `Model` loads the exported network with: training normalises and resamples
    // the same way.
    let recipe = Recipe::default();
    let (blocks, widths, stem) = cfg.arch.layout();
    let header = ResNet::basic_header(blocks, widths, stem, classes.len());
    let ad = backend.device.clone().autodiff();
    let mut net = seeded_init(cfg.arch.name(), &header, cfg.seed, &ad)?;
    let mut optim = SgdConfig::new()
        .with_momentum(Some(MomentumConfig {
            momentum: 0.9,
            dampening: 0.0,
            nesterov: false,
        }))
        .with_weight_decay(Some(WeightDecayConfig {
            penalty: cfg.weight_decay as f32,
        }))
        .init();
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let augment = TrainTransform {
        res: cfg.res,
        crop: RandomResizedCrop::default(),
        interpolation: recipe.interpolation,
        hflip: true,
    };
    let n = train_split.images.len();
    let batch = cfg.batch.max(2);
    let images_total = cfg.epochs * n;
    let mut images_done = 0;
    let mut steps = 0usize;
    let mut epochs = Vec::new();
    let mut stopped = None;
    'epochs: for epoch in 0..cfg.epochs {
        let lr = Schedule::Cosine.lr(cfg.lr, epoch, cfg.epochs);
        let mut order: Vec<usize> = (0..n).collect();
        SeededRng::for_item(cfg.seed, epoch as u64).shuffle(&mut order);
        let crop_seed = crop_seed(cfg.seed, epoch);
        let mut losses = Vec::new();
        // A last batch of one image has no batch statistics: it is dropped, as PyTorch's
        // `drop_last` would.
        for chunk in order.chunks(batch).filter(|c| c.len() > 1) {
            let inputs: Vec<RgbImage> = chunk
                .par_iter()
                .map(|&i| {
                    augment
                        .apply(&train_split.images[i], &mut SeededRng::for_item(crop_seed, i as u64))
                        .image
                })
                .collect();
            let targets: Vec<i64> = chunk.iter().map(|&i| train_split.labels[i] as i64).collect();
            let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [chunk.len()]), &ad);
            let out = net.forward(input_batch(&inputs, recipe.mean, recipe.std, &ad));
            let loss = loss_fn.forward(out.logits, targets);
            let value = loss
                .clone()
                .inner()
                .to_data()
                .try_to_vec::<f32>()
                .ok()
                .and_then(|v| v.first().copied())
                .unwrap_or(f32::NAN);
            if !value.is_finite() {
                // The weights that gave this loss are already broken (NaN or inf): nothing worth
                // exporting is left, unlike a fine-tune, which keeps its last good head.
                anyhow::bail!(
                    "training diverged in epoch {}: the loss is {value}; nothing written (try a lower --lr)",
                    epoch + 1
                );
            }
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(lr, net, grads);
            losses.push(value);
            steps += 1;
            images_done += chunk.len();
            if !report(Progress::Step {
                epoch,
                loss: value,
                images_done,
                images_total,
            }) {
                stopped = Some(format!("cancelled in epoch {epoch}"));
                break 'epochs;
            }
        }
        let eval = net.valid();
        let val = accuracy(
            &eval,
            &recipe,
            &val_split.images,
            &val_split.labels,
            cfg.res,
            &backend.device,
        )?;
        let loss = losses.iter().sum::<f32>() / losses.len().max(1) as f32;
        epochs.push(EpochRecord::new(epoch, loss, val));
        report(Progress::Epoch {
            epoch,
            loss,
            val_top1: val,
        });
    }
    let net = net.valid();
    // The last step's update is checked by no later loss.
    if let Some((key, _, _)) = net
        .state_dict()
        .iter()
        .find(|(_, _, v)| v.iter().any(|x| !x.is_finite()))
    {
        anyhow::bail!(
            "training diverged: {key} holds NaN or inf after the last step; nothing written (try a lower --lr)"
        );
    }
    let val_top1 = accuracy(
        &net,
        &recipe,
        &val_split.images,
        &val_split.labels,
        cfg.res,
        &backend.device,
    )?;
    let summary = Summary {
        arch: cfg.arch,
        classes: classes.len(),
        config: SummaryConfig {
            augmentation: "RandomResizedCrop(0.08-1, 3/4-4/3) + flip",
            batch,
            blocks,
            epochs: cfg.epochs,
            lr: cfg.lr,
            momentum: 0.9,
            schedule: Schedule::Cosine,
            seed: cfg.seed,
            stem_kernel: stem,
            weight_decay: cfg.weight_decay,
            widths,
        },
        data: cfg.data.clone(),
        device: backend.into(),
        epochs,
        out: None,
        seconds: started.elapsed().as_secs_f64(),
        steps,
        stopped,
        train_images: n,
        train_res: cfg.res,
        unreadable,
        val_images: val_split.images.len(),
        val_top1,
    };
    Ok(Trained { net, classes, summary })
}

/// Writes every tensor (torchvision keys, f32; `num_batches_tracked` int64) to `out` with the
/// class names and the summary (with `out` set) in the metadata, and the summary to `out.json`;
/// both atomically. Returns the summary as written.
pub fn export(trained: &Trained, arch: Arch, out: &Path) -> anyhow::Result<Summary> {
    let summary = Summary {
        out: Some(path_text(out)),
        ..trained.summary.clone()
    };
    let tensors = trained.net.state_dict();
    // torchvision's BatchNorm has a step counter; PyTorch's strict loading wants it.
    let counters: Vec<String> = tensors
        .iter()
        .filter_map(|(k, ..)| {
            k.strip_suffix(".running_mean")
                .map(|p| format!("{p}.num_batches_tracked"))
        })
        .collect();
    let step_bytes = (summary.steps as i64).to_le_bytes();
    let mut views: Vec<tensorfile::Tensor<'_>> = tensors
        .iter()
        .map(|(k, shape, v)| tensorfile::Tensor::f32(k, shape, v))
        .collect();
    views.extend(counters.iter().map(|k| tensorfile::Tensor {
        name: k,
        dtype: Dtype::I64,
        shape: &[],
        bytes: &step_bytes,
    }));
    views.sort_by(|a, b| a.name.cmp(b.name));
    let metadata = export_model::metadata(arch.name(), Some(trained.classes.as_slice()), &summary)?;
    export_model::write_with_sidecar(out, &tensorfile::to_bytes(&views, &metadata)?, &summary)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeded_init_is_torchvisions() {
        let (blocks, widths, stem) = Arch::ResnetTiny.layout();
        let header = ResNet::basic_header(blocks, widths, stem, 10);
        let device = burn::tensor::Device::flex();
        let state = seeded_init("resnet-tiny", &header, 7, &device).unwrap().state_dict();
        let get = |key: &str| {
            state
                .iter()
                .find(|(k, _, _)| k == key)
                .map(|(_, _, v)| v.clone())
                .unwrap()
        };
        // 64·64·9 draws: the sample std is within 2 % of Kaiming's fan-out std.
        let w = get("layer4.1.conv2.weight");
        let mean = w.iter().map(|&x| f64::from(x)).sum::<f64>() / w.len() as f64;
        let std = (w.iter().map(|&x| (f64::from(x) - mean).powi(2)).sum::<f64>() / w.len() as f64).sqrt();
        let kaiming = (2.0f64 / (64.0 * 9.0)).sqrt();
        assert!((std / kaiming - 1.0).abs() < 0.02, "std {std} vs {kaiming}");
        assert!(mean.abs() < 0.02 * kaiming, "mean {mean}");
        let fc = get("fc.weight");
        let bound = 1.0 / 64f32.sqrt();
        assert!(fc.iter().all(|x| x.abs() <= bound));
        assert!(fc.iter().any(|x| x.abs() > 0.9 * bound), "spread over ±1/√64");
        assert!(get("layer1.0.bn1.weight").iter().all(|&x| x == 1.0));
        assert!(get("layer1.0.bn1.bias").iter().all(|&x| x == 0.0));
        assert!(get("bn1.running_var").iter().all(|&x| x == 1.0));
        assert!(get("bn1.running_mean").iter().all(|&x| x == 0.0));
        let again = seeded_init("resnet-tiny", &header, 7, &device).unwrap().state_dict();
        assert_eq!(state, again, "the same seed, the same weights");
    }
}
