#!/usr/bin/env bash
# Evaluate a training run's checkpoints as the paper evaluated models: every saved step (or the STEPs given) is
# merged into a Hugging Face model with verl's model merger (once: <step>/actor/huggingface_merged), then
# evaluated by examples/evaluate.sh into EVAL_DIR (default: CHECKPOINT_DIR/evals), one log per step. What is
# already merged or evaluated is skipped, so a re-run resumes. Then: python -m cwgrpo_verl.report --eval NAME=EVAL_DIR
#
#   PRESET=r1_distill_1.5b examples/evaluate_checkpoints.sh checkpoints/cwgrpo/cwgrpo-DeepSeek-R1-Distill-Qwen-1.5B [100 150 200]
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { echo "$*" >&2; exit 2; }

[[ $# -ge 1 ]] || die "usage: evaluate_checkpoints.sh CHECKPOINT_DIR [STEP ...]"
CHECKPOINT_DIR=$(cd "$1" && pwd) || die "evaluate_checkpoints.sh: no folder $1"
shift
steps=("$@")
(( $# )) || mapfile -t steps < <(find "$CHECKPOINT_DIR" -maxdepth 1 -type d -name 'global_step_*' |
                                   sed 's/.*global_step_//' | sort -n)
(( ${#steps[@]} )) || die "evaluate_checkpoints.sh: no global_step_* in $CHECKPOINT_DIR"

for step in "${steps[@]}"; do
    actor="$CHECKPOINT_DIR/global_step_$step/actor" merged="$actor/huggingface_merged"
    [[ -d "$actor" ]] || die "evaluate_checkpoints.sh: no checkpoint $actor"
    if [[ ! -f "$merged/config.json" ]]; then
        rm -rf "$merged.partial"
        "${PYTHON:-python3}" -m verl.model_merger merge --backend fsdp --local_dir "$actor" \
            --target_dir "$merged.partial"
        mv "$merged.partial" "$merged"
    fi
    MODEL_PATH="$merged" STEP="$step" EVAL_DIR="${EVAL_DIR:-$CHECKPOINT_DIR/evals}" bash "$HERE/evaluate.sh"
done
