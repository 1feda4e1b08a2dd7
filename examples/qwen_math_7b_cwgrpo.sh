#!/usr/bin/env bash
# Paper row: CW-GRPO, Qwen2.5-Math-7B-Instruct on Open-RS. Settings: examples/train.sh (the environment sets paths and cluster; arguments are Hydra overrides).
PRESET=qwen_math_7b METHOD=cwgrpo exec bash "$(dirname "${BASH_SOURCE[0]}")/train.sh" "$@"
