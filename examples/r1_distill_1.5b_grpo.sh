#!/usr/bin/env bash
# Paper row: DeepSeek-R1-Distill-Qwen-1.5B + grpo on Open-RS (100 steps, accuracy + format reward, 4 GPUs).
set -euo pipefail
export METHOD=grpo
export MODEL_PATH=${MODEL_PATH:-deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B}
export TOTAL_STEPS=${TOTAL_STEPS:-100}
export FORMAT_WEIGHT=${FORMAT_WEIGHT:-1.0}
exec bash "$(dirname "${BASH_SOURCE[0]}")/train.sh" "$@"
