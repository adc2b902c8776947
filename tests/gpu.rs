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
    for photo in ["grace_hopper.jpg", "chelsea.png", "hubble_tall.jpg", "rocket.jpg", "camera_grey.jpg"] {
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
                if d.exact == 1.0 {
                    for (a, b) in input.iter().zip(&cpu_input) {
                        max_input_diff = max_input_diff.max((a - b).abs());
                    }
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
    assert!(max_input_diff < 1e-5, "normalised inputs differ by {max_input_diff}");
}
