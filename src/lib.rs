//! FixRes Explorer: the train/test resolution discrepancy of image classifiers (Touvron et al.,
//! "Fixing the train-test resolution discrepancy", NeurIPS 2019), as a library, a CLI and a GUI.

pub mod adapt;
pub mod app;
pub mod backend;
pub mod cli;
pub mod data;
pub mod eval;
pub mod eval_report;
pub mod finetune;
pub mod frechet;
pub mod fsutil;
pub mod gpu;
pub mod grid;
pub mod inputs;

pub mod jobs;
pub mod merge;
pub mod model;
pub mod recalibrate;
pub mod shard;
pub mod size;
pub mod stats;
pub mod tensorfile;
pub mod train;
pub mod training;
