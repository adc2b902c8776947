//! The integration tests, one binary (as ripgrep's): a module per area in `tests/it/`, helpers
//! in `tests/util/`. Run one area with `cargo test --release --test tests gui::`.
//!
//! `tests/gpu_loss.rs` is a binary of its own: it loses the GPU Burn shares with the resampler,
//! and that loss is for the whole process.

mod util;

mod it {
    mod bad_input;
    mod cli;
    mod datasets;
    mod estimates;
    mod fidelity;
    mod finetune;
    mod gpu;
    mod gui;
    mod model_cli;
    mod model_parity;
    mod remedies;
    mod sampler;
    mod shards;
    mod train_grid;
    mod transfer;
    mod weights;
    mod zoo;
}
