#!/usr/bin/env bash
# Baseline KL-Cov at Cui et al. (2025)'s settings (no row in the CW-GRPO paper), DeepSeek-R1-Distill-Qwen-1.5B on Open-RS. Settings: recipe/cwgrpo/config (preset/r1_distill_1.5b.yaml, method/kl_cov.yaml); examples/train.sh sets paths and cluster from the environment; arguments are Hydra overrides.
PRESET=r1_distill_1.5b METHOD=kl_cov exec bash "$(dirname "${BASH_SOURCE[0]}")/train.sh" "$@"
