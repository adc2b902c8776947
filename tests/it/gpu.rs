//! The WGSL resampler (`shaders/resample.wgsl`) against the CPU's PIL-exact path, on whatever
//! wgpu adapter the machine has (Mesa's lavapipe in CI): the uint8 test crops and the normalised
//! network inputs, for real photos, several resolutions, bilinear and bicubic, one upload each;
//! the inputs written straight into Burn's tensors on the device Burn shares; images uploaded in
//! bands. A lost device: `tests/gpu_loss.rs`, a binary of its own.

use burn::tensor::{Device, DeviceKind};
use fixres::data::transforms::{IMAGENET_MEAN, IMAGENET_STD, to_tensor_normalized};
use fixres::data::{CropMode, Interpolation, TestTransform};
use fixres::gpu::{Gpu, GpuError};
use fixres::model::{Model, input_batch};

use crate::util::cmd;
use crate::util::fixtures::{fashion_model, fashion_val, photo};
use crate::util::images::{diff, load};

#[test]
fn gpu_test_crops_match_the_cpu_path() {
    let gpu = Gpu::new().expect("a wgpu adapter (lavapipe: apt-get install mesa-vulkan-drivers)");
    eprintln!("adapter: {}", gpu.adapter);
    let (mut pixels, mut within_one, mut exact, mut max_input_diff) = (0usize, 0usize, 0usize, 0f32);
    let mut cases = 0;
    for name in [
        "grace_hopper.jpg",
        "chelsea.png",
        "hubble_tall.jpg",
        "rocket.jpg",
        "camera_grey.jpg",
    ] {
        let img = load(&photo(name));
        let uploaded = gpu.upload(&img).unwrap();
        for interpolation in [Interpolation::Bilinear, Interpolation::Bicubic] {
            for res in [64, 128, 224, 288, 320] {
                let t = TestTransform::center(res, 0.875, interpolation);
                let (crop, input) = gpu
                    .test_input(&uploaded, &t, IMAGENET_MEAN, IMAGENET_STD)
                    .unwrap()
                    .expect("with crop ratio 0.875 every crop is inside the resized image");
                cases += 1;
                let cpu = t.apply(&img);
                let d = diff(&crop, &cpu);
                let n = cpu.as_raw().len();
                pixels += n;
                within_one += (d.within_one * n as f64).round() as usize;
                exact += (d.exact * n as f64).round() as usize;
                let cpu_input = to_tensor_normalized(&cpu, IMAGENET_MEAN, IMAGENET_STD);
                assert_eq!(input.len(), cpu_input.len());
                for (a, b) in input.iter().zip(&cpu_input) {
                    max_input_diff = max_input_diff.max((a - b).abs());
                }
            }
        }
    }
    assert_eq!(cases, 50);
    let share = within_one as f64 / pixels as f64;
    eprintln!(
        "{cases} crops: {:.4} % of channel values exact, {:.4} % within 1; normalised inputs within {max_input_diff:e}",
        100.0 * exact as f64 / pixels as f64,
        100.0 * share
    );
    assert!(share >= 0.999, "only {:.4} % within 1 grey level", 100.0 * share);
    // The same integer arithmetic in the same order: the bytes are the CPU's, all of them.
    assert_eq!(exact, pixels, "the GPU crops differ from the CPU's");
    assert!(max_input_diff == 0.0, "normalised inputs differ by {max_input_diff}");
}

/// `fixres eval` with its sweep resampled on the GPU (forced on lavapipe) scores exactly as on
/// the CPU: each image decoded once, uploaded once, resampled per resolution.
#[test]
fn an_eval_sweep_on_the_gpu_path_scores_as_the_cpu_path() {
    let (weights, data) = (fashion_model(), fashion_val());
    let run = |gpu: bool| {
        let out = cmd::ok(
            cmd::command(&[
                "eval",
                "--weights",
                weights.to_str().unwrap(),
                "--data",
                data.to_str().unwrap(),
                "--res",
                "16,20,28,36",
                "--device",
                "cpu",
                "--json",
            ])
            .env("FIXRES_GPU_PREPROCESS", if gpu { "1" } else { "0" }),
        );
        let stderr = &out.stderr;
        // Else the "GPU" run would quietly be a second CPU run, in whole or in part.
        assert!(!stderr.contains("GPU preprocessing unavailable"), "{stderr}");
        assert!(!stderr.contains("on the CPU"), "{stderr}");
        // What the sweep measured of its own speed differs run to run; the rest must not.
        let mut results = out.json()["results"].clone();
        for r in results.as_array_mut().into_iter().flatten() {
            let r = r.as_object_mut().expect("a result per resolution");
            for timed in ["images_per_s", "ms_per_image", "pareto"] {
                assert!(r.remove(timed).is_some(), "{timed}");
            }
        }
        results
    };
    let (cpu, gpu) = (run(false), run(true));
    assert_eq!(cpu.as_array().map(Vec::len), Some(4));
    assert_eq!(gpu, cpu, "same top-1, top-5 and activation statistics");
}

/// `histogram.wgsl` against `eval::StatsAccumulator` (50 bins over [0, max]) on activations
/// shaped like real pooled ones (a spike of zeros, a long tail).
#[test]
fn gpu_histogram_matches_the_cpu_statistics() {
    let gpu = Gpu::new().expect("a wgpu adapter");
    let mut rng = fixres::data::SeededRng::new(7);
    let values: Vec<f32> = (0..100_003)
        .map(|_| {
            let u = rng.next_f64();
            if u < 0.4 {
                0.0
            } else {
                (-(1.0 - rng.next_f64()).ln() * 0.3) as f32
            }
        })
        .collect();
    let mut acc = fixres::eval::StatsAccumulator::default();
    acc.extend(&values);
    let cpu = acc.finish();
    let top = cpu.max as f32;
    let g = gpu.histogram(&values, 50, top).unwrap();
    assert!(gpu.histogram(&[], 50, 1.0).is_err() && gpu.histogram(&values, 0, top).is_err());
    assert_eq!(f64::from(g.min), cpu.min);
    assert_eq!(f64::from(g.max), cpu.max);
    assert!(
        (g.mean - cpu.mean).abs() <= 1e-5 * cpu.mean,
        "mean {} vs {}",
        g.mean,
        cpu.mean
    );
    assert_eq!(g.counts.iter().sum::<u64>(), values.len() as u64);
    // f32 on the GPU, f64 on the CPU: a value on a bin edge may land one bin over.
    let moved: u64 = g
        .counts
        .iter()
        .zip(&cpu.histogram.counts)
        .map(|(a, b)| a.abs_diff(*b))
        .sum::<u64>()
        / 2;
    assert!(moved <= values.len() as u64 / 1000, "{moved} values in another bin");
}

const PHOTOS: [&str; 5] = [
    "grace_hopper.jpg",
    "chelsea.png",
    "hubble_tall.jpg",
    "rocket.jpg",
    "camera_grey.jpg",
];

/// Burn on wgpu (lavapipe here), brought up from the setup the resampler shares: the batch input
/// the shader writes into Burn's own buffer is the CPU path's input to the last bit, and a model
/// runs on it as on an input uploaded from the CPU. Slots the GPU does not do (no upload; a crop
/// that needs padding) are filled from the CPU in the same tensor.
#[test]
fn gpu_inputs_written_into_burns_buffer_match_the_cpu_path() {
    let device = Device::wgpu(DeviceKind::Cpu);
    let gpu = fixres::gpu::share_with_burn(&device).expect("Burn on lavapipe, shared");
    assert!(gpu.shares_burn_device(&device));
    assert!(!gpu.shares_burn_device(&Device::flex()));
    let images: Vec<_> = PHOTOS.iter().map(|p| load(&photo(p))).collect();
    let uploads: Vec<_> = images.iter().map(|img| gpu.upload(img).unwrap()).collect();
    // The third image goes without an upload: its slot is the CPU's.
    let batch: Vec<_> = images
        .iter()
        .zip(&uploads)
        .enumerate()
        .map(|(i, (img, up))| (img, (i != 2).then_some(up)))
        .collect();
    for (res, crop_ratio, interpolation, crop_mode) in [
        (96, 0.875, Interpolation::Bilinear, CropMode::Center),
        (160, 0.875, Interpolation::Bicubic, CropMode::Center),
        // Both sides to 182, then the crop: on the GPU too.
        (160, 0.875, Interpolation::Bicubic, CropMode::Squash),
        // Resize to 133 then crop 160: every crop is padded, all slots from the CPU.
        (160, 1.2, Interpolation::Bilinear, CropMode::Center),
    ] {
        let t = TestTransform {
            crop_mode,
            ..TestTransform::center(res, crop_ratio, interpolation)
        };
        let written = gpu
            .batch_input(&batch, &t, IMAGENET_MEAN, IMAGENET_STD)
            .unwrap()
            .unwrap();
        assert_eq!(written.dims(), [5, 3, res, res]);
        // The GPU's slots are the GPU's (else this compares the CPU with itself).
        let on_gpu = gpu
            .test_input(&uploads[0], &t, IMAGENET_MEAN, IMAGENET_STD)
            .unwrap()
            .is_some();
        assert_eq!(on_gpu, crop_ratio < 1.0, "res {res}, ratio {crop_ratio}");
        let crops: Vec<_> = images.iter().map(|img| t.apply(img)).collect();
        let uploaded = input_batch(&crops, IMAGENET_MEAN, IMAGENET_STD, &device);
        let (a, b) = (
            written.to_data().try_to_vec::<f32>().unwrap(),
            uploaded.to_data().try_to_vec::<f32>().unwrap(),
        );
        assert!(
            a == b,
            "res {res}, ratio {crop_ratio}: the written input differs from the CPU's"
        );
    }
    // A batch over one storage buffer (the limit lowered here) is refused, for the caller to
    // build on the CPU (`inputs::IntoBurn` does).
    let t = TestTransform::center(96, 0.875, Interpolation::Bicubic);
    assert!(
        gpu.batch_input(&batch, &t, IMAGENET_MEAN, IMAGENET_STD)
            .unwrap()
            .is_some()
    );
    // (For the rest of this process: no other test of this binary shares Burn's wgpu device with
    // the resampler; `tests/gpu_loss.rs`, which does, runs in its own.)
    gpu.limit_buffers((5 * 3 * 96 * 96 * 4 - 4) as u64);
    assert!(
        gpu.batch_input(&batch, &t, IMAGENET_MEAN, IMAGENET_STD)
            .unwrap()
            .is_none()
    );
    // A real forward pass on the written tensor (the Fashion model: small, so quick on lavapipe).
    let model = Model::load(&fashion_model(), &device).unwrap();
    let t = TestTransform::center(28, 1.0, Interpolation::Bilinear);
    let (mean, std) = (model.recipe.mean, model.recipe.std);
    let written = gpu.batch_input(&batch, &t, mean, std).unwrap().unwrap();
    let crops: Vec<_> = images.iter().map(|img| t.apply(img)).collect();
    let from_cpu = model.net.forward(input_batch(&crops, mean, std, &device)).logits;
    let from_gpu = model.net.forward(written).logits;
    assert_eq!(
        from_gpu.to_data().try_to_vec::<f32>().unwrap(),
        from_cpu.to_data().try_to_vec::<f32>().unwrap()
    );
}

/// An image larger than one storage buffer is uploaded in bands of rows; the horizontal pass
/// runs per band and the crops are still the CPU's bytes (here bands of 64 KiB: ~30 rows).
#[test]
fn an_image_uploaded_in_bands_resamples_as_the_cpu_path() {
    let gpu = Gpu::new().expect("a wgpu adapter");
    for name in ["grace_hopper.jpg", "hubble_tall.jpg"] {
        let img = load(&photo(name));
        let banded = gpu.upload_in_bands(&img, 64 * 1024).unwrap();
        assert!(banded.bands() > 5, "{} bands", banded.bands());
        for (res, interpolation) in [
            (64, Interpolation::Bicubic),
            (224, Interpolation::Bilinear),
            (320, Interpolation::Bicubic),
        ] {
            let t = TestTransform::center(res, 0.875, interpolation);
            let (crop, input) = gpu
                .test_input(&banded, &t, IMAGENET_MEAN, IMAGENET_STD)
                .unwrap()
                .unwrap();
            let cpu = t.apply(&img);
            assert!(crop == cpu, "{name} at {res}: banded crop differs from the CPU's");
            assert!(input == to_tensor_normalized(&cpu, IMAGENET_MEAN, IMAGENET_STD));
        }
    }
    // Not one row fits: refused by name, for the caller to resample on the CPU.
    let img = load(&photo("rocket.jpg"));
    assert!(matches!(gpu.upload_in_bands(&img, 64), Err(GpuError::TooLarge { .. })));
    let t = TestTransform::center(64, 0.875, Interpolation::Bilinear);
    assert_eq!(fixres::gpu::sweep_crops(&gpu, &img, &[t]).unwrap(), vec![t.apply(&img)]);
}
