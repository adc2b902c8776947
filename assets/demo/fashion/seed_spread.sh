#!/usr/bin/env bash
# Measures how much the Fashion grid (make_models.sh, seed 0) moves with the seed (README, "The
# FixRes effect on your data"): the same grid with seeds 1 and 2, into OUT (default: a new
# temporary folder; finished stages there are kept), then each cell's mean and range over the three
# seeds. About 20 minutes on a 2-core CPU, after make_models.sh.
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=${1:-$(mktemp -d)}
for seed in 1 2; do
  cargo run --release -- grid --data assets/demo/fashion --train-res 16,20,24,28 --test-res 16..44:4 \
    --epochs 15 --finetune --finetune-epochs 5 --seed "$seed" --out "$out/seed$seed"
done
python3 assets/demo/fashion/grid_table.py assets/demo/fashion/grid/grid.json "$out"/seed{1,2}/grid.json
