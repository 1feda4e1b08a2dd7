#!/usr/bin/env bash
# Baseline KL-Cov at Cui et al. (2025)'s settings (no row in the CW-GRPO paper), Qwen2.5-Math-7B-Instruct on Open-RS. Settings: recipe/cwgrpo/config (preset/qwen_math_7b.yaml, method/kl_cov.yaml); examples/train.sh sets paths and cluster from the environment; arguments are Hydra overrides.
PRESET=qwen_math_7b METHOD=kl_cov exec bash "$(dirname "${BASH_SOURCE[0]}")/train.sh" "$@"
