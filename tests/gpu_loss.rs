//! A GPU lost in the middle of a sweep, on the device Burn and the resampler share (lavapipe in
//! CI, destroyed as a driver reset would lose it). Its own test binary: the loss is for the whole
//! process, so no other test may be using that device.

// Of the helpers in `tests/util/` only the paths, and only two of them: the rest are the main
// test binary's (`tests/tests.rs`).
#[allow(dead_code)]
#[path = "util/fixtures.rs"]
mod fixtures;

use fixres::backend::{Backend, BackendKind, DeviceChoice, Preprocess, choose, choose_with};
use fixres::data::{Check, DecodeLimits, ImageFolder};
use fixres::eval::Sweep;
use fixres::model::Model;

#[test]
fn a_gpu_lost_mid_sweep_fails_the_run_and_everything_after_runs_on_the_cpu() {
    // Burn on wgpu, brought up from the setup the resampler shares; sweeps resample on it as
    // they would on a hardware GPU (on lavapipe they would not by default).
    let backend = choose_with(DeviceChoice::Gpu, Preprocess::OnGpu)
        .expect("a wgpu adapter (lavapipe: apt-get install mesa-vulkan-drivers)");
    let inputs = backend.inputs();
    assert!(
        matches!(inputs, fixres::inputs::Inputs::IntoBurn(_)),
        "{}",
        inputs.describe()
    );
    let gpu = inputs.gpu().expect("Burn's device, shared").clone();
    let weights = fixtures::fashion_model();
    let model = Model::load(&weights, &backend.device).unwrap();
    let folder = ImageFolder::scan(&fixtures::fashion_val(), Check::List, DecodeLimits::default()).unwrap();
    let files: Vec<_> = folder.samples.iter().take(48).map(|s| s.path.clone()).collect();
    let run = |model: &Model, backend: &Backend, lose: bool| {
        let mut rows = 0;
        let mut batches = 0;
        let result = Sweep::new(model, backend, &files, &[20, 28], 4).run(
            |out| rows += out.logits.len(),
            |_, _| {
                batches += 1;
                if lose && batches == 1 {
                    // Nothing is told: the next GPU call must find out by itself.
                    gpu.simulate_loss();
                }
                true
            },
        );
        result.map(|_| (rows, batches))
    };

    let err = run(&model, &backend, true).expect_err("a run whose GPU was lost fails");
    eprintln!("the run failed with: {err:#}");
    assert!(format!("{err:#}").contains("GPU device was lost"), "{err:#}");
    assert!(gpu.is_lost() && backend.gpu_lost());
    assert!(backend.inputs().gpu().is_none(), "a lost GPU is not handed out again");
    let img = fixres::data::decode_file(&files[0], DecodeLimits::default()).unwrap();
    assert!(matches!(gpu.upload(&img), Err(fixres::gpu::GpuError::Lost(_))));

    // The app's way back: the model is reopened where `choose` now puts it, the CPU.
    let cpu = choose(DeviceChoice::Auto).unwrap();
    assert_eq!(cpu.kind, BackendKind::Flex);
    assert!(cpu.adapter.contains("lost"), "{}", cpu.adapter);
    assert!(
        choose(DeviceChoice::Gpu).is_err(),
        "--device gpu is refused once the GPU is lost"
    );
    let model = Model::load(&weights, &cpu.device).unwrap();
    let (rows, batches) = run(&model, &cpu, false).unwrap();
    assert_eq!(
        (rows, batches),
        (2 * files.len(), files.len() / 4),
        "every image scored, on the CPU"
    );
}
