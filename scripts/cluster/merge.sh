#!/usr/bin/env bash
# Joins the parts of a sharded `fixres eval` (eval_shard.sh) into the report the unsharded run
# writes, and its per-image CSV. Refuses (writing nothing) when a shard is missing or twice, or
# the parts are of different models, datasets, settings or shard counts.
#
#   PARTS    where the parts are (default: parts)
#   OUT      the report (default: eval.json); the CSV goes beside it (eval.csv)
#   FIXRES   the fixres binary (default: fixres on PATH)
#SBATCH --job-name=fixres-merge
set -euo pipefail
PARTS=${PARTS:-parts}
OUT=${OUT:-eval.json}
exec "${FIXRES:-fixres}" merge "$PARTS"/eval-*.safetensors --out "$OUT" --per-image "${OUT%.json}.csv"
