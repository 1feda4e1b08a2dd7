#!/usr/bin/env bash
# Paper row: DeepSeek-R1-Distill-Qwen-1.5B + grpo on Open-RS. Settings: examples/train.sh (env vars override, args are Hydra overrides).
PRESET=r1_distill_1.5b METHOD=grpo exec bash "$(dirname "${BASH_SOURCE[0]}")/train.sh" "$@"
