#!/usr/bin/env bash
# Baseline KL-Cov at Cui et al. (2025)'s settings (no row in the CW-GRPO paper), Qwen2.5-Math-7B-Instruct on Open-RS. Settings: examples/train.sh (the environment sets paths and cluster; arguments are Hydra overrides).
PRESET=qwen_math_7b METHOD=kl_cov exec bash "$(dirname "${BASH_SOURCE[0]}")/train.sh" "$@"
