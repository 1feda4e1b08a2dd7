#!/usr/bin/env bash
# Paper row: Qwen2.5-Math-7B-Instruct + kl_cov on Open-RS. Settings: examples/train.sh (env vars override, args are Hydra overrides).
PRESET=qwen_math_7b METHOD=kl_cov exec bash "$(dirname "${BASH_SOURCE[0]}")/train.sh" "$@"
