#!/usr/bin/env bash
# Trains the Fashion demo's models and measures its resolution grid (README, "The FixRes effect
# on Fashion"): resnet-tiny from scratch at K_train 16, 20, 24, 28 (15 epochs each), evaluated at
# K_test 16..44 and FixRes-fine-tuned at each (5 epochs). Writes grid/models/*.safetensors,
# grid/grid.json, grid.csv, grid.png. About 10 minutes on a 2-core CPU. Finished stages are kept:
# delete grid/ to start over.
set -euo pipefail
cd "$(dirname "$0")/../../.."
cargo run --release -- grid --data assets/demo/fashion --train-res 16,20,24,28 --test-res 16..44:4 \
  --epochs 15 --finetune --finetune-epochs 5 --out assets/demo/fashion/grid
