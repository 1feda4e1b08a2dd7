#!/usr/bin/env bash
# Paper row: GRPO, DeepSeek-R1-Distill-Qwen-1.5B on Open-RS. Settings: recipe/cwgrpo/config (preset/r1_distill_1.5b.yaml, method/grpo.yaml); examples/train.sh sets paths and cluster from the environment; arguments are Hydra overrides.
PRESET=r1_distill_1.5b METHOD=grpo exec bash "$(dirname "${BASH_SOURCE[0]}")/train.sh" "$@"
