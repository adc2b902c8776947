#!/usr/bin/env bash
# On a machine with a GPU (and torch with CUDA): the forward benchmark at 224/288/384 and the
# whole FixRes fine-tune job on burn-wgpu
# beside PyTorch eager on CUDA, ratios printed. A few minutes. Builds the release binary if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${CARGO_TARGET_DIR:-target}/release/fixres"
[ -x "$bin" ] || cargo build --release
pip install -q safetensors efficientnet-lite-pytorch >/dev/null 2>&1 || true
python3 benches/forward_vs_pytorch.py --device gpu --res 224,288,384 --batch 32 --seconds 5 --fixres "$bin"
# The whole FixRes fine-tune job, burn-wgpu vs PyTorch CUDA.
python3 benches/finetune_vs_pytorch.py --device gpu --res 224 --epochs 5 --copies 16 --batch 32 --fixres "$bin"
# An 8-resolution sweep's preprocessing into Burn's tensors: decode per resolution (CPU), decode
# once (CPU), decode once and resample in WGSL straight into Burn's buffers on the GPU; and the
# resampling alone, GPU vs CPU.
"$bin" bench sweep --data assets/demo/photos --res 128,160,192,224,256,288,320,384
# The shader parity tests on this GPU (bytes and Burn inputs identical to the CPU path's).
cargo test --release --test tests gpu::
