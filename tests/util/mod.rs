//! Helpers shared by the integration tests, one module per kind: fixture and demo paths, running
//! the `fixres` binary, ImageFolder datasets, images, safetensors files, and the forward pass
//! against PyTorch's references.

pub mod cmd;
pub mod fixtures;
pub mod folders;
pub mod images;
pub mod parity;
pub mod tensors;
