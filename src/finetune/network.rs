//! A transfer that trains more than the head (`fixres train --from --trainable last-stage|all`):
//! the network with its new classifier trains end to end through Burn's autodiff, as PyTorch
//! would fine-tune it (`model.train()`, the frozen part in eval mode with no gradients;
//! `torch.optim.SGD`, momentum 0.9, weight decay 1e-4; mean cross-entropy), on the families
//! built of Burn modules (`model::end_to_end`). Same data, schedule, events and report as the
//! head's run (`run::finetune`); no trunk cache, since the trunk changes.

use std::path::Path;
use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Int, Tensor, TensorData};
use rayon::prelude::*;

use super::Sgd;
use super::run::{
    Augmentation, Config, CurvePoint, Outcome, Prepared, Progress, Summary, SummaryConfig, Trained, after_cancel,
    curve_resolutions,
};
use crate::backend::Backend;
use crate::data::{RandomResizedCrop, RgbImage, SeededRng, TrainTransform};
use crate::model::end_to_end::{EndToEnd, FAMILIES};
use crate::model::weights::WeightFile;
use crate::model::{Model, input_batch};
use crate::training::{EpochRecord, Part, Transfer, accuracy, classifier_rng, crop_seed, linear_init};

const MOMENTUM: f64 = 0.9;
const WEIGHT_DECAY: f64 = 1e-4;

/// Trains `part` of `model` (read from `weights`) with a new classifier for `data`'s classes;
/// `started` is when the run began (decoding included).
#[allow(clippy::too_many_arguments)]
pub(super) fn train(
    model: &Model,
    weights: &Path,
    backend: &Backend,
    cfg: &Config,
    part: Part,
    data: Prepared,
    started: Instant,
    report: &mut dyn FnMut(Progress) -> bool,
) -> anyhow::Result<Outcome> {
    let Prepared {
        train_split,
        val_split,
        classes,
        unreadable,
        ..
    } = data;
    let device = &backend.device;
    let ad = device.clone().autodiff();
    let file = WeightFile::open(weights)?;
    let net = EndToEnd::from_file(&file, &ad)?.ok_or_else(|| {
        anyhow::anyhow!(
            "{}: --trainable {} trains {FAMILIES} end to end; this is {} (--trainable head trains any family)",
            weights.display(),
            part.name(),
            model.arch
        )
    })?;
    // The same draw as the head's new classifier (`Head::with_new_classifier`) for the same seed.
    let n_classes = classes.len();
    let (weight, bias) = linear_init(&mut classifier_rng(cfg.seed), n_classes, net.features());
    let mut net = net.with_classifier(weight, bias, n_classes, &ad);
    if part == Part::LastStage {
        net = net.freeze_all_but_last_stage();
    }
    let recipe = cfg.recipe;
    let batch = cfg.batch.max(2);
    let n = train_split.images.len();
    anyhow::ensure!(
        n >= 2,
        "{}: {n} training image: training the network's BatchNorms needs batches of at least 2",
        cfg.data.display()
    );
    // Validation top-1 of a copy on the plain device (evaluation mode: Burn's BatchNorms train on
    // an autodiff device).
    let top1 = |plain: &EndToEnd, res: usize| {
        accuracy(
            plain.as_architecture(),
            &recipe,
            &val_split.images,
            &val_split.labels,
            res,
            device,
        )
    };
    // The network the run starts from, for the before/after curve: its own copy, since Burn's
    // clones share the running statistics that training changes.
    let initial = net.deep_copy(device)?;
    report(Progress::Stage("validation before training".into()));
    let before = top1(&initial, cfg.res)?;
    let lr = cfg.lr.unwrap_or_else(|| Sgd::default_lr(Some(part), batch));
    let mut optim = SgdConfig::new()
        .with_momentum(Some(MomentumConfig {
            momentum: MOMENTUM,
            dampening: 0.0,
            nesterov: false,
        }))
        .with_weight_decay(Some(WeightDecayConfig {
            penalty: WEIGHT_DECAY as f32,
        }))
        .init();
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let test_t = recipe.test_transform(cfg.res);
    let train_t = TrainTransform {
        res: cfg.res,
        crop: RandomResizedCrop::default(),
        interpolation: recipe.interpolation,
        hflip: true,
    };
    let training_started = Instant::now();
    let images_total = cfg.epochs * n;
    let mut images_done = 0usize;
    let mut epochs = Vec::new();
    let mut stopped = None;
    let mut cancelled = false;
    let mut fell_back = false;
    // The weights after the last finished epoch (the start, at first), kept apart from the
    // training network: what a non-finite loss falls back to. And the best by validation top-1,
    // what a cancel keeps. Copies on the plain device never train, so plain clones of them may
    // share their tensors.
    let mut good = initial.clone();
    let mut best = (before, initial.clone());
    'epochs: for epoch in 0..cfg.epochs {
        let epoch_lr = cfg.schedule.lr(lr, epoch, cfg.epochs);
        let seed = crop_seed(cfg.seed, epoch);
        let mut order: Vec<usize> = (0..n).collect();
        SeededRng::for_item(cfg.seed, epoch as u64).shuffle(&mut order);
        let mut losses = Vec::new();
        // A last batch of one image has no batch statistics: dropped, as PyTorch's `drop_last`.
        for chunk in order.chunks(batch).filter(|c| c.len() > 1) {
            let inputs: Vec<RgbImage> = chunk
                .par_iter()
                .map(|&i| {
                    let img = &train_split.images[i];
                    match cfg.da {
                        Augmentation::Test => test_t.apply(img),
                        Augmentation::Train => train_t.apply(img, &mut SeededRng::for_item(seed, i as u64)).image,
                    }
                })
                .collect();
            let targets: Vec<i64> = chunk.iter().map(|&i| train_split.labels[i] as i64).collect();
            let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [chunk.len()]), &ad);
            let out = net.forward(input_batch(&inputs, recipe.mean, recipe.std, &ad));
            let loss = loss_fn.forward(out.logits, targets);
            let value = crate::model::values(&loss.clone().inner())
                .first()
                .copied()
                .unwrap_or(f32::NAN);
            if !value.is_finite() {
                stopped = Some(format!(
                    "epoch {epoch}: loss {value}; kept the last good weights (those of {})",
                    if epoch == 0 {
                        "the start".to_owned()
                    } else {
                        format!("epoch {}", epoch - 1)
                    }
                ));
                fell_back = true;
                break 'epochs;
            }
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(epoch_lr, net, grads);
            losses.push(value);
            images_done += chunk.len();
            if !report(Progress::step(
                epoch,
                value,
                images_done,
                images_total,
                training_started,
            )) {
                cancelled = true;
                break 'epochs;
            }
        }
        // The last step's update is checked by no later loss.
        let now = net.deep_copy(device)?;
        if let Some((key, ..)) = now
            .state_dict()
            .into_iter()
            .find(|(_, _, v)| v.iter().any(|x| !x.is_finite()))
        {
            stopped = Some(format!(
                "epoch {epoch}: {key} holds NaN or inf; kept the last good weights (those of {})",
                if epoch == 0 {
                    "the start".to_owned()
                } else {
                    format!("epoch {}", epoch - 1)
                }
            ));
            fell_back = true;
            break;
        }
        let val = top1(&now, cfg.res)?;
        let loss = losses.iter().sum::<f32>() / losses.len().max(1) as f32;
        epochs.push(EpochRecord::new(epoch, loss, val));
        if val > best.0 {
            best = (val, now.clone());
        }
        good = now;
        if !report(Progress::Epoch {
            epoch,
            loss,
            val_top1: val,
        }) {
            cancelled = true;
            break;
        }
    }
    let mut trained = if fell_back { good } else { net.deep_copy(device)? };
    if cancelled {
        let (keep_best, why) = after_cancel(best.0, top1(&trained, cfg.res)?);
        if keep_best {
            trained = best.1;
        }
        stopped = Some(why);
    }
    let train_seconds = training_started.elapsed().as_secs_f64();
    let after = top1(&trained, cfg.res)?;
    report(Progress::Stage("accuracy against test resolution".into()));
    let mut curve = Vec::new();
    for res in curve_resolutions(cfg, cancelled) {
        curve.push(CurvePoint {
            res,
            before: top1(&initial, res)?,
            after: top1(&trained, res)?,
        });
    }
    let summary = Summary {
        arch: model.arch.clone(),
        cache_seconds: None,
        cache_spilled_batches: 0,
        classes: n_classes,
        config: SummaryConfig {
            batch,
            crop_ratio: recipe.crop_ratio,
            da: cfg.da,
            epochs: cfg.epochs,
            lr,
            momentum: MOMENTUM,
            res: cfg.res,
            schedule: cfg.schedule,
            seed: cfg.seed,
            train_bn: true,
            train_classifier: true,
            weight_decay: WEIGHT_DECAY,
        },
        curve,
        data: cfg.data.clone(),
        device: backend.into(),
        epochs,
        out: None,
        seconds: started.elapsed().as_secs_f64(),
        stopped: stopped.clone(),
        train_images: n,
        train_seconds,
        transfer: Some(Transfer {
            classes,
            from: weights.to_owned(),
            trainable: part,
        }),
        trunk_cache: None,
        unreadable,
        val_images: val_split.images.len(),
        val_top1_after: after,
        val_top1_before: before,
        weights: weights.to_owned(),
    };
    Ok(Outcome {
        trained: Trained::Network(trained),
        summary,
        before,
        after,
        images: (n, val_split.images.len()),
        stopped,
    })
}
