//! The WGSL resampler (`shaders/resample.wgsl`) against the CPU's PIL-exact path, on whatever
//! wgpu adapter the machine has (Mesa's lavapipe in CI): the uint8 test crops and the normalised
//! network inputs, for real photos, several resolutions, bilinear and bicubic, one upload each.

mod util;

use fixres::data::transforms::{IMAGENET_MEAN, IMAGENET_STD, to_tensor_normalized};
use fixres::data::{Interpolation, TestTransform};
use fixres::gpu::Gpu;

#[test]
fn gpu_test_crops_match_the_cpu_path() {
    let gpu = Gpu::new().expect("a wgpu adapter (lavapipe: apt-get install mesa-vulkan-drivers)");
    eprintln!("adapter: {}", gpu.adapter);
    let (mut pixels, mut within_one, mut exact, mut max_input_diff) = (0usize, 0usize, 0usize, 0f32);
    let mut cases = 0;
    for photo in [
        "grace_hopper.jpg",
        "chelsea.png",
        "hubble_tall.jpg",
        "rocket.jpg",
        "camera_grey.jpg",
    ] {
        let img = util::load(&util::photo(photo));
        let uploaded = gpu.upload(&img).unwrap();
        for interpolation in [Interpolation::Bilinear, Interpolation::Bicubic] {
            for res in [64, 128, 224, 288, 320] {
                let t = TestTransform {
                    res,
                    crop_ratio: 0.875,
                    interpolation,
                };
                let Some((crop, input)) = gpu.test_input(&uploaded, &t, IMAGENET_MEAN, IMAGENET_STD).unwrap() else {
                    continue; // a crop past the resized image: the CPU path pads it
                };
                cases += 1;
                let cpu = t.apply(&img);
                let d = util::diff(&crop, &cpu);
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
    assert!(cases >= 40, "{cases} cases ran");
    let share = within_one as f64 / pixels as f64;
    eprintln!(
        "{cases} crops: {:.4} % of channel values exact, {:.4} % within 1; normalised inputs within {max_input_diff:e}",
        100.0 * exact as f64 / pixels as f64,
        100.0 * share
    );
    assert!(share >= 0.999, "only {:.4} % within 1 grey level", 100.0 * share);
    // The same integer arithmetic in the same order: the bytes are the CPU's, all of them.
    assert_eq!(exact, pixels, "the GPU crops differ from the CPU's");
    assert!(max_input_diff < 1e-5, "normalised inputs differ by {max_input_diff}");
}

/// `fixres eval` with its sweep resampled on the GPU (forced on lavapipe) scores exactly as on
/// the CPU: each image decoded once, uploaded once, resampled per resolution.
#[test]
fn an_eval_sweep_on_the_gpu_path_scores_as_the_cpu_path() {
    let weights = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets/demo/fashion/grid/models/resnet-tiny_k20.safetensors");
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/fashion/val");
    let run = |gpu: bool| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_fixres"))
            .args([
                "eval",
                "--weights",
                weights.to_str().unwrap(),
                "--data",
                data.to_str().unwrap(),
            ])
            .args(["--res", "16,20,28,36", "--device", "cpu", "--json"])
            .env("FIXRES_GPU_PREPROCESS", if gpu { "1" } else { "0" })
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        // Else the "GPU" run would quietly be a second CPU run.
        assert!(!stderr.contains("GPU preprocessing unavailable"), "{stderr}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["results"].clone()
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
