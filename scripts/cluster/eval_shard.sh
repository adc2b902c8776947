#!/usr/bin/env bash
# One shard of `fixres eval`, as a task of a job array: Slurm (slurm_eval.sbatch) or a Kubernetes
# Indexed Job (k8s_eval_job.yaml). fixres reads which shard from the scheduler's variables
# (--shard auto); the part is named after the task so that no two tasks write the same file.
# Then `fixres merge "$PARTS"/eval-*.safetensors --out eval.json` (merge.sh) joins the parts.
#
#   WEIGHTS  the model's weights (required)
#   DATA     the labelled ImageFolder (required)
#   PARTS    where the parts go (default: parts)
#   RES      test resolutions (default: 224,288,320)
#   FIXRES   the fixres binary (default: fixres on PATH)
#   EXTRA    more arguments for fixres eval (e.g. "--per-class 10 --batch 64")
set -euo pipefail
: "${WEIGHTS:?set WEIGHTS to the weights file}" "${DATA:?set DATA to the ImageFolder}"
PARTS=${PARTS:-parts}
task=${SLURM_ARRAY_TASK_ID:-${JOB_COMPLETION_INDEX:?not in a job array: no SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX}}
mkdir -p "$PARTS"
# shellcheck disable=SC2086 # EXTRA is a list of arguments
exec "${FIXRES:-fixres}" eval --weights "$WEIGHTS" --data "$DATA" --res "${RES:-224,288,320}" \
    --shard auto --out "$PARTS/eval-$task.safetensors" ${EXTRA:-}
