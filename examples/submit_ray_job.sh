#!/usr/bin/env bash
# Submit a training run to a Ray cluster as a job. The training script runs HERE, on the submitting side, in dry-run
# mode: every variable it reads (paths, NNODES, N_GPUS_PER_NODE, LOGGER, ...) and every Hydra override you pass is
# resolved into one command, and the job runs exactly that command with the repo as its working_dir.
#
#   RAY_ADDRESS=http://HEAD:8265 NNODES=2 N_GPUS_PER_NODE=8 DATA_DIR=/shared/data CHECKPOINT_DIR=/shared/ckpt/run1 \
#       examples/submit_ray_job.sh [r1_distill_1.5b_cwgrpo.sh] [hydra overrides...]
#   RAY_ADDRESS=http://HEAD:8265 examples/submit_ray_job.sh -- python -m cwgrpo_verl.check   # any other command
#
# Paths must be absolute and on storage every node sees; the recipe checks them on every node at start-up.
# PRINT_CONFIG=1 makes the job print the composed config and exit (nothing is trained).
# FORWARD_ENV lists the environment variables the job gets from this shell (the secrets and caches it needs).
# The metrics log (VERL_FILE_LOGGER_ROOT, default: this directory) is resolved here too and always forwarded.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

RAY=${RAY:-ray}
PYTHON=${PYTHON:-python3}
export RAY_ADDRESS=${RAY_ADDRESS:-http://127.0.0.1:8265}
WORKING_DIR=${WORKING_DIR:-$(cd "$HERE/.." && pwd)}
RUNTIME_ENV=${RUNTIME_ENV:-$HERE/runtime_env.yaml}
FORWARD_ENV=${FORWARD_ENV:-"WANDB_API_KEY WANDB_PROJECT WANDB_ENTITY HF_TOKEN HF_HOME HF_ENDPOINT"}
SUBMISSION_ID=${SUBMISSION_ID:-}
NO_WAIT=${NO_WAIT:-0}                          # 1: return after submitting; follow with `ray job logs -f ID`

if [[ "${1:-}" == "--" ]]; then
    shift
    command=("$@")
else
    script=r1_distill_1.5b_cwgrpo.sh
    if [[ "${1:-}" == *.sh ]]; then script=$(basename "$1"); shift; fi
    [[ -f "$HERE/$script" ]] || { echo "submit_ray_job.sh: no examples/$script" >&2; exit 2; }
    resolved=$(DRY_RUN=1 bash "$HERE/$script" "$@")
    mapfile -t lines <<< "$resolved"
    command=(python -m "${lines[@]}")
    for arg in "${lines[@]:1}"; do  # the paths a job on another node must be able to see
        key=${arg%%=*}; key=${key#+}; key=${key#+}
        case "$key" in
            data.train_files|data.val_files|trainer.default_local_dir|trainer.resume_from_path) ;;
            actor_rollout_ref.model.path|actor_rollout_ref.ref.model.path) ;;
            *) continue ;;
        esac
        value=${arg#*=}; value=${value#[}; value=${value%]}
        IFS=, read -ra paths <<< "$value"
        for path in "${paths[@]}"; do
            [[ "$path" == /* || "$path" == null || "$path" == *://* ]] && continue
            # a model path that names nothing here is a hub name
            [[ "$key" == *model.path && "$path" != "~"* && ! -e "$path" ]] && continue
            echo "submit_ray_job.sh: $key=$path is not an absolute path; the job runs on another machine, in a" \
                 "copy of the repo: give paths on storage every node sees" >&2
            exit 2
        done
    done
    [[ "${PRINT_CONFIG:-0}" == "1" ]] && command+=(--cfg job --resolve)
fi

runtime_env=$("$PYTHON" - "$RUNTIME_ENV" "$WORKING_DIR" $FORWARD_ENV <<'EOF'
import json, os, sys

import yaml

env = yaml.safe_load(open(sys.argv[1])) or {}
env["working_dir"] = sys.argv[2]
env_vars = env.setdefault("env_vars", {})
env_vars.update({name: os.environ[name] for name in sys.argv[3:] if name in os.environ})
# verl's file logger writes <root>/<project>/<experiment>.jsonl under the job's working directory, Ray's temporary
# copy of the repo: resolve it here, to where a run started from this directory would write it
if os.environ.get("VERL_FILE_LOGGER_PATH"):
    env_vars["VERL_FILE_LOGGER_PATH"] = os.path.abspath(os.path.expanduser(os.environ["VERL_FILE_LOGGER_PATH"]))
else:
    env_vars["VERL_FILE_LOGGER_ROOT"] = os.path.abspath(os.path.expanduser(os.environ.get("VERL_FILE_LOGGER_ROOT", ".")))
print(json.dumps(env))
EOF
)
args=(--address "$RAY_ADDRESS" --runtime-env-json "$runtime_env")
[[ -n "$SUBMISSION_ID" ]] && args+=(--submission-id "$SUBMISSION_ID")
[[ "$NO_WAIT" == "1" ]] && args+=(--no-wait)
exec "$RAY" job submit "${args[@]}" -- "${command[@]}"
