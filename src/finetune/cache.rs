//! The trunk-output cache of a test-augmentation fine-tune: batches stay in memory up to a cap,
//! the rest go to an anonymous temporary file (deleted when the cache drops) and are read back
//! each epoch.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};

use burn::tensor::{Device, Tensor, TensorData};

use crate::model::head::TrunkOut;
use crate::model::values;

enum Entry {
    Memory(Box<TrunkOut>),
    /// Byte offset in the spill file, shapes of `pre_bn` and the residual.
    Spilled {
        offset: u64,
        pre_bn: [usize; 4],
        residual: Option<[usize; 4]>,
    },
}

/// Trunk outputs per batch, in memory up to `cap_bytes`, spilled beyond.
pub struct TrunkCache {
    entries: Vec<Entry>,
    in_memory: usize,
    cap_bytes: usize,
    spill: Option<File>,
    spill_len: u64,
}

impl TrunkCache {
    /// An empty cache keeping at most `cap_bytes` in memory.
    #[must_use]
    pub fn new(cap_bytes: usize) -> Self {
        Self {
            entries: Vec::new(),
            in_memory: 0,
            cap_bytes,
            spill: None,
            spill_len: 0,
        }
    }

    /// Adds a batch's trunk output.
    pub fn push(&mut self, t: TrunkOut) -> std::io::Result<()> {
        let bytes = 4
            * (t.pre_bn.dims().iter().product::<usize>()
                + t.residual.as_ref().map_or(0, |r| r.dims().iter().product::<usize>()));
        if self.in_memory + bytes <= self.cap_bytes {
            self.in_memory += bytes;
            self.entries.push(Entry::Memory(Box::new(t)));
            return Ok(());
        }
        let file = match &mut self.spill {
            Some(f) => f,
            none => none.insert(tempfile::tempfile()?),
        };
        let offset = self.spill_len;
        file.seek(SeekFrom::Start(offset))?;
        let mut write = |t: &Tensor<4>| file.write_all(bytemuck::cast_slice(&values(t)));
        write(&t.pre_bn)?;
        if let Some(r) = &t.residual {
            write(r)?;
        }
        self.spill_len += bytes as u64;
        self.entries.push(Entry::Spilled {
            offset,
            pre_bn: t.pre_bn.dims(),
            residual: t.residual.as_ref().map(Tensor::dims),
        });
        Ok(())
    }

    /// Number of batches.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No batches.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Batches spilled to disk.
    #[must_use]
    pub fn spilled(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| matches!(e, Entry::Spilled { .. }))
            .count()
    }

    /// Batch `i`.
    pub fn get(&mut self, i: usize, device: &Device) -> std::io::Result<TrunkOut> {
        match &self.entries[i] {
            Entry::Memory(t) => Ok(TrunkOut::clone(t)),
            &Entry::Spilled {
                offset,
                pre_bn,
                residual,
            } => {
                let file = self
                    .spill
                    .as_mut()
                    .ok_or_else(|| std::io::Error::other("spill file missing"))?;
                file.seek(SeekFrom::Start(offset))?;
                let mut read = |shape: [usize; 4]| -> std::io::Result<Tensor<4>> {
                    let mut bytes = vec![0u8; 4 * shape.iter().product::<usize>()];
                    file.read_exact(&mut bytes)?;
                    let values: Vec<f32> = bytes
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect();
                    Ok(Tensor::from_data(TensorData::new(values, shape), device))
                };
                let pre_bn = read(pre_bn)?;
                let residual = residual.map(&mut read).transpose()?;
                Ok(TrunkOut { pre_bn, residual })
            }
        }
    }
}
