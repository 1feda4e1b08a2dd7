#!/usr/bin/env bash
# Submit a command to a Ray cluster as a job, with the repo as working_dir and runtime_env.yaml.
#   RAY_ADDRESS=http://HEAD:8265 examples/submit_ray_job.sh                      # the 1.5B CW-GRPO run
#   RAY_ADDRESS=http://HEAD:8265 examples/submit_ray_job.sh python -m cwgrpo_verl.check
# Inside the job, verl's ray.init() joins the cluster; NNODES / N_GPUS_PER_NODE set the trainer's size.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

RAY=${RAY:-ray}
RAY_ADDRESS=${RAY_ADDRESS:-http://127.0.0.1:8265}
WORKING_DIR=${WORKING_DIR:-$(cd "$HERE/.." && pwd)}
RUNTIME_ENV=${RUNTIME_ENV:-$HERE/runtime_env.yaml}
SUBMISSION_ID=${SUBMISSION_ID:-}
NO_WAIT=${NO_WAIT:-0}                          # 1: return after submitting; follow with `ray job logs -f ID`

if [[ $# -eq 0 ]]; then
    set -- bash examples/r1_distill_1.5b_cwgrpo.sh
fi
ARGS=(--address "$RAY_ADDRESS" --working-dir "$WORKING_DIR" --runtime-env "$RUNTIME_ENV")
[[ -n "$SUBMISSION_ID" ]] && ARGS+=(--submission-id "$SUBMISSION_ID")
[[ "$NO_WAIT" == "1" ]] && ARGS+=(--no-wait)
exec "$RAY" job submit "${ARGS[@]}" -- "$@"
