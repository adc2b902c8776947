//! A weights file read as the named tensors an architecture asks for, with PyTorch's strict
//! `load_state_dict` rules: every tensor the builder takes must be there with the shape the
//! architecture gives it, and `finish` refuses any key left untaken (BatchNorm's
//! `num_batches_tracked` aside). The families built from tensors (rather than Burn modules)
//! keep the source library's key names as they are, so loading and export need no renames.

use std::collections::BTreeSet;

use burn::tensor::{Device, Tensor, TensorData};

use super::weights::{WeightFile, WeightsError, expect_shape};

/// The tensors of one file, taken one key at a time by an architecture's builder.
pub struct Params<'a> {
    file: &'a WeightFile,
    /// The architecture being built, for messages ("torchvision efficientnet").
    pub arch: String,
    device: Device,
    taken: BTreeSet<String>,
}

impl<'a> Params<'a> {
    /// The tensors of `file`, to build `arch` on `device`.
    #[must_use]
    pub fn new(file: &'a WeightFile, arch: &str, device: &Device) -> Self {
        Self {
            file,
            arch: arch.to_owned(),
            device: device.clone(),
            taken: BTreeSet::new(),
        }
    }

    /// Whether the file has `key`.
    #[must_use]
    pub fn has(&self, key: &str) -> bool {
        self.file.header.contains_key(key)
    }

    /// The shape of `key`, or the missing-key error; refused unless of rank `rank`.
    pub fn shape(&self, key: &str, rank: usize) -> Result<Vec<usize>, WeightsError> {
        let info = self.file.header.get(key).ok_or_else(|| WeightsError::MissingKeys {
            path: self.file.path.clone(),
            arch: self.arch.clone(),
            keys: vec![key.to_owned()],
        })?;
        if info.shape.len() != rank || info.shape.contains(&0) {
            return Err(self.error(format!(
                "{key}: expected a rank-{rank} tensor with no empty dimension, found shape {:?}",
                info.shape
            )));
        }
        Ok(info.shape.clone())
    }

    /// A refusal naming the file.
    #[must_use]
    pub fn error(&self, detail: String) -> WeightsError {
        WeightsError::Mismatch {
            path: self.file.path.clone(),
            detail,
        }
    }

    /// Refuses `actual` for `key` unless it is `expected`.
    pub fn expect(&self, key: &str, actual: &[usize], expected: &[usize]) -> Result<(), WeightsError> {
        expect_shape(&self.file.path, key, actual, expected, &self.arch)
    }

    /// The values of `key`, whose shape must be `expected`.
    pub fn values(&mut self, key: &str, expected: &[usize]) -> Result<Vec<f32>, WeightsError> {
        let shape = self.shape(key, expected.len())?;
        self.expect(key, &shape, expected)?;
        let values = self
            .file
            .f32_values(key)?
            .ok_or_else(|| self.error(format!("{key}: not a float tensor")))?;
        self.taken.insert(key.to_owned());
        Ok(values)
    }

    /// The tensor `key`, whose shape must be `expected`.
    pub fn tensor<const D: usize>(&mut self, key: &str, expected: [usize; D]) -> Result<Tensor<D>, WeightsError> {
        let values = self.values(key, &expected)?;
        Ok(self.from_values(values, expected))
    }

    /// `values` of `shape` as a tensor on the builder's device.
    #[must_use]
    pub fn from_values<const D: usize>(&self, values: Vec<f32>, shape: [usize; D]) -> Tensor<D> {
        Tensor::from_data(TensorData::new(values, shape), &self.device)
    }

    /// Marks BatchNorm `prefix`'s `num_batches_tracked` as taken (PyTorch's strict load accepts
    /// it present or absent); anywhere else the key is unexpected.
    pub fn take_batch_count(&mut self, prefix: &str) {
        self.taken.insert(format!("{prefix}.num_batches_tracked"));
    }

    /// Refuses the file if it holds keys the architecture took no place for.
    pub fn finish(self) -> Result<(), WeightsError> {
        let unexpected: Vec<String> = self
            .file
            .header
            .keys()
            .filter(|k| !self.taken.contains(*k))
            .cloned()
            .collect();
        if unexpected.is_empty() {
            Ok(())
        } else {
            Err(WeightsError::UnexpectedKeys {
                path: self.file.path.clone(),
                arch: self.arch,
                keys: unexpected,
            })
        }
    }
}
