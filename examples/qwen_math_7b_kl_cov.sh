#!/usr/bin/env bash
# Paper row: Qwen2.5-Math-7B-Instruct + kl_cov on Open-RS (150 steps, accuracy-only reward, 4 GPUs).
set -euo pipefail
export METHOD=kl_cov
export MODEL_PATH=${MODEL_PATH:-Qwen/Qwen2.5-Math-7B-Instruct}
export TOTAL_STEPS=${TOTAL_STEPS:-150}
export FORMAT_WEIGHT=${FORMAT_WEIGHT:-0.0}
export MAX_RESPONSE_LENGTH=${MAX_RESPONSE_LENGTH:-3584}   # 512 + 3584 = the 4096-token context of Qwen2.5-Math-7B
export ROLLOUT_TP=${ROLLOUT_TP:-1}
exec bash "$(dirname "${BASH_SOURCE[0]}")/train.sh" "$@"
