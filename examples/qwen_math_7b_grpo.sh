#!/usr/bin/env bash
# Paper row: GRPO, Qwen2.5-Math-7B-Instruct on Open-RS. Settings: recipe/cwgrpo/config (preset/qwen_math_7b.yaml, method/grpo.yaml); examples/train.sh sets paths and cluster from the environment; arguments are Hydra overrides.
PRESET=qwen_math_7b METHOD=grpo exec bash "$(dirname "${BASH_SOURCE[0]}")/train.sh" "$@"
