//! The networks that train end to end (`fixres train --from --trainable last-stage|all`): the
//! families built of Burn's `nn` modules, whose every parameter is a `Param` that Burn's
//! autodiff and optimizers see, and whose BatchNorms train as PyTorch's
//! (`burn_modules::batch_norm`). The other families are built of tensors with their inference
//! BatchNorms folded into the convolutions (`layers`), so they train their head only.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::burn_modules::{Named, linear_from};
use super::efficientnet::EfficientNetLite;
use super::resnet::ResNet;
use super::weights::{WeightFile, WeightsError};
use super::{Architecture, Forward};
use crate::tensorfile;

/// A network Burn trains end to end.
// A few per run, each holding its tensors by handle: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum EndToEnd {
    /// A torchvision ResNet.
    ResNet(ResNet),
    /// An EfficientNet-Lite.
    Lite(EfficientNetLite),
}

/// What the message for a family that cannot train end to end lists.
pub const FAMILIES: &str = "torchvision ResNets and EfficientNet-Lite";

impl EndToEnd {
    /// The network in `file`, on `device`, if its family trains end to end (`None` otherwise).
    pub fn from_file(file: &WeightFile, device: &Device) -> Result<Option<Self>, WeightsError> {
        if ResNet::recognises(file) {
            Ok(Some(Self::ResNet(ResNet::from_file(file, device)?.0)))
        } else if EfficientNetLite::recognises(file) {
            Ok(Some(Self::Lite(EfficientNetLite::from_file(file, device)?.0)))
        } else {
            Ok(None)
        }
    }

    /// A copy of `self` that shares nothing with it, on `device`: Burn's clones share their
    /// BatchNorms' running statistics, which keep changing as the original trains. Made through
    /// the state dict, as PyTorch's `copy.deepcopy` of a module would be.
    pub fn deep_copy(&self, device: &Device) -> Result<Self, WeightsError> {
        Self::from_state(&self.state_dict(), device)
    }

    /// The network `state` (a `state_dict` of this family) describes, on `device`.
    pub fn from_state(state: &[Named], device: &Device) -> Result<Self, WeightsError> {
        let tensors: Vec<tensorfile::Tensor<'_>> = state
            .iter()
            .map(|(key, shape, v)| tensorfile::Tensor::f32(key, shape, v))
            .collect();
        let path = Path::new("(a network's state dict)");
        let bytes = tensorfile::to_bytes(&tensors, &BTreeMap::new()).map_err(|e| WeightsError::Format {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let file = WeightFile::from_bytes(path, bytes)?;
        Self::from_file(&file, device)?.ok_or_else(|| WeightsError::UnknownArchitecture {
            path: path.to_owned(),
            reason: format!("not the state dict of {FAMILIES}"),
        })
    }

    /// The width of the pooled features (the classifier's input).
    #[must_use]
    pub fn features(&self) -> usize {
        self.head().classifier.weight.dims()[1]
    }

    /// This network with a new classifier: `weight` (`[classes, features]`, PyTorch's layout)
    /// and `bias`, on `device`.
    #[must_use]
    pub fn with_classifier(self, weight: Vec<f32>, bias: Vec<f32>, classes: usize, device: &Device) -> Self {
        let fc = linear_from(weight, bias, classes, self.features(), device);
        match self {
            Self::ResNet(net) => Self::ResNet(net.with_classifier(fc)),
            Self::Lite(net) => Self::Lite(net.with_classifier(fc)),
        }
    }

    /// This network with everything before its last stage frozen: no gradients, BatchNorms in
    /// evaluation mode.
    #[must_use]
    pub fn freeze_all_but_last_stage(self) -> Self {
        match self {
            Self::ResNet(net) => Self::ResNet(net.freeze_all_but_last_stage()),
            Self::Lite(net) => Self::Lite(net.freeze_all_but_last_stage()),
        }
    }

    /// Every tensor under its source library's key, PyTorch layouts, f32.
    #[must_use]
    pub fn state_dict(&self) -> Vec<Named> {
        match self {
            Self::ResNet(net) => net.state_dict(),
            Self::Lite(net) => net.state_dict(),
        }
    }

    /// The network as the rest of the tool runs any family.
    #[must_use]
    pub fn as_architecture(&self) -> &dyn Architecture {
        match self {
            Self::ResNet(net) => net,
            Self::Lite(net) => net,
        }
    }

    /// The forward pass: in training (batch statistics) on an autodiff device, except where
    /// frozen.
    pub fn forward(&self, x: Tensor<4>) -> Forward {
        self.as_architecture().forward(x)
    }

    /// The FixRes head of the network (its last BatchNorm and classifier).
    #[must_use]
    pub fn head(&self) -> super::head::Head {
        self.as_architecture().head()
    }
}
